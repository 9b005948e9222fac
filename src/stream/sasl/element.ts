/**
 * What the stream needs of a SASL element (<auth/>, <response/>): the 'mechanism' attribute and
 * the character data (RFC 6120 §6.4.2, §6.4.3), read straight from the element's text.
 *
 * Every login passes two of these; building an ltx tree for each was ~5 % of the server's CPU
 * per reconnect login (docs/benchmarks.md, "Logins, third pass"). The core has already checked
 * the element is well-formed, so a plain scan suffices for the shape every client sends (base64
 * text, unescaped attribute values); anything else (child elements, entity or character
 * references, CDATA) goes through ltx as before, so both paths give the same answer.
 */
import type { StanzaView } from '../../core/api.js';
import { parseElement } from '../../xml/element.js';

export interface SaslElement {
  /** The 'mechanism' attribute (null when absent). */
  mechanism: string | null;
  /** Concatenated character data of the element's own text. */
  text: string;
}

const AMP = 0x26;
const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const EQ = 0x3d;
const QUOT = 0x22;
const APOS = 0x27;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Read a SASL element; `view.toString()` is its exact text. */
export function readSaslElement(view: StanzaView): SaslElement {
  const raw = view.toString();
  return (view.childCount === 0 ? scan(raw) : null) ?? viaLtx(raw);
}

function viaLtx(raw: string): SaslElement {
  const element = parseElement(raw);
  const mechanism = element.attrs['mechanism'];
  return { mechanism: typeof mechanism === 'string' ? mechanism : null, text: element.getText() };
}

/** The fast path, or null when the element needs a real parser. */
export function scan(raw: string): SaslElement | null {
  let i = 1;
  const n = raw.length;
  // Element name: up to whitespace, '/' or '>'.
  while (i < n) {
    const c = raw.charCodeAt(i);
    if (isSpace(c) || c === SLASH || c === GT) break;
    i++;
  }
  let mechanism: string | null = null;
  for (;;) {
    while (i < n && isSpace(raw.charCodeAt(i))) i++;
    if (i >= n) return null;
    const c = raw.charCodeAt(i);
    if (c === GT || c === SLASH) break;
    const nameStart = i;
    while (i < n) {
      const d = raw.charCodeAt(i);
      if (d === EQ || isSpace(d)) break;
      i++;
    }
    const name = raw.slice(nameStart, i);
    while (i < n && isSpace(raw.charCodeAt(i))) i++;
    if (raw.charCodeAt(i) !== EQ) return null;
    i++;
    while (i < n && isSpace(raw.charCodeAt(i))) i++;
    const quote = raw.charCodeAt(i);
    if (quote !== QUOT && quote !== APOS) return null;
    const close = raw.indexOf(quote === QUOT ? '"' : "'", i + 1);
    if (close === -1) return null;
    if (name === 'mechanism') {
      const value = raw.slice(i + 1, close);
      // References need decoding: leave them to the parser.
      if (value.includes('&')) return null;
      mechanism = value;
    }
    i = close + 1;
  }
  if (raw.charCodeAt(i) === SLASH) return { mechanism, text: '' };
  const textEnd = raw.lastIndexOf('</');
  if (textEnd < i) return null;
  for (let j = i + 1; j < textEnd; j++) {
    const c = raw.charCodeAt(j);
    if (c === LT || c === AMP) return null;
  }
  return { mechanism, text: raw.slice(i + 1, textEnd) };
}
