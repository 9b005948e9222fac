/**
 * XEP-0030 Service Discovery. The server: identity server/im and every feature modules
 * registered. An account's bare JID: identity account/registered (XEP-0030 §3.1, registrar
 * category "account"). The server's items are the entities registered with features.addItem()
 * (XEP-0114 components); no nodes are published. XEP-0128 extension forms (XEP-0157 contact
 * addresses) registered with features.addExtension() follow the server's features.
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module } from '../router/context.js';
import type { Identity } from '../router/hooks.js';
import { attr } from '../xml/escape.js';

export const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

function features(list: string[]): string {
  return list.map((f) => `<feature${attr('var', f)}/>`).join('');
}

function identities(list: Identity[]): string {
  return list.map((i) => `<identity${attr('category', i.category)}${attr('type', i.type)}${attr('name', i.name)}/>`).join('');
}

/** XEP-0030 §3.2: a node we do not know is item-not-found. */
function checkNode(ev: IqEvent): void {
  if (ev.payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
}

export const disco: Module = {
  name: 'disco',
  install(ctx) {
    ctx.features.add(DISCO_INFO);
    ctx.features.add(DISCO_ITEMS);
    ctx.features.addIdentity({ category: 'server', type: 'im', name: 'Hermod' });

    ctx.hooks.on(`iq-get/host/${DISCO_INFO}`, (ev: IqEvent) => {
      checkNode(ev);
      const ids = identities(ctx.features.listIdentities());
      // XEP-0128: extension forms follow the identities and features.
      ev.reply(`<query xmlns='${DISCO_INFO}'>${ids}${features(ctx.features.list())}${ctx.features.listExtensions().join('')}</query>`);
      return true;
    });
    ctx.hooks.on(`iq-get/host/${DISCO_ITEMS}`, (ev: IqEvent) => {
      checkNode(ev);
      const items = ctx.features.listItems().map((i) => `<item${attr('jid', i.jid)}${attr('name', i.name)}/>`);
      ev.reply(items.length === 0 ? `<query xmlns='${DISCO_ITEMS}'/>` : `<query xmlns='${DISCO_ITEMS}'>${items.join('')}</query>`);
      return true;
    });
    // XEP-0030 §3.1 / RFC 6121 §8.5.2.1.3: the server answers for an account's bare JID.
    ctx.hooks.on(`iq-get/bare/${DISCO_INFO}`, (ev: IqEvent) => {
      checkNode(ev);
      ev.reply(
        `<query xmlns='${DISCO_INFO}'><identity category='account' type='registered'/>` +
          identities(ctx.features.listAccountIdentities()) +
          features([DISCO_INFO, DISCO_ITEMS, ...ctx.features.listAccountFeatures()].sort()) +
          `</query>`,
      );
      return true;
    });
    ctx.hooks.on(`iq-get/bare/${DISCO_ITEMS}`, (ev: IqEvent) => {
      checkNode(ev);
      ev.reply(`<query xmlns='${DISCO_ITEMS}'/>`);
      return true;
    });
  },
};
