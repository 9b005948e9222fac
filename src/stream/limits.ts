/**
 * Per-address bookkeeping for the stream layer: how many connections an address holds (and the
 * server in total), and how many times in a row it failed to authenticate. Both are consulted
 * at accept time and on SASL failure; neither keeps a timer per connection.
 */

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

  /** Bound to one address (for a caller that keeps one throttle per connection). */
  for(address: string): { failed(): number; succeeded(): void } {
    return {
      failed: () => this.failed(address),
      succeeded: () => this.succeeded(address),
    };
  }

  /** A success forgets the address's failures. */
  succeeded(address: string): void {
    this.failures.delete(address);
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
 * A token bucket (ejabberd's shaper): `rate` units a second sustained, `burst` at once.
 *
 * Kept in its GCRA form (ITU-T I.371's generic cell rate algorithm, the same shaper seen from the
 * clock): a bucket's only state is the time at which it would be full again. A Shaper holds the
 * rate and burst, shared by every connection with the same limits; each connection keeps just
 * that one number (every authenticated session has one or two shapers for its whole life, so a
 * bucket object per connection would be idle memory).
 */
export class Shaper {
  /** How many ms of refill the burst is worth. */
  private readonly burstMs: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
  ) {
    this.burstMs = (burst * 1000) / rate;
  }

  /** Spend `units` at time `at` (ms) from a bucket full again at `fullAt`; returns its new fullAt. */
  spend(fullAt: number, at: number, units: number): number {
    // Refilled past full is full: the balance never exceeds the burst.
    return (fullAt > at ? fullAt : at) + (units * 1000) / this.rate;
  }

  /** How long (ms) a reader must pause at `at` for the bucket to be out of debt; 0 = go on. */
  wait(fullAt: number, at: number): number {
    const over = fullAt - at - this.burstMs;
    return over > 1e-6 ? Math.ceil(over) : 0;
  }
}

const shapers: Shaper[] = [];

/**
 * The shared Shaper for a rate and burst. A configuration has a handful, so a short list searched
 * without building a key (this runs for every accepted connection).
 */
export function shaperFor(rate: number, burst: number): Shaper {
  for (const shaper of shapers) if (shaper.rate === rate && shaper.burst === burst) return shaper;
  const shaper = new Shaper(rate, burst);
  // Bounded for processes that try many limits (tests): the oldest is only forgotten, not broken.
  if (shapers.length >= 32) shapers.shift();
  shapers.push(shaper);
  return shaper;
}

/** One bucket with its own state, for callers that keep an object per connection anyway. */
export class TokenBucket {
  private readonly shaper: Shaper;
  /** When (ms epoch) the balance is back at `burst`; anything in the past means full. */
  private fullAt = 0;

  constructor(
    rate: number,
    burst: number,
    private readonly now?: () => number,
  ) {
    this.shaper = shaperFor(rate, burst);
  }

  /** Spend `units` at time `at` (default: the clock); returns the pause in ms, 0 for none. */
  take(units: number, at: number = this.now ? this.now() : Date.now()): number {
    this.fullAt = this.shaper.spend(this.fullAt, at, units);
    return this.shaper.wait(this.fullAt, at);
  }
}
