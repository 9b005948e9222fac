/**
 * XEP-0157 Contact Addresses for XMPP Services: who runs this server and where to report abuse,
 * published as an XEP-0128 extension of the server's disco#info (a data form whose FORM_TYPE is
 * http://jabber.org/network/serverinfo). Addresses come from the `contact` configuration; with
 * none configured no form is published at all.
 */
import type { Module } from '../router/context.js';
import { attr, escapeText } from '../xml/escape.js';

export const SERVERINFO_NS = 'http://jabber.org/network/serverinfo';

/** XEP-0157: the address kinds of its registered serverinfo fields, each a list of URIs. */
export const CONTACT_KINDS = ['abuse', 'admin', 'feedback', 'sales', 'security', 'status', 'support'] as const;
export type ContactKind = (typeof CONTACT_KINDS)[number];
export type ContactAddresses = Record<ContactKind, string[]>;

/** The XEP-0128 form, or null when no address is configured. */
export function contactForm(addresses: Partial<ContactAddresses>): string | null {
  const fields = CONTACT_KINDS.filter((kind) => (addresses[kind] ?? []).length > 0).map((kind) => {
    const values = addresses[kind]!.map((uri) => `<value>${escapeText(uri)}</value>`).join('');
    return `<field${attr('var', `${kind}-addresses`)} type='list-multi'>${values}</field>`;
  });
  if (fields.length === 0) return null;
  // XEP-0128 / XEP-0068: FORM_TYPE is a hidden field naming the form; the kinds are in
  // code-point order of their vars, as XEP-0115 §5.1 sorts them for a verification string.
  return (
    `<x xmlns='jabber:x:data' type='result'>` +
    `<field var='FORM_TYPE' type='hidden'><value>${SERVERINFO_NS}</value></field>` +
    `${fields.join('')}</x>`
  );
}

export function contact(addresses: Partial<ContactAddresses> = {}): Module {
  return {
    name: 'contact',
    install(ctx) {
      const form = contactForm(addresses);
      if (form !== null) ctx.features.addExtension(form);
    },
  };
}
