/**
 * XEP-0163 Personal Eventing Protocol: every account is a pubsub service (XEP-0060) at its bare
 * JID. Clients publish avatars (XEP-0084), nicknames (XEP-0172), bookmarks (XEP-0402), OMEMO
 * device lists and bundles (XEP-0384), moods, … and their contacts hear about changes.
 *
 * Implemented (XEP-0060 subset PEP clients use):
 *  - publish with auto-create (§7.1, XEP-0163 §3), server-generated item ids, max_items,
 *    publish-options preconditions (§7.1.5, XEP-0223);
 *  - items retrieval: all, newest N (max_items), by id (§6.5);
 *  - retract with notify (§7.2), create (§8.1), configure get/set (§8.2), default config
 *    (§8.3), delete (§8.4), purge (§8.5), own affiliations and subscriptions (§5.6, §5.7);
 *  - explicit subscriptions of the requester's bare or full JID (§6.1, §6.2, §5.6; XEP-0163 §5
 *    requires them; pep/subscriptions.ts), the last item sent on subscribing (§6.1.7);
 *  - access models presence (the default, XEP-0163 §5), open and whitelist (owner only);
 *  - notifications filtered by XEP-0115 caps (+notify), last published item to a contact's
 *    resource when it starts to care (XEP-0163 §4.3.4), events as headline messages from the
 *    bare JID (§4.3);
 *  - disco: the account's pubsub/pep identity and features, its nodes and items (XEP-0163 §6.1,
 *    XEP-0060 §5.2, §5.5).
 * Not implemented: subscription options (feature-not-implemented with pubsub's <unsupported
 * feature='subscription-options'/>), owner management of subscriptions, whitelist members other
 * than the owner, the 'roster' and 'authorize' access models, collection nodes, RSM paging.
 *
 * State: nodes and items in storage (SQLite shared by every shard); resources' +notify interest
 * in their session data (mirrored across shards, see pep/notify.ts); resolved caps per shard.
 */
import { randomUUID } from 'node:crypto';
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { IqEvent, Module, PresenceAvailableEvent, RouterContext, SubscriptionApprovedEvent } from '../router/context.js';
import type { SessionState } from '../router/session.js';
import { receivesPresence } from '../router/subscription.js';
import type { PepStore } from '../storage/types.js';
import { childElements, parseElement, selfContain, type Element } from '../xml/element.js';
import { attr } from '../xml/escape.js';
import { CAPS_NS, CapsCache, capsKey, capsOf, discoQuery, featuresOf, notifyNodes, verifies, type Caps } from './pep/caps.js';
import {
  applyFields,
  checkPreconditions,
  configForm,
  defaultConfig,
  formIn,
  keepCount,
  NODE_CONFIG,
  PUBLISH_OPTIONS,
  PUBSUB,
  PUBSUB_OWNER,
  pubsubError,
  readForm,
  withDefaults,
  type NodeConfig,
} from './pep/config.js';
import { deliverEvent, eventMessage, itemXml, mayRead, NOTIFY_KEY, notifySet, recipients, wants } from './pep/notify.js';
import { MAX_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS_PER_SUBSCRIBER, readSubscriptions, subscriptionXml, writeSubscriptions, type Subscription } from './pep/subscriptions.js';

export { PUBSUB, PUBSUB_OWNER } from './pep/config.js';

const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

/** Bytes one item's payload may take: an XEP-0084 avatar of a few hundred KiB, like a vCard. */
export const PEP_ITEM_LIMIT = 256 * 1024;
/**
 * Bytes of all the items one account keeps: an avatar, OMEMO bundles for a dozen devices,
 * hundreds of bookmarks fit many times over; nodes × max_items × item size would not be a bound.
 */
export const PEP_ACCOUNT_BYTES = 4 * 1024 * 1024;
/** Nodes one account may own: every PEP-using XEP together needs a few dozen. */
export const PEP_NODE_LIMIT = 100;
/** Bytes of a node name or item id. */
const NAME_LIMIT = 1024;

/** XEP-0163 §6.1 / XEP-0060 §10: what the account's pubsub service supports. */
export const PEP_FEATURES = [
  'access-open',
  'access-presence',
  'access-whitelist',
  'auto-create',
  'auto-subscribe',
  'config-node',
  'create-nodes',
  'delete-items',
  'delete-nodes',
  'filtered-notifications',
  'item-ids',
  'last-published',
  'persistent-items',
  'publish',
  'publish-options',
  'purge-nodes',
  'retract-items',
  'retrieve-affiliations',
  'retrieve-default',
  'retrieve-items',
  'retrieve-subscriptions',
  'subscribe',
].map((f) => `${PUBSUB}#${f}`);

/** Session data key of the caps key a resource announced last. */
const CAPS_KEY = 'pep:caps';
/** Session data key of the <c/> start tag it last sent (local to the session's shard). */
const CAPS_TAG = 'pep:tag';
const CAPS_BYTES = Buffer.from(CAPS_NS);
/** A caps query unanswered for this long is asked again of the next client announcing it. */
const QUERY_PATIENCE_MS = 30_000;
/** +notify nodes kept per resource and per cached caps hash (a client listing thousands gains
 *  nothing from them), and their bytes together: 2000 cached hashes stay under 16 MiB. */
const MAX_INTEREST = 256;
const MAX_INTEREST_BYTES = 8 * 1024;

