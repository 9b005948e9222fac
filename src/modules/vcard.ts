/**
 * vcard-temp (XEP-0054): each account keeps its own vCard (in the shared per-account XML store,
 * key 'vcard'), and anyone may read it — clients fetch the vCards of every contact for names and
 * avatars.
 *  - get on oneself or on another local account: the stored card, or an empty
 *    <vCard xmlns='vcard-temp'/> when none was published (as ejabberd and Prosody answer; clients
 *    treat an error here as a broken server rather than as "no card");
 *  - set on oneself: replaces the card, bounded in size (an embedded PHOTO makes cards large);
 *  - set on anyone else: forbidden (XEP-0054 §3.2: a user sets only its own vCard);
 *  - get on the server itself: item-not-found — Hermod publishes no server vCard.
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module } from '../router/context.js';
import { selfContain } from '../xml/element.js';

export const VCARD_NS = 'vcard-temp';

/** Bytes one vCard may take: room for a base64 avatar of a few hundred kilobytes, no more. */
export const VCARD_LIMIT = 256 * 1024;

const KEY = 'vcard';
const EMPTY = `<vCard xmlns='${VCARD_NS}'/>`;

function expectVCard(ev: IqEvent): void {
  if (ev.payload.getName() !== 'vCard') throw new StanzaError('bad-request', 'expected <vCard/>');
}

export const vcard: Module = {
  name: 'vcard',
  install(ctx) {
    const xml = ctx.storage.xml;
    ctx.features.add(VCARD_NS);
    // XEP-0054 §3.1 (own card) and §3.3 (another user's card): the server answers for the account.
    const get = (ev: IqEvent) => {
      expectVCard(ev);
      ev.reply(xml.get(ev.to!.bare, KEY) ?? EMPTY);
      return true;
    };
    ctx.hooks.on(`iq-get/self/${VCARD_NS}`, get);
    ctx.hooks.on(`iq-get/bare/${VCARD_NS}`, get);
    ctx.hooks.on(`iq-get/host/${VCARD_NS}`, () => {
      throw new StanzaError('item-not-found', 'no server vCard');
    });
    // XEP-0054 §3.2: publishing one's own vCard replaces whatever was stored.
    ctx.hooks.on(`iq-set/self/${VCARD_NS}`, (ev: IqEvent) => {
      expectVCard(ev);
      // Served later to other accounts, outside this request: prefixes declared above the
      // card (on the <iq/>) go onto it, or their parsers would meet them unbound.
      if (selfContain(ev.payload).length > 0) throw new StanzaError('bad-request', 'undeclared namespace prefix');
      const doc = ev.payload.toString();
      if (Buffer.byteLength(doc) > VCARD_LIMIT) throw new StanzaError('not-acceptable', `vCard exceeds ${VCARD_LIMIT} bytes`);
      xml.set(ev.session!.bare, KEY, doc);
      ev.reply();
      return true;
    });
    ctx.hooks.on(`iq-set/bare/${VCARD_NS}`, () => {
      throw new StanzaError('forbidden', "only the account itself sets its vCard");
    });
  },
};
