/**
 * The router: session registry, delivery rules (RFC 6120 §10, RFC 6121 §8), presence and
 * subscriptions (RFC 6121 §3–4, in presence.ts), and the hook bus that modules answer IQs on.
 *
 * Hot path (messages, IQs between clients, presence broadcast): decisions from the StanzaView's
 * decoded attributes and kind/type codes, forwarding by splicing bytes (src/xml/splice.ts).
 * Cold path (IQs to the server, subscriptions): the single stanza is parsed with ltx.
 */
import { StanzaKind, StanzaStatus, StanzaType, type StanzaView } from '../core/api.js';
import { StanzaError, StreamError } from '../errors.js';
import { Jid } from '../jid.js';
import { DEFAULT_ITERATIONS, type RosterItem, type Storage } from '../storage/types.js';
import { errorReply, firstChildElement, iqResult, localName, parseElement } from '../xml/element.js';
import { spliceFrom } from '../xml/splice.js';
import type {
  IqEvent,
  IqTarget,
  Logger,
  MessageEvent,
  MessageStampEvent,
  Module,
  NonzaEvent,
  OfflineStoredEvent,
  PresenceAvailableEvent,
  PreRouteEvent,
  PresenceBlockedEvent,
  RemoteEvent,
  SubscriptionApprovedEvent,
  RoutedMessageEvent,
  RouterContext,
} from './context.js';
import { FeatureRegistry, HookBus } from './hooks.js';
import { PresenceEngine, subscriptionType } from './presence.js';
import { rosterItemXml, rosterPushXml } from './roster.js';
import { SessionRegistry, SessionState, conflictError } from './session.js';
import { sendsPresence, type SubscriptionType } from './subscription.js';
import type { ClientSession, Router } from './types.js';
import type { Element } from '../xml/element.js';

export interface RouterOptions {
  /** The served domain (prepared, e.g. 'localhost'). */
  domain: string;
  storage: Storage;
  /** XEP-0077 account creation before authentication; default 'closed'. */
  registration?: 'open' | 'closed';
  /** RFC 6120 §7.6.2.1: resources per account (default 10). */
  maxResources?: number;
  /** Feature modules; default: every module of src/modules (see defaultModules()). */
  modules?: Module[];
  log?: Logger;
  now?: () => Date;
  /** PBKDF2 iterations for passwords set by in-band registration (default 4096). */
  passwordIterations?: number;
  /** RFC 6121 §2.3.3: roster size limit for items a client adds (default 1000). */
  maxRosterItems?: number;
  /** Software version reported by XEP-0092 (default: package.json's). */
  version?: string;
  /** XEP-0313 archiving (config `mam`); without it accounts are archived only when they ask (prefs). */
  mam?: import('../modules/mam.js').MamSettings;
  /** XEP-0157 contact addresses (config `contact`) for the server's disco#info. */
  contact?: import('../modules/contact.js').ContactAddresses;
}

const STATUS_TEXT: Record<StanzaStatus, string> = {
  [StanzaStatus.Ok]: '',
  [StanzaStatus.IqMissingId]: 'iq without id',
  [StanzaStatus.IqBadType]: "iq type must be get, set, result or error",
  [StanzaStatus.IqGetSetChildCount]: 'iq get/set must contain exactly one child element',
  [StanzaStatus.IqResultChildCount]: 'iq result may contain at most one child element',
  [StanzaStatus.IqErrorWithoutError]: 'iq error without <error/>',
  [StanzaStatus.MessageBadType]: 'illegal message type',
  [StanzaStatus.PresenceBadType]: 'illegal presence type',
};

type MessageType = RoutedMessageEvent['type'];

function messageType(t: StanzaType): MessageType {
  switch (t) {
    case StanzaType.Chat:
      return 'chat';
    case StanzaType.Groupchat:
      return 'groupchat';
    case StanzaType.Headline:
      return 'headline';
    case StanzaType.Error:
      return 'error';
    default:
      return 'normal';
  }
}

const KIND_NAME: Record<StanzaKind, 'message' | 'presence' | 'iq' | 'other'> = {
  [StanzaKind.Message]: 'message',
  [StanzaKind.Presence]: 'presence',
  [StanzaKind.Iq]: 'iq',
  [StanzaKind.Other]: 'other',
};

