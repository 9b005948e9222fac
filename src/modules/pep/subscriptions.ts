/**
 * Explicit subscriptions to PEP nodes (XEP-0060 §6.1 subscribe, §6.2 unsubscribe, §5.6 retrieve
 * subscriptions), which XEP-0163 §5 requires of a PEP service besides the automatic ones: an
 * entity without a presence subscription (a bot, a client of someone the owner shares nothing
 * with) subscribes to an open node; a contact may subscribe a full JID whose client sends no
 * caps.
 *
 * Stored per owner in the per-account XML store (src/storage/pep-subscriptions.ts, which also
 * removes an account's subscriptions from every owner's document when the account is deleted),
 * shared by every shard through SQLite like the nodes themselves. Read when a node
 * notifies; access is checked again then (XEP-0060 §4.5: a subscriber who may no longer read the
 * node hears nothing), so a roster change needs no bookkeeping here.
 */
export {
  readSubscriptions,
  SUBSCRIPTIONS_KEY,
  subscriptionXml,
  writeSubscriptions,
  type Subscription,
} from '../../storage/pep-subscriptions.js';

/** Subscriptions one account's nodes may have together (subscribers are local accounts). */
export const MAX_SUBSCRIPTIONS = 1000;
/**
 * Of those, what one subscriber (its bare and full JIDs together) may hold: XEP-0060 §6.1.3.9
 * limits the requesting entity, and one account subscribing resource after resource to an open
 * node must not take every place the owner's nodes have.
 */
export const MAX_SUBSCRIPTIONS_PER_SUBSCRIBER = 50;
