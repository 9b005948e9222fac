import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, StanzaKind, StanzaStatus, StanzaType, type ParserHandler, type StanzaView, type StreamParser } from '../../src/core/api.js';
import { Kind, Status, Type } from '../../assembly/layout.js';
import { loadCore } from '../../src/core/parser.js';
import { core, parseChunks, parseWhole, recordStanza, STREAM_OPEN, type EventRecord } from './core-helpers.js';

const enc = (s: string) => Buffer.from(s);

function recorder(events: EventRecord[]): ParserHandler {
  return {
    onStreamOpen: (header) => events.push({ ev: 'open', header }),
    onStanza: (s) => events.push(recordStanza(s)),
    onStreamClose: () => events.push({ ev: 'close' }),
    onError: (e) => events.push({ ev: 'error', code: e.code, condition: e.condition, offset: e.offset, message: e.message }),
  };
}

/** A parser recording its events, with `after` called after each stanza was recorded. */
function recording(ev: EventRecord[], after: (s: StanzaView, p: StreamParser) => void): StreamParser {
  const rec = recorder(ev);
  const p: StreamParser = core().createParser({
    ...rec,
    onStanza(s) {
      rec.onStanza(s);
      after(s, p);
    },
  });
  return p;
}

/** Events as stanza names / event kinds. */
const names = (ev: EventRecord[]) => ev.map((e) => (e.ev === 'stanza' ? e.name : e.ev));

describe('boundary layout', () => {
  it('mirrors the StanzaKind, StanzaType and StanzaStatus numbers of the api contract', () => {
    expect([Kind.Message, Kind.Presence, Kind.Iq, Kind.Other]).toEqual([
      StanzaKind.Message, StanzaKind.Presence, StanzaKind.Iq, StanzaKind.Other,
    ]);
    for (const name of Object.keys(StanzaType).filter((k) => isNaN(Number(k)))) {
      expect((Type as unknown as Record<string, number>)[name]).toBe((StanzaType as unknown as Record<string, number>)[name]);
    }
    for (const name of Object.keys(StanzaStatus).filter((k) => isNaN(Number(k)))) {
      expect((Status as unknown as Record<string, number>)[name]).toBe((StanzaStatus as unknown as Record<string, number>)[name]);
    }
  });

  it('gives the same events from the release and the debug build', () => {
    const input = `${STREAM_OPEN}<message to='a'><body>é &amp; 𝄞</body></message><iq type='get' id='1'/><bad&/>`;
    const run = (debug: boolean) => {
      const ev: EventRecord[] = [];
      const p = loadCore({ debug }).createParser(recorder(ev));
      p.feed(enc(input));
      p.free();
      return ev;
    };
    expect(run(false)).toEqual(run(true));
  });
});

