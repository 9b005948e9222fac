/**
 * Request limits of the upload service (XEP-0363): slot requests (on every thread that routes)
 * and PUTs (on the main thread's HTTP service), each per account and per remote address.
 *
 * A slot costs no storage, but a client requesting them in a loop costs signatures and answers,
 * and a script PUTting as fast as the quota allows churns the disk; operators expect a bound on
 * both that needs no proxy in front. Each key (an account, an address) is a token bucket of
 * `count` requests a `windowMs`, `count` at once, kept in its GCRA form (src/stream/limits.ts
 * Shaper): one number per key, the time at which its bucket is full again. A key whose bucket
 * is full again holds nothing worth keeping and is dropped by the sweep.
 */
import { Shaper } from '../stream/limits.js';

/** Keys kept before a sweep drops those whose bucket is full again. */
const SWEEP_AT = 4096;

/** One limit (`count` per window) over many keys. */
export class KeyedLimit {
  private readonly shaper: Shaper | null;
  /** Key → when its bucket is full again (ms epoch). */
  private readonly fullAt = new Map<string, number>();
  private sweepAt = SWEEP_AT;

  constructor(count: number, windowMs: number) {
    this.shaper = count > 0 && windowMs > 0 ? new Shaper((count * 1000) / windowMs, count) : null;
  }

  /** How long (ms) `key` must wait at `now` before one more request; 0 = allowed now. */
  wait(key: string, now: number): number {
    if (!this.shaper) return 0;
    return this.shaper.wait(this.shaper.spend(this.fullAt.get(key) ?? 0, now, 1), now);
  }

  /** Count one request of `key` (checked with wait() first). */
  spend(key: string, now: number): void {
    if (!this.shaper) return;
    this.fullAt.set(key, this.shaper.spend(this.fullAt.get(key) ?? 0, now, 1));
    if (this.fullAt.size >= this.sweepAt) this.sweep(now);
  }

  /** Forget the keys whose bucket is full again (as if they had never asked). */
  sweep(now: number): void {
    for (const [key, at] of this.fullAt) if (at <= now) this.fullAt.delete(key);
    // Many keys all still in debt: look again only once the map has doubled.
    this.sweepAt = Math.max(SWEEP_AT, this.fullAt.size * 2);
  }

  /** Keys held (for tests). */
  get size(): number {
    return this.fullAt.size;
  }
}

/** The per-account and per-address limits of one kind of request. */
export class RequestLimits {
  private readonly account: KeyedLimit;
  private readonly address: KeyedLimit;

  constructor(limits: { perAccount: number; perAddress: number; windowMs: number }) {
    this.account = new KeyedLimit(limits.perAccount, limits.windowMs);
    this.address = new KeyedLimit(limits.perAddress, limits.windowMs);
  }

  /**
   * Count one request of `account` from `address` (null: not known yet, e.g. a PUT before its
   * signature is checked) if both allow it; otherwise count nothing and return how long (ms) to
   * wait until both would.
   */
  take(account: string | null, address: string, now: number): number {
    const wait = Math.max(account === null ? 0 : this.account.wait(account, now), this.address.wait(address, now));
    if (wait > 0) return wait;
    if (account !== null) this.account.spend(account, now);
    this.address.spend(address, now);
    return 0;
  }

  /** Count one request of `account` only (its address was counted before). */
  takeAccount(account: string, now: number): number {
    const wait = this.account.wait(account, now);
    if (wait === 0) this.account.spend(account, now);
    return wait;
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * An address that names no client: a reverse proxy on this host (the WebSocket listener's TLS
 * front, docs/configuration.md), through which every client comes from the same address.
 */
export function isLoopback(address: string): boolean {
  return LOOPBACK.test(address);
}

/** XEP-0082 date-time in UTC, whole seconds, at or after `ms` (XEP-0363 §5 <retry stamp=…/>). */
export function retryStamp(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