const JID_CACHE_MAX = 10_000;

export class HermodRouter implements Router, RouterContext {
  readonly domain: string;
  readonly storage: Storage;
  readonly hooks = new HookBus();
  readonly features = new FeatureRegistry();
  readonly sessions: SessionRegistry;
  readonly registration: 'open' | 'closed';
  readonly log: Logger | null;
  readonly version: string;
  readonly passwordIterations: number;
  readonly maxRosterItems: number;
  private readonly clock: () => Date;
  private readonly presence: PresenceEngine;
  /** Prepared JIDs by their wire text: preparation (NFKC, case folding) is not free. */
  private readonly jidCache = new Map<string, Jid>();
  private readonly streamFeatureList: string[] = [];

  constructor(options: RouterOptions, modules: Module[]) {
    this.domain = Jid.parse(options.domain).domain;
    this.storage = options.storage;
    this.registration = options.registration ?? 'closed';
    this.log = options.log ?? null;
    this.clock = options.now ?? (() => new Date());
    this.version = options.version ?? '0.0.0';
    this.passwordIterations = options.passwordIterations ?? DEFAULT_ITERATIONS;
    this.maxRosterItems = options.maxRosterItems ?? 1000;
    this.sessions = new SessionRegistry({ maxResources: options.maxResources ?? 10 });
    this.presence = new PresenceEngine(this);
    for (const m of modules) m.install(this);
  }

  now(): Date {
    return this.clock();
  }

  // ------------------------------------------------------------------ Router contract

  bind(session: ClientSession, requested: string | null): Jid {
    const { jid, replaced } = this.sessions.prepare(session, requested);
    if (replaced) {
      // RFC 6120 §7.7.2.2: the new session wins; the old one's presence is withdrawn and it is
      // told why and closed.
      this.forget(replaced);
      replaced.session.close(conflictError());
    }
    const state = this.sessions.add(session, jid);
    try {
      this.hooks.fire('session/bound', { ctx: this, session: state });
    } catch (err) {
      // A module's bookkeeping must not cost the client its session.
      this.log?.error({ err, jid: jid.full }, "a 'session/bound' handler failed");
    }
    return state.jid;
  }

  unbind(session: ClientSession): void {
    const st = this.sessions.get(session);
    if (st) this.forget(st);
  }

  private forget(st: SessionState): void {
    if (!this.sessions.remove(st)) return;
    try {
      this.presence.sessionGone(st);
      this.hooks.fire('session/unbound', { ctx: this, session: st });
    } catch (err) {
      this.log?.error({ err, jid: st.jid.full }, 'unbind failed');
    }
  }

  route(session: ClientSession, view: StanzaView): void {
    const st = this.sessions.get(session);
    if (!st) {
      this.log?.warn({ session: session.id }, 'stanza from an unbound session dropped');
      return;
    }
    try {
      this.dispatch(st, view);
    } catch (err) {
      try {
        this.refuse(st, view, err);
      } catch (again) {
        // Even the error reply failed (e.g. the session is closing): the contract is never to throw.
        this.log?.error({ err: again, jid: st.jid.full }, 'could not send an error reply');
      }
    }
  }

  /**
   * A stanza from a trusted peer that is not a client session: an XEP-0114 component, whose
   * 'from' (any JID at its domain) the caller has checked. It goes through the same delivery
   * rules as a local session's stanza (RFC 6121 §8, blocking, offline storage), its 'from' kept;
   * stanzas for other non-local domains go to the 'stanza/remote' hook. Errors the router
   * answers are handed to `reply`. Never throws. Added beside the Router contract, on this class.
   */
  routeFrom(from: Jid, view: StanzaView, reply: (data: Uint8Array | string) => void): void {
    const peer: ClientSession = { id: 0, account: from.toBare(), jid: from, send: reply, close: () => undefined };
    const st = new SessionState(peer, from);
    try {
      const toText = view.status === StanzaStatus.Ok ? view.to() : null;
      const to = toText === null ? null : this.jid(toText);
      // Not local: straight to the hook (a message 'to' the sender's own domain must not be
      // mistaken for one addressed to itself, as dispatch() would for a client).
      if (to !== null && to.domain !== this.domain) this.remote(st, view, to);
      else this.dispatch(st, view);
    } catch (err) {
      try {
        this.refuse(st, view, err);
      } catch (again) {
        this.log?.error({ err: again, from: from.full }, 'could not send an error reply');
      }
    }
  }

