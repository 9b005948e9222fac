import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanBindResource } from '../../src/stream/bind-element.js';
import { BIND_NS } from '../../src/stream/c2s.js';
import { parseElement } from '../../src/xml/element.js';

const NS = `xmlns='${BIND_NS}'`;

/** What onBind read before the scan existed: the first <resource/> child's text, '' as none. */
function ltx(raw: string): string | null {
  const resource = parseElement(raw).getChild('bind', BIND_NS)?.getChild('resource');
  if (!resource) return null;
  const text = resource.getText();
  return text.length === 0 ? null : text;
}

describe('reading a bind request without a tree (RFC 6120 §7.5, §7.6)', () => {
  it('reads the resource a client asks for', () => {
    expect(scanBindResource(`<iq type='set' id='b1'><bind ${NS}><resource>balcony</resource></bind></iq>`)).toBe('balcony');
    expect(scanBindResource(`<iq type="set" id="b1">\n  <bind ${NS}>\n    <resource>  a b  </resource>\n  </bind>\n</iq>`)).toBe('  a b  ');
  });

  it('reads no resource as a request for a server-generated one (§7.6)', () => {
    expect(scanBindResource(`<iq type='set' id='b1'><bind ${NS}/></iq>`)).toBeNull();
    expect(scanBindResource(`<iq type='set' id='b1'><bind ${NS}></bind></iq>`)).toBeNull();
    expect(scanBindResource(`<iq type='set' id='b1'><bind ${NS}><resource></resource></bind></iq>`)).toBeNull();
  });

  it("is not fooled by '>' or markup inside attribute values", () => {
    expect(scanBindResource(`<iq type='set' id='a><bind ${NS}><resource>x</resource></bind>'><bind ${NS}><resource>y</resource></bind></iq>`)).toBe('y');
    expect(scanBindResource(`<iq type='set' id='b1'><bind ${NS} x="/>"><resource>z</resource></bind></iq>`)).toBe('z');
  });

  it('leaves references, CDATA, attributes or prefixes on <resource/> and other children to the parser', () => {
    expect(scanBindResource(`<iq type='set' id='b'><bind ${NS}><resource>a&amp;b</resource></bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><bind ${NS}><resource><![CDATA[x]]></resource></bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><bind ${NS}><resource xmlns='urn:other'>x</resource></bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><b:bind xmlns:b='${BIND_NS}'><b:resource>x</b:resource></b:bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><bind ${NS}><x/><resource>x</resource></bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><bind ${NS}><resource>x</resource><x/></bind></iq>`)).toBeUndefined();
    expect(scanBindResource(`<iq type='set' id='b'><binder ${NS}/></iq>`)).toBeUndefined();
  });

  it('agrees with ltx on every request it reads', () => {
    const text = fc.stringMatching(/^[A-Za-z0-9 \n\t&#;<>"'\]\[!é/]{0,16}$/);
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    const attrValue = fc.stringMatching(/^[A-Za-z0-9 <>/="]{0,10}$/).map((v) => esc(v).replace(/'/g, '&apos;'));
    const ws = fc.constantFrom('', ' ', '\n  ');
    const inner = fc.oneof(
      fc.constant(''),
      text.map((t) => `<resource>${esc(t)}</resource>`),
      text.map((t) => `<resource>${esc(t).replace(/&amp;/g, '&#38;')}</resource>`),
      text.map((t) => `<resource xml:lang='en'>${esc(t)}</resource>`),
      text.map((t) => `<resource><![CDATA[${t.replace(/]]>/g, '')}]]></resource>`),
      fc.constant('<foo/><resource>r</resource>'),
      fc.constant('<resource>r</resource><resource>s</resource>'),
    );
    fc.assert(
      fc.property(attrValue, ws, ws, inner, fc.boolean(), (id, w1, w2, body, selfClosing) => {
        const bind = selfClosing && body === '' ? `<bind ${NS}/>` : `<bind ${NS}>${w2}${body}${w2}</bind>`;
        const raw = `<iq type='set' id='${id}'>${w1}${bind}${w1}</iq>`;
        const fast = scanBindResource(raw);
        if (fast !== undefined) expect(fast).toBe(ltx(raw));
      }),
      { numRuns: 3000 },
    );
  });
});
