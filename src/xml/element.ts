/**
 * Cold-path element helpers on ltx: parse one stanza that a module must read (roster, disco,
 * register, …), and build small replies. Never used for routed stanzas (see splice.ts).
 */
import { Element, parse } from 'ltx';
import type { StanzaError } from '../errors.js';
import { attr } from './escape.js';

export { Element };

/** Parse the bytes/string of one complete element. The core already checked well-formedness. */
export function parseElement(xml: string | Uint8Array): Element {
  const text = typeof xml === 'string' ? xml : Buffer.from(xml.buffer, xml.byteOffset, xml.byteLength).toString('utf8');
  return parse(text);
}

/** 'stream' of 'stream:stream', 'handshake' of 'handshake': the name without its prefix. */
export function localName(qname: string): string {
  return qname.slice(qname.indexOf(':') + 1);
}

/** The first child element (ignoring text), or null. */
export function firstChildElement(el: Element): Element | null {
  for (const c of el.children) if (typeof c !== 'string') return c as Element;
  return null;
}

/** All child elements (ignoring text). */
export function childElements(el: Element): Element[] {
  return el.children.filter((c): c is Element => typeof c !== 'string');
}

export interface ReplyAddress {
  /** Stanza name: message, presence or iq. */
  name: string;
  /** The original id; omitted when the original had none (RFC 6120 §8.3.1). */
  id: string | null;
  /** The original sender: the reply's 'to'. */
  to: string | null;
  /** The original 'to': the reply's 'from' (the entity that answers). */
  from: string | null;
}

/**
 * RFC 6120 §8.3.1: an error reply swaps the addresses, keeps the id, carries type='error' and
 * the <error/> child. The original payload is not echoed (it is optional, and echoing an
 * oversized or bad stanza back is what a hostile sender would want).
 */
export function errorReply(addr: ReplyAddress, error: StanzaError): string {
  return (
    `<${addr.name} type='error'${attr('id', addr.id)}${attr('from', addr.from)}${attr('to', addr.to)}>` +
    error.toXml() +
    `</${addr.name}>`
  );
}

/** RFC 6120 §8.2.3: an IQ result, with an optional payload. */
export function iqResult(addr: Omit<ReplyAddress, 'name'>, payload = ''): string {
  const open = `<iq type='result'${attr('id', addr.id)}${attr('from', addr.from)}${attr('to', addr.to)}`;
  return payload ? `${open}>${payload}</iq>` : `${open}/>`;
}