  routeUnauthenticated(view: StanzaView, reply: (data: string) => void): boolean {
    if (view.kind !== StanzaKind.Iq) return false;
    const addr = { name: 'iq', id: view.id(), from: null, to: null };
    try {
      if (view.status !== StanzaStatus.Ok) {
        if (view.type === StanzaType.Error || view.type === StanzaType.Result) return true;
        throw new StanzaError('bad-request', STATUS_TEXT[view.status]);
      }
      if (view.type !== StanzaType.Get && view.type !== StanzaType.Set) return false;
      const name = `iq-${view.type === StanzaType.Get ? 'get' : 'set'}/unauth/${view.childNamespace() ?? ''}`;
      if (!this.hooks.has(name)) return false;
      const event = this.iqEvent(null, view, null, 'unauth', reply, addr);
      return this.hooks.fire(name, event);
    } catch (err) {
      reply(errorReply(addr, this.asStanzaError(err)));
      return true;
    }
  }

  nonza(session: ClientSession, view: StanzaView): boolean {
    const st = this.sessions.get(session);
    if (!st) return false;
    const ns = view.namespace();
    const name = `nonza/${ns}`;
    if (!this.hooks.has(name)) return false;
    const ev: NonzaEvent = { ctx: this, session: st, view, name: localName(view.name()) };
    try {
      return this.hooks.fire(name, ev);
    } catch (err) {
      this.log?.error({ err, jid: st.jid.full }, 'nonza handler failed');
      return true;
    }
  }

  streamFeatures(): string {
    return this.streamFeatureList.join('');
  }

  /** Modules add stream features here (see Router.streamFeatures). */
  addStreamFeature(xml: string): void {
    if (!this.streamFeatureList.includes(xml)) this.streamFeatureList.push(xml);
  }

  // ------------------------------------------------------------------ RouterContext

  /**
   * Hand the account's stored offline messages to `st` (an available session). The shards call
   * this when another shard stored a message for an account whose session became available
   * here before that shard saw it (src/shard/mirror.ts, Op.OfflineCheck).
   */
  deliverOffline(st: SessionState): void {
    this.presence.flushOffline(st);
  }

  deliverToAvailable(bare: string, bytes: Uint8Array | string, kind: 'message' | 'presence'): number {
    let n = 0;
    for (const s of this.sessions.bare(bare)) {
      if (s.available) {
        s.deliver(bytes, kind);
        n++;
      }
    }
    return n;
  }

  pushRoster(owner: string, item: RosterItem | { jid: string; subscription: 'remove' }, version: number): void {
    const itemXml = rosterItemXml(item);
    for (const s of this.sessions.bare(owner)) {
      if (s.interested) s.deliver(rosterPushXml(s.jid.full, itemXml, version), 'iq');
    }
  }

  subscription(owner: Jid, contact: Jid, type: SubscriptionType, stanza?: Element): void {
    this.presence.subscription(owner, contact, type, stanza);
  }

  blocked(from: string, to: string): boolean {
    if (!this.hooks.has('presence/blocked')) return false;
    const ev: PresenceBlockedEvent = { ctx: this, from, to };
    return this.hooks.fire('presence/blocked', ev);
  }

  closeAccount(bare: string, error: StreamError): void {
    for (const s of this.sessions.bare(bare).slice()) {
      this.forget(s);
      s.session.close(error);
    }
  }

  // ------------------------------------------------------------------ dispatch

  private jid(text: string): Jid {
    let j = this.jidCache.get(text);
    if (j === undefined) {
      j = Jid.parse(text); // throws jid-malformed (RFC 6120 §8.3.3.8)
      if (this.jidCache.size >= JID_CACHE_MAX) this.jidCache.clear();
      this.jidCache.set(text, j);
    }
    return j;
  }

