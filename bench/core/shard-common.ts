/**
 * Shared plumbing of the bench/core/shard-*.ts micro-benchmarks: timing loops, percentiles, and
 * the table / --json output every benchmark in bench/ prints.
 */

export interface Row {
  case: string;
  [column: string]: string | number;
}

export const nowNs = (): bigint => process.hrtime.bigint();

/** Per-sample durations in microseconds → summary columns. */
export function summarize(samplesUs: number[]): { 'p50 µs': number; 'p99 µs': number; 'mean µs': number } {
  const s = [...samplesUs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { 'p50 µs': round(at(0.5)), 'p99 µs': round(at(0.99)), 'mean µs': round(mean) };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Print rows as an aligned plain-text table, or as JSON with --json. */
export function report(title: string, rows: Row[], argv = process.argv.slice(2)): void {
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ benchmark: title, node: process.version, rows }, null, 2) + '\n');
    return;
  }
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => cols.map((c) => String(r[c] ?? '')));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]): string => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  process.stdout.write(`${title} (Node ${process.version})\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const row of cells) process.stdout.write(line(row) + '\n');
}

/** Value of `--name N` on the command line, or the default. */
export function numArg(name: string, fallback: number, argv = process.argv.slice(2)): number {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : fallback;
}