describe('limits → policy-violation (RFC 6120 §4.9.3.14)', () => {
  const big = (n: number) => `<message><body>${'x'.repeat(n)}</body></message>`;
  const overhead = big(0).length;

  it('accepts a stanza of exactly maxStanzaBytes and refuses one byte more, whole or in pieces', () => {
    const limits = { maxStanzaBytes: 1000 };
    const ok = enc(`${STREAM_OPEN}${big(1000 - overhead)}`);
    const tooBig = enc(`${STREAM_OPEN}${big(1001 - overhead)}`);
    for (const cuts of [[], [200, 700, 1100]]) {
      expect(parseChunks(ok, cuts, limits).at(-1)!.ev).toBe('stanza');
      const last = parseChunks(tooBig, cuts, limits).at(-1)!;
      expect(last).toMatchObject({ ev: 'error', code: 70, condition: 'policy-violation' });
    }
  });

  it('refuses a partial stanza as soon as what is retained exceeds the limit', () => {
    const ev: EventRecord[] = [];
    const p = core().createParser(recorder(ev), { maxStanzaBytes: 4096 });
    p.feed(enc(STREAM_OPEN + '<message><body>'));
    for (let i = 0; i < 10 && ev.at(-1)?.ev !== 'error'; i++) p.feed(enc('y'.repeat(1000)));
    expect(ev.at(-1)).toMatchObject({ ev: 'error', code: 70 });
    expect(ev.filter((e) => e.ev === 'stanza')).toHaveLength(0);
    p.free();
  });

  it('applies setLimits() from the next element on (smaller pre-auth limit, then the normal one)', () => {
    const ev: EventRecord[] = [];
    const p = core().createParser(recorder(ev), { maxStanzaBytes: 200 });
    p.feed(enc(STREAM_OPEN + big(100)));
    p.setLimits({ maxStanzaBytes: DEFAULT_LIMITS.maxStanzaBytes });
    p.feed(enc(big(5000)));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza']);
    p.setLimits({ maxStanzaBytes: 100 });
    p.feed(enc(big(100)));
    expect(ev.at(-1)).toMatchObject({ ev: 'error', code: 70 });
    p.free();
  });

  it('limits depth and attribute count as configured', () => {
    const nest = (d: number) => '<a>'.repeat(d) + '</a>'.repeat(d);
    expect(parseWhole(`${STREAM_OPEN}<message>${nest(3)}</message>`, { maxDepth: 4 }).at(-1)!.ev).toBe('stanza');
    expect(parseWhole(`${STREAM_OPEN}<message>${nest(4)}</message>`, { maxDepth: 4 }).at(-1)).toMatchObject({ code: 71 });
    // the header of STREAM_OPEN carries 5 attributes, the limit applies to it as well
    const attrs = (n: number) => Array.from({ length: n }, (_, i) => ` a${i}='${i}'`).join('');
    expect(parseWhole(`${STREAM_OPEN}<message${attrs(5)}/>`, { maxAttributes: 5 }).at(-1)!.ev).toBe('stanza');
    expect(parseWhole(`${STREAM_OPEN}<message${attrs(6)}/>`, { maxAttributes: 5 }).at(-1)).toMatchObject({ code: 72 });
    expect(parseWhole(`${STREAM_OPEN}`, { maxAttributes: 4 }).at(-1)).toMatchObject({ code: 72 });
  });
});

