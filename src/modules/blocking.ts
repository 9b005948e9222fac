/**
 * XEP-0191 Blocking Command: an account keeps a list of JIDs it will not talk to.
 *
 * - §3.2 blocklist get; §3.3 block, §3.4 unblock (some or all), each answered and then pushed
 *   to every resource of the account that has asked for the blocklist ("interested" resources).
 * - Enforcement runs on the router's hooks, so that every path a stanza can take is covered:
 *   'stanza/pre-route' sees each stanza a client sends (outbound refusal, inbound drop), and
 *   'presence/blocked' guards presence the server generates (broadcasts, probe answers, current
 *   presence after a subscription, directed presence).
 *
 * Lists are read through the store's `peek` (src/storage/blocklist-cache.ts for SQLite: a Set
 * per account, exact across shards through a shared write epoch, no TTL and no clock read per
 * stanza), so a block set on one shard applies on every other at its next stanza. When no
 * account blocks anything (`anyBlocked`), each check ends at one integer compare.
 */
import { StanzaKind, StanzaType } from '../core/api.js';
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { IqEvent, Module, PreRouteEvent, PresenceBlockedEvent, RouterContext } from '../router/context.js';
import type { SessionState } from '../router/session.js';
import type { BlocklistStore } from '../storage/types.js';
import { receivesPresence, sendsPresence } from '../router/subscription.js';
import { attr } from '../xml/escape.js';
import { childElements } from '../xml/element.js';

export const BLOCKING_NS = 'urn:xmpp:blocking';
export const BLOCKING_ERRORS_NS = 'urn:xmpp:blocking:errors';
/** session.data key: this resource asked for the blocklist, so it receives pushes (§3.3). */
const INTERESTED = 'blocking';
/** Most JIDs one account may block; beyond, a block is refused with resource-constraint. */
export const MAX_BLOCKED = 1000;

/**
 * XEP-0191 §3.3 defers to XEP-0016 §2.1 for matching: an item blocks a JID when it is that JID,
 * its bare JID, its domain/resource, or its domain.
 */
export function blockMatches(list: ReadonlySet<string>, jid: Jid): boolean {
  if (list.size === 0) return false;
  if (list.has(jid.full) || list.has(jid.domain)) return true;
  if (jid.resource === null) return false;
  return (jid.local !== null && list.has(jid.bare)) || list.has(`${jid.domain}/${jid.resource}`);
}

/** The same for a prepared bare JID string (presence checks carry no resource). */
function blocksBare(list: ReadonlySet<string>, bare: string): boolean {
  if (list.size === 0) return false;
  return list.has(bare) || list.has(bare.slice(bare.indexOf('@') + 1));
}

/**
 * Whether `owner`'s blocklist covers the bare JID `bare` (an item for it or for its domain), for
 * rare checks outside the router (MUC invitations). Read with list(), which always queries: the
 * MUC service of `--workers N` runs on the main thread, whose cache (peek) would not hear of the
 * shards' writes.
 */
export function blocklistCovers(store: BlocklistStore, owner: string, bare: string): boolean {
  return blocksBare(new Set(store.list(owner)), bare);
}

/** The blocked-error of §3.3: outbound stanzas to a blocked JID are refused with it. */
export function blockedError(): StanzaError {
  return new StanzaError('not-acceptable', 'you have blocked this contact', 'cancel', `<blocked xmlns='${BLOCKING_ERRORS_NS}'/>`);
}

/**
 * The read side of the store for the per-stanza checks. A store without `peek` (no cache of its
 * own) is read as a fresh Set each time: correct, only slower.
 */
class Blocklists {
  constructor(private readonly store: BlocklistStore) {}

  /** False when nobody on the server blocks anything: every check can stop here. */
  any(): boolean {
    return this.store.anyBlocked?.() ?? true;
  }

  get(owner: string): ReadonlySet<string> {
    return this.store.peek?.(owner) ?? new Set(this.store.list(owner));
  }
}

function itemsXml(jids: readonly string[]): string {
  return jids.map((j) => `<item${attr('jid', j)}/>`).join('');
}