  private dispatch(st: SessionState, view: StanzaView): void {
    if (view.status !== StanzaStatus.Ok) {
      // RFC 6120 §8.3.1: never answer an error with an error.
      if (view.type === StanzaType.Error || view.status === StanzaStatus.IqErrorWithoutError) return;
      throw new StanzaError('bad-request', STATUS_TEXT[view.status]);
    }
    const toText = view.to();
    const to = toText === null ? null : this.jid(toText);
    if (this.hooks.has('stanza/pre-route')) {
      const ev: PreRouteEvent = { ctx: this, session: st, view, to };
      if (this.hooks.fire('stanza/pre-route', ev)) return;
    }
    switch (view.kind) {
      case StanzaKind.Message:
        return this.routeMessage(st, view, to);
      case StanzaKind.Presence:
        return this.routePresence(st, view, to);
      case StanzaKind.Iq:
        return this.routeIq(st, view, to);
      default:
        this.log?.debug({ name: view.name() }, 'non-stanza element handed to the router ignored');
    }
  }

  /** Turn a failure into the RFC 6120 §8.3 error reply (never in answer to an error). */
  private refuse(st: SessionState, view: StanzaView, err: unknown): void {
    if (view.type === StanzaType.Error) return;
    if (view.kind === StanzaKind.Iq && view.type === StanzaType.Result) return;
    const error = this.asStanzaError(err);
    const kind = KIND_NAME[view.kind];
    st.deliver(errorReply({ name: kind, id: view.id(), from: view.to(), to: st.jid.full }, error), kind);
  }

  private asStanzaError(err: unknown): StanzaError {
    if (err instanceof StanzaError) return err;
    this.log?.error({ err }, 'internal error while routing');
    return new StanzaError('internal-server-error');
  }

  /** A stanza for another domain: there is no server-to-server link (RFC 6120 §8.3.3.16). */
  private remote(st: SessionState, view: StanzaView, to: Jid): void {
    // A module that reaches other domains (XEP-0114 components, later s2s) takes it here.
    if (this.hooks.has('stanza/remote')) {
      const ev: RemoteEvent = { ctx: this, session: st, view, to };
      if (this.hooks.fire('stanza/remote', ev)) return;
    }
    if (view.type === StanzaType.Error) return;
    if (view.kind === StanzaKind.Iq && view.type === StanzaType.Result) return;
    throw new StanzaError('remote-server-not-found', 'no server-to-server connections');
  }

  // ------------------------------------------------------------------ messages

  private routeMessage(st: SessionState, view: StanzaView, to: Jid | null): void {
    const type = messageType(view.type);
    // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
    const target = to ?? st.jid.toBare();
    if (target.domain !== this.domain) return this.remote(st, view, target);
    if (target.local === null) return this.messageToHost(st, view, type);

    let bytes = spliceFrom(view, st.fromStamp);
    if (this.hooks.has('message/stamp')) {
      // XEP-0313 / XEP-0359: the archive's stanza-id goes into every copy, so it is added first.
      const ev: MessageStampEvent = { ctx: this, sender: st, to: target, type, bytes };
      this.hooks.fire('message/stamp', ev);
      bytes = ev.bytes;
    }
    let delivered: readonly SessionState[];
    if (target.resource !== null) {
      const s = this.sessions.full(target.full);
      if (s) {
        // RFC 6121 §8.5.3.1: a connected resource gets it.
        s.deliver(bytes, 'message');
        delivered = [s];
      } else {
        // §8.5.3.2.1: resource gone — groupchat errors, error is dropped, the rest go to the bare JID.
        if (type === 'error') return;
        if (type === 'groupchat') throw new StanzaError('service-unavailable');
        delivered = this.messageToBare(target, type, bytes);
      }
    } else {
      delivered = this.messageToBare(target, type, bytes);
    }
    if (this.hooks.has('message/routed')) {
      const ev: RoutedMessageEvent = { ctx: this, sender: st, to: target, type, bytes, delivered };
      this.hooks.fire('message/routed', ev);
    }
  }

