/**
 * Differential fuzzing of the WASM core against saxes (a conforming, namespace-aware XML parser)
 * on well-formedness, and of chunked against whole feeding. Bounded here; `npm run fuzz` runs the
 * same properties long (FUZZ_RUNS) and saves any counterexample under test/fixtures/xml/findings/.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import { Err } from '../../assembly/layout.js';
import { parseChunks, STREAM_OPEN, type EventRecord } from './core-helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** Bounded runs in the test suite are reproducible; `npm run fuzz` explores new seeds. */
const PARAMS = process.env.FUZZ_RUNS ? {} : { seed: 0x6865726d };
/** Long runs get a time budget proportional to their size. */
const TIMEOUT = process.env.FUZZ_RUNS ? RUNS * 10 : undefined;
const LIMITS = { maxDepth: 256, maxAttributes: 256, maxStanzaBytes: 1 << 20 };

/** Codes for rules stricter than XML 1.0 + Namespaces (RFC 6120 §11, limits, stream framing). */
const STRICTER = new Set<number>([
  Err.TextAtTopLevel,
  Err.Comment,
  Err.ProcessingInstruction,
  Err.Doctype,
  Err.UndefinedEntity,
  Err.HeaderNotStream,
  Err.UnsupportedEncoding,
  Err.StanzaTooLarge,
  Err.TooDeep,
  Err.TooManyAttrs,
  Err.TooManyNsDecls,
  Err.ReferenceTooLong,
  Err.NoStreamHeader,
  // saxes does not check that both halves of a QName are NCNames (Namespaces in XML §3)
  Err.BadQName,
]);

type Ours = { verdict: 'ok' | 'incomplete' | 'error' | 'stricter'; code?: number };
type Reference = { writeError?: string; closeError?: string };

function ours(events: EventRecord[]): Ours {
  const err = events.find((e) => e.ev === 'error');
  if (err && err.ev === 'error') return STRICTER.has(err.code) ? { verdict: 'stricter', code: err.code } : { verdict: 'error', code: err.code };
  return { verdict: events.some((e) => e.ev === 'close') ? 'ok' : 'incomplete' };
}

/** UTF-8 decode as a stream (a sequence cut by the end of input is incomplete, not invalid). */
const decode = (b: Uint8Array) => new TextDecoder('utf-8', { fatal: true }).decode(b, { stream: true });

/** Length of the longest prefix that is valid (possibly incomplete) UTF-8. */
function validPrefix(input: Uint8Array): number {
  try {
    decode(input);
    return input.length;
  } catch {
    let i = 0;
    while (i < input.length) {
      try {
        decode(input.subarray(0, i + 1));
        i++;
      } catch {
        break;
      }
    }
    return i;
  }
}

function reference(input: Uint8Array): Reference {
  const valid = validPrefix(input);
  const text = decode(input.subarray(0, valid));
  const r: Reference = {};
  let depth = 0;
  let rootClosed = false;
  const p = new SaxesParser({ xmlns: true });
  let closing = false;
  p.on('error', (e) => {
    if (rootClosed) return;
    if (closing) r.closeError ??= e.message;
    else r.writeError ??= e.message;
  });
  p.on('opentag', () => void depth++);
  p.on('closetag', (tag) => {
    // the core ignores whatever follows the end of the stream element; saxes also emits
    // synthetic closes when it recovers from a mismatched end tag, which must not count
    const real = tag.isSelfClosing || text.slice(p.position - tag.name.length - 3, p.position) === `</${tag.name}>`;
    if (--depth === 0 && real) rootClosed = true;
  });
  p.write(text);
  if (valid < input.length) {
    // invalid UTF-8 matters only before the end of the stream
    if (!rootClosed) r.writeError ??= 'invalid UTF-8';
    return r;
  }
  closing = true;
  p.close();
  return r;
}

function agree(o: Ours, r: Reference): boolean {
  switch (o.verdict) {
    case 'stricter':
      return true;
    case 'ok':
      return !r.writeError && !r.closeError;
    case 'incomplete':
      return !r.writeError;
    case 'error':
      return Boolean(r.writeError || r.closeError);
  }
}

// ---- generators: realistic c2s content, then byte-level mutations ----
const names = ['message', 'presence', 'iq', 'body', 'query', 'item', 'x', 'a:x', 'b:y', 'ñandú', 'error', 'c', 'stream:features', 'é1', '_a.b-c'];
const attrNames = ['to', 'from', 'id', 'type', 'xml:lang', 'jid', 'a:k', 'b:k', 'k', 'xmlns', 'xmlns:a', 'xmlns:b', 'ver'];
const textPieces = ['hello', ' ', '\n', 'é', '日本', '𝄞', '&amp;', '&lt;', '&gt;', '&apos;', '&quot;', '&#65;', '&#x1F600;', ']', ']]', '>', '"', "'", 'urn:a', 'chat'];
const text = fc.array(fc.constantFrom(...textPieces), { maxLength: 6 }).map((a) => a.join(''));
// Namespace names come from a small set: saxes trims them before comparing (the Namespaces
// spec compares them exactly), so whitespace around a URI would be a saxes artefact.
const nsName = fc.constantFrom('urn:a', 'urn:b', 'urn:c', 'jabber:client', '', 'urn:x&amp;y');
const attr = fc
  .tuple(fc.constantFrom(...attrNames), text, nsName, fc.constantFrom("'", '"'))
  .map(([n, t, ns, q]) => {
    const v = n.startsWith('xmlns') ? ns : t;
    return ` ${n}=${q}${v.replaceAll(q, q === "'" ? '&apos;' : '&quot;')}${q}`;
  });

