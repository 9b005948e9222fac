/**
 * An in-process copy of the SCRAM credentials read at login, in front of a UserStore.
 *
 * Why: every SCRAM login (and every PLAIN one) reads the account's salt, iteration count,
 * StoredKey and ServerKey; from SQLite that was 3.1–4.2 % of a reconnect login's server CPU and
 * two fcntl calls (the WAL read lock), for data that changes only with the password.
 *
 * Exact, like the roster and blocklist caches: a password change or deletion through this store
 * drops the account's copy at once and tells the other shards and processes (`wrote()`: the
 * shared write epoch, or the meta counter other processes poll); `changedElsewhere()` empties
 * the cache before a read when someone else wrote. Accounts that do not exist are not cached,
 * so creating one needs no invalidation.
 *
 * Memory: a cached account costs its key string, a Map entry and a 104-byte slot in a shared
 * slab (no Buffer object per credential: a Buffer with its own backing store costs several
 * hundred bytes, more than a whole idle session's stream state). A hit copies the slot out, so
 * an exchange that holds its credentials across a round trip never sees a reused slot change
 * under it (that would be a login checked against another account's keys).
 */
import type { ScramCredentials, ScramHash, UserStore } from './types.js';

export interface CredentialCacheOptions {
  /** Accounts kept per hash at most (the oldest cached evicted first); 0 disables the cache. */
  maxAccounts: number;
  /** True when credentials were written by someone else since the last call. */
  changedElsewhere: () => boolean;
  /** Told after each password change or deletion through this store (to tell the other caches). */
  wrote?: () => void;
}

export interface CachedUserStore extends UserStore {
  /** Accounts currently held, all hashes together (tests, metrics). */
  readonly cached: number;
}

/** Per slot: iterations (u32), salt length (u8), key length (u8), 2 spare, salt ≤32, two keys ≤32. */
const SLOT = 104;
const MAX_SALT = 32;
const MAX_KEY = 32;
const SLOTS_PER_CHUNK = 1024;

/** Fixed-size slots in 104 KiB chunks, grown on demand up to the cache's bound. */
class Slab {
  private readonly chunks: Buffer[] = [];
  private used = 0;
  private readonly free: number[] = [];

  take(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const slot = this.used++;
    if (slot >= this.chunks.length * SLOTS_PER_CHUNK) this.chunks.push(Buffer.alloc(SLOT * SLOTS_PER_CHUNK));
    return slot;
  }

  release(slot: number): void {
    this.free.push(slot);
  }

  clear(): void {
    this.free.length = 0;
    this.used = 0;
  }

  write(slot: number, c: ScramCredentials): void {
    const { buf, at } = this.locate(slot);
    buf.writeUInt32LE(c.iterations, at);
    buf[at + 4] = c.salt.length;
    buf[at + 5] = c.storedKey.length;
    c.salt.copy(buf, at + 8);
    c.storedKey.copy(buf, at + 8 + MAX_SALT);
    c.serverKey.copy(buf, at + 8 + MAX_SALT + MAX_KEY);
  }

  /** A copy of the slot: one small pooled Buffer and three views of it. */
  read(slot: number): ScramCredentials {
    const { buf, at } = this.locate(slot);
    const saltLen = buf[at + 4]!;
    const keyLen = buf[at + 5]!;
    const out = Buffer.allocUnsafe(saltLen + 2 * keyLen);
    buf.copy(out, 0, at + 8, at + 8 + saltLen);
    buf.copy(out, saltLen, at + 8 + MAX_SALT, at + 8 + MAX_SALT + keyLen);
    buf.copy(out, saltLen + keyLen, at + 8 + MAX_SALT + MAX_KEY, at + 8 + MAX_SALT + MAX_KEY + keyLen);
    return {
      salt: out.subarray(0, saltLen),
      iterations: buf.readUInt32LE(at),
      storedKey: out.subarray(saltLen, saltLen + keyLen),
      serverKey: out.subarray(saltLen + keyLen),
    };
  }

  private locate(slot: number): { buf: Buffer; at: number } {
    return { buf: this.chunks[Math.floor(slot / SLOTS_PER_CHUNK)]!, at: (slot % SLOTS_PER_CHUNK) * SLOT };
  }
}

/** Credentials this cache can hold (Hermod's own are 16-byte salts and 20/32-byte keys). */
function fits(c: ScramCredentials): boolean {
  return (
    c.salt.length <= MAX_SALT &&
    c.storedKey.length <= MAX_KEY &&
    c.serverKey.length === c.storedKey.length &&
    Number.isInteger(c.iterations) &&
    c.iterations >= 0 &&
    c.iterations <= 0xffffffff
  );
}

export function cacheCredentials(inner: UserStore, opts: CredentialCacheOptions): CachedUserStore {
  const slab = new Slab();
  /** hash → (account → slot). */
  const byHash = new Map<ScramHash, Map<string, number>>();
  const max = opts.maxAccounts;

  const clear = (): void => {
    byHash.clear();
    slab.clear();
  };
  const forget = (account: string): void => {
    for (const accounts of byHash.values()) {
      const slot = accounts.get(account);
      if (slot === undefined) continue;
      accounts.delete(account);
      slab.release(slot);
    }
  };
  const changed = (account: string): void => {
    forget(account);
    opts.wrote?.();
  };

  return {
    create: (account, password) => inner.create(account, password),
    delete(account) {
      try {
        return inner.delete(account);
      } finally {
        changed(account);
      }
    },
    setPassword(account, password) {
      try {
        return inner.setPassword(account, password);
      } finally {
        changed(account);
      }
    },
    exists: (account) => inner.exists(account),
    list: (options) => inner.list(options),
    count: (domain) => inner.count(domain),
    getScramCredentials(account, hash) {
      if (max <= 0) return inner.getScramCredentials(account, hash);
      if (opts.changedElsewhere()) clear();
      let accounts = byHash.get(hash);
      const slot = accounts?.get(account);
      if (slot !== undefined) return slab.read(slot);
      const creds = inner.getScramCredentials(account, hash);
      if (creds === null || !fits(creds)) return creds;
      if (!accounts) byHash.set(hash, (accounts = new Map()));
      if (accounts.size >= max) {
        // Oldest cached first (Map order), as the blocklist cache does: no reordering per hit.
        const [oldest, old] = accounts.entries().next().value as [string, number];
        accounts.delete(oldest);
        slab.release(old);
      }
      const fresh = slab.take();
      slab.write(fresh, creds);
      accounts.set(account, fresh);
      return creds;
    },
    get cached() {
      let n = 0;
      for (const accounts of byHash.values()) n += accounts.size;
      return n;
    },
  };
}
