/**
 * Parse and write a payload that is re-serialised for other recipients (MUC groupchat and
 * private copies) so that every recipient's parser reads the values the sender's did.
 *
 * ltx's own parser does neither of XML 1.0's normalisations: a literal tab or line end in an
 * attribute value stays as it is (§3.3.3 makes it a space), a CR LF in text stays (§2.11 makes it
 * LF), and a character reference (&#9; &#10; &#13;) becomes the same literal character, so the
 * two can no longer be told apart; its writer then emits that character literally and the
 * recipient normalises it away: a tab the sender wrote as &#9; arrived as a space. Here the
 * parser is saxes (conforming: normalises while parsing) and the writer turns every whitespace
 * character that the reader would normalise back into a character reference.
 */
import { EventEmitter } from 'node:events';
import { SaxesParser } from 'saxes';
import { Element, parse } from 'ltx';

/** ltx's parser interface (startElement/endElement/text events) over saxes, CDATA included. */
class ConformingParser extends EventEmitter {
  private readonly parser = new SaxesParser({ fragment: true });

  constructor() {
    super();
    this.parser.on('opentag', (t) => this.emit('startElement', t.name, t.attributes));
    this.parser.on('closetag', (t) => this.emit('endElement', t.name));
    this.parser.on('text', (s) => this.emit('text', s));
    // XML 1.0 §2.7: a CDATA section is character data (ltx's own saxes adapter drops it).
    this.parser.on('cdata', (s) => this.emit('text', s));
    this.parser.on('error', (e) => this.emit('error', e));
  }

  write(data: string): void {
    this.parser.write(data);
  }

  end(data?: string): void {
    if (data) this.parser.write(data);
    this.parser.close();
  }
}

/** Parse one complete element (the core already checked it is well-formed) with XML 1.0's normalisations. */
export function parseExact(xml: string): Element {
  return parse(xml, { Parser: ConformingParser as never });
}

const ATTR_SPECIAL = /[&<>"'\t\n\r]/;
const TEXT_SPECIAL = /[&<>\r]/;
const REFS: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' };

/** An attribute value as written: whitespace other than a space by reference (§3.3.3 would fold it). */
export function exactAttrValue(v: string): string {
  return ATTR_SPECIAL.test(v) ? v.replace(/[&<>"'\t\n\r]/g, (c) => REFS[c]!) : v;
}

/** Character data as written: a CR by reference (§2.11 would turn it, or CR LF, into LF). */
export function exactText(v: string): string {
  return TEXT_SPECIAL.test(v) ? v.replace(/[&<>\r]/g, (c) => REFS[c]!) : v;
}

/** ` name='value'`, or '' when there is no value. */
export function exactAttr(name: string, value: string | null | undefined): string {
  return value === null || value === undefined ? '' : ` ${name}='${exactAttrValue(value)}'`;
}

/** An element and its content, written so that a conforming parser reads back exactly its values. */
export function exactXml(el: Element): string {
  let s = `<${el.name}`;
  for (const [k, v] of Object.entries(el.attrs)) if (v !== undefined && v !== null) s += exactAttr(k, String(v));
  if (el.children.length === 0) return `${s}/>`;
  s += '>';
  for (const c of el.children) s += typeof c === 'string' ? exactText(c) : exactXml(c);
  return `${s}</${el.name}>`;
}
