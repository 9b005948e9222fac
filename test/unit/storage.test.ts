/**
 * One conformance suite, run against every storage backend: they must accept, refuse and order
 * the same things, so unit tests on the memory store say something true about SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSubscriptions, SUBSCRIPTIONS_KEY, writeSubscriptions } from '../../src/modules/pep/subscriptions.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import {
  credentialsFromSaltedPassword,
  deriveStoredPassword,
  saltedPasswordSync,
} from '../../src/storage/password.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { AccountError, DEFAULT_ITERATIONS, type RosterItem, type Storage, type StorageOptions } from '../../src/storage/types.js';

type Factory = (options?: StorageOptions) => Storage;
const dirs: string[] = [];

const backends: [string, Factory][] = [
  ['memory', (options) => createMemoryStorage({ iterations: 16, ...options })],
  [
    'sqlite',
    (options) => {
      const dir = mkdtempSync(join(tmpdir(), 'hermod-storage-'));
      dirs.push(dir);
      return openSqliteStorage({ dataDir: dir, iterations: 16, ...options });
    },
  ],
];

afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function item(jid: string, extra: Partial<RosterItem> = {}): RosterItem {
  return { jid, name: null, groups: [], subscription: 'none', ask: null, approved: false, ...extra };
}

function expectAccountError(fn: () => unknown, reason: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AccountError);
    expect((err as AccountError).reason).toBe(reason);
    return;
  }
  throw new Error(`expected AccountError '${reason}'`);
}

describe.each(backends)('%s storage conformance', (_name, open) => {
  let s: Storage;
  beforeEach(() => {
    s = open();
  });
  afterEach(() => s.close());

  describe('users', () => {
    it('creates an account that then exists, and refuses to create it twice', () => {
      expect(s.users.exists('alice@example.org')).toBe(false);
      s.users.create('alice@example.org', 'secret');
      expect(s.users.exists('alice@example.org')).toBe(true);
      expectAccountError(() => s.users.create('alice@example.org', 'other'), 'exists');
    });

    it('stores the prepared bare JID (RFC 7622 case mapping) so a differently-cased name is the same user', () => {
      s.users.create('Alice@Example.ORG', 'secret');
      expect(s.users.exists('alice@example.org')).toBe(true);
      expectAccountError(() => s.users.create('ALICE@example.org', 'x'), 'exists');
    });

    it('refuses names that are not bare JIDs with a localpart', () => {
      expectAccountError(() => s.users.create('example.org', 'pw'), 'invalid-jid');
      expectAccountError(() => s.users.create('a@example.org/res', 'pw'), 'invalid-jid');
      expectAccountError(() => s.users.create('a b@example.org', 'pw'), 'invalid-jid');
      expect(s.users.count()).toBe(0);
    });

    it('refuses an empty password or one with control characters (RFC 8265 OpaqueString)', () => {
      expectAccountError(() => s.users.create('a@example.org', ''), 'invalid-password');
      expectAccountError(() => s.users.create('a@example.org', 'pw\u0007'), 'invalid-password');
      expect(s.users.exists('a@example.org')).toBe(false);
    });

    it('stores SCRAM credentials per hash and never the password (RFC 5802 §3)', () => {
      s.users.create('alice@example.org', 'pencil');
      for (const [hash, size] of [['SHA-1', 20], ['SHA-256', 32]] as const) {
        const c = s.users.getScramCredentials('alice@example.org', hash)!;
        expect(c.iterations).toBe(16);
        expect(c.salt.length).toBe(16);
        expect(c.storedKey.length).toBe(size);
        expect(c.serverKey.length).toBe(size);
        const expected = credentialsFromSaltedPassword(hash, saltedPasswordSync(hash, 'pencil', c.salt, 16), c.salt, 16);
        expect(c.storedKey.equals(expected.storedKey)).toBe(true);
        expect(c.serverKey.equals(expected.serverKey)).toBe(true);
      }
      const sha1 = s.users.getScramCredentials('alice@example.org', 'SHA-1')!;
      const sha256 = s.users.getScramCredentials('alice@example.org', 'SHA-256')!;
      expect(sha1.salt.equals(sha256.salt)).toBe(false);
      expect(s.users.getScramCredentials('nobody@example.org', 'SHA-1')).toBeNull();
    });

    it('uses 4096 iterations unless configured otherwise (RFC 7677 §4)', () => {
      const d = open({ iterations: undefined });
      try {
        // The factory's own default is overridden with undefined → the store default applies.
        d.users.create('a@example.org', 'pw');
        expect(d.users.getScramCredentials('a@example.org', 'SHA-256')!.iterations).toBe(DEFAULT_ITERATIONS);
      } finally {
        d.close();
      }
    });

    it('accepts credentials derived beforehand off the event loop, and checks they are complete', async () => {
      const derived = await deriveStoredPassword('pw', 32);
      s.users.create('bob@example.org', derived);
      expect(s.users.getScramCredentials('bob@example.org', 'SHA-1')!.storedKey.equals(derived['SHA-1'].storedKey)).toBe(true);
      const broken = { ...derived, 'SHA-256': { ...derived['SHA-256'], storedKey: Buffer.alloc(3) } };
      expectAccountError(() => s.users.create('carol@example.org', broken), 'invalid-password');
    });

    it('changes a password, and reports a missing account instead of creating it', () => {
      s.users.create('alice@example.org', 'old');
      const before = s.users.getScramCredentials('alice@example.org', 'SHA-256')!;
      expect(s.users.setPassword('alice@example.org', 'new')).toBe(true);
      const after = s.users.getScramCredentials('alice@example.org', 'SHA-256')!;
      expect(after.storedKey.equals(before.storedKey)).toBe(false);
      const expected = credentialsFromSaltedPassword('SHA-256', saltedPasswordSync('SHA-256', 'new', after.salt, 16), after.salt, 16);
      expect(after.storedKey.equals(expected.storedKey)).toBe(true);
      expect(s.users.setPassword('ghost@example.org', 'x')).toBe(false);
      expect(s.users.exists('ghost@example.org')).toBe(false);
    });

    it('deletes an account with its roster, version, pending requests and offline messages', () => {
      s.users.create('alice@example.org', 'pw');
      s.rosters.set('alice@example.org', item('bob@example.org'));
      s.rosters.addPending('alice@example.org', 'carol@example.org', '<presence type="subscribe"/>');
      s.offline.push('alice@example.org', '<message/>');
      // Someone else's data must survive.
      s.users.create('bob@example.org', 'pw');
      s.rosters.set('bob@example.org', item('alice@example.org'));
      s.offline.push('bob@example.org', '<message/>');

      expect(s.users.delete('alice@example.org')).toBe(true);
      expect(s.users.exists('alice@example.org')).toBe(false);
      expect(s.users.getScramCredentials('alice@example.org', 'SHA-1')).toBeNull();
      expect(s.rosters.list('alice@example.org')).toEqual([]);
      expect(s.rosters.version('alice@example.org')).toBe(0);
      expect(s.rosters.listPending('alice@example.org')).toEqual([]);
      expect(s.offline.count('alice@example.org')).toBe(0);
      expect(s.users.delete('alice@example.org')).toBe(false);

      expect(s.rosters.list('bob@example.org')).toHaveLength(1);
      expect(s.offline.count('bob@example.org')).toBe(1);
    });

    it('lists accounts in order, by domain, in pages', () => {
      for (const u of ['carol@b.example', 'alice@a.example', 'bob@a.example', 'dave@a.example']) s.users.create(u, 'pw');
      expect(s.users.list()).toEqual(['alice@a.example', 'bob@a.example', 'carol@b.example', 'dave@a.example']);
      expect(s.users.list({ domain: 'a.example' })).toEqual(['alice@a.example', 'bob@a.example', 'dave@a.example']);
      expect(s.users.list({ domain: 'a.example', limit: 2 })).toEqual(['alice@a.example', 'bob@a.example']);
      expect(s.users.list({ domain: 'a.example', after: 'bob@a.example', limit: 2 })).toEqual(['dave@a.example']);
      expect(s.users.list({ after: 'dave@a.example' })).toEqual([]);
      expect(s.users.count()).toBe(4);
      expect(s.users.count('a.example')).toBe(3);
      expect(s.users.count('c.example')).toBe(0);
    });
  });

  describe('rosters', () => {
    const owner = 'alice@example.org';

    it('stores an item with name, groups, subscription, ask and pre-approval (RFC 6121 §2.1.2, §3.4)', () => {
      const it1 = item('bob@example.org', {
        name: 'Bob',
        groups: ['Friends', 'Work', 'Friends'],
        subscription: 'to',
        ask: 'subscribe',
        approved: true,
      });
      s.rosters.set(owner, it1);
      expect(s.rosters.get(owner, 'bob@example.org')).toEqual({ ...it1, groups: ['Friends', 'Work'] });
      expect(s.rosters.get(owner, 'nobody@example.org')).toBeNull();
      expect(s.rosters.get('other@example.org', 'bob@example.org')).toBeNull();
    });

    it('replaces an item on set and lists items by contact JID', () => {
      s.rosters.set(owner, item('zed@example.org'));
      s.rosters.set(owner, item('bob@example.org', { subscription: 'none' }));
      s.rosters.set(owner, item('bob@example.org', { subscription: 'both', name: 'B' }));
      expect(s.rosters.list(owner).map((i) => [i.jid, i.subscription, i.name])).toEqual([
        ['bob@example.org', 'both', 'B'],
        ['zed@example.org', 'none', null],
      ]);
    });

    it('never lets a caller alter stored items through returned objects', () => {
      const mine = item('bob@example.org', { groups: ['A'] });
      s.rosters.set(owner, mine);
      mine.groups.push('B');
      s.rosters.get(owner, 'bob@example.org')!.groups.push('C');
      s.rosters.list(owner)[0]!.groups.push('D');
      expect(s.rosters.get(owner, 'bob@example.org')!.groups).toEqual(['A']);
    });

    it('removes an item, and says when there was none', () => {
      s.rosters.set(owner, item('bob@example.org'));
      const v = s.rosters.version(owner);
      expect(s.rosters.remove(owner, 'nobody@example.org')).toBeNull();
      expect(s.rosters.version(owner)).toBe(v);
      const after = s.rosters.remove(owner, 'bob@example.org');
      expect(after).toBeGreaterThan(v);
      expect(s.rosters.version(owner)).toBe(after);
      expect(s.rosters.list(owner)).toEqual([]);
    });

    it('increases the roster version on every change, never repeating across owners (RFC 6121 §2.6)', () => {
      expect(s.rosters.version(owner)).toBe(0);
      const v1 = s.rosters.set(owner, item('bob@example.org'));
      const v2 = s.rosters.set(owner, item('carol@example.org'));
      const other = s.rosters.set('bob@example.org', item('alice@example.org'));
      const v3 = s.rosters.set(owner, item('bob@example.org', { subscription: 'to' }));
      expect(v1).toBeGreaterThan(0);
      expect(v2).toBeGreaterThan(v1);
      expect(v3).toBeGreaterThan(v2);
      expect(new Set([v1, v2, v3, other]).size).toBe(4);
      expect(s.rosters.version(owner)).toBe(v3);
      expect(s.rosters.version('bob@example.org')).toBe(other);
    });

    it('does not reuse an old version after the account is deleted and created again', () => {
      s.users.create(owner, 'pw');
      const old = s.rosters.set(owner, item('bob@example.org'));
      s.users.delete(owner);
      s.users.create(owner, 'pw');
      expect(s.rosters.version(owner)).toBe(0);
      expect(s.rosters.set(owner, item('carol@example.org'))).toBeGreaterThan(old);
    });

    it('tells what changed since a cached version, oldest first, latest state per contact (RFC 6121 §2.6.3)', () => {
      const v1 = s.rosters.set(owner, item('bob@example.org'));
      const v2 = s.rosters.set(owner, item('carol@example.org'));
      const v3 = s.rosters.set(owner, item('dave@example.org'));
      s.rosters.set('other@example.org', item('zed@example.org'));
      const v4 = s.rosters.set(owner, item('bob@example.org', { subscription: 'both' }));
      const v5 = s.rosters.remove(owner, 'carol@example.org')!;
      expect(s.rosters.changesSince(owner, v5)).toEqual({ version: v5, changes: [] });
      expect(s.rosters.changesSince(owner, v3)).toEqual({
        version: v5,
        changes: [
          { version: v4, item: item('bob@example.org', { subscription: 'both' }) },
          { version: v5, removed: 'carol@example.org' },
        ],
      });
      expect(s.rosters.changesSince(owner, v1)!.changes.map((c) => c.version)).toEqual([v3, v4, v5]);
      // Re-adding a removed contact replaces its removal.
      const v6 = s.rosters.set(owner, item('carol@example.org', { name: 'C' }));
      expect(s.rosters.changesSince(owner, v3)!.changes).toEqual([
        { version: v4, item: item('bob@example.org', { subscription: 'both' }) },
        { version: v6, item: item('carol@example.org', { name: 'C' }) },
      ]);
      expect(v2).toBeLessThan(v3);
    });

    it('cannot diff from versions it never issued for the roster: the client gets the whole roster', () => {
      expect(s.rosters.changesSince(owner, 0)).toEqual({ version: 0, changes: [] });
      expect(s.rosters.changesSince(owner, 7)).toBeNull();
      const first = s.rosters.set(owner, item('bob@example.org'));
      // The empty roster before the first change predates what was recorded.
      expect(s.rosters.changesSince(owner, 0)).toBeNull();
      expect(s.rosters.changesSince(owner, first + 1)).toBeNull();
      expect(s.rosters.changesSince(owner, Number.NaN)).toBeNull();
    });

    it('forgets history with the account, so a cached version of a deleted account gets the whole roster', () => {
      s.users.create(owner, 'pw');
      s.rosters.set(owner, item('bob@example.org'));
      const old = s.rosters.set(owner, item('carol@example.org'));
      s.users.delete(owner);
      s.users.create(owner, 'pw');
      s.rosters.set(owner, item('dave@example.org'));
      expect(s.rosters.changesSince(owner, old)).toBeNull();
      expect(s.rosters.list(owner).map((i) => i.jid)).toEqual(['dave@example.org']);
    });

    it('keeps inbound subscription requests with the original stanza, oldest first (RFC 6121 §3.1.3)', () => {
      const fromBob = "<presence from='bob@example.org' to='alice@example.org' type='subscribe'><status>hi</status></presence>";
      s.rosters.addPending(owner, 'bob@example.org', fromBob);
      s.rosters.addPending(owner, 'carol@example.org', '<presence type="subscribe"/>');
      expect(s.rosters.getPending(owner, 'bob@example.org')!.stanza).toBe(fromBob);
      expect(s.rosters.getPending(owner, 'bob@example.org')!.stamp).toBeInstanceOf(Date);
      expect(s.rosters.listPending(owner).map((p) => p.from)).toEqual(['bob@example.org', 'carol@example.org']);
      // A renewed request replaces the old one and moves to the end.
      s.rosters.addPending(owner, 'bob@example.org', '<presence type="subscribe"><status>again</status></presence>');
      expect(s.rosters.listPending(owner).map((p) => [p.from, p.stanza])).toEqual([
        ['carol@example.org', '<presence type="subscribe"/>'],
        ['bob@example.org', '<presence type="subscribe"><status>again</status></presence>'],
      ]);
      expect(s.rosters.removePending(owner, 'bob@example.org')).toBe(true);
      expect(s.rosters.removePending(owner, 'bob@example.org')).toBe(false);
      expect(s.rosters.getPending(owner, 'bob@example.org')).toBeNull();
      expect(s.rosters.listPending('nobody@example.org')).toEqual([]);
    });
  });

  describe('offline messages', () => {
    const who = 'bob@example.org';

    it('delivers queued stanzas in order with their stamps, then forgets them', () => {
      const t0 = new Date('2024-01-02T03:04:05.678Z');
      expect(s.offline.push(who, '<message id="1"/>', t0)).toBe(true);
      expect(s.offline.push(who, '<message id="2">ünïcødé</message>')).toBe(true);
      expect(s.offline.push(who, '<message id="3"/>')).toBe(true);
      expect(s.offline.count(who)).toBe(3);
      const taken = s.offline.takeAll(who);
      expect(taken.map((m) => m.stanza)).toEqual(['<message id="1"/>', '<message id="2">ünïcødé</message>', '<message id="3"/>']);
      expect(taken[0]!.stamp.toISOString()).toBe(t0.toISOString());
      expect(taken[1]!.stamp).toBeInstanceOf(Date);
      expect(s.offline.count(who)).toBe(0);
      expect(s.offline.takeAll(who)).toEqual([]);
    });

    it('keeps queues apart per user', () => {
      s.offline.push(who, '<message id="b"/>');
      s.offline.push('carol@example.org', '<message id="c"/>');
      expect(s.offline.takeAll(who).map((m) => m.stanza)).toEqual(['<message id="b"/>']);
      expect(s.offline.count('carol@example.org')).toBe(1);
    });

    it('refuses a message beyond the per-user limit and stores nothing of it', () => {
      const small = open({ offlineLimit: 2 });
      try {
        expect(small.offline.push(who, '<message id="1"/>')).toBe(true);
        expect(small.offline.push(who, '<message id="2"/>')).toBe(true);
        expect(small.offline.push(who, '<message id="3"/>')).toBe(false);
        expect(small.offline.push('carol@example.org', '<message id="x"/>')).toBe(true);
        expect(small.offline.takeAll(who).map((m) => m.stanza)).toEqual(['<message id="1"/>', '<message id="2"/>']);
        expect(small.offline.push(who, '<message id="4"/>')).toBe(true);
      } finally {
        small.close();
      }
    });
  });

  describe('per-account XML (XEP-0049, XEP-0054)', () => {
    const owner = 'alice@example.org';

    it('keeps one document per key and owner, replacing on set', () => {
      expect(s.xml.get(owner, 'private:storage:bookmarks')).toBeNull();
      s.xml.set(owner, 'private:storage:bookmarks', "<storage xmlns='storage:bookmarks'/>");
      s.xml.set(owner, 'vcard', "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
      expect(s.xml.get(owner, 'private:storage:bookmarks')).toBe("<storage xmlns='storage:bookmarks'/>");
      s.xml.set(owner, 'private:storage:bookmarks', "<storage xmlns='storage:bookmarks'><url/></storage>");
      expect(s.xml.get(owner, 'private:storage:bookmarks')).toBe("<storage xmlns='storage:bookmarks'><url/></storage>");
      expect(s.xml.get(owner, 'vcard')).toBe("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
      expect(s.xml.get('carol@example.org', 'vcard')).toBeNull();
    });

    it('removes one key, reporting whether it existed', () => {
      s.xml.set(owner, 'vcard', '<vCard/>');
      expect(s.xml.remove(owner, 'vcard')).toBe(true);
      expect(s.xml.remove(owner, 'vcard')).toBe(false);
      expect(s.xml.get(owner, 'vcard')).toBeNull();
    });

    it('counts one owner\'s keys under a prefix, and only those', () => {
      for (const k of ['private:a', 'private:b', 'private:b', 'privatex', 'private', 'vcard']) s.xml.set(owner, k, '<x/>');
      s.xml.set('bob@example.org', 'private:c', '<x/>');
      expect(s.xml.count!(owner, 'private:')).toBe(2);
      expect(s.xml.count!('bob@example.org', 'private:')).toBe(1);
      expect(s.xml.count!('carol@example.org', 'private:')).toBe(0);
    });

    it('deleting the account deletes its documents and no one else\'s', () => {
      s.users.create(owner, 'secret');
      s.xml.set(owner, 'vcard', '<vCard/>');
      s.xml.set('bob@example.org', 'vcard', '<vCard/>');
      expect(s.users.delete(owner)).toBe(true);
      expect(s.xml.get(owner, 'vcard')).toBeNull();
      expect(s.xml.get('bob@example.org', 'vcard')).toBe('<vCard/>');
    });
  });

  describe('PEP nodes and items (XEP-0163)', () => {
    const owner = 'alice@example.org';
    const node = 'urn:xmpp:avatar:metadata';
    const it1 = (id: string, t = 1) => ({ id, xml: `<metadata xmlns='urn:xmpp:avatar:metadata' id='${id}'/>`, stamp: new Date(t) });

    it('keeps node configurations per owner, listed by name, replaced on set', () => {
      expect(s.pep.node(owner, node)).toBeNull();
      s.pep.setNode(owner, 'urn:xmpp:nick', { 'pubsub#access_model': 'presence' });
      s.pep.setNode(owner, node, { 'pubsub#access_model': 'open', 'pubsub#max_items': '1' });
      expect(s.pep.nodes(owner).map((n) => n.node)).toEqual([node, 'urn:xmpp:nick']);
      s.pep.setNode(owner, node, { 'pubsub#access_model': 'whitelist' });
      expect(s.pep.node(owner, node)).toEqual({ node, config: { 'pubsub#access_model': 'whitelist' } });
      expect(s.pep.nodes('bob@example.org')).toEqual([]);
    });

    it('lists items newest first; a republished id replaces the old one and becomes the newest (XEP-0060 §7.1.2)', () => {
      s.pep.setNode(owner, node, {});
      expect(s.pep.publish(owner, node, it1('a', 1), 10)).toEqual([]);
      s.pep.publish(owner, node, it1('b', 2), 10);
      s.pep.publish(owner, node, it1('c', 3), 10);
      expect(s.pep.items(owner, node).map((i) => i.id)).toEqual(['c', 'b', 'a']);
      s.pep.publish(owner, node, { id: 'a', xml: '<x/>', stamp: new Date(4), publisher: 'alice@example.org/phone' }, 10);
      expect(s.pep.items(owner, node).map((i) => i.id)).toEqual(['a', 'c', 'b']);
      expect(s.pep.items(owner, node, 2).map((i) => i.id)).toEqual(['a', 'c']);
      expect(s.pep.item(owner, node, 'a')).toEqual({ id: 'a', xml: '<x/>', stamp: new Date(4), publisher: 'alice@example.org/phone' });
      expect(s.pep.item(owner, node, 'zz')).toBeNull();
    });

    it('drops the oldest items beyond the kept count and says which, oldest first', () => {
      s.pep.setNode(owner, node, {});
      s.pep.publish(owner, node, it1('a'), 3);
      s.pep.publish(owner, node, it1('b'), 3);
      s.pep.publish(owner, node, it1('c'), 3);
      expect(s.pep.publish(owner, node, it1('d'), 2)).toEqual(['a', 'b']);
      expect(s.pep.trim(owner, node, 1)).toEqual(['c']);
      expect(s.pep.items(owner, node).map((i) => i.id)).toEqual(['d']);
    });

    it('retracts one item, purges all, deletes a node with its items', () => {
      s.pep.setNode(owner, node, {});
      s.pep.publish(owner, node, it1('a'), 5);
      s.pep.publish(owner, node, it1('b'), 5);
      expect(s.pep.retract(owner, node, 'a')).toBe(true);
      expect(s.pep.retract(owner, node, 'a')).toBe(false);
      expect(s.pep.purge(owner, node)).toBe(1);
      expect(s.pep.items(owner, node)).toEqual([]);
      s.pep.publish(owner, node, it1('c'), 5);
      expect(s.pep.deleteNode(owner, node)).toBe(true);
      expect(s.pep.deleteNode(owner, node)).toBe(false);
      s.pep.setNode(owner, node, {});
      expect(s.pep.items(owner, node)).toEqual([]);
    });

    it('counts the UTF-8 bytes of every item the owner keeps, across nodes', () => {
      expect(s.pep.usage(owner)).toBe(0);
      s.pep.setNode(owner, node, {});
      s.pep.setNode(owner, 'urn:xmpp:nick', {});
      s.pep.publish(owner, node, { id: 'a', xml: '<x>é</x>', stamp: new Date(1) }, 5);
      s.pep.publish(owner, 'urn:xmpp:nick', { id: 'b', xml: '<y/>', stamp: new Date(1) }, 5);
      expect(s.pep.usage(owner)).toBe(9 + 4);
      s.pep.publish(owner, node, { id: 'a', xml: '<x/>', stamp: new Date(2) }, 5);
      expect(s.pep.usage(owner)).toBe(4 + 4);
      expect(s.pep.usage('bob@example.org')).toBe(0);
    });

    it("deleting the account deletes its nodes and items and no one else's", () => {
      s.users.create(owner, 'secret');
      s.pep.setNode(owner, node, {});
      s.pep.publish(owner, node, it1('a'), 1);
      s.pep.setNode('bob@example.org', node, {});
      s.pep.publish('bob@example.org', node, it1('b'), 1);
      expect(s.users.delete(owner)).toBe(true);
      expect(s.pep.nodes(owner)).toEqual([]);
      expect(s.pep.item(owner, node, 'a')).toBeNull();
      expect(s.pep.items('bob@example.org', node).map((i) => i.id)).toEqual(['b']);
    });

    it("deleting the account ends its subscriptions to other owners' nodes, bare and full JIDs, and no look-alike's (whoever registers the name next inherits none)", () => {
      for (const u of [owner, 'bob@example.org', 'carol@example.org']) s.users.create(u, 'secret');
      const sub = (jid: string, n = node) => ({ node: n, jid, subid: `id-${jid}` });
      const bobs = [
        sub(owner),
        sub(`${owner}/phone`),
        sub(`${owner}/it's & <odd>`, 'urn:xmpp:nick'),
        sub('alice@example.org.evil'),
        sub('alice@example.orgx/pc'),
        sub('carol@example.org'),
      ];
      writeSubscriptions(s.xml, 'bob@example.org', bobs);
      writeSubscriptions(s.xml, 'carol@example.org', [sub(owner)]);
      writeSubscriptions(s.xml, owner, [sub('bob@example.org')]);
      expect(s.users.delete(owner)).toBe(true);
      expect(readSubscriptions(s.xml, 'bob@example.org')).toEqual(bobs.slice(3));
      expect(s.xml.get('carol@example.org', SUBSCRIPTIONS_KEY)).toBeNull();
      expect(readSubscriptions(s.xml, owner)).toEqual([]);
      s.users.create(owner, 'new owner');
      expect(readSubscriptions(s.xml, 'bob@example.org')).toEqual(bobs.slice(3));
    });

    it("deletes the account even when another owner's subscriptions document cannot be read (left as it was)", () => {
      for (const u of [owner, 'bob@example.org']) s.users.create(u, 'secret');
      const broken = `<subscriptions><subscription node='n' jid='${owner}' subid='1'>`;
      s.xml.set('bob@example.org', SUBSCRIPTIONS_KEY, broken);
      expect(s.users.delete(owner)).toBe(true);
      expect(s.users.exists(owner)).toBe(false);
      expect(s.xml.get('bob@example.org', SUBSCRIPTIONS_KEY)).toBe(broken);
    });
  });

  describe('MUC rooms (XEP-0045)', () => {
    const record = (affiliations: [string, string][]) => JSON.stringify({ config: { persistent: true }, affiliations, subject: null });
    const affiliationsOf = (room: string) => JSON.parse(s.muc.list('muc.example.org').find((r) => r.jid === room)!.data).affiliations;

    it("deleting the account ends its owner, admin and member affiliations in persistent rooms, keeps a ban on its JID, and no look-alike's (whoever registers the name next inherits no room)", () => {
      s.users.create('alice@example.org', 'secret');
      s.muc.save('r1@muc.example.org', record([['alice@example.org', 'owner'], ['bob@example.org', 'owner']]));
      s.muc.save('r2@muc.example.org', record([['alice@example.org', 'outcast'], ['alice@example.org.evil', 'member'], ['x@alice@example.org', 'admin']]));
      s.muc.save('r3@muc.example.org', record([['alice@example.org', 'admin'], ['carol@example.org', 'member']]));
      s.muc.save('r4@muc.example.org', 'not json: alice@example.org');
      expect(s.users.delete('alice@example.org')).toBe(true);
      expect(affiliationsOf('r1@muc.example.org')).toEqual([['bob@example.org', 'owner']]);
      expect(affiliationsOf('r2@muc.example.org')).toEqual([['alice@example.org', 'outcast'], ['alice@example.org.evil', 'member'], ['x@alice@example.org', 'admin']]);
      expect(affiliationsOf('r3@muc.example.org')).toEqual([['carol@example.org', 'member']]);
      expect(s.muc.list('muc.example.org').find((r) => r.jid === 'r4@muc.example.org')!.data).toBe('not json: alice@example.org');
    });
  });

  describe('blocklists (XEP-0191)', () => {
    const owner = 'alice@example.org';

    it('lists blocked JIDs of every form in code-point order, per owner', () => {
      expect(s.blocklist.list(owner)).toEqual([]);
      expect(s.blocklist.add(owner, ['eve@example.org', 'spam.example', 'bob@example.org/phone', 'évé@example.org'])).toEqual([
        'eve@example.org',
        'spam.example',
        'bob@example.org/phone',
        'évé@example.org',
      ]);
      expect(s.blocklist.list(owner)).toEqual(['bob@example.org/phone', 'eve@example.org', 'spam.example', 'évé@example.org']);
      expect(s.blocklist.list('carol@example.org')).toEqual([]);
    });

    it('reports only what a block or unblock changed', () => {
      s.blocklist.add(owner, ['eve@example.org']);
      expect(s.blocklist.add(owner, ['eve@example.org', 'mallory@example.org', 'mallory@example.org'])).toEqual(['mallory@example.org']);
      expect(s.blocklist.remove(owner, ['nobody@example.org', 'eve@example.org'])).toEqual(['eve@example.org']);
      expect(s.blocklist.remove(owner, ['eve@example.org'])).toEqual([]);
      expect(s.blocklist.list(owner)).toEqual(['mallory@example.org']);
    });

    it('unblocks everything at once and returns what was blocked', () => {
      s.blocklist.add(owner, ['b@example.org', 'a@example.org']);
      s.blocklist.add('carol@example.org', ['a@example.org']);
      expect(s.blocklist.clear(owner)).toEqual(['a@example.org', 'b@example.org']);
      expect(s.blocklist.list(owner)).toEqual([]);
      expect(s.blocklist.clear(owner)).toEqual([]);
      expect(s.blocklist.list('carol@example.org')).toEqual(['a@example.org']);
    });

    it('forgets the blocklist when the account is deleted', () => {
      s.users.create(owner, 'pw');
      s.blocklist.add(owner, ['eve@example.org']);
      expect(s.users.delete(owner)).toBe(true);
      expect(s.blocklist.list(owner)).toEqual([]);
    });
  });

  it('refuses use after close', () => {
    s.close();
    expect(() => s.users.exists('a@example.org')).toThrow();
    s.close();
  });
});