  /** RFC 6121 §8.5.2: a message to an account's bare JID. Returns the sessions it went to. */
  private messageToBare(target: Jid, type: MessageType, bytes: Buffer): readonly SessionState[] {
    const all = this.sessions.bare(target.bare);
    if (all.length === 0 && !this.storage.users.exists(target.bare)) {
      // §8.5.1 (no such user): service-unavailable for a message, except an error is never answered.
      if (type === 'error') return [];
      throw new StanzaError('service-unavailable');
    }
    if (type === 'error') return []; // §8.5.2.1.1: silently ignored
    if (type === 'groupchat') throw new StanzaError('service-unavailable'); // §8.5.2.1.1
    let best = -129;
    let count = 0;
    for (const s of all) {
      if (!s.available || s.priority < 0) continue;
      count++;
      if (s.priority > best) best = s.priority;
    }
    if (count === 0) {
      // §8.5.2.2.1: no available resource with non-negative priority.
      if (type === 'headline') return [];
      if (!this.storage.offline.push(target.bare, bytes.toString('utf8'), this.now())) {
        throw new StanzaError('service-unavailable', 'offline storage full');
      }
      if (this.hooks.has('message/offline')) this.hooks.fire<OfflineStoredEvent>('message/offline', { bare: target.bare });
      return [];
    }
    // §8.5.2.1.1: chat to the most available resources (highest priority); normal and
    // headline to every non-negative resource.
    const chosen: SessionState[] = [];
    for (const s of all) {
      if (!s.available || s.priority < 0) continue;
      if (type === 'chat' && s.priority !== best) continue;
      s.deliver(bytes, 'message');
      chosen.push(s);
    }
    return chosen;
  }

  private messageToHost(st: SessionState, view: StanzaView, type: MessageType): void {
    if (this.hooks.has('message/host')) {
      const ev: MessageEvent = { ctx: this, session: st, stanza: parseElement(view.toString()) };
      if (this.hooks.fire('message/host', ev)) return;
    }
    // RFC 6120 §10.5.1: the server handles messages to itself; one it has no use for is refused
    // (error and headline excepted: nobody expects an answer to them).
    if (type === 'error' || type === 'headline') return;
    throw new StanzaError('service-unavailable');
  }

  // ------------------------------------------------------------------ presence

  private routePresence(st: SessionState, view: StanzaView, to: Jid | null): void {
    const type = view.type;
    // RFC 6121 §4.2, §4.4, §4.5: no 'to' (or the account's own bare JID) is a broadcast.
    if (to === null || (to.bare === st.bare && to.resource === null)) {
      if (type === StanzaType.None || type === StanzaType.Unavailable) this.presence.broadcast(st, view);
      // XEP-0163 §4.2 reads the XEP-0115 caps of available presence, once it is broadcast.
      if (type === StanzaType.None && this.hooks.has('presence/available')) {
        const ev: PresenceAvailableEvent = { ctx: this, session: st, view };
        this.hooks.fire('presence/available', ev);
      }
      // XEP-0012 (Offline User Query) keeps the time and status of the unavailable presence that ends activity.
      if (type === StanzaType.Unavailable && this.hooks.has('presence/unavailable')) {
        const ev: PresenceAvailableEvent = { ctx: this, session: st, view };
        this.hooks.fire('presence/unavailable', ev);
      }
      return;
    }
    if (to.domain !== this.domain) return this.remote(st, view, to);
    const sub = subscriptionType(type);
    if (sub) {
      if (to.local === null) return; // subscriptions are between accounts
      // XEP-0163 §4.3.4 wants to know when a contact starts to receive the user's presence.
      const watch = sub === 'subscribed' && this.hooks.has('subscription/approved');
      const before = watch ? (this.storage.rosters.get(st.bare, to.bare)?.subscription ?? 'none') : 'none';
      this.presence.fromClient(st, view, sub, to);
      if (watch && !sendsPresence(before) && sendsPresence(this.storage.rosters.get(st.bare, to.bare)?.subscription ?? 'none')) {
        const ev: SubscriptionApprovedEvent = { ctx: this, owner: st.bare, contact: to.bare };
        this.hooks.fire('subscription/approved', ev);
      }
      return;
    }
    switch (type) {
      case StanzaType.None:
      case StanzaType.Unavailable:
        return this.presence.directed(st, view, to);
      case StanzaType.Probe:
        return this.presence.probe(st, to);
      case StanzaType.Error: {
        // An error about presence we delivered: back to that resource only, if still there.
        const s = to.resource !== null ? this.sessions.full(to.full) : undefined;
        s?.deliver(spliceFrom(view, st.fromStamp), 'presence');
        return;
      }
    }
  }

