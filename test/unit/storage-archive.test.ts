/**
 * XEP-0313 archive store, one suite for both backends: filters (XEP-0313 §4.1), XEP-0059 paging
 * edges, preferences, retention and account deletion; plus the SQLite specifics (batched writes
 * visible at once, durable across reopen, upgrade from schema 5).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { archiveIds, archiveIdTime, UnknownArchiveId, type ArchiveQuery } from '../../src/storage/archive.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { COUNT_CAP, FLUSH_MS } from '../../src/storage/archive-sqlite.js';
import { DATABASE_FILE, openSqliteStorage, SCHEMA_VERSION } from '../../src/storage/sqlite.js';
import type { Storage } from '../../src/storage/types.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-mam-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const backends: [string, () => Storage][] = [
  ['memory', () => createMemoryStorage({ iterations: 16 })],
  ['sqlite', () => openSqliteStorage({ dataDir: tempDir(), iterations: 16 })],
];

const ALICE = 'alice@example.org';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** Archive ids of messages m0..m19, one minute apart from T0 (made once: ids are unique). */
const next = archiveIds();
const M = Array.from({ length: 20 }, (_, i) => next(new Date(T0 + i * 60_000)));
const name = new Map(M.map((id, i) => [id, `m${i}`]));

/** Ten messages m0..m9 one minute apart, alternately with bob/phone and carol/desk (incoming). */
function fill(s: Storage, owner = ALICE, n = 10): void {
  for (let i = 0; i < n; i++) {
    const contact = i % 2 === 0 ? 'bob@example.org/phone' : 'carol@example.org/desk';
    s.mam.append({ owner, id: M[i]!, stamp: new Date(T0 + i * 60_000), with: contact, stanza: `<message><body>${i}</body></message>` });
  }
}

const ids = (s: Storage, q: Partial<ArchiveQuery>, owner = ALICE) => s.mam.query(owner, { max: 100, ...q }).items.map((m) => name.get(m.id) ?? m.id);

