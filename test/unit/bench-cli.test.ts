import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../bench/load/cli.js';
import { htmlReport, textTable } from '../../bench/load/report.js';
import { CLIENTS_PER_PROC, DEFAULTS, procCount, runBench, type BenchResult } from '../../bench/load/run.js';
import { Histogram, Timeline } from '../../bench/load/stats.js';

describe('hermod bench arguments', () => {
  it('fills defaults and reads scenario options', () => {
    const { opts, json } = parseBenchArgs(['messages', '--clients', '50', '--mode', 'open', '--msg-rate', '3', '--json']);
    expect(opts.scenario).toBe('messages');
    expect(opts.clients).toBe(50);
    expect(opts.mode).toBe('open');
    expect(opts.msgRate).toBe(3);
    expect(opts.host).toBe('127.0.0.1');
    expect(json).toBe(true);
  });

  it('turns --storm into an all-at-once login (rate 0)', () => {
    expect(parseBenchArgs(['login', '--storm', '--clients', '15000']).opts.rate).toBe(0);
  });

  it('rejects unknown scenarios, mechanisms and malformed numbers', () => {
    expect(() => parseBenchArgs(['flood'])).toThrow(/unknown scenario/);
    expect(() => parseBenchArgs(['login', '--sasl', 'digest-md5'])).toThrow(/sasl/);
    expect(() => parseBenchArgs(['login', '--clients', 'many'])).toThrow(/--clients/);
  });

  it('splits the swarm so no generator exceeds the per-process file limit', () => {
    expect(15000 / procCount({ procs: -1, clients: 15000 })).toBeLessThanOrEqual(CLIENTS_PER_PROC);
    expect(36001 / procCount({ procs: -1, clients: 36001 })).toBeLessThanOrEqual(CLIENTS_PER_PROC);
    expect(procCount({ procs: -1, clients: 40000 })).toBe(3);
    expect(procCount({ procs: 0, clients: 10 })).toBe(0);
  });

  it('refuses to load a non-loopback host', async () => {
    await expect(runBench({ ...DEFAULTS, scenario: 'login', host: '192.0.2.1', procs: 0 })).rejects.toThrow(/loopback/);
  });

  it('refuses an odd roster size for the presence ring', async () => {
    await expect(runBench({ ...DEFAULTS, scenario: 'presence', contacts: 3, procs: 0 })).rejects.toThrow(/even/);
  });
});

describe('hermod bench reports', () => {
  const lat = new Histogram();
  const tl = new Timeline();
  for (let i = 1; i <= 1000; i++) {
    lat.record(i * 10);
    tl.record(i % 5, i * 10);
  }
  const result: BenchResult = {
    scenario: 'messages',
    clients: 10,
    procs: 1,
    login: { ok: 10, failed: 0, seconds: 1, perSec: 10, latency: { n: 10, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1 }, over1s: 0 },
    run: {
      seconds: 5,
      sent: 1000,
      delivered: 1000,
      deliveredInWindow: 1000,
      expected: 1000,
      lost: 0,
      skipped: 0,
      perSec: 200,
      completeness: 1,
      latency: { n: 1000, mean: 5005, p50: 5000, p90: 9000, p99: 9900, p999: 9990, max: 10000 },
    },
    cpu: { seconds: 5, toolUs: 1e6, toolPct: 20, serverUs: 2e6, serverPct: 40, serverUsPerOp: 2000, toolLoopDelayP99Us: 1500, toolLoopDelayMaxUs: 20000 },
    drops: 0,
    errors: { 'session: ECONNRESET': 2 },
    timeline: tl.rows(),
    histogram: lat.toJSON(),
  };

  it('prints one labelled row per figure, errors included', () => {
    const t = textTable(result);
    expect(t).toMatch(/throughput\s+200 messages\/s/);
    expect(t).toMatch(/p99 9\.90 ms/);
    expect(t).toMatch(/2 × session: ECONNRESET/);
    expect(t).toMatch(/tool loop delay\s+p99 1\.50 ms  max 20\.0 ms/);
  });

  it('writes a self-contained HTML report with latency-over-time and histogram plots', () => {
    const html = htmlReport([{ label: 'run <1>', result }], 'hermod bench messages');
    expect(html).toContain('run &lt;1&gt;');
    expect(html.match(/<svg /g)?.length).toBe(3);
    expect(html).toContain('<polyline');
    expect(html).toContain('<rect x=');
    // No external assets: the only URL is the SVG namespace.
    expect(html.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')).not.toMatch(/https?:\/\//);
    expect(html).not.toContain('<script');
  });
});
