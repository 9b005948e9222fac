import { describe, expect, it } from 'vitest';
import { setImmediate as settle } from 'node:timers/promises';
import { loadCore } from '../../src/core/parser.js';
import { C2SStream, StreamPhase } from '../../src/stream/c2s.js';
import { FRAMING_NS, classifyInbound, frameOutbound, frameOutboundBytes } from '../../src/transport/websocket.js';
import { AUTH_OK, BIND, RecordingTransport, STREAM_OPTIONS, plainSasl, recordingRouter, streamErrorOf } from './stream-helpers.js';

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

  it('passes stanzas to the stream as elements, and what holds no element to the core as it is', () => {
    for (const xml of [
      "<message xmlns='jabber:client' to='a@b'><body>x</body></message>",
      "<iq type='get' id='a>b' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>\n",
      '<presence/><presence/>',
      '</message>',
      "<openx xmlns='urn:x'/>",
    ]) {
      expect(classify(xml), xml).toEqual({ kind: 'element' });
    }
    // No element: the core skips whitespace, and judges text and XML that XMPP forbids.
    for (const xml of [' \r\n', 'just text', '<!-- a comment -->', "<?xml version='1.0'?>"]) expect(classify(xml), xml).toEqual({ kind: 'feed' });
  });

  it('refuses an <open/> or <close/> with more, or less, than itself in the message with <not-well-formed/> (§3.3.3)', () => {
    for (const xml of [`<open xmlns='${FRAMING_NS}' to='localhost' version='1.0'/><presence/>`, `<close xmlns='${FRAMING_NS}'>`, `<open xmlns='${FRAMING_NS}' to='x`]) {
      const result = classify(xml);
      expect(result.kind === 'error' && result.error.condition, xml).toBe('not-well-formed');
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

describe('one element per WebSocket message, checked by the stream that parses it (RFC 7395 §3.3.3)', () => {
  const classify = (text: string) => classifyInbound(Buffer.from(text));
  const opened = classify(`<open xmlns='${FRAMING_NS}' to='localhost' version='1.0'/>`);
  const OPEN = opened.kind === 'open' ? opened.header : '';

  function wsStream() {
    const transport = new RecordingTransport({ secure: true });
    const router = recordingRouter();
    const stream = new C2SStream(transport, STREAM_OPTIONS, { core: loadCore(), router, sasl: plainSasl });
    const send = async (kind: 'element' | 'header', text: string) => {
      if (kind === 'header') stream.feedHeader(Buffer.from(text));
      else stream.feedElement(Buffer.from(text));
      await settle();
      stream.flush();
      return transport.take();
    };
    return { transport, router, stream, send };
  }

  async function bound() {
    const s = wsStream();
    await s.send('header', OPEN);
    expect(await s.send('element', AUTH_OK)).toContain('<success');
    expect(await s.send('header', OPEN)).toContain('<stream:features>');
    expect(await s.send('element', BIND)).toContain('<jid>alice@localhost/phone</jid>');
    return s;
  }

  it('acts on a message of one element, whitespace around it included', async () => {
    const s = await bound();
    await s.send('element', "  <message to='bob@localhost'><body>hi</body></message>\n");
    expect(s.router.log.routed).toHaveLength(1);
    expect(s.stream.phase).toBe(StreamPhase.Bound);
  });

  it('refuses a second element (before acting on the first), text after one, or an unfinished one: <not-well-formed/>', async () => {
    for (const message of [
      "<message to='bob@localhost'><body>1</body></message><message to='bob@localhost'><body>2</body></message>",
      "<message to='bob@localhost'><body>1</body></message> and text",
      "<message to='bob@localhost'><body>1</body>",
    ]) {
      const s = await bound();
      expect(streamErrorOf(await s.send('element', message)), message).toBe('not-well-formed');
      expect(s.router.log.routed).toHaveLength(0);
      expect(s.stream.phase).toBe(StreamPhase.Closed);
    }
  });

  it('answers a header where no stream may start with <bad-format/> (§3.4, RFC 6120 §4.3.3)', async () => {
    const s = wsStream();
    await s.send('header', OPEN);
    expect(streamErrorOf(await s.send('header', OPEN))).toBe('bad-format');
  });
});
