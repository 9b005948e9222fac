/**
 * The XEP-0441 preferences cache (src/storage/archive-prefs-cache.ts): a read after any write
 * sees the write, whoever made it — this connection, another shard (shared epoch, third slot, at
 * once), another process (meta cache_epoch, polled by a timer) or an account deletion — without a
 * query per read, and without a time-to-live.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryArchive, type ArchivePrefs } from '../../src/storage/archive.js';
import { cachePrefs } from '../../src/storage/archive-prefs-cache.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-pcache-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  vi.useRealTimers();
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const NEVER: ArchivePrefs = { default: 'never', always: [], never: [] };
const ALWAYS_BOB: ArchivePrefs = { default: 'roster', always: ['bob@x'], never: [] };

describe('archive preferences cache over sqlite', () => {
  it('shows a change made by another shard on the very next read (shared epoch, third slot)', () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(12));
    // A long external interval: only the epoch can tell one shard about the other's write.
    const a = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    try {
      // b has read (and cached) "no preferences" before a's write.
      expect(b.mam.prefs('alice@x')).toBeNull();
      a.mam.setPrefs('alice@x', NEVER);
      expect(b.mam.prefs('alice@x')).toEqual(NEVER);
      b.mam.setPrefs('alice@x', ALWAYS_BOB);
      expect(a.mam.prefs('alice@x')).toEqual(ALWAYS_BOB);
      expect(b.mam.prefs('alice@x')).toEqual(ALWAYS_BOB);
    } finally {
      a.close();
      b.close();
    }
  });

  it('without the third epoch slot, notices another connection through the external-writes counter', () => {
    vi.useFakeTimers();
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 250 });
    const b = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 250 });
    try {
      expect(a.mam.prefs('alice@x')).toBeNull();
      b.mam.setPrefs('alice@x', NEVER);
      vi.advanceTimersByTime(250);
      expect(a.mam.prefs('alice@x')).toEqual(NEVER);
    } finally {
      a.close();
      b.close();
    }
  });

  it("forgets a deleted account's preferences, here and on the other shards (a re-created account starts with none)", () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(12));
    const a = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch: epoch, externalCheckMs: 1e9 });
    try {
      a.users.create('alice@x', 'pw');
      a.mam.setPrefs('alice@x', NEVER);
      expect(a.mam.prefs('alice@x')).toEqual(NEVER);
      expect(b.mam.prefs('alice@x')).toEqual(NEVER);
      expect(a.users.delete('alice@x')).toBe(true);
      expect(a.mam.prefs('alice@x')).toBeNull();
      expect(b.mam.prefs('alice@x')).toBeNull();
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('archive preferences cache in front of any store', () => {
  const counting = () => {
    const inner = createMemoryArchive(() => {});
    let reads = 0;
    const prefs = inner.prefs.bind(inner);
    inner.prefs = (owner) => (reads++, prefs(owner));
    return { inner, reads: () => reads };
  };

  it('reads each owner once (absent preferences included) until it changes', () => {
    const { inner, reads } = counting();
    const c = cachePrefs(inner, { maxOwners: 10, changedElsewhere: () => false });
    expect(c.prefs('alice@x')).toBeNull();
    expect(c.prefs('alice@x')).toBeNull();
    expect(reads()).toBe(1);
    c.setPrefs('alice@x', NEVER);
    expect(c.prefs('alice@x')).toEqual(NEVER);
    expect(c.prefs('alice@x')).toEqual(NEVER);
    expect(reads()).toBe(2);
  });

  it('empties itself when told someone else wrote, and tells the others of its own writes', () => {
    const { inner, reads } = counting();
    let elsewhere = false;
    let told = 0;
    const c = cachePrefs(inner, { maxOwners: 10, changedElsewhere: () => elsewhere, wrote: () => told++ });
    c.prefs('alice@x');
    inner.setPrefs('alice@x', NEVER); // behind the cache's back, as another shard would
    expect(c.prefs('alice@x')).toBeNull();
    elsewhere = true;
    expect(c.prefs('alice@x')).toEqual(NEVER);
    expect(reads()).toBe(2);
    elsewhere = false;
    c.setPrefs('bob@x', ALWAYS_BOB);
    expect(told).toBe(1);
    // Deleting an archive with preferences is news; one without (a room's) is not.
    c.deleteOwner('bob@x');
    expect(told).toBe(2);
    expect(c.prefs('bob@x')).toBeNull();
    c.deleteOwner('room@muc.x');
    expect(told).toBe(2);
  });

  it('keeps at most maxOwners owners, evicting the one read first; 0 keeps none', () => {
    const { inner, reads } = counting();
    const c = cachePrefs(inner, { maxOwners: 2, changedElsewhere: () => false });
    c.prefs('a@x');
    c.prefs('b@x');
    c.prefs('c@x');
    expect(c.prefsCached).toBe(2);
    c.prefs('a@x');
    expect(reads()).toBe(4);
    const none = cachePrefs(inner, { maxOwners: 0, changedElsewhere: () => false });
    none.prefs('a@x');
    none.prefs('a@x');
    expect(none.prefsCached).toBe(0);
  });

  it('passes every other call through to the store', () => {
    const inner = createMemoryArchive(() => {});
    const c = cachePrefs(inner, { maxOwners: 10, changedElsewhere: () => false });
    c.append({ owner: 'alice@x', id: '00000000100000000000', stamp: new Date(1), with: 'bob@x/r', stanza: '<message/>' });
    expect(c.query('alice@x', { max: 10 }).items.map((m) => m.id)).toEqual(['00000000100000000000']);
    c.deleteOwner('alice@x');
    expect(inner.query('alice@x', { max: 10 }).count).toBe(0);
  });
});
