import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKETS, Histogram, Timeline, bucketHigh, bucketLow, bucketOf, summarize } from '../../bench/load/stats.js';

/** Nearest-rank quantile of a sorted array: the reference the histogram approximates. */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

describe('bench latency histogram', () => {
  it('tiles the value range: buckets are contiguous and each value falls into its own bucket', () => {
    for (let b = 0; b < BUCKETS - 1; b++) expect(bucketHigh(b)).toBe(bucketLow(b + 1));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 - 1 }), (v) => {
        const b = bucketOf(v);
        return bucketLow(b) <= v && v < bucketHigh(b);
      }),
    );
  });

  it('keeps bucket width within 1/64 of the value above 128 µs', () => {
    for (let b = 128; b < BUCKETS - 1; b++) expect((bucketHigh(b) - bucketLow(b)) / bucketLow(b)).toBeLessThanOrEqual(1 / 64);
  });

  it('reports every percentile within 1.6 % of the exact nearest-rank value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50_000_000 }), { minLength: 1, maxLength: 400 }),
        fc.constantFrom(0.5, 0.9, 0.99, 0.999, 1),
        (values, q) => {
          const h = new Histogram();
          for (const v of values) h.record(v);
          const sorted = [...values].sort((a, b) => a - b);
          const exact = exactQuantile(sorted, q);
          return Math.abs(h.quantile(q) - exact) <= exact / 64 + 0.5;
        },
      ),
    );
  });

  it('reports small values exactly, and min and max exactly', () => {
    const h = new Histogram();
    for (const v of [3, 1, 4, 1, 5, 9, 2, 6]) h.record(v);
    expect(h.quantile(0.5)).toBe(3);
    expect(h.quantile(0)).toBe(1);
    expect(h.quantile(1)).toBe(9);
    const s = summarize(h);
    expect(s.max).toBe(9);
    expect(s.n).toBe(8);
    expect(s.mean).toBeCloseTo(31 / 8);
  });

  it('gives NaN percentiles for an empty histogram', () => {
    expect(Number.isNaN(new Histogram().quantile(0.99))).toBe(true);
  });

  it('merges exactly: two halves merged equal one histogram of everything', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 200 }), fc.nat(200), (values, cut) => {
        const all = new Histogram();
        const a = new Histogram();
        const b = new Histogram();
        values.forEach((v, i) => {
          all.record(v);
          (i < cut ? a : b).record(v);
        });
        // Through JSON, as the generator processes send them.
        const merged = Histogram.fromJSON(a.toJSON());
        merged.merge(Histogram.fromJSON(b.toJSON()));
        expect(merged.n).toBe(all.n);
        expect([...merged.counts]).toEqual([...all.counts]);
        if (values.length) {
          expect(merged.max).toBe(all.max);
          expect(merged.quantile(0.99)).toBe(all.quantile(0.99));
        }
      }),
    );
  });

  it('counts samples at or above a threshold to within one bucket (logins slower than 1 s)', () => {
    const h = new Histogram();
    for (const v of [10, 900_000, 1_000_000, 1_500_000, 3_000_000]) h.record(v);
    expect(h.countAtLeast(1_000_000)).toBe(3);
    expect(h.countAtLeast(3_100_000)).toBe(0);
  });
});

describe('bench timeline', () => {
  it('fills gaps with empty seconds and merges per second', () => {
    const a = new Timeline();
    const b = new Timeline();
    a.record(0, 100);
    a.record(3, 200);
    b.record(3, 400);
    a.merge(Timeline.fromJSON(b.toJSON()));
    const rows = a.rows();
    expect(rows.map((r) => r.t)).toEqual([0, 1, 2, 3]);
    expect(rows.map((r) => r.n)).toEqual([1, 0, 0, 2]);
    expect(rows[3].max).toBe(400);
  });
});