function boundInterest(nodes: readonly string[]): string[] {
  const out: string[] = [];
  let bytes = 0;
  for (const n of nodes) {
    const size = Buffer.byteLength(n) + 1;
    if (size > NAME_LIMIT) continue;
    if (out.length >= MAX_INTEREST || bytes + size > MAX_INTEREST_BYTES) break;
    bytes += size;
    out.push(n);
  }
  return out;
}
/** Outstanding caps queries kept at most (hostile clients announcing random hashes). */
const MAX_PENDING = 1000;

interface PendingQuery {
  caps: Caps;
  key: string;
  /** Full JID asked. */
  asked: string;
  since: number;
  /** Resources that announced the same caps meanwhile. */
  waiting: Set<SessionState>;
}

function nodeAttr(el: Element): string {
  const node = el.attrs.node;
  // XEP-0060 §7.1.3, §7.2.3 (NodeID Required): a request about a node must name it.
  if (typeof node !== 'string' || node === '') throw pubsubError('bad-request', 'nodeid-required', 'node attribute required');
  if (Buffer.byteLength(node) > NAME_LIMIT) throw new StanzaError('not-acceptable', `node name longer than ${NAME_LIMIT} bytes`);
  return node;
}

/**
 * The 'jid' of a subscribe or unsubscribe, prepared: it must be the requester's bare JID or one
 * of its full JIDs (XEP-0060 §6.1.3.1 JIDs Do Not Match: bad-request + invalid-jid; §6.2.3.3:
 * forbidden).
 */
function subscriberJid(el: Element, requester: string, mismatch: 'bad-request' | 'forbidden'): string {
  const text = el.attrs.jid;
  if (typeof text !== 'string' || text === '') throw pubsubError('bad-request', 'jid-required');
  const jid = Jid.parse(text);
  if (jid.bare !== requester) {
    throw mismatch === 'forbidden' ? new StanzaError('forbidden', 'not your JID') : pubsubError('bad-request', 'invalid-jid');
  }
  return jid.full;
}

/** The action element of a <pubsub/> (the one child that is not an options form). */
function action(pubsub: Element, ...companions: string[]): Element {
  const children = childElements(pubsub).filter((c) => !companions.includes(c.getName()));
  if (children.length !== 1) throw new StanzaError('bad-request', 'pubsub must contain exactly one action');
  return children[0]!;
}

const truthy = (v: unknown): boolean => v === 'true' || v === '1';

export class PepService {
  readonly store: PepStore;
  readonly caps = new CapsCache();
  private readonly pending = new Map<string, PendingQuery>();
  private readonly pendingByKey = new Map<string, PendingQuery>();
  private seq = 0;

  constructor(readonly ctx: RouterContext) {
    this.store = ctx.storage.pep;
  }

  // ------------------------------------------------------------------ nodes

  private configOf(owner: string, node: string): NodeConfig | null {
    const n = this.store.node(owner, node);
    return n ? withDefaults(n.config) : null;
  }

  /** XEP-0060 §6.5.9: the node exists and the requester may read it, else the specific error. */
  private readable(owner: string, node: string, requester: string): NodeConfig {
    const config = this.configOf(owner, node);
    // §6.5.9 (Node Does Not Exist).
    if (!config) throw new StanzaError('item-not-found', `no node ${node}`);
    if (mayRead(this.ctx, owner, requester, config)) return config;
    switch (config['pubsub#access_model']) {
      // §6.5.9 (Presence Subscription Required).
      case 'presence':
        throw pubsubError('not-authorized', 'presence-subscription-required');
      // §6.5.9 (Not on Whitelist).
      default:
        throw pubsubError('not-allowed', 'closed-node');
    }
  }

  /** The requester's own node named by `el`; XEP-0060 §7.2.3, §8.2.3, §8.4.3, §8.5.3 (Node Does Not Exist): item-not-found. */
  private ownNode(ev: IqEvent, el: Element): { owner: string; node: string; config: NodeConfig } {
    const owner = ev.session!.bare;
    const node = nodeAttr(el);
    const config = this.configOf(owner, node);
    if (!config) throw new StanzaError('item-not-found', `no node ${node}`);
    return { owner, node, config };
  }

  private createNode(owner: string, node: string, config: NodeConfig): void {
    if (this.store.nodes(owner).length >= PEP_NODE_LIMIT) {
      throw pubsubError('policy-violation', 'max-nodes-exceeded', `at most ${PEP_NODE_LIMIT} nodes per account`);
    }
    this.store.setNode(owner, node, config);
  }

  // ------------------------------------------------------------------ owner actions

