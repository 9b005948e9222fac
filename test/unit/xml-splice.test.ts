import { describe, expect, it } from 'vitest';
import { appendChild, fromAttribute, spliceFrom, type SpliceSource } from '../../src/xml/splice.js';
import { attr, escapeAttr } from '../../src/xml/escape.js';

/** Hand-made spans over a byte array, as the core would report them, placed at an offset. */
function spans(xml: string, pad = 7): SpliceSource {
  const bytes = Buffer.concat([Buffer.alloc(pad, 0x20), Buffer.from(xml, 'utf8'), Buffer.alloc(pad, 0x20)]);
  const start = pad;
  const end = pad + Buffer.byteLength(xml);
  const nameMatch = /^<[^\s/>]+/.exec(xml)!;
  const nameEnd = start + Buffer.byteLength(nameMatch[0]);
  const fromMatch = /\s+from\s*=\s*('[^']*'|"[^"]*")/.exec(xml.slice(0, xml.indexOf('>')));
  let fromAttrStart = -1;
  let fromAttrEnd = -1;
  if (fromMatch) {
    fromAttrStart = start + Buffer.byteLength(xml.slice(0, fromMatch.index));
    fromAttrEnd = fromAttrStart + Buffer.byteLength(fromMatch[0]);
  }
  return { buffer: bytes, start, end, nameEnd, fromAttrStart, fromAttrEnd };
}

describe('byte splicer (RFC 6120 §8.1.2.1 from stamping)', () => {
  it('inserts the stamp after the element name when the client sent no from', () => {
    const out = spliceFrom(spans("<message to='bob@x' type='chat'><body>hi</body></message>"), fromAttribute('alice@x/r'));
    expect(out.toString()).toBe("<message from='alice@x/r' to='bob@x' type='chat'><body>hi</body></message>");
  });

  it("drops a client-supplied from wherever it sits in the start tag", () => {
    const stamp = fromAttribute('alice@x/r');
    expect(spliceFrom(spans("<message from='mallory@evil' to='bob@x'/>"), stamp).toString()).toBe(
      "<message from='alice@x/r' to='bob@x'/>",
    );
    expect(spliceFrom(spans('<iq to="bob@x/a" type="get" id="1"  from="x@y"><ping xmlns="urn:xmpp:ping"/></iq>'), stamp).toString()).toBe(
      "<iq from='alice@x/r' to=\"bob@x/a\" type=\"get\" id=\"1\"><ping xmlns=\"urn:xmpp:ping\"/></iq>",
    );
  });

  it('does not mistake a from attribute of a child element for the stanza one', () => {
    const src = spans("<message to='b@x'><forwarded from='c@x'/></message>");
    expect(spliceFrom(src, fromAttribute('a@x/r')).toString()).toBe(
      "<message from='a@x/r' to='b@x'><forwarded from='c@x'/></message>",
    );
  });

  it('copies multi-byte UTF-8 content byte for byte', () => {
    const src = spans("<message from='z' to='bob@x'><body>ÿ€😀</body></message>");
    const out = spliceFrom(src, fromAttribute('ålice@x/ré'));
    expect(out.toString('utf8')).toBe("<message from='ålice@x/ré' to='bob@x'><body>ÿ€😀</body></message>");
  });

  it('escapes quote and ampersand in the stamped JID (resourceparts may hold them, RFC 7622 §3.4)', () => {
    expect(fromAttribute("a@x/it's & <me>").toString()).toBe(" from='a@x/it&apos;s &amp; &lt;me&gt;'");
  });

  it('returns a copy that survives reuse of the input buffer', () => {
    const src = spans("<presence/>");
    const out = spliceFrom(src, fromAttribute('a@x/r'));
    (src.buffer as Buffer).fill(0x41);
    expect(out.toString()).toBe("<presence from='a@x/r'/>");
  });
});

describe('appendChild (XEP-0203 delay on stored messages)', () => {
  it('turns a self-closing element into open/close around the child', () => {
    expect(appendChild(Buffer.from("<message to='b@x'/>"), '<delay/>').toString()).toBe("<message to='b@x'><delay/></message>");
  });
  it('appends before the end tag', () => {
    expect(appendChild(Buffer.from('<message><body>a</body></message>'), '<x/>').toString()).toBe(
      '<message><body>a</body><x/></message>',
    );
  });
});

describe('escaping', () => {
  it('leaves plain text untouched and escapes the five specials', () => {
    expect(escapeAttr('alice@x/r')).toBe('alice@x/r');
    expect(escapeAttr(`<&"'>`)).toBe('&lt;&amp;&quot;&apos;&gt;');
    expect(attr('id', null)).toBe('');
    expect(attr('id', "a'b")).toBe(" id='a&apos;b'");
  });
});

describe('splice properties', () => {
  it('keeps every attribute but from, and every byte of content, whatever the attribute order and quoting', async () => {
    const fc = (await import('fast-check')).default;
    const { parseElement } = await import('../../src/xml/element.js');
    const { jsView } = await import('../scenario/js-view.js');
    const value = fc.string({ unit: fc.constantFrom('a', 'é', '😀', '&amp;', '&lt;', ' ', '/', '@', '"', "'") });
    const attrs = fc.uniqueArray(fc.tuple(fc.constantFrom('to', 'from', 'id', 'type', 'xml:lang', 'x'), value, fc.boolean()), {
      selector: (a) => a[0],
      maxLength: 5,
    });
    fc.assert(
      fc.property(attrs, value, fc.string(), (list, body, stamp) => {
        const attrText = list
          .map(([k, v, dq]) => {
            // A quote of the other kind is literal; the same kind must be an entity.
            const q = dq ? '"' : "'";
            const escaped = v.replaceAll(q, dq ? '&quot;' : '&apos;');
            return ` ${k}=${q}${escaped}${q}`;
          })
          .join('');
        const xml = `<message${attrText}><body>${body.replaceAll('"', '').replaceAll("'", '')}</body></message>`;
        const out = spliceFrom(jsView(xml), fromAttribute(stamp)).toString();
        const before = parseElement(xml);
        const after = parseElement(out);
        const expected = { ...before.attrs, from: stamp };
        return JSON.stringify(Object.entries(after.attrs).sort()) === JSON.stringify(Object.entries(expected).sort()) &&
          out.endsWith(xml.slice(xml.indexOf('>')));
      }),
      { numRuns: 300 },
    );
  });
});
