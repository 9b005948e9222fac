import { describe, expect, it } from 'vitest';
import { StanzaKind, StanzaStatus, StanzaType } from '../../src/core/api.js';
import { parseBytewise, parseChunks, parseWhole, STREAM_OPEN } from './core-helpers.js';

const stream = (body: string) => Buffer.from(`${STREAM_OPEN}${body}</stream:stream>`);

describe('stream framing (RFC 6120 §4)', () => {
  it('reports the header, each top-level element and the closing tag', () => {
    const ev = parseWhole(stream("\n<message to='a@b'><body>hi</body></message>\n<presence/> <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"));
    expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza', 'stanza', 'close']);
    const open = ev[0] as Extract<(typeof ev)[0], { ev: 'open' }>;
    expect(open.header).toEqual({
      name: 'stream:stream',
      namespace: 'http://etherx.jabber.org/streams',
      defaultNamespace: 'jabber:client',
      to: 'example.com',
      from: null,
      id: null,
      version: '1.0',
      lang: 'en',
      hadXmlDeclaration: true,
      declaredPrefixes: ['stream'],
    });
  });

  it('fills every descriptor field of a message', () => {
    const ev = parseWhole(stream(`<message to='juliet@example.com/balcony' from="romeo@example.net/orchard" type='chat' id='m&amp;1'><body>Wherefore &lt;3 é</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`));
    expect(ev[1]).toEqual({
      ev: 'stanza',
      raw: `<message to='juliet@example.com/balcony' from="romeo@example.net/orchard" type='chat' id='m&amp;1'><body>Wherefore &lt;3 é</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
      kind: StanzaKind.Message,
      type: StanzaType.Chat,
      status: StanzaStatus.Ok,
      name: 'message',
      namespace: 'jabber:client',
      to: 'juliet@example.com/balcony',
      from: 'romeo@example.net/orchard',
      id: 'm&1',
      typeString: 'chat',
      childName: 'body',
      childNamespace: 'jabber:client',
      childCount: 2,
      length: Buffer.byteLength(`<message to='juliet@example.com/balcony' from="romeo@example.net/orchard" type='chat' id='m&amp;1'><body>Wherefore &lt;3 é</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`),
      nameEnd: 8,
      fromAttr: ` from="romeo@example.net/orchard"`,
    });
  });

  it('gives identical events whole, byte by byte and split at every position', () => {
    const input = stream(`<message to='a@b/c' type='chat'><body>ünïcödé 𝄞 &#x1D11E; &amp;</body></message><iq type='result' id='x'/><sm:enable xmlns:sm='urn:xmpp:sm:3'/>`);
    const whole = parseWhole(input);
    expect(whole.map((e) => e.ev)).toEqual(['open', 'stanza', 'stanza', 'stanza', 'close']);
    expect(parseBytewise(input)).toEqual(whole);
    for (let i = 1; i < input.length; i++) expect(parseChunks(input, [i])).toEqual(whole);
  });
});

describe('fatal errors: condition, specific text and stream offset', () => {
  const cases: [string, number, string, string][] = [
    ["<message to='a' to='b'/>", 20, 'not-well-formed', "duplicate attribute 'to'"],
    ['<message><body>&nbsp;</body></message>', 43, 'restricted-xml', "entity reference '&nbsp;' is not one of the five predefined (RFC 6120 §11.1)"],
    ['<message><!-- x --></message>', 40, 'restricted-xml', 'XML comments are not allowed (RFC 6120 §11.1)'],
    ['<foo:bar/>', 50, 'bad-namespace-prefix', "namespace prefix of 'foo:bar' is not bound"],
    ['<message><body></bodY></message>', 14, 'not-well-formed', "end tag 'bodY' does not match the open element"],
  ];
  for (const [stanza, code, condition, message] of cases) {
    it(`${stanza} → ${condition}: ${message}`, () => {
      const input = `${STREAM_OPEN}${stanza}`;
      const err = parseWhole(input).at(-1)!;
      expect(err).toMatchObject({ ev: 'error', code, condition, message });
      if (err.ev !== 'error') return;
      // the offset points into the offending stanza
      expect(err.offset).toBeGreaterThanOrEqual(STREAM_OPEN.length);
      expect(err.offset).toBeLessThan(Buffer.byteLength(input));
    });
  }

  // The fast start tag keeps no attribute table, only a set of (first byte, last byte, length)
  // hashes: names that share one (ver/var, node/name) must pass, a true repeat must not, also
  // when a prefixed attribute sends the tag to the general routine.
  it('tells apart attribute names with the same first byte, last byte and length, and finds a true duplicate among them (XML 1.0 §3.1)', () => {
    const ok = parseWhole(stream("<presence to='a@b'><c xmlns='http://jabber.org/protocol/caps' ver='1' var='2' node='n' name='m'/></presence><message xml:lang='en' ver='1' var='2' to='c@d'/>"));
    expect(ok.map((e) => (e.ev === 'stanza' ? e.to : e.ev))).toEqual(['open', 'a@b', 'c@d', 'close']);
    for (const [tag, name] of [
      ["<presence ver='1' var='2' ver='3'/>", 'ver'],
      ["<presence><c node='1' name='2' node='3'/></presence>", 'node'],
      ["<message xml:lang='en' id='1' to='a' id='2'/>", 'id'],
    ]) {
      const input = `${STREAM_OPEN}${tag}`;
      expect(parseWhole(input).at(-1)).toMatchObject({ ev: 'error', code: 20, condition: 'not-well-formed', message: `duplicate attribute '${name}'` });
      expect(parseBytewise(Buffer.from(input)).at(-1)).toMatchObject({ ev: 'error', code: 20 });
    }
  });

  it('counts the offset across chunks in stream bytes', () => {
    const input = Buffer.from(`${STREAM_OPEN}<presence/><message to='a' to='b'/>`);
    const at = input.indexOf("to='b'");
    for (const cuts of [[], [10, 200], Array.from({ length: input.length }, (_, i) => i)]) {
      expect(parseChunks(input, cuts).at(-1)).toMatchObject({ ev: 'error', offset: at });
    }
  });

  it('reports an unsupported encoding before the header (RFC 6120 §11.6)', () => {
    const ev = parseWhole(`<?xml version='1.0' encoding='ISO-8859-1'?>${STREAM_OPEN.slice(21)}`);
    expect(ev).toMatchObject([{ ev: 'error', condition: 'unsupported-encoding', offset: 0 }]);
  });
});

describe('stream header', () => {
  it('accepts a header without XML declaration and reports hadXmlDeclaration false', () => {
    const ev = parseWhole("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='x' id='&amp;1'>");
    expect(ev).toMatchObject([{ ev: 'open', header: { hadXmlDeclaration: false, to: 'x', id: '&1', version: null, lang: null } }]);
  });

  it('keeps the header bindings for every stanza, across a reset only for the new header', () => {
    const ev = parseWhole("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server' xmlns:db='jabber:server:dialback'><db:result/><message/>");
    expect(ev.slice(1).map((e) => (e.ev === 'stanza' ? e.namespace : e.ev))).toEqual(['jabber:server:dialback', 'jabber:server']);
  });

  it('refuses a header in another namespace (RFC 6120 §4.9.3.10)', () => {
    expect(parseWhole("<stream:stream xmlns:stream='urn:other' xmlns='jabber:client'>").at(-1)).toMatchObject({ code: 52, condition: 'invalid-namespace' });
  });
});