  /** XEP-0060 §7.1: publish one item; XEP-0163 §3: the node is created on first publish. */
  publish(ev: IqEvent, el: Element, optionsEl: Element | null): void {
    const owner = ev.session!.bare;
    const node = nodeAttr(el);
    const items = childElements(el).filter((c) => c.getName() === 'item');
    // §7.1.3 (Item Required): a persistent node needs an item; several in one request are not supported.
    if (items.length === 0) throw pubsubError('bad-request', 'item-required');
    if (items.length > 1) throw pubsubError('bad-request', 'invalid-payload', 'one item per publish');
    const item = items[0]!;
    const payloads = childElements(item);
    // §7.1.3 (Payload Required, Bad Payload): exactly one payload element.
    if (payloads.length === 0) throw pubsubError('bad-request', 'payload-required');
    if (payloads.length > 1) throw pubsubError('bad-request', 'invalid-payload', 'one payload element per item');
    const payload = payloads[0]!;
    selfContained(payload);
    const xml = payload.toString();
    // §7.1.3 (Payload Too Big): not-acceptable with <payload-too-big/>.
    if (Buffer.byteLength(xml) > PEP_ITEM_LIMIT) throw pubsubError('not-acceptable', 'payload-too-big', `item exceeds ${PEP_ITEM_LIMIT} bytes`);
    let id = item.attrs.id as string | undefined;
    if (id !== undefined && Buffer.byteLength(id) > NAME_LIMIT) throw new StanzaError('not-acceptable', `item id longer than ${NAME_LIMIT} bytes`);
    // §7.1.2: the service generates an id when the publisher gave none.
    if (id === undefined || id === '') id = randomUUID();

    let config = this.configOf(owner, node);
    const form = formIn(optionsEl);
    const fields = form ? readForm(form, PUBLISH_OPTIONS) : null;
    if (fields) {
      // §7.1.5: preconditions checked against the node, or applied to the node being created.
      const wanted = checkPreconditions(config, fields);
      if (!config) this.createNode(owner, node, (config = wanted));
    } else if (!config) {
      this.createNode(owner, node, (config = defaultConfig()));
    }
    this.checkQuota(owner, node, id, xml, keepCount(config));
    this.store.publish(owner, node, { id, xml, stamp: this.ctx.now(), publisher: ev.session!.jid.full }, keepCount(config));
    ev.reply(`<pubsub xmlns='${PUBSUB}'><publish${attr('node', node)}><item${attr('id', id)}/></publish></pubsub>`);
    // §7.1.2.1: the event to every interested resource, the publisher's own included.
    if (config['pubsub#deliver_notifications'] !== '0') {
      this.notify(owner, this.audience(owner, node, config), `<items${attr('node', node)}>${itemXml(id, xml, config)}</items>`);
    }
  }

  /**
   * The account's items together stay under PEP_ACCOUNT_BYTES. Only near the limit are the
   * items this publish replaces or pushes out (max_items) counted, so that replacing an avatar
   * in a full account still works.
   */
  private checkQuota(owner: string, node: string, id: string, xml: string, keep: number): void {
    const size = Buffer.byteLength(xml);
    const used = this.store.usage(owner);
    if (used + size <= PEP_ACCOUNT_BYTES) return;
    const after = [{ id, xml }, ...this.store.items(owner, node).filter((i) => i.id !== id)];
    const kept = after.slice(0, keep).reduce((n, i) => n + Buffer.byteLength(i.xml), 0);
    const before = this.store.items(owner, node).reduce((n, i) => n + Buffer.byteLength(i.xml), 0);
    if (used - before + kept > PEP_ACCOUNT_BYTES) {
      // RFC 6120 §8.3.3.12: a local service policy (the per-account quota) refuses it.
      throw new StanzaError('policy-violation', `PEP items of an account are limited to ${PEP_ACCOUNT_BYTES} bytes`);
    }
  }

  /** XEP-0060 §7.2: retract items; §7.2.2.1 notify when asked or configured. */
  retract(ev: IqEvent, el: Element): void {
    const ids = childElements(el)
      .filter((c) => c.getName() === 'item')
      .map((c) => c.attrs.id as string | undefined);
    // §7.2.3 (Item or ItemID Required).
    if (ids.length === 0 || ids.some((id) => !id)) throw pubsubError('bad-request', 'item-required');
    const { owner, node, config } = this.ownNode(ev, el);
    // §7.2.3 (Item Does Not Exist), checked for all before any is removed.
    for (const id of ids) if (!this.store.item(owner, node, id!)) throw new StanzaError('item-not-found', `no item ${id}`);
    for (const id of ids) this.store.retract(owner, node, id!);
    ev.reply();
    if (truthy(el.attrs.notify) || (el.attrs.notify === undefined && config['pubsub#notify_retract'] === '1')) {
      const inner = `<items${attr('node', node)}>${ids.map((id) => `<retract${attr('id', id)}/>`).join('')}</items>`;
      this.notify(owner, this.audience(owner, node, config), inner);
    }
  }

  /** XEP-0060 §8.1: create a node, optionally configured (§8.1.3). */
  create(ev: IqEvent, el: Element, configureEl: Element | null): void {
    const owner = ev.session!.bare;
    // §8.1.2 instant nodes are not offered: PEP nodes are named by their namespace.
    if (el.attrs.node === undefined) throw pubsubError('not-acceptable', 'nodeid-required');
    const node = nodeAttr(el);
    // §8.1.3 (NodeID already exists): conflict.
    if (this.store.node(owner, node)) throw new StanzaError('conflict', `node ${node} exists`);
    const form = formIn(configureEl);
    const fields = form ? readForm(form, NODE_CONFIG) : null;
    this.createNode(owner, node, fields ? applyFields(defaultConfig(), fields) : defaultConfig());
    ev.reply();
  }

