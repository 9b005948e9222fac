import { describe, expect, it } from 'vitest';
import { childText, elementName, rootAttr, StanzaFramer } from '../../bench/load/framing.js';

function collect() {
  const out: string[] = [];
  const framer = new StanzaFramer({
    streamOpen: (t) => out.push(`OPEN ${t}`),
    element: (x) => out.push(x),
    streamClose: () => out.push('CLOSE'),
  });
  return { out, framer };
}

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>`;
const STANZAS = [
  `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
  `<message from='a@x/r' to="b@x" type='chat'><body>a &gt; b, "quoted" &amp; ü 😀</body><x><x><x/></x></x></message>`,
  `<presence from='c@x/r'/>`,
  `<iq type='result' id='q"1>' from='x'><query xmlns='jabber:iq:roster'><item jid='d@x' name='a>b'/></query></iq>`,
  `<message><body><![CDATA[<not-a-tag> </body> ]]></body></message>`,
];
const STREAM = HEADER + STANZAS.join('\n ') + '</stream:stream>';

describe('bench stanza framer', () => {
  it('frames the stream header, each first-level element verbatim, and the stream end', () => {
    const { out, framer } = collect();
    framer.push(STREAM);
    expect(out[0]).toMatch(/^OPEN <stream:stream /);
    expect(out.slice(1, -1)).toEqual(STANZAS);
    expect(out[out.length - 1]).toBe('CLOSE');
  });

  it('frames identically whatever the chunk boundaries (every split point, including inside a surrogate pair)', () => {
    const { out: whole, framer: f0 } = collect();
    f0.push(STREAM);
    for (let i = 1; i < STREAM.length; i++) {
      const { out, framer } = collect();
      framer.push(STREAM.slice(0, i));
      framer.push(STREAM.slice(i));
      expect(out, `split at ${i}`).toEqual(whole);
    }
  });

  it('frames a stream fed one character at a time', () => {
    const { out, framer } = collect();
    for (const ch of STREAM) framer.push(ch);
    expect(out.slice(1, -1)).toEqual(STANZAS);
  });

  it('keeps only the unframed tail buffered', () => {
    const { framer } = collect();
    framer.push(HEADER);
    for (let i = 0; i < 1000; i++) framer.push(STANZAS[1]);
    expect(framer.pending).toBe(0);
    framer.push('<message><body>par');
    expect(framer.pending).toBe('<message><body>par'.length);
  });

  it('starts over after reset, as on a stream restart', () => {
    const { out, framer } = collect();
    framer.push(HEADER + '<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>');
    framer.reset();
    framer.push(HEADER + STANZAS[2]);
    expect(out.filter((x) => x.startsWith('OPEN')).length).toBe(2);
    expect(out[out.length - 1]).toBe(STANZAS[2]);
  });

  it('lets a callback reset it mid-chunk; the rest of the chunk starts the new stream', () => {
    const out: string[] = [];
    const framer: StanzaFramer = new StanzaFramer({
      streamOpen: () => out.push('OPEN'),
      element: (x) => {
        out.push(x);
        if (x.startsWith('<success')) framer.reset();
      },
      streamClose: () => out.push('CLOSE'),
    });
    // The new stream's partial element must carry over into the next chunk.
    framer.push(HEADER + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + HEADER + STANZAS[2] + '<message><bo');
    framer.push("dy>x</body></message>");
    expect(out).toEqual(['OPEN', "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", 'OPEN', STANZAS[2], '<message><body>x</body></message>']);
  });
});

describe('bench stanza helpers', () => {
  it('reads root attributes with either quote, not those of children', () => {
    expect(rootAttr(STANZAS[1], 'to')).toBe('b@x');
    expect(rootAttr(STANZAS[1], 'type')).toBe('chat');
    expect(rootAttr(STANZAS[3], 'id')).toBe('q"1>');
    expect(rootAttr(STANZAS[3], 'name')).toBeUndefined();
    expect(rootAttr(`<presence xfrom='no' from='yes'/>`, 'from')).toBe('yes');
  });

  it('reads element names and child text', () => {
    expect(elementName(STANZAS[0])).toBe('stream:features');
    expect(elementName(STANZAS[2])).toBe('presence');
    expect(childText(STANZAS[1], 'body')).toBe('a &gt; b, "quoted" &amp; ü 😀');
    expect(childText(`<iq><bind><jid>a@b/c</jid></bind></iq>`, 'jid')).toBe('a@b/c');
    expect(childText(`<message><bodyx>1</bodyx></message>`, 'body')).toBeUndefined();
  });
});