const { element } = fc.letrec<{ element: string; node: string }>((tie) => ({
  element: fc
    .tuple(fc.constantFrom(...names), fc.array(attr, { maxLength: 4 }), fc.array(tie('node'), { maxLength: 4 }), fc.boolean())
    .map(([n, attrs, kids, selfClose]) => {
      const uniq = [...new Map(attrs.map((a) => [a.split('=')[0], a])).values()].join('');
      return selfClose && kids.length === 0 ? `<${n}${uniq}/>` : `<${n}${uniq}>${kids.join('')}</${n}>`;
    }),
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, text, tie('element'), fc.constant('<![CDATA[ <x> & ]]>')),
}));

const header = `${STREAM_OPEN.replace("version='1.0' xml:lang", "xmlns:a='urn:a' xmlns:b='urn:b' version='1.0' xml:lang")}`;
const stream = fc
  .array(fc.tuple(element, fc.constantFrom('', ' ', '\n', '\r\n\t')), { maxLength: 6 })
  .map((els) => Buffer.from(`${header}${els.map(([e, ws]) => e + ws).join('')}</stream:stream>`));

const SPECIAL = [...'<>&;\'"/:=!?[]-# x'].map((c) => c.charCodeAt(0)).concat([0x00, 0x01, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf8, 0xff]);
const mutation = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert', 'delete', 'replace', 'dup'),
  byte: fc.constantFrom(...SPECIAL),
  len: fc.integer({ min: 1, max: 12 }),
});
const mutated = fc.tuple(stream, fc.array(mutation, { maxLength: 3 })).map(([input, muts]) => {
  let b = Buffer.from(input);
  for (const m of muts) {
    const at = m.at % (b.length + 1);
    if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.of(m.byte), b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    else if (m.kind === 'replace' && at < b.length) b[at] = m.byte;
    else if (m.kind === 'dup') b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
  }
  return b;
});

const findingsDir = fileURLToPath(new URL('../fixtures/xml/findings/', import.meta.url));
function saveFinding(input: Uint8Array, detail: unknown): void {
  if (!process.env.FUZZ_RUNS) return;
  mkdirSync(findingsDir, { recursive: true });
  const id = createHash('sha1').update(input).digest('hex').slice(0, 12);
  writeFileSync(`${findingsDir}${id}.xml`, input);
  writeFileSync(`${findingsDir}${id}.json`, JSON.stringify(detail, null, 2) + '\n');
}

const stable = (events: EventRecord[]) => events.map((e) => (e.ev === 'error' ? { ...e, message: '' } : e));

describe('differential fuzzing against saxes (well-formedness verdicts)', () => {
  it('agrees on generated streams (nearly all well-formed)', () => {
    fc.assert(
      fc.property(stream, (input) => {
        const o = ours(parseChunks(input, [], LIMITS));
        const r = reference(input);
        if (!agree(o, r)) saveFinding(input, { ours: o, saxes: r });
        expect({ ours: o, saxes: r, agree: agree(o, r) }).toEqual({ ours: o, saxes: r, agree: true });
      }),
      { ...PARAMS, numRuns: RUNS },
    );
  }, TIMEOUT);

  it('agrees on byte-mutated streams', () => {
    fc.assert(
      fc.property(mutated, (input) => {
        const o = ours(parseChunks(input, [], LIMITS));
        const r = reference(input);
        if (!agree(o, r)) saveFinding(input, { ours: o, saxes: r, text: input.toString('latin1') });
        expect({ ours: o, saxes: r, agree: agree(o, r) }).toEqual({ ours: o, saxes: r, agree: true });
      }),
      { ...PARAMS, numRuns: RUNS * 3 },
    );
  }, TIMEOUT);
});

describe('chunked feeding is invisible (fuzzed)', () => {
  it('gives the same events for random chunkings of mutated streams', () => {
    fc.assert(
      fc.property(mutated, fc.array(fc.nat(), { maxLength: 12 }), (input, rawCuts) => {
        const cuts = [...new Set(rawCuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const whole = stable(parseChunks(input, [], LIMITS));
        const split = stable(parseChunks(input, cuts, LIMITS));
        if (JSON.stringify(whole) !== JSON.stringify(split)) saveFinding(input, { cuts, whole, split });
        expect(split).toEqual(whole);
      }),
      { ...PARAMS, numRuns: RUNS * 2 },
    );
  }, TIMEOUT);
});
