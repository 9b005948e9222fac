/**
 * Presence (RFC 6121 §4) and subscriptions (RFC 6121 §3) for local accounts.
 *
 * Fan-out builds the stamped bytes once and writes that same buffer to every recipient session.
 * Subscription stanzas are rare and change state: they take the cold path (ltx) because they are
 * re-addressed to bare JIDs (§3.1.2), not merely stamped.
 */
import type { StanzaView } from '../core/api.js';
import { StanzaType } from '../core/api.js';
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { RosterItem } from '../storage/types.js';
import { appendChild, spliceFrom } from '../xml/splice.js';
import { attr } from '../xml/escape.js';
import { type Element, parseElement } from '../xml/element.js';
import type { RouterContext } from './context.js';
import { checkRosterRoom } from './roster.js';
import type { SessionState } from './session.js';
import {
  type SubState,
  type SubscriptionType,
  inbound,
  outbound,
  receivesPresence,
  sendsPresence,
} from './subscription.js';

const PRIORITY = /<priority(?:\s[^>]*)?>\s*([+-]?\d+)\s*<\/priority>/;

/**
 * RFC 6121 §4.7.2.3: priority is an integer -128..127; absent means 0. Read with a scan of the
 * stanza text instead of a parse (presence broadcasts are frequent). Out of range → bad-request.
 */
export function readPriority(xml: string): number {
  const m = PRIORITY.exec(xml);
  if (!m) return 0;
  const p = Number(m[1]);
  if (p < -128 || p > 127) throw new StanzaError('bad-request', 'priority must be between -128 and 127');
  return p;
}

const SUB_TYPES: Partial<Record<StanzaType, SubscriptionType>> = {
  [StanzaType.Subscribe]: 'subscribe',
  [StanzaType.Subscribed]: 'subscribed',
  [StanzaType.Unsubscribe]: 'unsubscribe',
  [StanzaType.Unsubscribed]: 'unsubscribed',
};

export function subscriptionType(type: StanzaType): SubscriptionType | null {
  return SUB_TYPES[type] ?? null;
}

const NOTHING = (): void => undefined;

export class PresenceEngine {
  constructor(private readonly ctx: RouterContext) {}

  private get rosters() {
    return this.ctx.storage.rosters;
  }

  /** The roster, read-only: without a copy when the store can (every broadcast reads it). */
  private rosterOf(bare: string): readonly Readonly<RosterItem>[] {
    return this.rosters.peek?.(bare) ?? this.rosters.list(bare);
  }

  /** Sessions of an account that have sent available presence. */
  private available(bare: string): SessionState[] {
    return this.ctx.sessions.bare(bare).filter((s) => s.available);
  }

  // ---------------------------------------------------------------- broadcast (§4.2, §4.4, §4.5)

  /** <presence/> without 'to' and without type (or type='unavailable'). */
  broadcast(st: SessionState, view: StanzaView): void {
    if (view.type === StanzaType.Unavailable) {
      // Nothing to withdraw unless presence was announced, broadcast or directed.
      if (st.available || st.directed.size > 0) this.goUnavailable(st, this.stamped(st, view));
      return;
    }
    const bytes = this.stamped(st, view);
    // Most presence carries no <priority/>: a native search of the bytes spares decoding it.
    const priority = bytes.includes('<priority') ? readPriority(view.toString()) : 0;
    const initial = !st.available;
    const wasNegative = st.priority < 0;
    st.available = true;
    st.priority = priority;
    st.presence = bytes;

    // §4.2.2 / §4.4.2: to every contact with subscription from/both (all their available
    // resources), and to all of the account's own available resources, this one included.
    const roster = this.rosterOf(st.bare);
    this.fanOut(st.bare, roster, bytes);

    if (initial) {
      // §4.2.2 step 1 (probes), answered locally: the current presence of every contact we are
      // subscribed to (to/both), then of our own other resources.
      for (const item of roster) {
        if (!receivesPresence(item.subscription)) continue;
        if (this.ctx.blocked(item.jid, st.bare)) continue;
        for (const c of this.available(item.jid)) if (c.presence) st.deliver(c.presence, 'presence');
      }
      for (const other of this.available(st.bare)) {
        if (other !== st && other.presence) st.deliver(other.presence, 'presence');
      }
      // §3.1.3: subscription requests that arrived while the account was offline.
      for (const p of this.rosters.listPending(st.bare)) st.deliver(p.stanza, 'presence');
    }
    // XEP-0160: offline messages go to the first resource with non-negative priority.
    if (priority >= 0 && (initial || wasNegative)) this.flushOffline(st);
  }

