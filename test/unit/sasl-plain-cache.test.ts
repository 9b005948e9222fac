/**
 * Remembered PLAIN logins (src/stream/sasl/plain-cache.ts): a repeated login with the same
 * password skips PBKDF2, and nothing remembered ever lets a wrong, changed or deleted
 * credential in.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { SaslFailure } from '../../src/errors.js';
import { startExchange, type SaslContext } from '../../src/stream/sasl/index.js';
import { PlainLoginCache } from '../../src/stream/sasl/plain-cache.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage, UserStore } from '../../src/storage/types.js';

const DOMAIN = 'example.org';
const plain = (authcid: string, password: string) => Buffer.from(`\u0000${authcid}\u0000${password}`, 'utf8');

async function login(context: SaslContext, user: string, password: string): Promise<string> {
  try {
    const step = await startExchange('PLAIN', context).step(plain(user, password));
    return step.done ? `ok ${step.username}` : 'challenge';
  } catch (err) {
    if (err instanceof SaslFailure) return err.condition;
    throw err;
  }
}

let storage: Storage;
let context: SaslContext;
beforeEach(() => {
  storage = createMemoryStorage({ iterations: 64 });
  storage.users.create(`alice@${DOMAIN}`, 'correct horse');
  context = { domain: DOMAIN, users: storage.users, iterations: 64 };
});

/** The same store, but PBKDF2 over its credentials fails (0 iterations): only a remembered login passes. */
function withoutPbkdf2(users: UserStore): UserStore {
  return {
    ...users,
    getScramCredentials(account, hash) {
      const c = users.getScramCredentials(account, hash);
      return c && { ...c, iterations: 0 };
    },
  };
}

describe('remembered PLAIN logins', () => {
  it('lets the same password in again without PBKDF2', async () => {
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
    expect(context.plainCache!.size).toBe(1);
    context.users = withoutPbkdf2(storage.users);
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
  });

  it('refuses a wrong password after a remembered login (full check, not-authorized)', async () => {
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
    expect(await login(context, 'alice', 'correct horsE')).toBe('not-authorized');
  });

  it('refuses the old password once it is changed, from any path (new salt and StoredKey)', async () => {
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
    storage.users.setPassword(`alice@${DOMAIN}`, 'battery staple');
    expect(await login(context, 'alice', 'correct horse')).toBe('not-authorized');
    expect(await login(context, 'alice', 'battery staple')).toBe('ok alice');
  });

  it('refuses a deleted account, and a re-created one with its old password', async () => {
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
    storage.users.delete(`alice@${DOMAIN}`);
    expect(await login(context, 'alice', 'correct horse')).toBe('not-authorized');
    storage.users.create(`alice@${DOMAIN}`, 'other');
    expect(await login(context, 'alice', 'correct horse')).toBe('not-authorized');
  });

  it('remembers nothing when its size is 0', async () => {
    context.plainCacheSize = 0;
    expect(await login(context, 'alice', 'correct horse')).toBe('ok alice');
    expect(context.plainCache!.size).toBe(0);
    context.users = withoutPbkdf2(storage.users);
    await expect(login(context, 'alice', 'correct horse')).rejects.toThrow();
  });

  it('keeps at most its size, forgetting the least recently used account', () => {
    const cache = new PlainLoginCache(2);
    const creds = { salt: Buffer.alloc(16, 1), iterations: 1, storedKey: Buffer.alloc(32, 2), serverKey: Buffer.alloc(32, 3) };
    cache.remember('a', creds, 'pa');
    cache.remember('b', creds, 'pb');
    expect(cache.matches('a', creds, 'pa')).toBe(true); // a is now the most recent
    cache.remember('c', creds, 'pc'); // evicts b
    expect(cache.size).toBe(2);
    expect(cache.matches('b', creds, 'pb')).toBe(false);
    expect(cache.matches('a', creds, 'pa')).toBe(true);
    expect(cache.matches('c', creds, 'pc')).toBe(true);
    expect(cache.matches('a', creds, 'pc')).toBe(false);
  });
});
