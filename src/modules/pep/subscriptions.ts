/**
 * Explicit subscriptions to PEP nodes (XEP-0060 §6.1 subscribe, §6.2 unsubscribe, §5.6 retrieve
 * subscriptions), which XEP-0163 §5 requires of a PEP service besides the automatic ones: an
 * entity without a presence subscription (a bot, a client of someone the owner shares nothing
 * with) subscribes to an open node; a contact may subscribe a full JID whose client sends no
 * caps.
 *
 * Stored per owner in the per-account XML store (key SUBSCRIPTIONS_KEY): one small document
 * `<subscriptions><subscription node=… jid=… subid=…/>…</subscriptions>`, shared by every shard
 * through SQLite like the nodes themselves, and removed with the account. Read when a node
 * notifies; access is checked again then (XEP-0060 §4.5: a subscriber who may no longer read the
 * node hears nothing), so a roster change needs no bookkeeping here.
 */
import type { XmlStore } from '../../storage/types.js';
import { childElements, parseElement } from '../../xml/element.js';
import { attr } from '../../xml/escape.js';

export const SUBSCRIPTIONS_KEY = 'pep:subscriptions';
/** Subscriptions one account's nodes may have together (subscribers are local accounts). */
export const MAX_SUBSCRIPTIONS = 1000;
/**
 * Of those, what one subscriber (its bare and full JIDs together) may hold: XEP-0060 §6.1.3.9
 * limits the requesting entity, and one account subscribing resource after resource to an open
 * node must not take every place the owner's nodes have.
 */
export const MAX_SUBSCRIPTIONS_PER_SUBSCRIBER = 50;

export interface Subscription {
  node: string;
  /** The subscribed JID, bare or full (XEP-0060 §6.1.1). */
  jid: string;
  subid: string;
}

export function readSubscriptions(store: XmlStore, owner: string): Subscription[] {
  const doc = store.get(owner, SUBSCRIPTIONS_KEY);
  if (doc === null) return [];
  const out: Subscription[] = [];
  for (const el of childElements(parseElement(doc))) {
    const { node, jid, subid } = el.attrs as Record<string, string | undefined>;
    if (node !== undefined && jid !== undefined && subid !== undefined) out.push({ node, jid, subid });
  }
  return out;
}

export function writeSubscriptions(store: XmlStore, owner: string, list: readonly Subscription[]): void {
  if (list.length === 0) {
    store.remove(owner, SUBSCRIPTIONS_KEY);
    return;
  }
  store.set(owner, SUBSCRIPTIONS_KEY, `<subscriptions>${list.map((s) => subscriptionXml(s)).join('')}</subscriptions>`);
}

/** XEP-0060 §5.6 / §6.1.2: one subscription as the service reports it. */
export function subscriptionXml(s: Subscription): string {
  return `<subscription${attr('node', s.node)}${attr('jid', s.jid)}${attr('subid', s.subid)} subscription='subscribed'/>`;
}
