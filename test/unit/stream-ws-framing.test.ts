import { describe, expect, it } from 'vitest';
import { FRAMING_NS, frameOutbound, frameOutboundBytes, unframeInbound } from '../../src/transport/websocket.js';

describe('RFC 7395 framing translation', () => {
  it('turns <open/> into a stream header and <close/> into its end tag (§3.4, §3.6)', () => {
    expect(unframeInbound(`<open xmlns='${FRAMING_NS}' to='localhost' version='1.0' xml:lang='de'/>`)).toBe(
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='de'>",
    );
    expect(unframeInbound(` <close xmlns="${FRAMING_NS}"/> `)).toBe('</stream:stream>');
  });

  it('escapes attribute values it copies into the header', () => {
    expect(unframeInbound(`<open xmlns='${FRAMING_NS}' to="a'b" version='1.0'/>`)).toContain("to='a&apos;b'");
  });

  it('passes stanzas, and open/close in other namespaces, through unchanged', () => {
    const msg = "<message xmlns='jabber:client' to='a@b'><body>x</body></message>";
    expect(unframeInbound(msg)).toBe(msg);
    expect(unframeInbound("<open xmlns='urn:example'/>")).toBe("<open xmlns='urn:example'/>");
    expect(unframeInbound('<open broken')).toBe('<open broken');
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
