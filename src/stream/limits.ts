/**
 * Per-address bookkeeping for the stream layer: how many connections an address holds (and the
 * server in total), and how many times in a row it failed to authenticate. Both are consulted
 * at accept time and on SASL failure; neither keeps a timer per connection.
 */
import type { AuthThrottle } from './c2s.js';

/** An address is forgotten after this long without a failed authentication. */
const FORGET_FAILURES_MS = 10 * 60_000;

/**
 * Exponential back-off after failed authentication, per remote address: the answer to the
 * n-th failure in a row is held base·2^(n-1) ms, at most `maxMs`. A success resets the address.
 */
export class AuthFailureTracker {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  for(address: string): AuthThrottle {
    return {
      failed: () => this.failed(address),
      succeeded: () => void this.failures.delete(address),
    };
  }

  failed(address: string): number {
    const now = this.now();
    const entry = this.failures.get(address);
    const count = entry && now - entry.last < FORGET_FAILURES_MS ? entry.count + 1 : 1;
    this.failures.set(address, { count, last: now });
    if (this.baseMs <= 0) return 0;
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(count - 1, 30));
  }

  /** Consecutive failures recorded for an address (0 when none or forgotten). */
  count(address: string): number {
    const entry = this.failures.get(address);
    return entry && this.now() - entry.last < FORGET_FAILURES_MS ? entry.count : 0;
  }

  /** Drop addresses whose last failure is old, so the map does not grow with every scanner. */
  sweep(): void {
    const now = this.now();
    for (const [address, entry] of this.failures) {
      if (now - entry.last >= FORGET_FAILURES_MS) this.failures.delete(address);
    }
  }
}

/** Open connections per address and in total, with optional caps (0 = no cap). */
export class ConnectionCounter {
  private readonly perAddress = new Map<string, number>();
  total = 0;

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Count a new connection, or say why it is refused (and count nothing). */
  admit(address: string): string | null {
    if (this.maxTotal > 0 && this.total >= this.maxTotal) return 'the server is at its connection limit';
    const current = this.perAddress.get(address) ?? 0;
    if (this.maxPerAddress > 0 && current >= this.maxPerAddress) return 'too many connections from your address';
    this.perAddress.set(address, current + 1);
    this.total++;
    return null;
  }

  release(address: string): void {
    const current = this.perAddress.get(address) ?? 0;
    if (current <= 1) this.perAddress.delete(address);
    else this.perAddress.set(address, current - 1);
    if (current > 0) this.total--;
  }

  of(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }
}

/**
 * A token bucket (ejabberd's shaper): `rate` units a second sustained, `burst` at once. take()
 * spends units and says how long the reader should pause for the balance to recover (0 = go on).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(units: number): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= units;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }
}
