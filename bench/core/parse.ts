/**
 * `npm run bench:core`: parse one c2s stream with the Hermod WASM core and with the JavaScript
 * XML parsers XMPP servers and clients use, in one run on the same bytes and chunking, and print
 * MB/s, stanzas/s and the ratio to ltx (docs/benchmarks.md, "Core").
 *
 *   node dist/bench/core/parse.js [--corpus FILE] [--size BYTES] [--chunk BYTES] [--time MS]
 *                                 [--rounds N] [--write-corpus FILE] [--wasm OTHER.wasm] [--json]
 *                                 [--passes N] [--base DIR]
 *
 * Each parser gets the socket's view of the stream: Buffers of --chunk bytes. The Hermod core
 * copies each chunk into WASM memory and the handler reads the descriptor the way the router
 * does (kind, type, status, the `to` string). String parsers get the chunks through a
 * StringDecoder, as a Node socket with setEncoding('utf8') would give them.
 *
 * --wasm adds another build of the core with the same JS boundary; --base adds another checkout's
 * whole core (its dist/src/core/parser.js with its own dist/wasm/core.wasm), for comparing
 * across boundary changes, e.g. `git worktree add /tmp/core-base COMMIT` built with `npm run build`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { StringDecoder } from 'node:string_decoder';
import { SaxesParser } from 'saxes';
import { Bench } from 'tinybench';
import { loadCore, type Core } from '../../src/core/parser.js';
import { generateCorpus } from './corpus.js';

const require = createRequire(import.meta.url);

interface SaxLike {
  on(event: string, fn: (...args: never[]) => void): void;
  write(data: string): void;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const json = process.argv.includes('--json');
const corpusFile = arg('corpus');
const corpus = corpusFile ? readFileSync(corpusFile) : generateCorpus(Number(arg('size') ?? 1 << 20));
if (arg('write-corpus')) writeFileSync(arg('write-corpus')!, corpus);
const chunkSize = Number(arg('chunk') ?? 4096);
const chunks: Buffer[] = [];
for (let i = 0; i < corpus.length; i += chunkSize) chunks.push(corpus.subarray(i, i + chunkSize));

/** Each run returns the number of top-level elements (stanzas) it saw, to check all agree. */
type Run = () => number;

function hermod(wasmFile?: string): Run {
  return hermodOn(loadCore(wasmFile ? { wasmFile } : {}));
}

/** The core of another checkout (--base DIR): its own JS side and its release build. */
async function hermodBase(dir: string): Promise<Run> {
  const mod = (await import(pathToFileURL(join(dir, 'dist/src/core/parser.js')).href)) as { loadCore: typeof loadCore };
  return hermodOn(mod.loadCore({ wasmFile: join(dir, 'dist/wasm/core.wasm') }));
}

function hermodOn(core: Core): Run {
  return () => {
    let stanzas = 0;
    let sink = 0;
    const p = core.createParser({
      onStreamOpen() {},
      onStanza(s) {
        stanzas++;
        sink += s.kind + s.type + s.status + (s.to()?.length ?? 0);
      },
      onStreamClose() {},
      onError(e) {
        throw new Error(`hermod: ${e.condition}: ${e.message}`);
      },
    });
    for (const c of chunks) p.feed(c);
    p.free();
    return stanzas + (sink & 0);
  };
}

/** A SAX-style parser: count elements closing at depth 1 (children of <stream:stream>). */
function sax(make: () => SaxLike, start: string, end: string): Run {
  return () => {
    const p = make();
    const dec = new StringDecoder('utf8');
    let depth = 0;
    let stanzas = 0;
    p.on(start, () => void depth++);
    p.on(end, () => {
      if (--depth === 1) stanzas++;
    });
    p.on('error', (e: never) => {
      throw e;
    });
    for (const c of chunks) p.write(dec.write(c));
    return stanzas;
  };
}

async function xmppXml(): Promise<Run> {
  const modName = '@xmpp/xml';
  const { default: xml } = (await import(modName)) as { default: { Parser: new () => SaxLike } };
  return () => {
    const p = new xml.Parser();
    const dec = new StringDecoder('utf8');
    let stanzas = 0;
    p.on('element', () => void stanzas++);
    p.on('error', (e: never) => {
      throw e;
    });
    for (const c of chunks) p.write(dec.write(c));
    return stanzas;
  };
}

