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
