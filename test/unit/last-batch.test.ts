/**
 * XEP-0012 logout records written per event-loop turn (XmlStore.setSoon, src/storage/xml-batch.ts):
 * a query right after the logout sees the record, a clean shutdown writes it, and writes and
 * account deletion keep their order with respect to it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Jid } from '../../src/jid.js';
import { decodeLast, LAST_KEY } from '../../src/modules/last.js';
import { createRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { batchXmlWrites, type XmlRow } from '../../src/storage/xml-batch.js';
import { jsView } from '../scenario/js-view.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'hermod-lastbatch-'));
  dirs.push(d);
  return d;
};
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

let nextId = 1;
function client(bare: string): ClientSession & { out: string[] } {
  const out: string[] = [];
  return { id: nextId++, account: Jid.parse(bare), jid: null, out, send: (d) => void out.push(String(d)), close() {} };
}

function setup(storage: Storage) {
  for (const u of ['alice', 'bob']) if (!storage.users.exists(`${u}@localhost`)) storage.users.create(`${u}@localhost`, 'pw');
  storage.rosters.set('bob@localhost', { jid: 'alice@localhost', name: null, groups: [], subscription: 'both', ask: null, approved: false });
  const clock = { t: Date.parse('2026-03-01T12:00:00.000Z') };
  const router = createRouter({ domain: 'localhost', storage, now: () => new Date(clock.t) });
  const connect = (bare: string) => {
    const s = client(bare);
    router.bind(s, 'r');
    return s;
  };
  const send = (s: ClientSession & { out: string[] }, xml: string): string | undefined => {
    s.out.length = 0;
    router.route(s, jsView(xml));
    return s.out[s.out.length - 1];
  };
  return { storage, router, clock, connect, send };
}

const LAST_Q = "<iq to='bob@localhost' type='get' id='l'><query xmlns='jabber:iq:last'/></iq>";

describe('XEP-0012 logout records written per turn (SQLite)', () => {
  it('answers a jabber:iq:last query right after the logout, before the batch is written', () => {
    const dir = tempDir();
    const env = setup(openStorage({ dataDir: dir }));
    try {
      const alice = env.connect('alice@localhost');
      const bob = env.connect('bob@localhost');
      env.send(bob, '<presence/>');
      env.send(bob, "<presence type='unavailable'><status>lunch</status></presence>");
      env.router.unbind(bob);
      // Nothing has reached the database yet: a second connection (another process) sees nothing.
      const other = openStorage({ dataDir: dir });
      expect(other.xml.get('bob@localhost', LAST_KEY)).toBeNull();
      other.close();
      env.clock.t += 5000;
      expect(env.send(alice, LAST_Q)).toBe(
        "<iq type='result' id='l' from='bob@localhost' to='alice@localhost/r'><query xmlns='jabber:iq:last' seconds='5'>lunch</query></iq>",
      );
    } finally {
      env.storage.close();
    }
  });

  it('writes the logouts of one turn in one batch at the end of the turn', async () => {
    const dir = tempDir();
    const env = setup(openStorage({ dataDir: dir }));
    try {
      const sessions = [env.connect('alice@localhost'), env.connect('bob@localhost')];
      for (const s of sessions) env.router.unbind(s);
      await nextTurn();
      const other = openStorage({ dataDir: dir });
      expect(decodeLast(other.xml.get('alice@localhost', LAST_KEY)!)).toEqual({ stamp: new Date(env.clock.t), status: '' });
      expect(decodeLast(other.xml.get('bob@localhost', LAST_KEY)!)).toEqual({ stamp: new Date(env.clock.t), status: '' });
      other.close();
    } finally {
      env.storage.close();
    }
  });

  it('writes a logout still waiting for its turn on a clean close, so a restart keeps it', () => {
    const dir = tempDir();
    const first = setup(openStorage({ dataDir: dir }));
    const bob = first.connect('bob@localhost');
    first.router.unbind(bob);
    first.storage.close(); // same turn: the batch has not run
    const second = setup(openStorage({ dataDir: dir }));
    try {
      expect(decodeLast(second.storage.xml.get('bob@localhost', LAST_KEY)!)).toEqual({ stamp: new Date(first.clock.t), status: '' });
    } finally {
      second.storage.close();
    }
  });
});

// The account deletion rules hold for every store: the memory store (tests, --storage memory) has
// no batch to wait for, but must keep the same promise.
const stores: [string, () => Storage][] = [
  ['memory', () => createMemoryStorage({ iterations: 1 })],
  ['SQLite', () => openStorage({ dataDir: tempDir() })],
];

describe.each(stores)('XEP-0012 logout records and account deletion (%s)', (_name, open) => {
  it('does not bring a deleted account back: deletion writes the waiting record first, then removes it', async () => {
    const env = setup(open());
    try {
      env.router.unbind(env.connect('bob@localhost'));
      env.storage.users.delete('bob@localhost');
      expect(env.storage.xml.get('bob@localhost', LAST_KEY)).toBeNull();
      await nextTurn();
      expect(env.storage.xml.get('bob@localhost', LAST_KEY)).toBeNull();
    } finally {
      env.storage.close();
    }
  });

  it('keeps no logout record of an account deleted before its stream closed (XEP-0077 removal, hermod deluser): a new account of that name has no last activity', async () => {
    const env = setup(open());
    try {
      const bob = env.connect('bob@localhost');
      env.send(bob, "<presence/>");
      // The account goes first, then its session is ended (register.ts, admin kick).
      env.storage.users.delete('bob@localhost');
      env.send(bob, "<presence type='unavailable'><status>my old status</status></presence>");
      env.router.unbind(bob);
      await nextTurn();
      env.storage.users.create('bob@localhost', 'someone else');
      expect(env.storage.xml.get('bob@localhost', LAST_KEY)).toBeNull();
    } finally {
      env.storage.close();
    }
  });
});

describe('batchXmlWrites', () => {
  function batched() {
    const inner = createMemoryStorage({ iterations: 1 }).xml;
    const batches: XmlRow[][] = [];
    let turnEnd: (() => void) | null = null;
    const store = batchXmlWrites(
      inner,
      (rows) => {
        batches.push([...rows]);
        for (const [o, k, d] of rows) inner.set(o, k, d);
      },
      (run) => void (turnEnd = run),
    );
    return { inner, store, batches, endTurn: () => turnEnd?.() };
  }

  it('keeps the last deferred write per key and writes them all in one batch', () => {
    const { inner, store, batches, endTurn } = batched();
    store.setSoon('a@x', 'last', '1');
    store.setSoon('b@x', 'last', '2');
    store.setSoon('a@x', 'last', '3');
    expect(store.get('a@x', 'last')).toBe('3');
    expect(inner.get('a@x', 'last')).toBeNull();
    expect(store.pending).toBe(2);
    endTurn();
    expect(batches).toEqual([
      [
        ['a@x', 'last', '3'],
        ['b@x', 'last', '2'],
      ],
    ]);
    expect(store.pending).toBe(0);
    expect(inner.get('a@x', 'last')).toBe('3');
  });

  it('lets a later immediate write or removal win over an earlier deferred one', () => {
    const { store, batches, endTurn } = batched();
    store.setSoon('a@x', 'last', 'deferred');
    store.set('a@x', 'last', 'now');
    expect(store.get('a@x', 'last')).toBe('now');
    store.setSoon('a@x', 'k', 'deferred');
    expect(store.remove('a@x', 'k')).toBe(true);
    expect(store.get('a@x', 'k')).toBeNull();
    endTurn();
    expect(store.get('a@x', 'last')).toBe('now');
    expect(batches).toHaveLength(2);
  });

  it('keeps the rows when the batch fails, warns, still answers reads from them, and writes them on the next flush', async () => {
    const inner = createMemoryStorage({ iterations: 1 }).xml;
    let fail = true;
    let turnEnd: (() => void) | null = null;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const store = batchXmlWrites(
      inner,
      (rows) => {
        if (fail) throw new Error('database is locked');
        for (const [o, k, d] of rows) inner.set(o, k, d);
      },
      (run) => void (turnEnd = run),
    );
    try {
      store.setSoon('a@x', 'last', 'v');
      turnEnd!();
      await new Promise((r) => setImmediate(r));
      expect(warnings).toEqual(['database is locked']);
      expect(store.pending).toBe(1);
      expect(store.get('a@x', 'last')).toBe('v');
      expect(() => store.flush()).toThrow('database is locked');
      fail = false;
      store.flush();
      expect(inner.get('a@x', 'last')).toBe('v');
      expect(store.pending).toBe(0);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