  /** XEP-0060 §8.2: configuration form, get and submit. */
  configure(ev: IqEvent, el: Element): void {
    const { owner, node, config } = this.ownNode(ev, el);
    if (ev.type === 'get') {
      ev.reply(`<pubsub xmlns='${PUBSUB_OWNER}'><configure${attr('node', node)}>${configForm(config)}</configure></pubsub>`);
      return;
    }
    const form = formIn(el);
    // §8.2.5 (no form submitted): bad-request.
    if (!form) throw new StanzaError('bad-request', 'configuration form required');
    const fields = readForm(form, NODE_CONFIG);
    if (fields) {
      const next = applyFields(config, fields);
      this.store.setNode(owner, node, next);
      // A lower max_items applies at once (XEP-0060 §16.4.4: the node persists at most that many).
      this.store.trim(owner, node, keepCount(next));
    }
    ev.reply();
  }

  /** XEP-0060 §8.4: delete the node; §8.4.2.1 subscribers hear of it. */
  deleteNode(ev: IqEvent, el: Element): void {
    const { owner, node, config } = this.ownNode(ev, el);
    const to = config['pubsub#notify_delete'] === '1' ? this.audience(owner, node, config) : null;
    this.store.deleteNode(owner, node);
    // §8.4.2: the node's subscriptions go with it (after they heard of the deletion).
    this.dropSubscriptions(owner, (s) => s.node === node);
    ev.reply();
    if (to) this.notify(owner, to, `<delete${attr('node', node)}/>`);
  }

  /** XEP-0060 §8.5: remove every item; §8.5.2.1 subscribers hear of it. */
  purge(ev: IqEvent, el: Element): void {
    const { owner, node, config } = this.ownNode(ev, el);
    this.store.purge(owner, node);
    ev.reply();
    if (config['pubsub#notify_retract'] === '1') this.notify(owner, this.audience(owner, node, config), `<purge${attr('node', node)}/>`);
  }

  // ------------------------------------------------------------------ explicit subscriptions

  /**
   * Who hears about the owner's node: the automatic subscribers (pep/notify.ts recipients) and
   * the explicit ones (resolved by addressee(): sessions, or bare JIDs to deliver to as such).
   */
  private audience(owner: string, node: string, config: NodeConfig): { sessions: Set<SessionState>; bare: Set<string> } {
    const out = { sessions: new Set(recipients(this.ctx, owner, node, config)), bare: new Set<string>() };
    for (const sub of readSubscriptions(this.ctx.storage.xml, owner)) if (sub.node === node) this.addressee(owner, config, sub, out);
    return out;
  }

  /**
   * XEP-0163 §4.3.2 for one explicit subscription, if its subscriber may still read the node
   * (XEP-0060 §4.5) and is not blocked (XEP-0191): a full JID gets one event at that resource;
   * a bare JID one at each available resource whose caps ask for the node, or, when none does,
   * one addressed to the bare JID (routed as RFC 6121 §8.5.2.1 says).
   */
  private addressee(owner: string, config: NodeConfig, sub: Subscription, out: { sessions: Set<SessionState>; bare: Set<string> }): void {
    const jid = Jid.tryParse(sub.jid);
    if (!jid || (jid.bare !== owner && this.ctx.blocked(owner, jid.bare)) || !mayRead(this.ctx, owner, jid.bare, config)) return;
    if (jid.resource !== null) {
      const st = this.ctx.sessions.full(jid.full);
      if (st) out.sessions.add(st);
      return;
    }
    const interested = this.ctx.sessions.bare(jid.bare).filter((st) => st.available && wants(st, sub.node));
    if (interested.length === 0) out.bare.add(jid.bare);
    for (const st of interested) out.sessions.add(st);
  }

  private notify(owner: string, to: { sessions: Set<SessionState>; bare: Set<string> }, inner: string): void {
    const sessions = [...to.sessions];
    deliverEvent(owner, sessions, inner);
    // An account some of whose resources get the event already is not sent another by bare JID.
    const covered = new Set(sessions.map((st) => st.bare));
    for (const bare of to.bare) if (!covered.has(bare)) this.ctx.deliverToAvailable(bare, eventMessage(owner, bare, inner), 'message');
  }

  private dropSubscriptions(owner: string, drop: (s: Subscription) => boolean): void {
    const list = readSubscriptions(this.ctx.storage.xml, owner);
    const kept = list.filter((s) => !drop(s));
    if (kept.length !== list.length) writeSubscriptions(this.ctx.storage.xml, owner, kept);
  }

