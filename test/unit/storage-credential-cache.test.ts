/**
 * The login credential cache (src/storage/credential-cache.ts): a login after any password change
 * or deletion sees it, whoever made it — this storage, another shard (shared epoch, fourth slot,
 * at once), another process (meta counter, polled) — and a cached login reads no row.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheCredentials } from '../../src/storage/credential-cache.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { ScramCredentials, UserStore } from '../../src/storage/types.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-ccache-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const plain = (c: ScramCredentials | null) =>
  c && { salt: c.salt.toString('hex'), iterations: c.iterations, storedKey: c.storedKey.toString('hex'), serverKey: c.serverKey.toString('hex') };

/** A memory UserStore that counts credential reads. */
function counted() {
  const inner = createMemoryStorage({ iterations: 2 }).users;
  const reads = { n: 0 };
  const store: UserStore = { ...inner, getScramCredentials: (a, h) => (reads.n++, inner.getScramCredentials(a, h)) };
  for (const name of ['alice', 'bob', 'carol']) inner.create(`${name}@x`, `pw-${name}`);
  return { inner, store, reads };
}

describe('credential cache', () => {
  it('reads an account once per hash and answers later logins from memory, byte for byte', () => {
    const { inner, store, reads } = counted();
    const cache = cacheCredentials(store, { maxAccounts: 10, changedElsewhere: () => false });
    for (let i = 0; i < 3; i++) {
      expect(plain(cache.getScramCredentials('alice@x', 'SHA-256'))).toEqual(plain(inner.getScramCredentials('alice@x', 'SHA-256')));
      expect(plain(cache.getScramCredentials('alice@x', 'SHA-1'))).toEqual(plain(inner.getScramCredentials('alice@x', 'SHA-1')));
    }
    expect(reads.n).toBe(2);
    expect(cache.cached).toBe(2);
  });

  it('does not cache an unknown account, so creating it needs no invalidation', () => {
    const { store, reads } = counted();
    const cache = cacheCredentials(store, { maxAccounts: 10, changedElsewhere: () => false });
    expect(cache.getScramCredentials('dave@x', 'SHA-256')).toBeNull();
    cache.create('dave@x', 'pw');
    expect(cache.getScramCredentials('dave@x', 'SHA-256')).not.toBeNull();
    expect(reads.n).toBe(2);
  });

  it('drops the copy on a password change or deletion through it, and tells the others', () => {
    const { inner, store } = counted();
    let told = 0;
    const cache = cacheCredentials(store, { maxAccounts: 10, changedElsewhere: () => false, wrote: () => void told++ });
    const before = plain(cache.getScramCredentials('alice@x', 'SHA-256'));
    cache.setPassword('alice@x', 'new password');
    const after = plain(cache.getScramCredentials('alice@x', 'SHA-256'));
    expect(after).not.toEqual(before);
    expect(after).toEqual(plain(inner.getScramCredentials('alice@x', 'SHA-256')));
    cache.delete('alice@x');
    expect(cache.getScramCredentials('alice@x', 'SHA-256')).toBeNull();
    expect(told).toBe(2);
  });

  it('empties itself when told that someone else wrote', () => {
    const { inner, store } = counted();
    let elsewhere = false;
    const cache = cacheCredentials(store, { maxAccounts: 10, changedElsewhere: () => elsewhere });
    cache.getScramCredentials('bob@x', 'SHA-256');
    inner.setPassword('bob@x', 'changed behind its back');
    elsewhere = true;
    expect(plain(cache.getScramCredentials('bob@x', 'SHA-256'))).toEqual(plain(inner.getScramCredentials('bob@x', 'SHA-256')));
  });

  it('hands out copies: credentials held across a round trip do not change when their slot is reused', () => {
    const { inner, store } = counted();
    const cache = cacheCredentials(store, { maxAccounts: 1, changedElsewhere: () => false });
    cache.getScramCredentials('alice@x', 'SHA-256');
    const held = cache.getScramCredentials('alice@x', 'SHA-256')!; // a hit: read from the slot
    const snapshot = plain(held);
    // Evicts alice and writes bob's keys into the same slot.
    cache.getScramCredentials('bob@x', 'SHA-256');
    cache.getScramCredentials('bob@x', 'SHA-256');
    expect(plain(held)).toEqual(snapshot);
    expect(plain(held)).toEqual(plain(inner.getScramCredentials('alice@x', 'SHA-256')));
    expect(cache.cached).toBe(1);
  });

  it('passes credentials it cannot hold through uncached (a salt over 32 bytes)', () => {
    const { inner, store, reads } = counted();
    const c = inner.getScramCredentials('carol@x', 'SHA-256')!;
    inner.setPassword('carol@x', {
      'SHA-256': { ...c, salt: Buffer.alloc(48, 1) },
      'SHA-1': inner.getScramCredentials('carol@x', 'SHA-1')!,
    });
    const cache = cacheCredentials(store, { maxAccounts: 10, changedElsewhere: () => false });
    expect(cache.getScramCredentials('carol@x', 'SHA-256')!.salt.length).toBe(48);
    cache.getScramCredentials('carol@x', 'SHA-256');
    expect(reads.n).toBe(2);
    expect(cache.cached).toBe(0);
  });
});