function expat(): Run | undefined {
  let Expat: { Parser: new (enc: string) => SaxLike & { parse(b: Buffer, last?: boolean): boolean; getError(): string } };
  try {
    Expat = require('node-expat');
  } catch {
    return undefined;
  }
  return () => {
    const p = new Expat.Parser('UTF-8');
    let depth = 0;
    let stanzas = 0;
    p.on('startElement', () => void depth++);
    p.on('endElement', () => {
      if (--depth === 1) stanzas++;
    });
    for (const c of chunks) if (!p.parse(c, false)) throw new Error(`node-expat: ${p.getError()}`);
    return stanzas;
  };
}

// --passes N: only the Hermod core (the --wasm build or the --base checkout's core if given),
// N passes, no timing: for counting instructions, e.g. under valgrind (docs/benchmarks.md, "Core")
if (arg('passes')) {
  const once = arg('base') ? await hermodBase(resolve(arg('base')!)) : hermod(arg('wasm'));
  let stanzas = 0;
  for (let i = 0; i < Number(arg('passes')); i++) stanzas = once();
  console.log(`${arg('passes')} passes, ${stanzas} stanzas each`);
  process.exit(0);
}

const LtxSax = require('ltx/lib/parsers/ltx.js') as new () => SaxLike;
const runs: Record<string, Run> = {
  hermod: hermod(),
  ltx: sax(() => new LtxSax(), 'startElement', 'endElement'),
  '@xmpp/xml': await xmppXml(),
  saxes: sax(() => new SaxesParser({ xmlns: true }) as unknown as SaxLike, 'opentag', 'closetag'),
};
const ex = expat();
if (ex) runs['node-expat'] = ex;
// --wasm FILE: also measure another build of the core (e.g. without SIMD) under the same load
if (arg('wasm')) runs[`hermod (${arg('wasm')})`] = hermod(arg('wasm'));
if (arg('base')) runs[`hermod (${arg('base')})`] = await hermodBase(resolve(arg('base')!));

const counts = Object.fromEntries(Object.entries(runs).map(([n, r]) => [n, r()]));
const expected = counts.hermod;
for (const [n, c] of Object.entries(counts)) {
  if (c !== expected) console.error(`warning: ${n} saw ${c} stanzas, hermod ${expected}`);
}

// Several short rounds, each running every parser in turn, keeping each parser's fastest
// iteration (latency.min): the work is deterministic, so the fastest pass is the one least
// disturbed by other processes on a shared machine, and interleaving keeps the ratios honest.
const rounds = Number(arg('rounds') ?? 5);
const time = Number(arg('time') ?? 5000) / rounds;
const best: Record<string, number> = {};
for (let round = 0; round < rounds; round++) {
  const bench = new Bench({ time, warmupTime: round === 0 ? 300 : 50 });
  for (const [name, run] of Object.entries(runs)) bench.add(name, run);
  await bench.run();
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state}`);
    best[task.name] = Math.min(best[task.name] ?? Infinity, r.latency.min);
  }
}

const results: Record<string, { mbps: number; stanzasPerSec: number }> = {};
for (const [name, period] of Object.entries(best)) {
  const seconds = period / 1000;
  results[name] = {
    mbps: Math.round((corpus.length / 1e6 / seconds) * 10) / 10,
    stanzasPerSec: Math.round(counts[name] / seconds),
  };
}

if (json) {
  console.log(JSON.stringify(results));
} else {
  const ltx = results.ltx.mbps;
  console.log(
    `corpus: ${corpusFile ?? 'generated'} ${corpus.length} bytes, ${expected} stanzas, chunks of ${chunkSize} bytes; ` +
      `fastest pass of ${rounds} interleaved rounds; node ${process.version}`,
  );
  console.table(
    Object.fromEntries(
      Object.entries(results).map(([n, r]) => [n, { 'MB/s': r.mbps, 'stanzas/s': r.stanzasPerSec, 'vs ltx': `${(r.mbps / ltx).toFixed(1)}×` }]),
    ),
  );
}