  // ------------------------------------------------------------------ iq

  private routeIq(st: SessionState, view: StanzaView, to: Jid | null): void {
    const type = view.type;
    const request = type === StanzaType.Get || type === StanzaType.Set;
    // RFC 6120 §10.3.3 / RFC 6121 §8.5.2.1.3: no 'to', or the account's own bare JID: the server
    // answers on the account's behalf.
    if (to === null || (to.bare === st.bare && to.resource === null)) return this.serverIq(st, view, to, 'self');
    if (to.domain !== this.domain) return this.remote(st, view, to);
    if (to.local === null) {
      if (to.resource !== null) {
        if (request) throw new StanzaError('service-unavailable');
        return;
      }
      return this.serverIq(st, view, to, 'host');
    }
    if (to.resource === null) {
      // §8.5.2.1.3 / §8.5.2.2.3: the server answers for the account; §8.5.1: no such user.
      if (this.sessions.bare(to.bare).length === 0 && !this.storage.users.exists(to.bare)) {
        if (request) throw new StanzaError('service-unavailable');
        return;
      }
      return this.serverIq(st, view, to, 'bare');
    }
    const s = this.sessions.full(to.full);
    if (s) {
      // §8.5.3.1: routed to the connected resource, stamped.
      s.deliver(spliceFrom(view, st.fromStamp), 'iq');
      return;
    }
    // §8.5.3.2.1: resource not connected — get/set get service-unavailable, results vanish.
    if (request) throw new StanzaError('service-unavailable');
  }

  private serverIq(st: SessionState, view: StanzaView, to: Jid | null, target: IqTarget): void {
    const type = view.type;
    if (type !== StanzaType.Get && type !== StanzaType.Set) {
      // A result or error for the server (e.g. the answer to a ping it sent): handlers may
      // listen on 'iq-result/<target>'; nothing is ever answered (RFC 6120 §8.2.3).
      const ev = `iq-${type === StanzaType.Result ? 'result' : 'error'}/${target}`;
      if (this.hooks.has(ev)) this.hooks.fire(ev, { ctx: this, session: st, id: view.id(), stanza: parseElement(view.toString()) });
      return;
    }
    const verb = type === StanzaType.Get ? 'get' : 'set';
    const ns = view.childNamespace() ?? '';
    // 'self' also reaches handlers written for any account ('bare'); without a 'to' it finally
    // reaches the server's own handlers ('host'): a ping or version query without 'to' is one
    // that clients mean for their server.
    const names =
      target === 'self'
        ? [`iq-${verb}/self/${ns}`, `iq-${verb}/bare/${ns}`, ...(to === null ? [`iq-${verb}/host/${ns}`] : [])]
        : [`iq-${verb}/${target}/${ns}`];
    const live = names.filter((n) => this.hooks.has(n));
    // RFC 6120 §8.2.3 / §8.3.3.19: a get/set nobody handles is refused, never ignored.
    if (live.length === 0) throw new StanzaError('service-unavailable');
    const addr = { name: 'iq', id: view.id(), from: view.to(), to: st.jid.full };
    const event = this.iqEvent(st, view, to ?? (target === 'self' ? st.jid.toBare() : null), target, (x) => st.deliver(x, 'iq'), addr);
    for (const n of live) if (this.hooks.fire(n, event)) return;
    throw new StanzaError('service-unavailable');
  }

  private iqEvent(
    session: SessionState | null,
    view: StanzaView,
    to: Jid | null,
    target: IqTarget,
    send: (xml: string) => void,
    addr: { name: string; id: string | null; from: string | null; to: string | null },
  ): IqEvent {
    const stanza = parseElement(view.toString());
    const payload = firstChildElement(stanza);
    if (!payload) throw new StanzaError('bad-request', 'iq get/set must contain exactly one child element');
    return {
      ctx: this,
      session,
      type: view.type === StanzaType.Get ? 'get' : 'set',
      target,
      to,
      stanza,
      payload,
      reply: (xml?: string) => send(iqResult(addr, xml)),
      error: (e: StanzaError) => send(errorReply(addr, e)),
    };
  }
}
