/**
 * What checking that a stanza is in jabber:client costs on the hot path (src/stream/c2s.ts
 * inClientNamespace): the parser alone, the check through StanzaView.nsInherited (one
 * descriptor read), and the naive check that decodes namespace() for every stanza. One run,
 * the three variants interleaved per round; CPU time per stanza.
 *
 *   node dist/bench/hostile/stanza-namespace.js [rounds=5]
 */
import { StanzaKind, type StanzaView } from '../../src/core/api.js';
import { loadCore } from '../../src/core/parser.js';

const NAME_LENGTH = [0, 7, 8, 2, 0];
type Variant = 'parse only' | 'nsInherited check' | 'namespace() decode';
const checks: Record<Variant, (v: StanzaView) => boolean> = {
  'parse only': (v) => v.start < 0,
  'nsInherited check': (v) =>
    v.kind !== StanzaKind.Other && !(v.nsInherited === true && v.nameEnd - v.start - 1 === NAME_LENGTH[v.kind]) && v.namespace() !== 'jabber:client',
  'namespace() decode': (v) => v.kind !== StanzaKind.Other && v.namespace() !== 'jabber:client',
};

const core = loadCore();
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const chunk = Buffer.from("<message to='bob@localhost' type='chat' id='x1'><body>hello there</body></message>".repeat(100));
const PER_ROUND = 10_000; // chunks: 1 000 000 stanzas

function run(variant: Variant): number {
  const check = checks[variant];
  let flagged = 0;
  const parser = core.createParser({
    onStreamOpen() {},
    onStanza(v) {
      if (check(v)) flagged++;
    },
    onStreamClose() {},
    onError(e) {
      throw new Error(e.message);
    },
  });
  parser.feed(Buffer.from(HEADER));
  for (let i = 0; i < 1000; i++) parser.feed(chunk); // warm-up
  const t0 = process.cpuUsage();
  for (let i = 0; i < PER_ROUND; i++) parser.feed(chunk);
  const t = process.cpuUsage(t0);
  parser.free();
  if (flagged !== 0) throw new Error(`${variant} flagged ${flagged} jabber:client stanzas`);
  return ((t.user + t.system) * 1000) / (PER_ROUND * 100);
}

const rounds = Number(process.argv[2] ?? 5);
const results: Record<Variant, number[]> = { 'parse only': [], 'nsInherited check': [], 'namespace() decode': [] };
for (let r = 0; r < rounds; r++) for (const v of Object.keys(checks) as Variant[]) results[v].push(run(v));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(results['parse only']);
for (const v of Object.keys(checks) as Variant[]) {
  const m = median(results[v]);
  console.log(`${v.padEnd(20)} ${m.toFixed(1).padStart(7)} ns CPU/stanza  (+${(m - base).toFixed(1)} ns, ${((m / base - 1) * 100).toFixed(1)} %)`);
}