/** The JIDs of a <block/> or <unblock/>: each item needs a valid 'jid' (§3.3: else bad-request / jid-malformed). */
function readItems(ev: IqEvent): string[] {
  const out: string[] = [];
  for (const item of childElements(ev.payload)) {
    if (item.getName() !== 'item') continue;
    const text = item.attrs.jid as string | undefined;
    if (text === undefined || text === '') throw new StanzaError('bad-request', 'item without jid');
    out.push(Jid.parse(text).full); // throws jid-malformed
  }
  return out;
}

let pushCounter = 0;

/** §3.3, §3.4: tell every interested resource of the account what changed. */
function push(ctx: RouterContext, owner: string, name: 'block' | 'unblock', jids: readonly string[]): void {
  for (const s of ctx.sessions.bare(owner)) {
    if (s.data.get(INTERESTED) !== true) continue;
    pushCounter = (pushCounter + 1) % 0x7fffffff;
    const payload = jids.length === 0 ? `<${name} xmlns='${BLOCKING_NS}'/>` : `<${name} xmlns='${BLOCKING_NS}'>${itemsXml(jids)}</${name}>`;
    s.deliver(`<iq type='set'${attr('to', s.jid.full)} id='block${pushCounter.toString(36)}'>${payload}</iq>`, 'iq');
  }
}

function availableOf(ctx: RouterContext, bare: string): SessionState[] {
  return ctx.sessions.bare(bare).filter((s) => s.available);
}

/**
 * Who hears `owner`'s presence and is covered by `items`: subscribed contacts (from/both) and
 * recipients of directed presence. Returns target JIDs (bare, or full for a resource-level item).
 */
function presenceAudience(ctx: RouterContext, owner: string, items: ReadonlySet<string>, sessions: SessionState[]): Set<string> {
  const targets = new Set<string>();
  for (const item of ctx.storage.rosters.list(owner)) {
    if (!sendsPresence(item.subscription)) continue;
    if (blocksBare(items, item.jid)) targets.add(item.jid);
    else for (const r of ctx.sessions.bare(item.jid)) if (blockMatches(items, r.jid)) targets.add(r.jid.full);
  }
  for (const s of sessions) {
    for (const d of s.directed) {
      const j = Jid.tryParse(d);
      if (j && blockMatches(items, j)) targets.add(d);
    }
  }
  return targets;
}

function deliverTo(ctx: RouterContext, target: string, bytes: string | Uint8Array): void {
  if (target.includes('/')) ctx.sessions.full(target)?.deliver(bytes, 'presence');
  else ctx.deliverToAvailable(target, bytes, 'presence');
}

/** §3.3: the newly blocked stop seeing the account: unavailable from each available resource. */
function withdrawPresence(ctx: RouterContext, owner: string, blocked: readonly string[]): void {
  const sessions = availableOf(ctx, owner);
  const directed = ctx.sessions.bare(owner).filter((s) => s.directed.size > 0);
  if (sessions.length === 0 && directed.length === 0) return;
  const items = new Set(blocked);
  for (const target of presenceAudience(ctx, owner, items, [...new Set([...sessions, ...directed])])) {
    for (const s of sessions) {
      deliverTo(ctx, target, `<presence${attr('from', s.jid.full)}${attr('to', target)} type='unavailable'/>`);
    }
    for (const s of directed) s.directed.delete(target);
  }
}

/**
 * §3.4: the unblocked see the account's current presence again, if they are entitled to it; and
 * the account sees theirs (it was dropped while blocked), if subscribed.
 */
function restorePresence(ctx: RouterContext, owner: string, unblocked: readonly string[]): void {
  const sessions = availableOf(ctx, owner);
  if (sessions.length === 0) return;
  const items = new Set(unblocked);
  for (const target of presenceAudience(ctx, owner, items, [])) {
    if (ctx.blocked(owner, target.split('/')[0]!)) continue; // still blocked by another item
    for (const s of sessions) if (s.presence) deliverTo(ctx, target, s.presence);
  }
  for (const item of ctx.storage.rosters.list(owner)) {
    if (!receivesPresence(item.subscription) || !blocksBare(items, item.jid) || ctx.blocked(item.jid, owner)) continue;
    for (const c of availableOf(ctx, item.jid)) {
      if (c.presence) for (const s of sessions) s.deliver(c.presence, 'presence');
    }
  }
}