  /**
   * Presence addressed to the account's own bare JID is a broadcast (§4.2.1); its 'to' would
   * mislead every contact it reaches, so this rare form is re-serialised without it.
   */
  private stamped(st: SessionState, view: StanzaView): Buffer {
    if (view.to() === null) return spliceFrom(view, st.fromStamp);
    const el = parseElement(view.toString());
    delete el.attrs.to;
    delete el.attrs.from;
    const rest = el.toString().slice(el.name.length + 1);
    return Buffer.concat([Buffer.from(`<${el.name}`), st.fromStamp, Buffer.from(rest)]);
  }

  /** Deliver bytes to contacts with from/both and to the account's own available resources. */
  private fanOut(bare: string, roster: readonly Readonly<RosterItem>[], bytes: Uint8Array, except?: SessionState): void {
    for (const item of roster) {
      if (sendsPresence(item.subscription) && !this.ctx.blocked(bare, item.jid)) {
        this.ctx.deliverToAvailable(item.jid, bytes, 'presence');
      }
    }
    for (const own of this.available(bare)) if (own !== except) own.deliver(bytes, 'presence');
  }

  private goUnavailable(st: SessionState, bytes: Uint8Array): void {
    const wasAvailable = st.available;
    st.available = false;
    st.presence = null;
    // §4.5.2: to subscribers and the account's other resources (when it had been available),
    // and to every entity that got directed presence (§4.6.3) and is not already covered.
    const subscribers = new Set<string>();
    if (wasAvailable) {
      const roster = this.rosterOf(st.bare);
      this.fanOut(st.bare, roster, bytes, st);
      for (const i of roster) if (sendsPresence(i.subscription)) subscribers.add(i.jid);
    }
    for (const jid of st.directed) {
      const target = Jid.tryParse(jid);
      if (target && !subscribers.has(target.bare)) this.deliverDirected(st.bare, target, bytes);
    }
    st.directed.clear();
  }

  /** The session is going away: RFC 6121 §4.5.2 unavailable on its behalf. */
  sessionGone(st: SessionState): void {
    if (!st.available && st.directed.size === 0) return;
    this.goUnavailable(st, Buffer.from(`<presence${attr('from', st.jid.full)} type='unavailable'/>`));
  }

  /** RFC 6121 §8.5.2.2.1: messages stored while the account had no available resource. */
  flushOffline(st: SessionState): void {
    const messages = this.ctx.storage.offline.takeAll(st.bare);
    for (const m of messages) {
      // XEP-0203: when and by whom the message was delayed.
      const delay = `<delay xmlns='urn:xmpp:delay'${attr('from', this.ctx.domain)}${attr('stamp', m.stamp.toISOString())}/>`;
      st.deliver(appendChild(Buffer.from(m.stanza, 'utf8'), delay), 'message');
    }
  }

  // ---------------------------------------------------------------- directed presence (§4.6)

