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

/**
 * Make an element mean the same once cut out of the stanza it came in: modules store payloads
 * (PEP items, vCards, private XML) and send them later inside other stanzas, where the request's
 * namespace declarations are not in scope. The default namespace it inherited and every prefix it
 * uses but that is declared above it are declared on it, or a recipient's parser would meet an
 * unbound prefix, a fatal error that ends its stream (Namespaces in XML §5). Returns the prefixes
 * that are declared nowhere (none in input the core accepted).
 */
export function selfContain(payload: Element): string[] {
  if (payload.attrs.xmlns === undefined) {
    const inherited = payload.findNS();
    if (inherited) payload.attrs.xmlns = inherited;
  }
  const outside = new Set<string>();
  const walk = (el: Element, scope: Set<string>): void => {
    let here = scope;
    for (const name of Object.keys(el.attrs)) {
      if (!name.startsWith('xmlns:')) continue;
      if (here === scope) here = new Set(scope);
      here.add(name.slice(6));
    }
    const used = [el.name, ...Object.keys(el.attrs).filter((a) => a !== 'xmlns' && !a.startsWith('xmlns:'))];
    for (const qname of used) {
      const colon = qname.indexOf(':');
      if (colon < 0) continue;
      const prefix = qname.slice(0, colon);
      if (prefix !== 'xml' && !here.has(prefix)) outside.add(prefix);
    }
    for (const child of childElements(el)) walk(child, here);
  };
  walk(payload, new Set());
  const unbound: string[] = [];
  for (const prefix of outside) {
    const ns = payload.parent ? (payload.parent as Element).findNS(prefix) : undefined;
    if (ns) payload.attrs[`xmlns:${prefix}`] = ns;
    else unbound.push(prefix);
  }
  return unbound;
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
