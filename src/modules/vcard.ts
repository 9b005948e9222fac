/**
 * vcard-temp (XEP-0054) without vCard storage. Clients ask for vCards of every contact; the
 * answer must be a proper one rather than a timeout or a misleading empty card:
 *  - get on an account or the server: item-not-found (XEP-0054 §3.1: "If no vCard exists, the
 *    server MUST return a stanza error … SHOULD be <item-not-found/>"), as Prosody does without
 *    a stored card;
 *  - set: service-unavailable — Hermod does not store vCards, so accepting one would lose it.
 * The feature is not advertised in disco#info, which tells clients not to publish here.
 */
import { StanzaError } from '../errors.js';
import type { Module } from '../router/context.js';

export const VCARD_NS = 'vcard-temp';

export const vcard: Module = {
  name: 'vcard',
  install(ctx) {
    const missing = () => {
      throw new StanzaError('item-not-found', 'no vCard stored');
    };
    ctx.hooks.on(`iq-get/bare/${VCARD_NS}`, missing);
    ctx.hooks.on(`iq-get/host/${VCARD_NS}`, missing);
    ctx.hooks.on(`iq-set/self/${VCARD_NS}`, () => {
      throw new StanzaError('service-unavailable', 'vCards are not stored by this server');
    });
  },
};
