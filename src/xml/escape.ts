/**
 * Escaping for the bytes Hermod writes itself (stamped attributes, replies built on the cold
 * path). One place, so that a JID carrying `'` or `&` (legal in a resourcepart, RFC 7622 §3.4)
 * can never break out of an attribute.
 */
import { escapeXml } from '../errors.js';

const SPECIAL = /[&<>"']/;

/** Escape for a quoted attribute value (either quote style) or character data. */
export function escapeAttr(text: string): string {
  // Most JIDs and ids carry nothing to escape: skip the regex replace and its allocation.
  return SPECIAL.test(text) ? escapeXml(text) : text;
}

/** Escape character data; identical rules, kept separate so call sites say what they mean. */
export const escapeText = escapeAttr;

/** ` name='value'` with the value escaped, or '' when value is null/undefined. */
export function attr(name: string, value: string | null | undefined): string {
  return value === null || value === undefined ? '' : ` ${name}='${escapeAttr(value)}'`;
}
