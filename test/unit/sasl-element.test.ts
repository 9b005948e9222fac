import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scan } from '../../src/stream/sasl/element.js';
import { parseElement } from '../../src/xml/element.js';

const NS = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";

function ltx(raw: string): { mechanism: string | null; text: string } {
  const el = parseElement(raw);
  const m = el.attrs['mechanism'];
  return { mechanism: typeof m === 'string' ? m : null, text: el.getText() };
}

describe('reading <auth/> and <response/> without a tree (RFC 6120 §6.4.2)', () => {
  it('reads the mechanism and base64 text of the usual <auth/>', () => {
    expect(scan(`<auth ${NS} mechanism='SCRAM-SHA-256'>biwsbj1iZW5jaDA=</auth>`)).toEqual({ mechanism: 'SCRAM-SHA-256', text: 'biwsbj1iZW5jaDA=' });
  });

  it('reads an empty self-closing <auth/> and a <response/> with "=" (empty response, §6.4.2)', () => {
    expect(scan(`<auth ${NS} mechanism="PLAIN"/>`)).toEqual({ mechanism: 'PLAIN', text: '' });
    expect(scan(`<response ${NS}>=</response>`)).toEqual({ mechanism: null, text: '=' });
  });

  it("is not fooled by ' mechanism=' inside another attribute's value, or by '>' in a value", () => {
    expect(scan(`<auth x=" mechanism='PLAIN'>" ${NS} mechanism='SCRAM-SHA-1'>AA==</auth>`)).toEqual({ mechanism: 'SCRAM-SHA-1', text: 'AA==' });
  });

  it('leaves references, CDATA and child elements to the parser', () => {
    expect(scan(`<auth ${NS} mechanism='PL&#65;IN'>AA==</auth>`)).toBeNull();
    expect(scan(`<auth ${NS} mechanism='PLAIN'>A&#65;==</auth>`)).toBeNull();
    expect(scan(`<auth ${NS} mechanism='PLAIN'><![CDATA[AA==]]></auth>`)).toBeNull();
    expect(scan(`<auth ${NS} mechanism='PLAIN'>AA<x/>==</auth>`)).toBeNull();
  });

  it('agrees with ltx on every element it reads', () => {
    const value = fc.stringMatching(/^[A-Za-z0-9 &#;<>="'\-_.]{0,12}$/);
    const text = fc.stringMatching(/^[A-Za-z0-9+/= \n\t&#;<>"'\]\[!]{0,40}$/);
    const xmlSafe = (s: string, q: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(new RegExp(q, 'g'), q === '"' ? '&quot;' : '&apos;');
    fc.assert(
      fc.property(
        fc.constantFrom('auth', 'response'),
        fc.array(fc.tuple(fc.constantFrom('mechanism', 'a', 'xml:lang', 'b'), value, fc.constantFrom("'", '"'), fc.constantFrom('', ' ', '\n')), { maxLength: 3 }),
        fc.option(text, { nil: undefined }),
        fc.boolean(),
        (name, attrs, body, escape) => {
          const seen = new Set<string>();
          let tag = `<${name} ${NS}`;
          for (const [k, v, q, ws] of attrs) {
            if (seen.has(k)) continue;
            seen.add(k);
            tag += ` ${k}${ws}=${ws}${q}${escape ? xmlSafe(v, q) : xmlSafe(v, q).replace(/&amp;/g, '&#38;')}${q}`;
          }
          const raw = body === undefined ? `${tag}/>` : `${tag}>${body.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</${name}>`;
          const fast = scan(raw);
          if (fast !== null) expect(fast).toEqual(ltx(raw));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
