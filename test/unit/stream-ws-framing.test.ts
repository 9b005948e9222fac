import { describe, expect, it } from 'vitest';
import { FRAMING_NS, classifyInbound, frameOutbound, frameOutboundBytes } from '../../src/transport/websocket.js';

describe('RFC 7395 framing translation', () => {
  const classify = (text: string) => classifyInbound(Buffer.from(text));

  it('turns <open/> into a stream header and <close/> into its end tag (§3.3.2, §3.4, §3.6)', () => {
    expect(classify(`<open xmlns='${FRAMING_NS}' to='localhost' version='1.0' xml:lang='de'/>`)).toEqual({
      kind: 'open',
      header: "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='de'>",
    });
    expect(classify(` <close xmlns="${FRAMING_NS}"/> `)).toEqual({ kind: 'close' });
    // A prefixed header is the same element (XML namespaces, not spelling, decide).
    expect(classify(`<f:close xmlns:f='${FRAMING_NS}'/>`)).toEqual({ kind: 'close' });
  });

  it('escapes attribute values it copies into the header', () => {
    const open = classify(`<open xmlns='${FRAMING_NS}' to="a'b" version='1.0'/>`);
    expect(open.kind === 'open' && open.header).toContain("to='a&apos;b'");
  });

  it('feeds one complete element per message as it is, whatever it holds (§3.3.3)', () => {
    for (const xml of [
      "<message xmlns='jabber:client' to='a@b'><body>x</body></message>",
      "<message to='a@b'><body><![CDATA[</message><x>]]></body></message>",
      "<iq type='get' id='a>b' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>\n",
      '<presence/>',
      // No element: the core skips whitespace, and judges text and XML that XMPP forbids.
      ' \r\n',
      'just text',
      "<message><!-- a comment --></message>",
      "<?xml version='1.0'?>",
    ]) {
      expect(classify(xml), xml).toEqual({ kind: 'feed' });
    }
  });

  it('refuses two elements in one message, or a part of one, with <not-well-formed/> (§3.3.3)', () => {
    for (const xml of [
      "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth><message to='b@c'/>",
      '<presence/><presence/>',
      "<message to='b@c'><body>x</body>",
      "<message to='b@c'><body>x</body></message> trailing",
      "<message to='a@b' id='x>",
      '</message>',
      `<open xmlns='${FRAMING_NS}' to='localhost' version='1.0'/><presence/>`,
    ]) {
      const result = classify(xml);
      expect(result.kind, xml).toBe('error');
      expect(result.kind === 'error' && result.error.condition).toBe('not-well-formed');
    }
  });

  it('refuses RFC 6120 stream headers and open/close outside the framing namespace with <invalid-namespace/> (§3.3.2)', () => {
    for (const xml of [
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
      '</stream:stream>',
      "<open xmlns='jabber:client' to='localhost' version='1.0'/>",
      "<close xmlns='urn:example'/>",
      "<open to='localhost' version='1.0'/>",
    ]) {
      const result = classify(xml);
      expect(result.kind, xml).toBe('error');
      expect(result.kind === 'error' && result.error.condition).toBe('invalid-namespace');
    }
  });

  it('turns our stream header into <open/> and our end tag into <close/>', () => {
    const header =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0' xml:lang='en'>";
    expect(frameOutbound(header)).toBe(`<open xmlns='${FRAMING_NS}' id='abc' from='localhost' version='1.0' xml:lang='en'/>`);
    expect(frameOutbound('</stream:stream>')).toBe(`<close xmlns='${FRAMING_NS}'/>`);
  });

  it('declares the stream namespace on features and errors, and jabber:client on stanzas (§3.3.3)', () => {
    expect(frameOutbound('<stream:features><bind/></stream:features>')).toBe(
      "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind/></stream:features>",
    );
    expect(frameOutbound(Buffer.from("<message from='a@b/c'><body>é</body></message>"))).toBe(
      "<message xmlns='jabber:client' from='a@b/c'><body>é</body></message>",
    );
    expect(frameOutbound('<presence/>')).toBe("<presence xmlns='jabber:client'/>");
    expect(frameOutbound("<iq xmlns='jabber:client' type='result' id='1'/>")).toBe("<iq xmlns='jabber:client' type='result' id='1'/>");
    expect(frameOutbound("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")).toBe("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  });

  it('frames spliced stanza bytes exactly as the string path does, without decoding them', () => {
    const cases = [
      "<message from='a@b/c' to='d@e'><body>é 😀</body></message>",
      '<presence/>',
      "<presence from='a@b/c'><show>away</show></presence>",
      "<iq xmlns='jabber:client' type='result' id='1'/>",
      "<iq type='get' id='2' xmlns = 'jabber:client'><query xmlns='jabber:iq:roster'/></iq>",
      "<message xmlns:x='urn:x' from='a@b/c'><x:y/></message>",
      "<message from='a@b/c'><x xmlns='urn:x'/></message>",
      "<messages from='a@b/c'/>",
      "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
      '</stream:stream>',
    ];
    for (const xml of cases) {
      const framed = frameOutboundBytes(Buffer.from(xml));
      expect(typeof framed === 'string' ? framed : Buffer.from(framed).toString('utf8')).toBe(frameOutbound(xml));
    }
  });
});