  /**
   * XEP-0060 §6.1: subscribe the requester's bare JID or one of its full JIDs to a node it may
   * read; subscribing again answers the existing subscription (one per JID and node).
   */
  subscribe(ev: IqEvent, el: Element, options: Element | null): void {
    const owner = ev.to?.bare ?? ev.session!.bare;
    const requester = ev.session!.bare;
    const node = nodeAttr(el);
    const jid = subscriberJid(el, requester, 'bad-request');
    // §6.1.3 / §6.3: subscription options are not offered.
    if (options && formIn(options)) throw unsupported('subscription-options');
    // §6.1.3.12 (Node Does Not Exist), §6.1.3.2 (Presence Subscription Required), §6.1.3.4 (Not on Whitelist).
    const config = this.readable(owner, node, requester);
    const list = readSubscriptions(this.ctx.storage.xml, owner);
    let sub = list.find((s) => s.node === node && s.jid === jid);
    if (!sub) {
      // §6.1.3.9 (Too Many Subscriptions, type wait as in its example): the requester's own share
      // first, then the bound on what one account's nodes keep.
      const theirs = list.filter((s) => s.jid === requester || s.jid.startsWith(`${requester}/`)).length;
      if (theirs >= MAX_SUBSCRIPTIONS_PER_SUBSCRIBER || list.length >= MAX_SUBSCRIPTIONS) {
        const limit = theirs >= MAX_SUBSCRIPTIONS_PER_SUBSCRIBER ? `at most ${MAX_SUBSCRIPTIONS_PER_SUBSCRIBER} subscriptions per subscriber` : `at most ${MAX_SUBSCRIPTIONS} subscriptions per account`;
        throw pubsubError('policy-violation', 'too-many-subscriptions', limit, '', 'wait');
      }
      sub = { node, jid, subid: randomUUID() };
      writeSubscriptions(this.ctx.storage.xml, owner, [...list, sub]);
    }
    ev.reply(`<pubsub xmlns='${PUBSUB}'>${subscriptionXml(sub)}</pubsub>`);
    // §6.1.7 and XEP-0163 §4.3.4: a new subscriber gets the last published item.
    if (config['pubsub#send_last_published_item'] === 'never' || config['pubsub#deliver_notifications'] === '0') return;
    const last = this.store.items(owner, node, 1)[0];
    if (!last) return;
    const to = { sessions: new Set<SessionState>(), bare: new Set<string>() };
    this.addressee(owner, config, sub, to);
    this.notify(owner, to, `<items${attr('node', node)}>${itemXml(last.id, last.xml, config)}</items>`);
  }

  /** XEP-0060 §6.2: end the requester's subscription (of that JID; of that subid when given). */
  unsubscribe(ev: IqEvent, el: Element): void {
    const owner = ev.to?.bare ?? ev.session!.bare;
    const node = nodeAttr(el);
    // §6.2.3.3 (Insufficient Privileges): only one's own JIDs.
    const jid = subscriberJid(el, ev.session!.bare, 'forbidden');
    // §6.2.3.4 (Node Does Not Exist).
    if (!this.store.node(owner, node)) throw new StanzaError('item-not-found', `no node ${node}`);
    const subs = readSubscriptions(this.ctx.storage.xml, owner).filter((s) => s.node === node && s.jid === jid);
    // §6.2.3.2 (No Such Subscriber).
    if (subs.length === 0) throw pubsubError('unexpected-request', 'not-subscribed', undefined, '', 'cancel');
    const subid = el.attrs.subid as string | undefined;
    // §6.2.3.5 (Bad Subscription ID).
    if (subid !== undefined && !subs.some((s) => s.subid === subid)) throw pubsubError('not-acceptable', 'invalid-subid');
    this.dropSubscriptions(owner, (s) => s.node === node && s.jid === jid);
    ev.reply();
  }

  /** XEP-0060 §5.6: the requester's subscriptions at this service (of one node when named). */
  subscriptions(ev: IqEvent, el: Element): void {
    const requester = ev.session!.bare;
    const node = el.attrs.node as string | undefined;
    const mine = readSubscriptions(this.ctx.storage.xml, ev.to!.bare).filter(
      (s) => (node === undefined || s.node === node) && (Jid.tryParse(s.jid)?.bare ?? null) === requester,
    );
    ev.reply(`<pubsub xmlns='${PUBSUB}'><subscriptions${attr('node', node)}>${mine.map(subscriptionXml).join('')}</subscriptions></pubsub>`);
  }

  // ------------------------------------------------------------------ reads

  /** XEP-0060 §6.5: items of a node, newest N or by id, oldest first in the answer. */
  items(ev: IqEvent, el: Element): void {
    const owner = ev.to!.bare;
    const node = nodeAttr(el);
    this.readable(owner, node, ev.session!.bare);
    const wanted = childElements(el)
      .filter((c) => c.getName() === 'item' && typeof c.attrs.id === 'string')
      .map((c) => c.attrs.id as string);
    let list;
    if (wanted.length > 0) {
      // §6.5.8: the items asked for that exist.
      list = wanted.map((id) => this.store.item(owner, node, id)).filter((i) => i !== null);
    } else {
      const max = el.attrs.max_items;
      let n: number | undefined;
      if (max !== undefined) {
        // §6.5.7: max_items asks for the N most recent.
        if (!/^\d{1,9}$/.test(String(max)) || Number(max) < 1) throw new StanzaError('bad-request', 'max_items must be a positive number');
        n = Number(max);
      }
      list = this.store.items(owner, node, n).reverse();
    }
    // deliver_payloads concerns notifications only (XEP-0060 §16.4.4): retrieval returns payloads.
    const body = list.map((i) => `<item${attr('id', i.id)}>${i.xml}</item>`).join('');
    ev.reply(`<pubsub xmlns='${PUBSUB}'><items${attr('node', node)}>${body}</items></pubsub>`);
  }

  /** XEP-0060 §5.7: the requester's affiliations at its own service (owner of every node). */
  affiliations(ev: IqEvent): void {
    if (ev.to!.bare !== ev.session!.bare) {
      ev.reply(`<pubsub xmlns='${PUBSUB}'><affiliations/></pubsub>`);
      return;
    }
    const list = this.store.nodes(ev.to!.bare).map((n) => `<affiliation${attr('node', n.node)} affiliation='owner'/>`);
    ev.reply(`<pubsub xmlns='${PUBSUB}'><affiliations>${list.join('')}</affiliations></pubsub>`);
  }

