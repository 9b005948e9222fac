/**
 * Latency statistics for the load tool: a log-linear histogram (the HdrHistogram idea, reduced
 * to what a swarm needs) that every generator process fills without allocation and that the
 * orchestrator merges exactly, plus a per-second timeline for the report's plots.
 *
 * Values are integers in microseconds. Values below SUB are stored exactly; above, each power of
 * two is split into SUB/2 linear sub-buckets, so a bucket's width is at most 1/(SUB/2) of its
 * value: with SUB = 128 every reported percentile is within 1.6 % of the true sample.
 */

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
const HALF = SUB >> 1;
/** Up to 2^40 µs (≈12.7 days) — anything later is clamped to the last bucket. */
const MAX_EXP = 40;
export const BUCKETS = SUB + (MAX_EXP - SUB_BITS + 1) * HALF;

/** Bucket of value v (µs, ≥0). */
export function bucketOf(v: number): number {
  if (v < SUB) return v < 0 ? 0 : Math.floor(v);
  let e = Math.floor(Math.log2(v)); // v in [2^e, 2^(e+1)); log2 may round near a power of two
  if (2 ** e > v) e--;
  else if (2 ** (e + 1) <= v) e++;
  if (e > MAX_EXP) return BUCKETS - 1;
  const shift = e - (SUB_BITS - 1); // sub-bucket width 2^shift
  const sub = Math.floor(v / 2 ** shift) - HALF; // 0..HALF-1
  return SUB + (e - SUB_BITS) * HALF + sub;
}

/** Lowest value that falls into bucket b. */
export function bucketLow(b: number): number {
  if (b < SUB) return b;
  const k = b - SUB;
  const e = Math.floor(k / HALF) + SUB_BITS;
  const sub = k % HALF;
  return (HALF + sub) * 2 ** (e - (SUB_BITS - 1));
}

/** One past the highest value of bucket b. */
export function bucketHigh(b: number): number {
  return b + 1 < BUCKETS ? bucketLow(b + 1) : Infinity;
}

export type HistogramJSON = { n: number; sum: number; min: number; max: number; buckets: [number, number][] };

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  n = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  record(v: number): void {
    this.counts[bucketOf(v)]++;
    this.n++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(o: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += o.counts[i];
    this.n += o.n;
    this.sum += o.sum;
    if (o.min < this.min) this.min = o.min;
    if (o.max > this.max) this.max = o.max;
  }

  /** Samples ≥ v, to the histogram's resolution: v's own bucket counts in full. */
  countAtLeast(v: number): number {
    let n = 0;
    for (let b = bucketOf(v); b < BUCKETS; b++) n += this.counts[b];
    return n;
  }

  mean(): number {
    return this.n ? this.sum / this.n : NaN;
  }

  /**
   * The q-quantile (0..1) by the nearest-rank rule: the smallest recorded value v such that at
   * least ceil(q·n) samples are ≤ v. Reported as the middle of its bucket, clamped into
   * [min, max] so p0 and p100 are exact.
   */
  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b];
      if (seen >= rank) {
        const mid = b < SUB ? b : (bucketLow(b) + bucketHigh(b) - 1) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  toJSON(): HistogramJSON {
    const buckets: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b]) buckets.push([b, this.counts[b]]);
    return { n: this.n, sum: this.sum, min: this.min, max: this.max, buckets };
  }

  static fromJSON(j: HistogramJSON): Histogram {
    const h = new Histogram();
    for (const [b, c] of j.buckets) h.counts[b] = c;
    h.n = j.n;
    h.sum = j.sum;
    h.min = j.n ? j.min : Infinity;
    h.max = j.n ? j.max : -Infinity;
    return h;
  }
}

export type LatencySummary = { n: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };

export function summarize(h: Histogram): LatencySummary {
  return {
    n: h.n,
    mean: h.mean(),
    p50: h.quantile(0.5),
    p90: h.quantile(0.9),
    p99: h.quantile(0.99),
    p999: h.quantile(0.999),
    max: h.n ? h.max : NaN,
  };
}

/**
 * Per-second histograms, keyed by whole seconds since the run's shared start instant, for the
 * latency-over-time and rate-over-time plots.
 */
export class Timeline {
  readonly seconds = new Map<number, Histogram>();

  record(second: number, v: number): void {
    let h = this.seconds.get(second);
    if (!h) this.seconds.set(second, (h = new Histogram()));
    h.record(v);
  }

  merge(o: Timeline): void {
    for (const [s, h] of o.seconds) {
      const mine = this.seconds.get(s);
      if (mine) mine.merge(h);
      else {
        const copy = new Histogram();
        copy.merge(h);
        this.seconds.set(s, copy);
      }
    }
  }

  toJSON(): [number, HistogramJSON][] {
    return [...this.seconds].map(([s, h]) => [s, h.toJSON()]);
  }

  static fromJSON(j: [number, HistogramJSON][]): Timeline {
    const t = new Timeline();
    for (const [s, h] of j) t.seconds.set(s, Histogram.fromJSON(h));
    return t;
  }

  /** One row per second (gaps filled with zero counts): rate and latency quantiles. */
  rows(): { t: number; n: number; p50: number; p99: number; max: number }[] {
    if (this.seconds.size === 0) return [];
    const keys = [...this.seconds.keys()];
    const lo = Math.min(...keys);
    const hi = Math.max(...keys);
    const out = [];
    for (let s = lo; s <= hi; s++) {
      const h = this.seconds.get(s);
      out.push(h ? { t: s, n: h.n, p50: h.quantile(0.5), p99: h.quantile(0.99), max: h.max } : { t: s, n: 0, p50: NaN, p99: NaN, max: NaN });
    }
    return out;
  }
}

/** Microseconds on CLOCK_MONOTONIC: one clock shared by every process on the machine. */
export function nowUs(): number {
  const t = process.hrtime();
  return t[0] * 1e6 + Math.floor(t[1] / 1000);
}
