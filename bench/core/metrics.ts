/**
 * What counting costs on the stanza path: Hermod's HotStats (an indexed add on a Float64Array)
 * against prom-client's own API, per labelled increment and per histogram observation.
 *
 *   npm run build && node dist/bench/core/metrics.js [--n 2000000] [--json]
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { StanzaKind } from '../../src/core/api.js';
import { HotStats, ROUTING_BUCKETS } from '../../src/observability/metrics.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const n = numArg('n', 2_000_000);
const kinds = [StanzaKind.Message, StanzaKind.Presence, StanzaKind.Iq, StanzaKind.Message];
const labels = ['message', 'presence', 'iq', 'message'];

function time(name: string, body: (i: number) => void): Row {
  for (let i = 0; i < 100_000; i++) body(i); // warm up the JIT
  const t0 = nowNs();
  for (let i = 0; i < n; i++) body(i);
  const ns = Number(nowNs() - t0) / n;
  return { case: name, 'ns/op': round(ns, 1), 'Mops/s': round(1000 / ns, 1) };
}

const registry = new Registry();
const counter = new Counter({ name: 'c', help: 'h', labelNames: ['kind'], registers: [registry] });
const children = labels.map((l) => counter.labels(l));
const histogram = new Histogram({ name: 'h', help: 'h', buckets: ROUTING_BUCKETS, registers: [registry] });
const stats = HotStats.create();

report(`counting one stanza, ${n} iterations`, [
  time('HotStats.stanzaIn(kind)', (i) => stats.stanzaIn(kinds[i & 3]!)),
  time('HotStats.routed(seconds)', (i) => stats.routed((i & 1023) * 1e-6)),
  time("prom-client counter.inc({kind})", (i) => counter.inc({ kind: labels[i & 3]! })),
  time('prom-client pre-bound child.inc()', (i) => children[i & 3]!.inc()),
  time('prom-client histogram.observe(seconds)', (i) => histogram.observe((i & 1023) * 1e-6)),
]);
