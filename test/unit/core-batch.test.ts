/**
 * The core hands several stanzas of a chunk to JS per call (a descriptor ring, docs/architecture.md
 * "WASM boundary"). A handler still sees them one at a time, and whatever it does between two of
 * them — feed another connection, change the limits, throw, ask for the rest — has the effect it
 * had when the core returned after each stanza.
 */
import { describe, expect, it } from 'vitest';
import type { ParserHandler, StanzaView, StreamParser } from '../../src/core/api.js';
import { core, parseWhole, recordStanza, STREAM_OPEN, type EventRecord } from './core-helpers.js';

const enc = (s: string) => Buffer.from(s);

function recorder(events: EventRecord[], after?: (s: StanzaView, self: StreamParser) => void): StreamParser {
  let self: StreamParser;
  const handler: ParserHandler = {
    onStreamOpen: (header) => events.push({ ev: 'open', header }),
    onStanza: (s) => {
      events.push(recordStanza(s));
      after?.(s, self);
    },
    onStreamClose: () => events.push({ ev: 'close' }),
    onError: (e) => events.push({ ev: 'error', code: e.code, condition: e.condition, offset: e.offset, message: e.message }),
  };
  self = core().createParser(handler);
  return self;
}

const ids = (ev: EventRecord[]) => ev.flatMap((e) => (e.ev === 'stanza' ? [e.id] : []));
const msg = (i: number) => `<message to='u${i}@example.com/r' type='chat' id='m${i}'><body>text ${i}</body></message>`;

describe('several stanzas per core call', () => {
  it('delivers more stanzas than the ring holds from one chunk, in order and each with its own fields', () => {
    const n = 300;
    const ev = parseWhole(STREAM_OPEN + Array.from({ length: n }, (_, i) => msg(i)).join(''));
    const stanzas = ev.filter((e) => e.ev === 'stanza');
    expect(stanzas).toHaveLength(n);
    stanzas.forEach((s, i) => expect(s).toMatchObject({ id: `m${i}`, to: `u${i}@example.com/r`, raw: msg(i), childName: 'body' }));
  });

  it('reports the stanzas before a fatal error first, then the error at its offset', () => {
    const input = `${STREAM_OPEN}${msg(1)}${msg(2)}<a></b>${msg(3)}`;
    const ev = parseWhole(input);
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza', 'error']);
    expect(ev.at(-1)).toMatchObject({ code: 14, offset: input.indexOf('</b>') + 2 });
  });

  it('reports the stanzas before the closing tag first, then the close', () => {
    const ev = parseWhole(`${STREAM_OPEN}${msg(1)}${msg(2)}</stream:stream>${msg(3)}`);
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza', 'close']);
    expect(ids(ev)).toEqual(['m1', 'm2']);
  });

  it('re-reads the rest of the chunk when a handler feeds another connection between two stanzas', () => {
    const evA: EventRecord[] = [];
    const evB: EventRecord[] = [];
    const b = recorder(evB);
    b.feed(enc(STREAM_OPEN));
    // b's stanzas reuse the ring and the shared input window while a's are still unread
    const a = recorder(evA, (s) => b.feed(enc(`<iq type='get' id='b-${s.id()}'><ping xmlns='urn:xmpp:ping'/></iq>`)));
    a.feed(enc(STREAM_OPEN + [1, 2, 3, 4, 5].map(msg).join('') + `<message to='x@y/partial' id='m6'>`));
    a.feed(enc(`<body>end</body></message>`));
    expect(ids(evA)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    evA.slice(1, 6).forEach((s, i) => expect(s).toMatchObject({ raw: msg(i + 1), to: `u${i + 1}@example.com/r` }));
    expect(ids(evB)).toEqual(['b-m1', 'b-m2', 'b-m3', 'b-m4', 'b-m5', 'b-m6']);
    a.free();
    b.free();
  });

  it('applies a limit set by a handler to the next stanza of the same chunk', () => {
    const ev: EventRecord[] = [];
    const p = recorder(ev, (s, self) => s.id() === 'm1' && self.setLimits({ maxStanzaBytes: 40 }));
    p.feed(enc(STREAM_OPEN + msg(1) + msg(2)));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'error']);
    expect(ev.at(-1)).toMatchObject({ code: 70, condition: 'policy-violation' });
    p.free();
    // and a raised limit lets through what the old one would have refused
    const ev2: EventRecord[] = [];
    const q = recorder(ev2, (s, self) => s.id() === 'm1' && self.setLimits({ maxStanzaBytes: 1000 }));
    q.feed(enc(STREAM_OPEN));
    q.setLimits({ maxStanzaBytes: msg(1).length });
    q.feed(enc(msg(1) + msg(12345)));
    expect(ids(ev2)).toEqual(['m1', 'm12345']);
    q.free();
  });

  it('keeps the stanzas after one whose handler threw for the next feed', () => {
    const ev: EventRecord[] = [];
    const p = recorder(ev, (s) => {
      if (s.id() === 'm2') throw new Error('handler failed');
    });
    expect(() => p.feed(enc(STREAM_OPEN + msg(1) + msg(2) + msg(3) + msg(4)))).toThrow('handler failed');
    expect(ids(ev)).toEqual(['m1', 'm2']);
    p.feed(enc(msg(5)));
    expect(ids(ev)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    p.free();
  });

  it('gives rest() the bytes after the current stanza, not after the batch', () => {
    const rests: string[] = [];
    const p = recorder([], (s, self) => rests.push(Buffer.from(self.rest!()).toString()));
    p.feed(enc(STREAM_OPEN + msg(1) + msg(2) + '<presence/>'));
    expect(rests).toEqual([msg(2) + '<presence/>', '<presence/>', '']);
    p.free();
  });

  it('stops at a reset() between two stanzas of one chunk', () => {
    const ev: EventRecord[] = [];
    const p = recorder(ev, (s, self) => s.id() === 'm2' && self.reset());
    p.feed(enc(STREAM_OPEN + msg(1) + msg(2) + msg(3) + '</stream:stream>'));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza']);
    p.feed(enc(STREAM_OPEN + msg(4)));
    expect(ids(ev)).toEqual(['m1', 'm2', 'm4']);
    p.free();
  });
});