  directed(st: SessionState, view: StanzaView, target: Jid): void {
    const delivered = this.deliverDirected(st.bare, target, spliceFrom(view, st.fromStamp));
    if (view.type === StanzaType.Unavailable) st.directed.delete(target.full);
    else if (delivered) {
      // §4.6.3: remember it unless the target already hears our broadcasts. Only a target that
      // got it needs our unavailable later: remembering every address a client names (accounts
      // that do not exist, made-up resources) would grow the session without bound.
      const item = target.local === null ? null : this.rosters.get(st.bare, target.bare);
      if (!item || !sendsPresence(item.subscription)) st.directed.add(target.full);
    }
  }

  /** §8.5.2.1.2 / §8.5.3: presence to a bare JID goes to all available resources; to a full
   * JID only to that resource; otherwise it is silently dropped (§8.5.1, §8.5.2.2.2, §8.5.3.2.2).
   * Whether any session got it. */
  private deliverDirected(from: string, target: Jid, bytes: Uint8Array): boolean {
    if (target.domain !== this.ctx.domain || target.local === null) return false;
    if (this.ctx.blocked(from, target.bare)) return false;
    if (target.resource !== null) {
      const s = this.ctx.sessions.full(target.full);
      s?.deliver(bytes, 'presence');
      return s !== undefined;
    }
    return this.ctx.deliverToAvailable(target.bare, bytes, 'presence') > 0;
  }

  /** A client-sent probe (§4.3): answered with the current presence when subscribed. */
  probe(st: SessionState, target: Jid): void {
    if (target.local === null) return;
    const item = this.rosters.get(st.bare, target.bare);
    if (!item || !receivesPresence(item.subscription) || this.ctx.blocked(target.bare, st.bare)) return;
    for (const c of this.available(target.bare)) {
      if (c.presence && (target.resource === null || c.jid.resource === target.resource)) st.deliver(c.presence, 'presence');
    }
  }

  // ---------------------------------------------------------------- subscriptions (§3)

  private subState(owner: string, contact: string): { item: RosterItem | null; state: SubState } {
    const item = this.rosters.get(owner, contact);
    return {
      item,
      state: {
        subscription: item?.subscription ?? 'none',
        pendingOut: item?.ask === 'subscribe',
        pendingIn: this.rosters.getPending(owner, contact) !== null,
      },
    };
  }

  /**
   * Store the new state of `owner`'s relationship with `contact` and push the roster item when
   * it changed. Returns what presence must do once the subscription stanza itself has been
   * delivered: follow the 'from' half (§3.1.5: a new subscriber gets our current presence;
   * §3.2.2, §3.3.3: a cancelled one gets unavailable).
   */
  private apply(
    owner: string,
    contact: string,
    item: RosterItem | null,
    prev: SubState,
    next: SubState,
    opts: { create?: boolean; approved?: boolean; pendingStanza?: string },
  ): () => void {
    const approved = opts.approved ?? item?.approved ?? false;
    const itemChanged =
      next.subscription !== prev.subscription || next.pendingOut !== prev.pendingOut || approved !== (item?.approved ?? false);
    if (itemChanged || (opts.create && !item)) {
      if (item || opts.create || next.subscription !== 'none' || next.pendingOut || approved) {
        const updated: RosterItem = {
          jid: contact,
          name: item?.name ?? null,
          groups: item?.groups ?? [],
          subscription: next.subscription,
          ask: next.pendingOut ? 'subscribe' : null,
          // A pre-approval is used up once the contact is subscribed.
          approved: sendsPresence(next.subscription) ? false : approved,
        };
        const ver = this.rosters.set(owner, updated);
        this.ctx.pushRoster(owner, updated, ver);
      }
    }
    // Only a new request is stored: a repeat while Pending In changes nothing (RFC 6121 A.3.1),
    // so the first stanza is what gets redelivered at login and repeats cost no write.
    if (next.pendingIn && !prev.pendingIn && opts.pendingStanza) this.rosters.addPending(owner, contact, opts.pendingStanza);
    if (!next.pendingIn && prev.pendingIn) this.rosters.removePending(owner, contact);

    const had = sendsPresence(prev.subscription);
    const has = sendsPresence(next.subscription);
    if (!had && has) return () => this.sendCurrent(owner, contact);
    if (had && !has) {
      return () => {
        for (const s of this.available(owner)) {
          const bytes = `<presence${attr('from', s.jid.full)}${attr('to', contact)} type='unavailable'/>`;
          this.ctx.deliverToAvailable(contact, bytes, 'presence');
        }
      };
    }
    return NOTHING;
  }