describe('credential cache over sqlite', () => {
  it('sees a password change made by another shard at once (shared epoch, fourth slot)', () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(16));
    const a = openSqliteStorage({ dataDir, iterations: 2, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 2, rosterEpoch: epoch, externalCheckMs: 1e9 });
    try {
      a.users.create('alice@x', 'one');
      const first = plain(b.users.getScramCredentials('alice@x', 'SHA-256'));
      a.users.setPassword('alice@x', 'two');
      const second = plain(b.users.getScramCredentials('alice@x', 'SHA-256'));
      expect(second).not.toEqual(first);
      expect(second).toEqual(plain(a.users.getScramCredentials('alice@x', 'SHA-256')));
      a.users.delete('alice@x');
      expect(b.users.getScramCredentials('alice@x', 'SHA-256')).toBeNull();
    } finally {
      a.close();
      b.close();
    }
  });

  it('sees a password change by another process (hermod passwd) once the meta counter is polled', async () => {
    const dataDir = tempDir();
    const server = openSqliteStorage({ dataDir, iterations: 2, externalCheckMs: 10 });
    const cli = openSqliteStorage({ dataDir, iterations: 2, externalCheckMs: 1e9 });
    try {
      server.users.create('alice@x', 'one');
      const first = plain(server.users.getScramCredentials('alice@x', 'SHA-256'));
      cli.users.setPassword('alice@x', 'two');
      await new Promise((r) => setTimeout(r, 60));
      const second = plain(server.users.getScramCredentials('alice@x', 'SHA-256'));
      expect(second).not.toEqual(first);
      expect(second).toEqual(plain(cli.users.getScramCredentials('alice@x', 'SHA-256')));
    } finally {
      server.close();
      cli.close();
    }
  });

  it('stays off when shards share an epoch without a credential slot (it could not be exact)', () => {
    const dataDir = tempDir();
    const epoch = new Int32Array(new SharedArrayBuffer(8));
    const a = openSqliteStorage({ dataDir, iterations: 2, rosterEpoch: epoch, externalCheckMs: 1e9 });
    const b = openSqliteStorage({ dataDir, iterations: 2, rosterEpoch: epoch, externalCheckMs: 1e9 });
    try {
      a.users.create('alice@x', 'one');
      b.users.getScramCredentials('alice@x', 'SHA-256');
      a.users.setPassword('alice@x', 'two');
      expect(plain(b.users.getScramCredentials('alice@x', 'SHA-256'))).toEqual(plain(a.users.getScramCredentials('alice@x', 'SHA-256')));
    } finally {
      a.close();
      b.close();
    }
  });
});