  /** XEP-0060 §5.2 / §5.4: disco#info of one node. */
  discoInfo(ev: IqEvent, node: string): void {
    this.readable(ev.to!.bare, node, ev.session!.bare);
    ev.reply(`<query xmlns='${DISCO_INFO}'${attr('node', node)}><identity category='pubsub' type='leaf'/><feature var='${PUBSUB}'/></query>`);
  }

  /** XEP-0060 §5.2: the nodes the requester may see; §5.5: a node's items (names are ids). */
  discoItems(ev: IqEvent, node: string | undefined): void {
    const owner = ev.to!.bare;
    const requester = ev.session!.bare;
    let body: string;
    if (node === undefined) {
      body = this.store
        .nodes(owner)
        .filter((n) => mayRead(this.ctx, owner, requester, withDefaults(n.config)))
        .map((n) => `<item${attr('jid', owner)}${attr('node', n.node)}${attr('name', n.config['pubsub#title'] || undefined)}/>`)
        .join('');
    } else {
      this.readable(owner, node, requester);
      body = this.store
        .items(owner, node)
        .map((i) => `<item${attr('jid', owner)}${attr('name', i.id)}/>`)
        .join('');
    }
    ev.reply(`<query xmlns='${DISCO_ITEMS}'${attr('node', node)}>${body}</query>`);
  }

  // ------------------------------------------------------------------ caps and interest

  /**
   * A resource sent available presence (`bytes`, as broadcast): learn what it wants to hear
   * about (XEP-0163 §4.2). A presence without caps leaves the interest it had (some clients
   * omit <c/> from status updates); a resource never announcing caps hears nothing.
   */
  presence(st: SessionState, bytes: Buffer | string): void {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    const start = capsStart(buf);
    if (start < 0) return;
    const end = capsEnd;
    // Clients repeat the same <c/> in every presence: the same bytes mean nothing changed. Kept
    // as a Buffer (compared in place, no decoding), which also keeps it off the shard mirrors.
    const last = st.data.get(CAPS_TAG);
    if (last instanceof Buffer && last.compare(buf, start, end) === 0) return;
    st.data.set(CAPS_TAG, Buffer.from(buf.subarray(start, end)));
    const caps = parseCapsTag(buf.toString('utf8', start, end));
    if (!caps) return;
    const key = capsKey(caps);
    if (st.data.get(CAPS_KEY) === key) return;
    st.data.set(CAPS_KEY, key);
    const known = this.caps.get(key);
    if (known) return this.interest(st, known);
    const now = Date.now();
    const pending = this.pendingByKey.get(key);
    if (pending && now - pending.since < QUERY_PATIENCE_MS) {
      pending.waiting.add(st);
      return;
    }
    this.ask(st, caps, key, pending?.waiting ?? new Set());
  }

  /** XEP-0115 §6.2: ask the resource what its caps mean (disco#info to node#ver). */
  private ask(st: SessionState, caps: Caps, key: string, waiting: Set<SessionState>): void {
    const old = this.pendingByKey.get(key);
    if (old) for (const [id, q] of this.pending) if (q === old) this.pending.delete(id);
    if (this.pending.size >= MAX_PENDING) {
      // Forget the oldest question: its askers can re-announce.
      const first = this.pending.keys().next().value as string;
      const q = this.pending.get(first)!;
      this.pending.delete(first);
      if (this.pendingByKey.get(q.key) === q) this.pendingByKey.delete(q.key);
    }
    const id = `pep-caps-${++this.seq}`;
    waiting.delete(st);
    const q: PendingQuery = { caps, key, asked: st.jid.full, since: Date.now(), waiting };
    this.pending.set(id, q);
    this.pendingByKey.set(key, q);
    st.deliver(discoQuery(id, this.ctx.domain, st.jid.full, caps), 'iq');
  }

  /** The answer to a caps query (an iq result or error addressed to the server). */
  answer(id: string | null, from: string, stanza: Element): boolean {
    if (id === null) return false;
    const q = this.pending.get(id);
    if (!q) return false;
    // Only the resource asked may answer (its session, not a 'from' it could write).
    if (from !== q.asked) return true;
    this.pending.delete(id);
    if (this.pendingByKey.get(q.key) === q) this.pendingByKey.delete(q.key);
    const asker = this.ctx.sessions.full(q.asked);
    const query = stanza.attrs.type === 'result' ? stanza.getChild('query', DISCO_INFO) : undefined;
    if (!query) {
      // No answer from that one: ask the next resource that announced the same caps.
      this.askNext(q);
      return true;
    }
    const nodes = boundInterest(notifyNodes(featuresOf(query)));
    // XEP-0115 §5.4 step 3.6: a verified answer describes every client with that hash.
    if (q.caps.hash === null || verifies(q.caps, query)) {
      this.caps.set(q.key, nodes);
      if (asker && asker.data.get(CAPS_KEY) === q.key) this.interest(asker, nodes);
      for (const s of q.waiting) if (s.data.get(CAPS_KEY) === q.key) this.interest(s, nodes);
      return true;
    }
    // §5.4 step 3.7: not verified — not cached, but true of the resource that said it.
    if (asker && asker.data.get(CAPS_KEY) === q.key) this.interest(asker, nodes);
    this.askNext(q);
    return true;
  }

  private askNext(q: PendingQuery): void {
    for (const s of q.waiting) {
      if (this.ctx.sessions.full(s.jid.full) === s && s.data.get(CAPS_KEY) === q.key) {
        this.ask(s, q.caps, q.key, q.waiting);
        return;
      }
    }
  }