  /** The current presence of every available resource of `owner`, to `contact`'s resources. */
  private sendCurrent(owner: string, contact: string): void {
    if (this.ctx.blocked(owner, contact)) return;
    for (const s of this.available(owner)) if (s.presence) this.ctx.deliverToAvailable(contact, s.presence, 'presence');
  }

  /** A subscription stanza from a local session: §3.1.2, §3.2.2, §3.3.2, §3.4.1. */
  fromClient(st: SessionState, view: StanzaView, type: SubscriptionType, target: Jid): void {
    const el = parseElement(view.toString());
    this.subscription(st.jid.toBare(), target.toBare(), type, el);
  }

  subscription(user: Jid, contactJid: Jid, type: SubscriptionType, el?: Element): void {
    const owner = user.bare;
    const contact = contactJid.toBare().bare;
    if (contact === owner) return; // a relationship with oneself is implicit (RFC 6121 §3.1.1 note)
    const { item, state } = this.subState(owner, contact);
    if (!item && type === 'subscribe') checkRosterRoom(this.ctx, owner);
    const out = outbound(state, type);
    let approved: boolean | undefined;
    if (out.preApproval === 'set') approved = true;
    if (out.preApproval === 'cancel') approved = false;
    // §3.1.2: a subscribe creates the roster item (subscription none, ask subscribe).
    const after = this.apply(owner, contact, item, state, out.next, { create: type === 'subscribe', approved });
    if (out.route) this.route(user, contactJid, type, el);
    after();
  }

  private route(user: Jid, contactJid: Jid, type: SubscriptionType, el?: Element): void {
    const owner = user.bare;
    const contact = contactJid.bare;
    // §3.1.2: stamped with the bare JID of the user, addressed to the bare JID of the contact.
    const stanza = el ?? parseElement(`<presence type='${type}'/>`);
    stanza.attrs.from = owner;
    stanza.attrs.to = contact;
    stanza.attrs.type = type;
    const xml = stanza.toString();

    if (!this.ctx.storage.users.exists(contact)) {
      // §3.1.3: no such contact — answer unsubscribed on its behalf so the request ends.
      if (type === 'subscribe') this.inboundFrom(contactJid.toBare(), user, 'unsubscribed');
      return;
    }
    this.deliverInbound(contact, owner, type, xml);
  }

  /** The contact's server side: §3.1.3, §3.1.6, §3.2.3, §3.3.3 (Appendix A.3). */
  private deliverInbound(owner: string, from: string, type: SubscriptionType, xml: string): void {
    const { item, state } = this.subState(owner, from);
    const res = inbound(state, type, item?.approved ?? false);
    const after = this.apply(owner, from, item, state, res.next, { pendingStanza: type === 'subscribe' ? xml : undefined });
    if (res.deliver) this.ctx.deliverToAvailable(owner, xml, 'presence');
    if (res.autoReply) {
      // The server says 'subscribed' for the account (already subscribed, or pre-approved), and
      // the requester gets the account's current presence (§3.1.5).
      this.inboundFrom(Jid.parse(owner), Jid.parse(from), 'subscribed');
      if (!res.changed) this.sendCurrent(owner, from);
    }
    after();
  }

  /** A subscription stanza generated by the server on `from`'s behalf, delivered to `to`. */
  private inboundFrom(from: Jid, to: Jid, type: SubscriptionType): void {
    const xml = `<presence${attr('from', from.bare)}${attr('to', to.bare)} type='${type}'/>`;
    this.deliverInbound(to.bare, from.bare, type, xml);
  }
}
