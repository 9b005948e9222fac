/**
 * Temporary refusal of an address that keeps failing to authenticate (ejabberd's mod_fail2ban,
 * Prosody's mod_limit_auth): once `maxFailures` failed SASL attempts from one address fall within
 * `windowMs`, new connections from it are refused until the window has moved past enough of them.
 *
 * This complements the per-attempt delay of src/stream/limits.ts: a delay slows one connection,
 * but a guesser opening many connections in parallel pays it on each at the same time; counting
 * per address over a window bounds the guesses an address gets, however it spreads them.
 * Pure: the clock is passed in, no timers; sweep() keeps the table bounded.
 */
export class AuthBan {
  /** Failure times per address, oldest first (at most maxFailures kept). */
  private readonly failures = new Map<string, number[]>();

  /** maxFailures 0 = never refuse. */
  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Record a failed authentication from `address`. */
  failed(address: string): void {
    if (this.maxFailures <= 0) return;
    const times = this.recent(address) ?? [];
    times.push(this.now());
    // Only the newest maxFailures matter for the decision.
    if (times.length > this.maxFailures) times.shift();
    this.failures.set(address, times);
  }

  /** Until when (ms epoch) `address` is refused, or 0 when it may connect. */
  bannedUntil(address: string): number {
    const times = this.recent(address);
    if (!times || times.length < this.maxFailures) return 0;
    return times[0]! + this.windowMs;
  }

  /** Forget addresses whose failures all left the window. */
  sweep(): void {
    for (const address of [...this.failures.keys()]) this.recent(address);
  }

  /** The address's failures still inside the window (expired ones dropped), or undefined. */
  private recent(address: string): number[] | undefined {
    const times = this.failures.get(address);
    if (!times) return undefined;
    const oldest = this.now() - this.windowMs;
    while (times.length > 0 && times[0]! <= oldest) times.shift();
    if (times.length === 0) {
      this.failures.delete(address);
      return undefined;
    }
    return times;
  }
}
