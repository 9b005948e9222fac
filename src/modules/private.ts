/**
 * XEP-0049 Private XML Storage (jabber:iq:private): each account keeps one XML fragment per
 * namespace (bookmarks of XEP-0048, client preferences, …), readable and writable only by itself.
 * Fragments live in the shared per-account XML store under the key 'private:<namespace>'; like
 * every implementation in use, a namespace is the key (the element name is not part of it).
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module } from '../router/context.js';
import { childElements, selfContain, type Element } from '../xml/element.js';

export const PRIVATE_NS = 'jabber:iq:private';

/** Bytes one stored fragment may take: bookmarks of a heavy user fit easily, a disk filler does not. */
export const PRIVATE_ITEM_LIMIT = 64 * 1024;

/** Namespaces one account may keep fragments under: real clients use a handful. */
export const PRIVATE_NAMESPACE_LIMIT = 100;

/** XEP-0049 §3: namespaces no fragment may claim (they would confuse stanza processing). */
const RESERVED = new Set(['jabber:client', 'jabber:server', PRIVATE_NS]);

const key = (ns: string): string => `private:${ns}`;

/** The fragments of a query: at least one, each with its own, non-reserved namespace. */
function fragments(ev: IqEvent): { ns: string; el: Element }[] {
  if (ev.payload.getName() !== 'query') throw new StanzaError('bad-request', 'expected <query/>');
  const children = childElements(ev.payload);
  // XEP-0049 §2.1: the query carries at least one child scoped by its own namespace.
  if (children.length === 0) throw new StanzaError('bad-request', 'query without a child element');
  return children.map((el) => {
    const ns = el.getNS();
    if (!ns) throw new StanzaError('bad-request', 'child element without a namespace');
    // XEP-0049 §3: storing or reading in jabber:client, jabber:server or jabber:iq:private.
    if (RESERVED.has(ns)) throw new StanzaError('not-acceptable', `namespace ${ns} cannot be stored`);
    // Stored and answered later outside this request: prefixes declared above it go onto it.
    if (selfContain(el).length > 0) throw new StanzaError('bad-request', 'undeclared namespace prefix');
    return { ns, el };
  });
}

export const privateStorage: Module = {
  name: 'private',
  install(ctx) {
    const xml = ctx.storage.xml;
    // XEP-0030 §3.1: what the server implements is listed in its disco#info (ejabberd and Prosody
    // list jabber:iq:private there too).
    ctx.features.add(PRIVATE_NS);
    ctx.hooks.on(`iq-get/self/${PRIVATE_NS}`, (ev: IqEvent) => {
      const owner = ev.session!.bare;
      // XEP-0049 §2.1: the stored fragment, or the empty element as asked when none is stored.
      const out = fragments(ev).map(({ ns, el }) => xml.get(owner, key(ns)) ?? el.toString());
      ev.reply(`<query xmlns='${PRIVATE_NS}'>${out.join('')}</query>`);
      return true;
    });
    ctx.hooks.on(`iq-set/self/${PRIVATE_NS}`, (ev: IqEvent) => {
      const owner = ev.session!.bare;
      const items = fragments(ev).map(({ ns, el }) => ({ ns, doc: el.toString() }));
      // Check every fragment before storing any, so a refused set changes nothing.
      for (const { ns, doc } of items) {
        if (Buffer.byteLength(doc) > PRIVATE_ITEM_LIMIT) {
          throw new StanzaError('not-acceptable', `fragment ${ns} exceeds ${PRIVATE_ITEM_LIMIT} bytes`);
        }
      }
      // Without a bound on namespaces, 64 KiB fragments under ever new names would fill the disk.
      const fresh = new Set(items.filter(({ ns }) => xml.get(owner, key(ns)) === null).map(({ ns }) => ns)).size;
      if (fresh > 0 && (xml.count?.(owner, 'private:') ?? 0) + fresh > PRIVATE_NAMESPACE_LIMIT) {
        throw new StanzaError('resource-constraint', `at most ${PRIVATE_NAMESPACE_LIMIT} private storage namespaces per account`);
      }
      for (const { ns, doc } of items) xml.set(owner, key(ns), doc);
      ev.reply();
      return true;
    });
    // XEP-0049 §3: another user's private data is never served nor written.
    const forbidden = () => {
      throw new StanzaError('forbidden', "another account's private data");
    };
    ctx.hooks.on(`iq-get/bare/${PRIVATE_NS}`, forbidden);
    ctx.hooks.on(`iq-set/bare/${PRIVATE_NS}`, forbidden);
    ctx.hooks.on(`iq-get/host/${PRIVATE_NS}`, forbidden);
    ctx.hooks.on(`iq-set/host/${PRIVATE_NS}`, forbidden);
  },
};
