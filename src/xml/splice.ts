/**
 * The byte splicer of the hot path (docs: DESIGN.md "The path of one stanza").
 *
 * A routed stanza is never re-serialised: its bytes are copied as the client wrote them, with
 * the client's own `from` attribute dropped and the server's stamp inserted right after the
 * element name (RFC 6120 §8.1.2.1: the server MUST stamp the full JID it bound for the session,
 * whatever the client claimed).
 */
import type { StanzaView } from '../core/api.js';
import { escapeAttr } from './escape.js';

/** The offsets of a StanzaView the splicer needs (hand-made spans satisfy it in unit tests). */
export type SpliceSource = Pick<StanzaView, 'buffer' | 'start' | 'end' | 'nameEnd' | 'fromAttrStart' | 'fromAttrEnd'>;

/** ` from='…'` as bytes; sessions compute it once at bind time and reuse it for every stanza. */
export function fromAttribute(jid: string): Buffer {
  return Buffer.from(` from='${escapeAttr(jid)}'`, 'utf8');
}

/**
 * `<name` + stamp + the rest of the element without the client's from attribute.
 * Returns a fresh buffer that outlives the view (views point into reused WASM memory).
 */
export function spliceFrom(view: SpliceSource, stamp: Uint8Array): Buffer {
  const { buffer, start, end, nameEnd, fromAttrStart, fromAttrEnd } = view;
  const hasFrom = fromAttrStart >= 0 && fromAttrEnd > fromAttrStart;
  const dropped = hasFrom ? fromAttrEnd - fromAttrStart : 0;
  const out = Buffer.allocUnsafe(end - start - dropped + stamp.length);
  let at = 0;
  out.set(buffer.subarray(start, nameEnd), at);
  at += nameEnd - start;
  out.set(stamp, at);
  at += stamp.length;
  if (hasFrom) {
    out.set(buffer.subarray(nameEnd, fromAttrStart), at);
    at += fromAttrStart - nameEnd;
    out.set(buffer.subarray(fromAttrEnd, end), at);
  } else {
    out.set(buffer.subarray(nameEnd, end), at);
  }
  return out;
}

const LT = 0x3c;
const SLASH = 0x2f;
const GT = 0x3e;

/**
 * Append child XML as the last child of a complete element held in `bytes`, e.g. the XEP-0203
 * <delay/> on an offline message at delivery time. Handles both `<x …/>` and `<x …>…</x>`.
 */
export function appendChild(bytes: Uint8Array, childXml: string): Buffer {
  const child = Buffer.from(childXml, 'utf8');
  let last = bytes.length - 1;
  while (last >= 0 && bytes[last] !== GT) last--;
  if (last < 1) throw new Error('appendChild: not an element');
  if (bytes[last - 1] === SLASH) {
    // Self-closing: <name attrs/> → <name attrs> child </name>
    let nameStop = 1;
    while (nameStop < bytes.length && !isNameEnd(bytes[nameStop]!)) nameStop++;
    const name = bytes.subarray(1, nameStop);
    return Buffer.concat([
      bytes.subarray(0, last - 1),
      Buffer.from('>'),
      child,
      Buffer.from('</'),
      name,
      Buffer.from('>'),
    ]);
  }
  // Insert before the final end tag `</name>`.
  let open = last;
  while (open > 0 && !(bytes[open] === LT && bytes[open + 1] === SLASH)) open--;
  return Buffer.concat([bytes.subarray(0, open), child, bytes.subarray(open)]);
}

function isNameEnd(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === SLASH || c === GT;
}
