/**
 * Bytes of V8 heap per session, by object kind, from two heap snapshots of one server process:
 * one without sessions and one holding them (docs/benchmarks.md, "Idle sessions").
 *
 *   node --heapsnapshot-signal=SIGUSR2 dist/src/cli.js serve ...   # kill -USR2 PID per snapshot
 *   node dist/bench/core/heap-diff.js LOADED.heapsnapshot EMPTY.heapsnapshot [--owners N] [--top N]
 *
 * The session count is the difference in C2SStream objects. With --owners N each object is
 * keyed by the chain of its first N retainers (property name included), which tells apart, say,
 * an Array held by a socket's ReadableState from one held by a C2SStream. Self sizes only: what a
 * snapshot's "shallow size" column shows, summed.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Edges that say nothing about who keeps an object alive for our purposes. */
const SKIPPED_EDGES = new Set(['__proto__', 'map', 'prototype', 'constructor', 'back_pointer']);

function kinds(file: string, depth: number): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const meta = s.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const nType = meta.node_fields.indexOf('type');
  const nName = meta.node_fields.indexOf('name');
  const nSize = meta.node_fields.indexOf('self_size');
  const nEdges = meta.node_fields.indexOf('edge_count');
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const { nodes, edges, strings } = s;
  const count = nodes.length / nf;

  const kind = (i: number): string => {
    const type = nodeTypes[nodes[i * nf + nType]!]!;
    const name = strings[nodes[i * nf + nName]!]!;
    if (type.endsWith('string')) return '(string)';
    if (type === 'number' || type === 'code') return `(${type})`;
    if (type === 'object' || type === 'native' || type === 'synthetic') return name.slice(0, 50);
    return `(${type}) ${name.slice(0, 40)}`;
  };

  // The first strong retainer of every object, and the property it is held by.
  const owner = new Int32Array(count).fill(-1);
  const via: string[] = new Array(count);
  if (depth > 0) {
    for (let i = 0, e = 0; i < count; i++) {
      const end = e + nodes[i * nf + nEdges]! * ef;
      for (; e < end; e += ef) {
        const type = edgeTypes[edges[e + eType]!]!;
        if (type === 'weak') continue;
        const name = type === 'element' || type === 'hidden' ? '[]' : String(strings[edges[e + eName]!]);
        if (SKIPPED_EDGES.has(name)) continue;
        const to = edges[e + eTo]! / nf;
        if (owner[to]! >= 0) continue;
        owner[to] = i;
        via[to] = name;
      }
    }
  }

  const totals = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < count; i++) {
    let key = kind(i);
    for (let d = 0, x = i; d < depth; d++) {
      const o = owner[x]!;
      if (o < 0) break;
      key += ` <- ${kind(o)}.${via[x]}`;
      x = o;
    }
    const t = totals.get(key) ?? { count: 0, bytes: 0 };
    t.count++;
    t.bytes += nodes[i * nf + nSize]!;
    totals.set(key, t);
  }
  return totals;
}

function main(argv: string[]): void {
  const files = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
  const opt = (name: string, fallback: number): number => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  if (files.length !== 2) {
    console.error('usage: heap-diff LOADED.heapsnapshot EMPTY.heapsnapshot [--owners N] [--top N]');
    process.exit(64);
  }
  const depth = opt('owners', 0);
  const loaded = kinds(files[0]!, depth);
  const empty = kinds(files[1]!, depth);
  const sessionsIn = (m: typeof loaded) => {
    let n = 0;
    for (const [k, v] of m) if (k === 'C2SStream' || k.startsWith('C2SStream <-')) n += v.count;
    return n;
  };
  const sessions = sessionsIn(loaded) - sessionsIn(empty);
  if (sessions <= 0) throw new Error('the first snapshot must hold more sessions (C2SStream objects) than the second');
  const rows: [string, number, number][] = [];
  for (const key of new Set([...loaded.keys(), ...empty.keys()])) {
    const a = loaded.get(key) ?? { count: 0, bytes: 0 };
    const b = empty.get(key) ?? { count: 0, bytes: 0 };
    rows.push([key, (a.count - b.count) / sessions, (a.bytes - b.bytes) / sessions]);
  }
  rows.sort((x, y) => y[2] - x[2]);
  const total = rows.reduce((n, r) => n + r[2], 0);
  console.log(`${sessions} sessions: ${total.toFixed(0)} B of V8 heap per session`);
  console.log('   B/sess  objs/sess  kind');
  for (const [key, objects, bytes] of rows.slice(0, opt('top', 30))) {
    console.log(`${bytes.toFixed(1).padStart(9)}  ${objects.toFixed(2).padStart(9)}  ${key}`);
  }
}

main(process.argv.slice(2));