describe('lifecycle', () => {
  it('reset() starts a new stream (RFC 6120 §6.4.6) and discards the rest of the chunk', () => {
    const ev: EventRecord[] = [];
    const p = recording(ev, (s, self) => s.name() === 'auth' && self.reset());
    p.feed(enc(`${STREAM_OPEN}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AA==</auth><message>injected</message>`));
    p.feed(enc(`${STREAM_OPEN}<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`));
    expect(names(ev)).toEqual(['open', 'auth', 'open', 'iq']);
    p.free();
  });

  it('refuses input after a fatal error until reset()', () => {
    const ev: EventRecord[] = [];
    const p = core().createParser(recorder(ev));
    p.feed(enc(`${STREAM_OPEN}<a></b>`));
    p.feed(enc(`<presence/>`));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'error']);
    p.reset();
    p.feed(enc(`${STREAM_OPEN}<presence/>`));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'error', 'open', 'stanza']);
    p.free();
  });

  it('ignores input after the stream is closed', () => {
    const ev = parseWhole(`${STREAM_OPEN}<presence/></stream:stream><presence/>garbage`);
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'close']);
  });

  it('keeps many connections side by side, fed interleaved in small pieces', () => {
    const inputs = Array.from({ length: 12 }, (_, i) =>
      enc(`${STREAM_OPEN}<message to='u${i}@x' id='${'i'.repeat(i)}'><body>${'é'.repeat(i * 7)}</body></message><presence/>`),
    );
    const expected = inputs.map((b) => parseWhole(b));
    const events2 = inputs.map(() => [] as EventRecord[]);
    const parsers2 = inputs.map((_, i) => core().createParser(recorder(events2[i])));
    const cuts = inputs.map((b, i) => Array.from({ length: Math.ceil(b.length / (3 + i)) }, (_, k) => k * (3 + i)));
    const maxPieces = Math.max(...cuts.map((c) => c.length));
    for (let k = 0; k < maxPieces; k++) {
      inputs.forEach((b, i) => {
        const a = cuts[i][k];
        if (a !== undefined) parsers2[i].feed(b.subarray(a, a + 3 + i));
      });
    }
    expect(events2).toEqual(expected);
    parsers2.forEach((p) => p.free());
  });

  it('keeps unfinished elements, namespace scopes and attributes apart when two trickling senders interleave', () => {
    const deep = (tag: string) =>
      enc(
        `${STREAM_OPEN}<iq type='set' id='${tag}'>` +
          Array.from({ length: 20 }, (_, d) => `<${tag}${d} xmlns:p${d}='urn:${tag}:${d}' p${d}:a='${d}' b='${'x'.repeat(d)}'>`).join('') +
          `<p7:leaf/>` +
          Array.from({ length: 20 }, (_, d) => `</${tag}${19 - d}>`).join('') +
          `</iq><message to='${tag}@x'/>`,
      );
    const [a, b] = [deep('alpha'), deep('beta')];
    const [expA, expB] = [parseWhole(a), parseWhole(b)];
    expect(expA.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza']);
    const [evA, evB]: EventRecord[][] = [[], []];
    const [pa, pb] = [core().createParser(recorder(evA)), core().createParser(recorder(evB))];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i < a.length) pa.feed(a.subarray(i, i + 1));
      if (i < b.length) pb.feed(b.subarray(i, i + 1));
    }
    expect([evA, evB]).toEqual([expA, expB]);
    pa.free();
    pb.free();
  });

  it('lets a handler feed another connection mid-chunk (the shared input window is handed over)', () => {
    const evA: EventRecord[] = [];
    const evB: EventRecord[] = [];
    const b = core().createParser(recorder(evB));
    b.feed(enc(STREAM_OPEN));
    const a = recording(evA, () => b.feed(enc(`<message><body>from b</body></message>`)));
    a.feed(enc(`${STREAM_OPEN}<presence/><message><body>a2</body></message><iq type='result' id='3'/>`));
    expect(names(evA)).toEqual(['open', 'presence', 'message', 'iq']);
    expect(evB.filter((e) => e.ev === 'stanza')).toHaveLength(3);
    a.free();
    b.free();
  });

  it('queues input fed to a parser from inside its own handler', () => {
    const ev: EventRecord[] = [];
    const p = recording(ev, (s, self) => s.name() === 'presence' && self.feed(enc('<message/>')));
    p.feed(enc(`${STREAM_OPEN}<presence/><iq type='result' id='1'/>`));
    expect(names(ev)).toEqual(['open', 'presence', 'iq', 'message']);
    p.free();
  });

  it('free() stops a parser inside its handler and makes further feeds no-ops', () => {
    const ev: EventRecord[] = [];
    const p = recording(ev, (_s, self) => self.free());
    p.feed(enc(`${STREAM_OPEN}<presence/><presence/>`));
    p.feed(enc('<presence/>'));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza']);
  });
});

describe('memory', () => {
  it('keeps an idle session after its stanzas small (state + stream bindings, no retained input)', () => {
    const c = loadCore();
    const before = c.stats().heapBytes;
    const parsers = Array.from({ length: 1000 }, () => c.createParser(recorder([])));
    for (const p of parsers) {
      p.feed(enc(`${STREAM_OPEN}<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`));
      p.feed(enc(`<presence/><message to='a@b'><body>${'x'.repeat(3000)}</body></message> `));
    }
    const perSession = (c.stats().heapBytes - before) / parsers.length;
    expect(perSession).toBeLessThanOrEqual(512);
    parsers.forEach((p) => p.free());
    // freed states and blocks are reused
    const again = Array.from({ length: 1000 }, () => c.createParser(recorder([])));
    for (const p of again) p.feed(enc(STREAM_OPEN));
    expect(c.stats().heapBytes - before).toBeLessThanOrEqual(parsers.length * 512 + 65536);
    again.forEach((p) => p.free());
  });

  it('retains a partial stanza fed one byte at a time in a block proportional to its size', () => {
    const c = loadCore();
    const ev: EventRecord[] = [];
    const p = c.createParser(recorder(ev));
    p.feed(enc(STREAM_OPEN));
    const stanza = enc(`<message><body>${'z'.repeat(100_000)}</body></message>`);
    const before = c.stats().heapBytes;
    for (let i = 0; i < stanza.length; i++) p.feed(stanza.subarray(i, i + 1));
    expect(ev.at(-1)).toMatchObject({ ev: 'stanza', length: stanza.length });
    // doubling growth: at most ~4× the stanza in blocks (old blocks are reused by later growth)
    expect(c.stats().heapBytes - before).toBeLessThan(4 * stanza.length + 65536);
    p.free();
  });
});
