/**
 * The stored form of explicit PEP subscriptions (XEP-0060 §6.1; the protocol side is
 * src/modules/pep/subscriptions.ts): per owner, one small document in the per-account XML store
 * under SUBSCRIPTIONS_KEY, `<subscriptions><subscription node=… jid=… subid=…/>…</subscriptions>`.
 *
 * It lives in the storage layer because deleting an account must take the account's
 * subscriptions out of *other* owners' documents too — whoever registered the name next would
 * otherwise inherit them — and every deletion path (XEP-0077 removal, `hermod deluser`, the
 * admin socket) ends in the store's users.delete(), `hermod deluser` without loading any module.
 */
import { childElements, parseElement } from '../xml/element.js';
import { attr, escapeAttr } from '../xml/escape.js';
import type { XmlStore } from './types.js';

export const SUBSCRIPTIONS_KEY = 'pep:subscriptions';

export interface Subscription {
  node: string;
  /** The subscribed JID, bare or full (XEP-0060 §6.1.1). */
  jid: string;
  subid: string;
}

function parseSubscriptions(doc: string): Subscription[] {
  const out: Subscription[] = [];
  for (const el of childElements(parseElement(doc))) {
    const { node, jid, subid } = el.attrs as Record<string, string | undefined>;
    if (node !== undefined && jid !== undefined && subid !== undefined) out.push({ node, jid, subid });
  }
  return out;
}

/** The document for `list`; null when the list is empty (the key is removed then). */
function subscriptionsDoc(list: readonly Subscription[]): string | null {
  return list.length === 0 ? null : `<subscriptions>${list.map((s) => subscriptionXml(s)).join('')}</subscriptions>`;
}

export function readSubscriptions(store: XmlStore, owner: string): Subscription[] {
  const doc = store.get(owner, SUBSCRIPTIONS_KEY);
  return doc === null ? [] : parseSubscriptions(doc);
}

export function writeSubscriptions(store: XmlStore, owner: string, list: readonly Subscription[]): void {
  const doc = subscriptionsDoc(list);
  if (doc === null) store.remove(owner, SUBSCRIPTIONS_KEY);
  else store.set(owner, SUBSCRIPTIONS_KEY, doc);
}

/** XEP-0060 §5.6 / §6.1.2: one subscription as the service reports it (and as it is stored). */
export function subscriptionXml(s: Subscription): string {
  return `<subscription${attr('node', s.node)}${attr('jid', s.jid)}${attr('subid', s.subid)} subscription='subscribed'/>`;
}

/**
 * Text every stored subscription of `account` (its bare JID or one of its full JIDs) contains:
 * a cheap first filter over every owner's document; withoutSubscriber() decides exactly.
 */
export function subscriberNeedle(account: string): string {
  return ` jid='${escapeAttr(account)}`;
}

/**
 * `doc` without the subscriptions of `account`, its bare JID or any full JID of it (a JID that
 * merely starts the same, alice@example.org.evil, is another account's): undefined when it had
 * none or cannot be read, null when none is left.
 */
export function withoutSubscriber(doc: string, account: string): string | null | undefined {
  let list: Subscription[];
  try {
    list = parseSubscriptions(doc);
  } catch {
    // Another owner's damaged document (edited by hand?) must not stop the account's deletion:
    // it stays as it was, unreadable to the PEP service as before.
    return undefined;
  }
  const kept = list.filter((s) => s.jid !== account && !s.jid.startsWith(`${account}/`));
  return kept.length === list.length ? undefined : subscriptionsDoc(kept);
}
