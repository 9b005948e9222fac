/**
 * The blocklist cache (src/storage/blocklist-cache.ts): a check after any write sees the write,
 * whoever made it — this connection, another shard (shared epoch, at once), another process
 * (PRAGMA data_version, polled by a timer) or an account deletion — without a query per check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cacheBlocklists } from '../../src/storage/blocklist-cache.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import Database from 'better-sqlite3';
import { DATABASE_FILE, openSqliteStorage } from '../../src/storage/sqlite.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-bcache-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  vi.useRealTimers();
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const sorted = (set: ReadonlySet<string>) => [...set].sort();

describe('blocklist cache over sqlite', () => {
  it('shows a block and an unblock made through the same storage on the next check', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.users.create('a@x', 'pw');
    expect(s.blocklist.anyBlocked!()).toBe(false);
    expect(s.blocklist.peek!('a@x').size).toBe(0);
    s.blocklist.add('a@x', ['eve@x', 'spam.example']);
    expect(s.blocklist.anyBlocked!()).toBe(true);
    expect(sorted(s.blocklist.peek!('a@x'))).toEqual(['eve@x', 'spam.example']);
    s.blocklist.remove('a@x', ['eve@x']);
    expect(sorted(s.blocklist.peek!('a@x'))).toEqual(['spam.example']);
    expect(s.blocklist.clear('a@x')).toEqual(['spam.example']);
    expect(s.blocklist.peek!('a@x').size).toBe(0);
    expect(s.blocklist.anyBlocked!()).toBe(false);
    s.close();
  });

  it('shows a block made by another shard at once (shared epoch, second slot)', () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(8));
    // A long external interval: only the epoch can tell one shard about the other's write.
    const a = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    // b has looked (and cached "nobody blocks anything", then alice's empty list) before the write.
    expect(b.blocklist.anyBlocked!()).toBe(false);
    a.blocklist.add('carol@x', ['dave@x']);
    expect(b.blocklist.peek!('alice@x').size).toBe(0);
    a.blocklist.add('alice@x', ['eve@x']);
    expect(sorted(b.blocklist.peek!('alice@x'))).toEqual(['eve@x']);
    b.blocklist.remove('alice@x', ['eve@x']);
    expect(a.blocklist.peek!('alice@x').size).toBe(0);
    expect(a.blocklist.anyBlocked!()).toBe(true); // carol still blocks dave
    b.blocklist.clear('carol@x');
    expect(a.blocklist.anyBlocked!()).toBe(false);
    a.close();
    b.close();
  });

  it('without the second epoch slot, notices another connection only through data_version', () => {
    vi.useFakeTimers();
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 250 });
    const b = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 250 });
    expect(a.blocklist.peek!('alice@x').size).toBe(0);
    b.blocklist.add('alice@x', ['eve@x']); // like `hermod` run by an operator on the same file
    vi.advanceTimersByTime(250);
    expect(sorted(a.blocklist.peek!('alice@x'))).toEqual(['eve@x']);
    a.close();
    b.close();
  });

  it('forgets the list of a deleted account (a re-created account starts unblocked)', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.users.create('a@x', 'pw');
    s.blocklist.add('a@x', ['eve@x']);
    expect(s.blocklist.peek!('a@x').has('eve@x')).toBe(true);
    s.users.delete('a@x');
    expect(s.blocklist.peek!('a@x').size).toBe(0);
    expect(s.blocklist.anyBlocked!()).toBe(false);
    s.close();
  });

  it('keeps its lists while the message archive writer thread commits (those batches write no blocklist)', async () => {
    // Only the external check's interval is faked (the archive's batching timer stays real), so
    // that the check surely runs after the writer's commit.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = tempDir();
    const s = openSqliteStorage({ dataDir: dir, iterations: 16, externalCheckMs: 10 });
    s.blocklist.add('a@x', ['eve@x']);
    expect(s.blocklist.peek!('a@x').has('eve@x')).toBe(true);
    expect(s.blocklist.size).toBe(1);
    s.mam.append({ owner: 'a@x', id: 'm1', stamp: new Date(), with: 'bob@x', stanza: '<message/>' });
    // Wait until the writer thread committed, then for more than one poll of the external check.
    const other = new Database(join(dir, DATABASE_FILE), { readonly: true });
    for (let i = 0; i < 500 && other.prepare('SELECT count(*) FROM mam').pluck().get() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(other.prepare('SELECT count(*) FROM mam').pluck().get()).toBe(1);
    vi.advanceTimersByTime(50);
    s.blocklist.anyBlocked!(); // where a change seen elsewhere would empty the cache
    expect(s.blocklist.size).toBe(1);
    // The same check still sees a write by another process (a storage without a shard epoch).
    const cli = openSqliteStorage({ dataDir: dir, iterations: 16 });
    cli.blocklist.add('b@x', ['mallory@x']);
    vi.advanceTimersByTime(50);
    s.blocklist.anyBlocked!();
    expect(s.blocklist.size).toBe(0);
    expect(s.blocklist.peek!('b@x').has('mallory@x')).toBe(true);
    cli.close();
    other.close();
    s.close();
  });

  it("another shard forgets a deleted account's blocklist and roster at once (a re-registered name inherits nothing)", () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(8));
    // A long external interval: only the shared epoch can tell shard b about shard a's deletion.
    const a = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    a.users.create('alice@x', 'pw');
    a.blocklist.add('alice@x', ['eve@x']);
    a.rosters.set('alice@x', { jid: 'bob@x', name: null, groups: [], subscription: 'both', ask: null, approved: false });
    // b has cached both before the deletion (as a shard serving alice's contacts would).
    expect(b.blocklist.peek!('alice@x').has('eve@x')).toBe(true);
    expect(b.rosters.list('alice@x')).toHaveLength(1);
    a.users.delete('alice@x'); // XEP-0077 in-band removal on shard a
    expect(b.blocklist.peek!('alice@x').size).toBe(0);
    expect(b.blocklist.anyBlocked!()).toBe(false);
    expect(b.rosters.list('alice@x')).toEqual([]);
    a.close();
    b.close();
  });
});

describe('blocklist cache in front of any store', () => {
  function counted() {
    const inner = createMemoryStorage().blocklist;
    const calls = { list: 0, any: 0 };
    const store = {
      list: (o: string) => (calls.list++, inner.list(o)),
      add: (o: string, j: readonly string[]) => inner.add(o, j),
      remove: (o: string, j: readonly string[]) => inner.remove(o, j),
      clear: (o: string) => inner.clear(o),
    };
    return { store, calls, anyStored: () => (calls.any++, inner.anyBlocked!()) };
  }

  it('reads each list once until it changes, and asks "anyone?" once per change', () => {
    const { store, calls, anyStored } = counted();
    const cache = cacheBlocklists(store, { maxOwners: 100, changedElsewhere: () => false, anyStored });
    for (let i = 0; i < 50; i++) expect(cache.peek('a@x').size).toBe(0);
    expect(calls).toEqual({ list: 0, any: 1 }); // nobody blocks: not even a list query
    cache.add('a@x', ['eve@x']);
    for (let i = 0; i < 50; i++) {
      expect(cache.peek('a@x').has('eve@x')).toBe(true);
      expect(cache.peek('b@x').size).toBe(0);
    }
    expect(calls).toEqual({ list: 2, any: 2 });
  });

  it('empties itself when told that someone else wrote, and tells the others of its own writes', () => {
    const { store, calls, anyStored } = counted();
    let elsewhere = false;
    let wrote = 0;
    const cache = cacheBlocklists(store, {
      maxOwners: 100,
      changedElsewhere: () => elsewhere,
      wrote: () => wrote++,
      anyStored,
    });
    store.add('b@x', ['eve@x']);
    expect(cache.peek('a@x').size).toBe(0); // cached: a blocks nobody
    store.add('a@x', ['eve@x']); // behind the cache's back, unseen until signalled
    expect(cache.peek('a@x').size).toBe(0);
    elsewhere = true;
    expect(cache.peek('a@x').has('eve@x')).toBe(true);
    elsewhere = false;
    cache.remove('a@x', ['eve@x']);
    cache.clear('a@x');
    expect(wrote).toBe(2);
    expect(calls.list).toBe(2); // a's list read before and after the signal, not per check
  });

  it('keeps at most maxOwners lists, evicting the one read first', () => {
    const { store, calls, anyStored } = counted();
    for (const o of ['a@x', 'b@x', 'c@x']) store.add(o, ['eve@x']);
    const cache = cacheBlocklists(store, { maxOwners: 2, changedElsewhere: () => false, anyStored });
    cache.peek('a@x');
    cache.peek('b@x');
    cache.peek('c@x'); // evicts a
    expect(cache.size).toBe(2);
    const before = calls.list;
    cache.peek('b@x');
    cache.peek('c@x');
    expect(calls.list).toBe(before);
    expect(cache.peek('a@x').has('eve@x')).toBe(true); // read again, evicting b
    expect(calls.list).toBe(before + 1);
    expect(cache.size).toBe(2);
  });
});