describe.each(backends)('archive store (%s)', (_name, open) => {
  it('returns an archive oldest first with stamp, contact and stanza as appended (XEP-0313 §4.2)', () => {
    const s = open();
    fill(s, ALICE, 2);
    const page = s.mam.query(ALICE, { max: 10 });
    expect(page).toEqual({
      complete: true,
      count: 2,
      items: [
        { id: M[0]!, stamp: new Date(T0), with: 'bob@example.org/phone', stanza: '<message><body>0</body></message>' },
        { id: M[1]!, stamp: new Date(T0 + 60_000), with: 'carol@example.org/desk', stanza: '<message><body>1</body></message>' },
      ],
    });
    expect(s.mam.query('bob@example.org', { max: 10 })).toEqual({ items: [], complete: true, count: 0 });
    s.close();
  });

  it("filters by a bare 'with' across resources and by a full 'with' on one resource (XEP-0313 §4.1.1)", () => {
    const s = open();
    fill(s);
    s.mam.append({ owner: ALICE, id: 'x', stamp: new Date(T0 + 20 * 60_000), with: 'bob@example.org', stanza: '<message/>' });
    expect(ids(s, { with: 'bob@example.org' })).toEqual(['m0', 'm2', 'm4', 'm6', 'm8', 'x']);
    expect(ids(s, { with: 'bob@example.org/phone' })).toEqual(['m0', 'm2', 'm4', 'm6', 'm8']);
    expect(ids(s, { with: 'bob@example.org/laptop' })).toEqual([]);
    s.close();
  });

  it('filters by start and end, both inclusive (XEP-0313 §4.1.2)', () => {
    const s = open();
    fill(s);
    expect(ids(s, { start: new Date(T0 + 3 * 60_000), end: new Date(T0 + 5 * 60_000) })).toEqual(['m3', 'm4', 'm5']);
    expect(ids(s, { start: new Date(T0 + 8 * 60_000) })).toEqual(['m8', 'm9']);
    expect(ids(s, { end: new Date(T0 + 60_000 - 1) })).toEqual(['m0']);
    s.close();
  });

  it('filters by after-id, before-id and ids (urn:xmpp:mam:2#extended)', () => {
    const s = open();
    fill(s);
    expect(ids(s, { afterId: M[6]! })).toEqual(['m7', 'm8', 'm9']);
    expect(ids(s, { beforeId: M[2]! })).toEqual(['m0', 'm1']);
    expect(ids(s, { afterId: M[2]!, beforeId: M[5]! })).toEqual(['m3', 'm4']);
    expect(ids(s, { ids: [M[7]!, M[1]!, 'nope'] })).toEqual(['m1', 'm7']);
    expect(ids(s, { ids: [] })).toEqual([]);
    // An id that exists but is filtered out by 'with' still cuts the list.
    expect(ids(s, { with: 'bob@example.org', afterId: M[5]! })).toEqual(['m6', 'm8']);
    s.close();
  });

  it('pages forwards with max and after; the last page is complete (XEP-0059 §2.2)', () => {
    const s = open();
    fill(s);
    const p1 = s.mam.query(ALICE, { max: 4 });
    expect([p1.items.map((m) => name.get(m.id)), p1.complete, p1.count]).toEqual([['m0', 'm1', 'm2', 'm3'], false, 10]);
    const p2 = s.mam.query(ALICE, { max: 4, after: M[3]! });
    expect([p2.items.map((m) => name.get(m.id)), p2.complete]).toEqual([['m4', 'm5', 'm6', 'm7'], false]);
    const p3 = s.mam.query(ALICE, { max: 4, after: M[7]! });
    expect([p3.items.map((m) => name.get(m.id)), p3.complete, p3.count]).toEqual([['m8', 'm9'], true, 10]);
    // Exactly max left: complete, as no further page exists.
    expect(s.mam.query(ALICE, { max: 2, after: M[7]! }).complete).toBe(true);
    expect(s.mam.query(ALICE, { max: 4, after: M[9]! })).toEqual({ items: [], complete: true, count: 10 });
    s.close();
  });

  it('pages backwards from an empty before (the last page) and from an id (XEP-0059 §2.5)', () => {
    const s = open();
    fill(s);
    const last = s.mam.query(ALICE, { max: 3, before: '' });
    expect([last.items.map((m) => name.get(m.id)), last.complete]).toEqual([['m7', 'm8', 'm9'], false]);
    const prev = s.mam.query(ALICE, { max: 3, before: M[7]! });
    expect([prev.items.map((m) => name.get(m.id)), prev.complete]).toEqual([['m4', 'm5', 'm6'], false]);
    const first = s.mam.query(ALICE, { max: 4, before: M[4]! });
    expect([first.items.map((m) => name.get(m.id)), first.complete]).toEqual([['m0', 'm1', 'm2', 'm3'], true]);
    expect(s.mam.query(ALICE, { max: 3, before: M[0]! })).toEqual({ items: [], complete: true, count: 10 });
    s.close();
  });

  it('answers max=0 with the count only (XEP-0059 §2.7)', () => {
    const s = open();
    fill(s);
    expect(s.mam.query(ALICE, { max: 0 })).toEqual({ items: [], complete: false, count: 10 });
    expect(s.mam.query(ALICE, { max: 0, with: 'carol@example.org' }).count).toBe(5);
    s.close();
  });

  it("refuses an id that is not in the owner's archive, whichever field names it", () => {
    const s = open();
    fill(s);
    fill(s, 'bob@example.org', 1);
    for (const q of [{ after: 'zz' }, { before: 'zz' }, { afterId: 'zz' }, { beforeId: 'zz' }]) {
      expect(() => s.mam.query(ALICE, { max: 5, ...q })).toThrow(UnknownArchiveId);
    }
    // m0 exists, but in alice's archive only: bob's own m0 does not leak into alice's lookups.
    expect(() => s.mam.query('carol@example.org', { max: 5, after: M[0]! })).toThrow(UnknownArchiveId);
    s.close();
  });

  it('gives the oldest and newest message as archive metadata (XEP-0313 §6.1)', () => {
    const s = open();
    expect(s.mam.bounds(ALICE)).toBeNull();
    fill(s, ALICE, 3);
    const b = s.mam.bounds(ALICE)!;
    expect([name.get(b.first.id), b.first.stamp, name.get(b.last.id), b.last.stamp]).toEqual(['m0', new Date(T0), 'm2', new Date(T0 + 120_000)]);
    s.close();
  });

  it('keeps preferences per account, without duplicates', () => {
    const s = open();
    expect(s.mam.prefs(ALICE)).toBeNull();
    s.mam.setPrefs(ALICE, { default: 'roster', always: ['bob@example.org', 'bob@example.org'], never: ['eve@example.org/x'] });
    expect(s.mam.prefs(ALICE)).toEqual({ default: 'roster', always: ['bob@example.org'], never: ['eve@example.org/x'] });
    s.mam.setPrefs(ALICE, { default: 'never', always: [], never: [] });
    expect(s.mam.prefs(ALICE)).toEqual({ default: 'never', always: [], never: [] });
    expect(s.mam.prefs('bob@example.org')).toBeNull();
    s.close();
  });

  it('purges by age and by a per-account cap, keeping the newest', () => {
    const s = open();
    fill(s, ALICE, 10);
    fill(s, 'bob@example.org', 3);
    expect(s.mam.purge({ before: new Date(T0 + 2 * 60_000) })).toBe(4); // m0, m1 of both
    expect(ids(s, {})).toEqual(['m2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
    expect(s.mam.purge({ maxPerUser: 3 })).toBe(5);
    expect(ids(s, {})).toEqual(['m7', 'm8', 'm9']);
    expect(ids(s, {}, 'bob@example.org')).toEqual(['m2']);
    expect(s.mam.purge({ maxPerUser: 3 })).toBe(0);
    s.close();
  });

  it("deletes an account's archive and preferences with the account, and nobody else's", () => {
    const s = open();
    s.users.create(ALICE, 'pw');
    s.mam.setPrefs(ALICE, { default: 'never', always: [], never: [] });
    fill(s, ALICE, 3);
    fill(s, 'bob@example.org', 2);
    expect(s.users.delete(ALICE)).toBe(true);
    expect(s.mam.query(ALICE, { max: 10 }).count).toBe(0);
    expect(s.mam.prefs(ALICE)).toBeNull();
    expect(s.mam.query('bob@example.org', { max: 10 }).count).toBe(2);
    s.close();
  });
});

describe('archive ids', () => {
  it('sort by time and carry it; never go backwards when the clock does', () => {
    const make = archiveIds();
    const a = make(new Date(T0));
    const b = make(new Date(T0));
    const c = make(new Date(T0 - 5000)); // clock stepped back
    const d = make(new Date(T0 + 1));
    expect([a < b, b < c, c < d]).toEqual([true, true, true]);
    expect([archiveIdTime(a), archiveIdTime(c), archiveIdTime(d)]).toEqual([T0, T0, T0 + 1]);
    expect(a).toMatch(/^[0-9a-v]{20}$/);
    expect(archiveIdTime('not-an-archive-id')).toBeNaN();
  });

  it('differ in their random part when made in the same millisecond by different sources', () => {
    const [x, y] = [archiveIds()(new Date(T0)), archiveIds()(new Date(T0))];
    expect(x.slice(0, 12)).toBe(y.slice(0, 12));
    expect(x).not.toBe(y);
  });
});

describe('archive store (sqlite specifics)', () => {
  /** Poll another connection until `check` holds (the writer thread commits on its own time). */
  const eventually = async (check: () => boolean): Promise<void> => {
    for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(check()).toBe(true);
  };

  it.each([
    ['on a writer thread', true],
    ['on the event loop', false],
  ])('writes batched appends a moment later %s, and reads see them before that', async (_how, archiveThread) => {
    const dir = tempDir();
    const s = openSqliteStorage({ dataDir: dir, iterations: 16, archiveThread });
    fill(s, ALICE, 2);
    const other = new Database(join(dir, DATABASE_FILE), { readonly: true });
    const rows = () => other.prepare('SELECT count(*) FROM mam').pluck().get();
    expect(rows()).toBe(0); // still queued
    expect(s.mam.query(ALICE, { max: 10 }).count).toBe(2); // the reader wrote alice's
    expect(rows()).toBe(2);
    fill(s, 'bob@example.org', 3);
    await eventually(() => rows() === 5);
    expect(ids(s, {}, 'bob@example.org')).toEqual(['m0', 'm1', 'm2']);
    other.close();
    s.close();
  });

  it('does not bring back the archive of an account deleted while its messages were being written', async () => {
    const dir = tempDir();
    const s = openSqliteStorage({ dataDir: dir, iterations: 16 });
    s.users.create(ALICE, 'pw');
    fill(s, ALICE, 5);
    fill(s, 'bob@example.org', 1);
    await new Promise((r) => setTimeout(r, FLUSH_MS + 20)); // handed to the writer, maybe not yet written
    expect(s.users.delete(ALICE)).toBe(true);
    const other = new Database(join(dir, DATABASE_FILE), { readonly: true });
    await eventually(() => other.prepare('SELECT count(*) FROM mam WHERE owner = ?').pluck().get('bob@example.org') === 1);
    s.close();
    expect(other.prepare('SELECT count(*) FROM mam WHERE owner = ?').pluck().get(ALICE)).toBe(0);
    other.close();
  });

  it('leaves the count out past COUNT_CAP matching messages, and counts exactly below it', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16, archiveThread: false });
    try {
      const ids = archiveIds();
      for (let i = 0; i <= COUNT_CAP; i++) {
        const contact = i < 10 ? 'bob@example.org/phone' : 'carol@example.org/desk';
        s.mam.append({ owner: ALICE, id: ids(new Date(T0 + i)), stamp: new Date(T0 + i), with: contact, stanza: '<message/>' });
      }
      const all = s.mam.query(ALICE, { max: 5, before: '' });
      expect(all.count).toBeUndefined();
      expect(all.items).toHaveLength(5);
      expect(all.complete).toBe(false);
      expect(s.mam.query(ALICE, { max: 5, with: 'bob@example.org' }).count).toBe(10);
      expect(s.mam.query(ALICE, { max: 0, with: 'carol@example.org' }).count).toBe(COUNT_CAP - 9);
    } finally {
      s.close();
    }
  });

  it('writes what is queued when closed, and it is there after reopening', () => {
    const dir = tempDir();
    const s = openSqliteStorage({ dataDir: dir, iterations: 16 });
    fill(s, ALICE, 4);
    s.close();
    const again = openSqliteStorage({ dataDir: dir, iterations: 16 });
    expect(ids(again, {})).toEqual(['m0', 'm1', 'm2', 'm3']);
    again.close();
  });

  it('upgrades a schema 5 file in place: archive tables added, data kept', () => {
    const dir = tempDir();
    const s = openSqliteStorage({ dataDir: dir, iterations: 16 });
    s.users.create(ALICE, 'pw');
    s.close();
    const db = new Database(join(dir, DATABASE_FILE));
    db.exec('DROP TABLE mam; DROP TABLE mam_prefs;');
    db.pragma('user_version = 5');
    db.close();
    const up = openSqliteStorage({ dataDir: dir, iterations: 16 });
    expect(up.users.exists(ALICE)).toBe(true);
    fill(up, ALICE, 1);
    expect(ids(up, {})).toEqual(['m0']);
    up.close();
    const check = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(6);
    check.close();
  });
});