  /**
   * Record a resource's +notify nodes; for nodes it newly cares about, send the last published
   * item of each contact (and of its own account) it may read (XEP-0163 §4.3.4).
   */
  interest(st: SessionState, announced: readonly string[]): void {
    const before = notifySet(st);
    // A resource's interest travels with its session state to the other shards: bounded.
    const nodes = boundInterest(announced);
    st.data.set(NOTIFY_KEY, nodes.join('\n'));
    const fresh = new Set(nodes.filter((n) => !before.has(n)));
    if (fresh.size === 0 || !st.available) return;
    const publishers = [st.bare];
    const roster = this.ctx.storage.rosters.peek?.(st.bare) ?? this.ctx.storage.rosters.list(st.bare);
    for (const item of roster) {
      if (item.jid !== st.bare && receivesPresence(item.subscription)) publishers.push(item.jid);
    }
    this.sendLast(st, publishers, fresh);
  }

  /**
   * XEP-0163 §4.3.4: a contact now receives the owner's presence (the owner approved its
   * subscription): its interested resources get the owner's last items.
   */
  approved(owner: string, contact: string): void {
    for (const s of this.ctx.sessions.bare(contact)) {
      const wanted = notifySet(s);
      if (s.available && wanted.size > 0) this.sendLast(s, [owner], wanted);
    }
  }

  /** The last item of each node of `owners` named in `nodes` that `st` may read. */
  private sendLast(st: SessionState, owners: readonly string[], nodes: ReadonlySet<string>): void {
    for (const owner of owners) {
      if (owner !== st.bare && this.ctx.blocked(owner, st.bare)) continue;
      for (const { node, config: stored } of this.store.nodes(owner)) {
        if (!nodes.has(node)) continue;
        const config = withDefaults(stored);
        if (config['pubsub#send_last_published_item'] === 'never' || config['pubsub#deliver_notifications'] === '0') continue;
        if (!mayRead(this.ctx, owner, st.bare, config)) continue;
        const last = this.store.items(owner, node, 1)[0];
        if (last) deliverEvent(owner, [st], `<items${attr('node', node)}>${itemXml(last.id, last.xml, config)}</items>`);
      }
    }
  }

  /** Forget a gone resource's place in caps queries. */
  gone(st: SessionState): void {
    const key = st.data.get(CAPS_KEY);
    if (typeof key === 'string') this.pendingByKey.get(key)?.waiting.delete(st);
  }
}

/**
 * Where the start tag of a presence's <c/> begins in its bytes (-1: none), found without
 * decoding or parsing the whole stanza (presence is the hottest broadcast).
 */
function capsStart(bytes: Buffer): number {
  const at = bytes.indexOf(CAPS_BYTES);
  if (at < 0) return -1;
  const start = bytes.lastIndexOf(0x3c, at);
  const end = bytes.indexOf(0x3e, at);
  if (start < 0 || end < 0) return -1;
  capsEnd = end + 1;
  return start;
}
/** Where the tag capsStart() found ends (a second result without allocating a pair per presence). */
let capsEnd = 0;

/** The caps a presence announces (its bytes or text), or null. */
export function extractCaps(bytes: Buffer | string): Caps | null {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const start = capsStart(buf);
  return start < 0 ? null : parseCapsTag(buf.toString('utf8', start, capsEnd));
}

function parseCapsTag(found: string): Caps | null {
  const tag = found.endsWith('/>') ? found : `${found.slice(0, -1)}/>`;
  try {
    const el = parseElement(`<presence>${tag}</presence>`);
    return capsOf(el);
  } catch {
    return null;
  }
}

/** A payload stored and sent later in other stanzas carries its own namespace declarations. */
function selfContained(payload: Element): void {
  // The core refuses unbound prefixes; a payload that still has one is not ours to repair.
  const [unbound] = selfContain(payload);
  if (unbound !== undefined) throw pubsubError('bad-request', 'invalid-payload', `prefix ${unbound} is not declared`);
}

function pubsubOf(ev: IqEvent): Element {
  if (ev.payload.getName() !== 'pubsub') throw new StanzaError('bad-request', 'expected <pubsub/>');
  return ev.payload;
}

/** XEP-0060 §4.6 / §10: a request for a feature Hermod does not offer. */
function unsupported(feature: string): StanzaError {
  return pubsubError('feature-not-implemented', 'unsupported', undefined, ` feature='${feature}'`);
}