function onGet(ctx: RouterContext, ev: IqEvent): boolean {
  if (ev.payload.getName() !== 'blocklist') throw new StanzaError('bad-request', 'expected <blocklist/>');
  const st = ev.session!;
  st.data.set(INTERESTED, true);
  const items = itemsXml(ctx.storage.blocklist.list(st.bare)); // the store's code-point order
  ev.reply(items === '' ? `<blocklist xmlns='${BLOCKING_NS}'/>` : `<blocklist xmlns='${BLOCKING_NS}'>${items}</blocklist>`);
  return true;
}

function onSet(ctx: RouterContext, lists: Blocklists, ev: IqEvent): boolean {
  const owner = ev.session!.bare;
  const name = ev.payload.getName();
  if (name !== 'block' && name !== 'unblock') throw new StanzaError('bad-request', 'expected <block/> or <unblock/>');
  const jids = readItems(ev);
  const store = ctx.storage.blocklist;
  if (name === 'block') {
    // §3.3: a block must name at least one JID.
    if (jids.length === 0) throw new StanzaError('bad-request', 'block without items');
    const current = lists.get(owner);
    const fresh = [...new Set(jids)].filter((j) => !current.has(j));
    if (current.size + fresh.length > MAX_BLOCKED) {
      throw new StanzaError('resource-constraint', `at most ${MAX_BLOCKED} blocked JIDs per account`);
    }
    // Before the block takes effect, so that the withdrawal itself is not blocked.
    withdrawPresence(ctx, owner, fresh);
    store.add(owner, jids);
    ev.reply();
    push(ctx, owner, 'block', [...new Set(jids)]);
    return true;
  }
  // §3.4: an unblock without items unblocks everything.
  const removed = jids.length === 0 ? store.clear(owner) : store.remove(owner, jids);
  ev.reply();
  push(ctx, owner, 'unblock', jids.length === 0 ? [] : [...new Set(jids)]);
  restorePresence(ctx, owner, removed);
  return true;
}

/**
 * §3.3 (the user's side) and §3.5-style handling of the contact's side, for stanzas a client
 * sends. True when the stanza is consumed (dropped); throws the error to answer with.
 */
function preRoute(ctx: RouterContext, lists: Blocklists, ev: PreRouteEvent): boolean {
  const { session: st, view, to } = ev;
  if (to === null || !lists.any()) return false;
  const unanswerable = view.type === StanzaType.Error || (view.kind === StanzaKind.Iq && view.type === StanzaType.Result);
  // Outbound: the user addresses a JID it blocks — not routed, refused with <blocked/>.
  if (blockMatches(lists.get(st.bare), to)) {
    if (unanswerable) return true;
    throw blockedError();
  }
  // Inbound: the addressee (a local account) blocks the sender — never delivered. Messages and
  // IQ get/set learn only that the service is unavailable (the block is not revealed);
  // presence, results and errors vanish.
  if (to.local === null || to.domain !== ctx.domain || to.bare === st.bare) return false;
  if (!blockMatches(lists.get(to.bare), st.jid)) return false;
  if (view.kind === StanzaKind.Presence || unanswerable) return true;
  throw new StanzaError('service-unavailable');
}

export const blocking: Module = {
  name: 'blocking',
  install(ctx) {
    const lists = new Blocklists(ctx.storage.blocklist);
    ctx.features.add(BLOCKING_NS);
    ctx.hooks.on(`iq-get/self/${BLOCKING_NS}`, (ev: IqEvent) => onGet(ctx, ev));
    ctx.hooks.on(`iq-set/self/${BLOCKING_NS}`, (ev: IqEvent) => onSet(ctx, lists, ev));
    ctx.hooks.on('stanza/pre-route', (ev: PreRouteEvent) => preRoute(ctx, lists, ev));
    // Presence the server fans out: kept away in both directions.
    ctx.hooks.on(
      'presence/blocked',
      (ev: PresenceBlockedEvent) => lists.any() && (blocksBare(lists.get(ev.to), ev.from) || blocksBare(lists.get(ev.from), ev.to)),
    );
  },
};
