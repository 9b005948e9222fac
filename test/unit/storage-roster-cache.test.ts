/**
 * The roster cache in front of SQLite (src/storage/roster-cache.ts): a read after any write sees
 * the write, whoever made it — this connection, another connection to the same file (a shard,
 * the CLI), or an account deletion — and the cache stays within its bound.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { cacheRosters } from '../../src/storage/roster-cache.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { RosterItem } from '../../src/storage/types.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-rcache-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const item = (jid: string, subscription: RosterItem['subscription'] = 'both'): RosterItem => ({
  jid,
  name: null,
  groups: ['G'],
  subscription,
  ask: null,
  approved: false,
});

describe('roster cache over sqlite', () => {
  it('shows a write made through the same storage on the next read', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.rosters.set('a@x', item('b@x'));
    expect(s.rosters.list('a@x').map((i) => i.jid)).toEqual(['b@x']);
    s.rosters.set('a@x', item('c@x', 'to'));
    expect(s.rosters.list('a@x').map((i) => [i.jid, i.subscription])).toEqual([
      ['b@x', 'both'],
      ['c@x', 'to'],
    ]);
    expect(s.rosters.get('a@x', 'c@x')?.subscription).toBe('to');
    s.rosters.remove('a@x', 'b@x');
    expect(s.rosters.list('a@x').map((i) => i.jid)).toEqual(['c@x']);
    expect(s.rosters.get('a@x', 'b@x')).toBeNull();
    s.close();
  });

  it('shows a write made by another shard at once (shared epoch)', () => {
    const dataDir = tempDir();
    const rosterEpoch = new Int32Array(new SharedArrayBuffer(4));
    // A long external interval: only the epoch can tell a about b's write.
    const a = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 16, rosterEpoch, externalCheckMs: 1e9 });
    a.rosters.set('a@x', item('b@x', 'to'));
    expect(a.rosters.list('a@x')[0]!.subscription).toBe('to');
    expect(b.rosters.list('a@x')[0]!.subscription).toBe('to');
    b.rosters.set('a@x', item('b@x', 'both'));
    expect(b.rosters.list('a@x')[0]!.subscription).toBe('both');
    expect(a.rosters.list('a@x')[0]!.subscription).toBe('both');
    a.rosters.remove('a@x', 'b@x');
    expect(b.rosters.get('a@x', 'b@x')).toBeNull();
    a.close();
    b.close();
  });

  it('shows a write made by another process to the same file (the CLI)', () => {
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 0 });
    const b = openSqliteStorage({ dataDir, iterations: 16, externalCheckMs: 0 });
    a.rosters.set('a@x', item('b@x', 'to'));
    expect(a.rosters.list('a@x')[0]!.subscription).toBe('to');
    expect(b.rosters.get('a@x', 'b@x')!.subscription).toBe('to'); // b caches it too
    b.rosters.set('a@x', item('b@x', 'both'));
    expect(a.rosters.list('a@x')[0]!.subscription).toBe('both');
    expect(a.rosters.get('a@x', 'b@x')!.subscription).toBe('both');
    b.rosters.remove('a@x', 'b@x');
    expect(a.rosters.list('a@x')).toEqual([]);
    a.close();
    b.close();
  });

  it('forgets the roster of a deleted account', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.users.create('a@x', 'pw');
    s.rosters.set('a@x', item('b@x'));
    expect(s.rosters.list('a@x')).toHaveLength(1);
    s.users.delete('a@x');
    expect(s.rosters.list('a@x')).toEqual([]);
    s.close();
  });

  it('hands out copies so that no caller can change what others read', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.rosters.set('a@x', item('b@x'));
    s.rosters.list('a@x'); // now cached
    const list = s.rosters.list('a@x');
    list[0]!.subscription = 'none';
    list[0]!.groups.push('H');
    s.rosters.get('a@x', 'b@x')!.groups.push('I');
    expect(s.rosters.list('a@x')[0]).toEqual(item('b@x'));
    s.close();
  });

  it('peeks without copying, and a peek after a write sees the write', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16 });
    s.rosters.set('a@x', item('b@x', 'to'));
    const first = s.rosters.peek!('a@x');
    expect(s.rosters.peek!('a@x')).toBe(first);
    s.rosters.set('a@x', item('b@x', 'both'));
    expect(s.rosters.peek!('a@x').map((i) => i.subscription)).toEqual(['both']);
    s.close();
  });

  it('reads from the store every time when turned off', () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 16, rosterCache: 0 });
    s.rosters.set('a@x', item('b@x'));
    expect(s.rosters.list('a@x')).toHaveLength(1);
    expect((s.rosters as unknown as { size: number }).size).toBe(0);
    s.close();
  });
});

describe('roster cache bound', () => {
  it('keeps at most maxOwners rosters, evicting the least recently read', () => {
    const inner = createMemoryStorage().rosters;
    let reads = 0;
    const counting = { ...inner, list: (o: string) => (reads++, inner.list(o)) };
    const c = cacheRosters(counting, { maxOwners: 2, changedElsewhere: () => false });
    c.list('a');
    c.list('b');
    c.list('a'); // a is now the most recent
    c.list('c'); // evicts b
    expect(c.size).toBe(2);
    expect(reads).toBe(3);
    c.list('a');
    expect(reads).toBe(3);
    c.list('b');
    expect(reads).toBe(4);
  });

  it('empties itself when the store says it changed elsewhere', () => {
    const inner = createMemoryStorage().rosters;
    let changed = false;
    let reads = 0;
    const c = cacheRosters({ ...inner, list: (o: string) => (reads++, inner.list(o)) }, { maxOwners: 10, changedElsewhere: () => changed });
    c.list('a');
    c.list('a');
    expect(reads).toBe(1);
    changed = true;
    c.list('a');
    expect(reads).toBe(2);
  });
});
