/**
 * Remembered PLAIN logins: skip PBKDF2 for an account whose same password was verified recently.
 *
 * Why: PLAIN must recompute the salted password (PBKDF2, 4096 iterations of HMAC-SHA-256, ~1 ms
 * of CPU) on every login, which caps a server at a few hundred PLAIN logins per second per core;
 * SCRAM logins cost only a few HMACs on the server, because the client does the derivation.
 *
 * What is kept, per account, after a successful PBKDF2 check: HMAC-SHA-256 under a key drawn at
 * random when the process starts, over the account's current StoredKey, its salt and the
 * password. A later PLAIN login computes the same HMAC from the credentials it just read from
 * storage and compares in constant time; equal means the same password against the same stored
 * credentials. No invalidation is needed for correctness: a password change (passwd, XEP-0077,
 * another shard, the CLI) gives a new salt and StoredKey, so the old entry can no longer match,
 * and a deleted account has no credentials to read. A mismatch falls through to the full check.
 *
 * The trade-off (docs/security.md): someone who can read the server's memory gets the key and the
 * entries, and can then test password guesses at HMAC speed instead of PBKDF2 speed, for the
 * accounts that logged in with PLAIN recently. Such a reader also sees passwords in flight, so
 * the loss is bounded, but operators who want none of it set the size to 0.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramCredentials } from '../../storage/types.js';

export const DEFAULT_PLAIN_CACHE = 10_000;

export class PlainLoginCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, Buffer>();

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  private tag(creds: ScramCredentials, password: string): Buffer {
    const h = createHmac('sha256', this.key);
    h.update(creds.storedKey);
    h.update(creds.salt);
    h.update(password, 'utf8');
    return h.digest();
  }

  /** True when `password` was verified against exactly these credentials and is still remembered. */
  matches(account: string, creds: ScramCredentials, password: string): boolean {
    const known = this.entries.get(account);
    if (known === undefined) return false;
    if (!timingSafeEqual(known, this.tag(creds, password))) return false;
    // Most recently used last: re-insertion keeps the eviction order LRU.
    this.entries.delete(account);
    this.entries.set(account, known);
    return true;
  }

  /** Remember a login that PBKDF2 verified. */
  remember(account: string, creds: ScramCredentials, password: string): void {
    if (this.maxEntries <= 0) return;
    this.entries.delete(account);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(account, this.tag(creds, password));
  }

  /** Forget one account (its password changed or it was removed: not needed for safety, see above). */
  forget(account: string): void {
    this.entries.delete(account);
  }
}

/** The cache of a SASL context, created on first use. */
export function plainCacheOf(context: { plainCacheSize?: number; plainCache?: PlainLoginCache }): PlainLoginCache {
  return context.plainCache ?? (context.plainCache = new PlainLoginCache(context.plainCacheSize ?? DEFAULT_PLAIN_CACHE));
}