export function installPep(ctx: RouterContext): PepService {
  const pep = new PepService(ctx);
  const owns = (ev: IqEvent) => ev.to!.bare === ev.session!.bare;

  // XEP-0163 §6.1: the account's bare JID is a pubsub service of type pep.
  ctx.features.addAccountIdentity({ category: 'pubsub', type: 'pep' });
  for (const f of PEP_FEATURES) ctx.features.addAccountFeature(f);

  ctx.hooks.on(`iq-set/self/${PUBSUB}`, (ev: IqEvent) => {
    const pubsub = pubsubOf(ev);
    const act = action(pubsub, 'publish-options', 'configure', 'options');
    switch (act.getName()) {
      case 'publish':
        pep.publish(ev, act, pubsub.getChild('publish-options') ?? null);
        return true;
      case 'retract':
        pep.retract(ev, act);
        return true;
      case 'create':
        pep.create(ev, act, pubsub.getChild('configure') ?? null);
        return true;
      case 'subscribe':
        pep.subscribe(ev, act, pubsub.getChild('options') ?? null);
        return true;
      case 'unsubscribe':
        pep.unsubscribe(ev, act);
        return true;
      case 'options':
        throw unsupported('subscription-options');
      default:
        throw new StanzaError('bad-request', `unknown pubsub action ${act.getName()}`);
    }
  });
  // XEP-0060 §7.1.3, §7.2.3 (Insufficient Privileges): only the owner changes its PEP service;
  // a contact may subscribe and unsubscribe (§6.1, §6.2).
  ctx.hooks.on(`iq-set/bare/${PUBSUB}`, (ev: IqEvent) => {
    const pubsub = pubsubOf(ev);
    const act = action(pubsub, 'publish-options', 'configure', 'options');
    if (act.getName() === 'subscribe') pep.subscribe(ev, act, pubsub.getChild('options') ?? null);
    else if (act.getName() === 'unsubscribe') pep.unsubscribe(ev, act);
    else if (act.getName() === 'options') throw unsupported('subscription-options');
    else throw new StanzaError('forbidden', 'only the account itself changes its PEP nodes');
    return true;
  });
  // Reads: on the 'bare' chain, which requests to one's own account reach as well.
  ctx.hooks.on(`iq-get/bare/${PUBSUB}`, (ev: IqEvent) => {
    const act = action(pubsubOf(ev));
    switch (act.getName()) {
      case 'items':
        pep.items(ev, act);
        return true;
      case 'affiliations':
        pep.affiliations(ev);
        return true;
      case 'subscriptions':
        pep.subscriptions(ev, act);
        return true;
      case 'options':
      case 'default':
        throw unsupported('subscription-options');
      default:
        throw new StanzaError('bad-request', `unknown pubsub request ${act.getName()}`);
    }
  });

  const owner = (ev: IqEvent) => {
    if (!owns(ev)) throw new StanzaError('forbidden', 'only the owner manages PEP nodes');
    if (ev.payload.getName() !== 'pubsub') throw new StanzaError('bad-request', 'expected <pubsub/>');
    return action(ev.payload);
  };
  const ownerHandler = (ev: IqEvent) => {
    const act = owner(ev);
    switch (act.getName()) {
      case 'configure':
        pep.configure(ev, act);
        return true;
      case 'default':
        // XEP-0060 §8.3: the default configuration of new nodes.
        if (ev.type !== 'get') throw new StanzaError('bad-request', 'default is a get');
        ev.reply(`<pubsub xmlns='${PUBSUB_OWNER}'><default>${configForm(defaultConfig())}</default></pubsub>`);
        return true;
      case 'delete':
        if (ev.type !== 'set') throw new StanzaError('bad-request', 'delete is a set');
        pep.deleteNode(ev, act);
        return true;
      case 'purge':
        if (ev.type !== 'set') throw new StanzaError('bad-request', 'purge is a set');
        pep.purge(ev, act);
        return true;
      case 'affiliations':
      case 'subscriptions':
        throw unsupported('modify-affiliations');
      default:
        throw new StanzaError('bad-request', `unknown pubsub#owner request ${act.getName()}`);
    }
  };
  ctx.hooks.on(`iq-get/bare/${PUBSUB_OWNER}`, ownerHandler);
  ctx.hooks.on(`iq-set/bare/${PUBSUB_OWNER}`, ownerHandler);

  // XEP-0030 on the account: node-level info and items, and the list of nodes (priority over
  // the disco module, which answers the account itself and knows no nodes).
  ctx.hooks.on(
    `iq-get/bare/${DISCO_INFO}`,
    (ev: IqEvent) => {
      const node = ev.payload.attrs.node as string | undefined;
      if (node === undefined) return false;
      pep.discoInfo(ev, node);
      return true;
    },
    10,
  );
  ctx.hooks.on(
    `iq-get/bare/${DISCO_ITEMS}`,
    (ev: IqEvent) => {
      pep.discoItems(ev, ev.payload.attrs.node as string | undefined);
      return true;
    },
    10,
  );

  // XEP-0115: caps in available presence, and the answers to the server's caps queries.
  ctx.hooks.on('presence/available', (ev: PresenceAvailableEvent) => {
    try {
      // The broadcast left the stamped bytes on the session: searched there, nothing is copied.
      pep.presence(ev.session, ev.session.presence ?? ev.view.raw());
    } catch (err) {
      ctx.log?.warn({ err, jid: ev.session.jid.full }, 'PEP caps handling failed');
    }
  });
  const answer = (ev: { session: SessionState; id: string | null; stanza: Element }) => pep.answer(ev.id, ev.session.jid.full, ev.stanza);
  ctx.hooks.on('iq-result/host', answer);
  ctx.hooks.on('iq-error/host', answer);
  ctx.hooks.on('session/unbound', (ev: { session: SessionState }) => pep.gone(ev.session));
  ctx.hooks.on('subscription/approved', (ev: SubscriptionApprovedEvent) => {
    try {
      pep.approved(ev.owner, ev.contact);
    } catch (err) {
      ctx.log?.warn({ err, owner: ev.owner, contact: ev.contact }, 'PEP last items after approval failed');
    }
  });
  return pep;
}

export const pep: Module = {
  name: 'pep',
  install(ctx) {
    installPep(ctx);
  },
};
