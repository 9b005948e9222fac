/**
 * What modules see of the router: the hook bus, the feature registry, storage, sessions, and the
 * few delivery primitives that protocol logic outside the router needs.
 */
import type { StanzaError } from '../errors.js';
import type { Jid } from '../jid.js';
import type { RosterItem, Storage } from '../storage/types.js';
import type { Element } from '../xml/element.js';
import type { FeatureRegistry, HookBus } from './hooks.js';
import type { SessionRegistry, SessionState } from './session.js';
import type { SubscriptionType } from './subscription.js';

/** Minimal pino-compatible logger; the router runs without one in tests. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RouterContext {
  readonly domain: string;
  readonly storage: Storage;
  readonly hooks: HookBus;
  readonly features: FeatureRegistry;
  readonly sessions: SessionRegistry;
  readonly registration: 'open' | 'closed';
  readonly log: Logger | null;
  /** PBKDF2 iterations for passwords set in-band (XEP-0077), RFC 5802 §5.1 'i'. */
  readonly passwordIterations: number;
  /** RFC 6121 §2.3.3: most roster items an account may add (further additions: resource-constraint). */
  readonly maxRosterItems: number;
  /** Server software version (XEP-0092), from package.json. */
  readonly version: string;
  /** Offer a stream feature after authentication (Router.streamFeatures). */
  addStreamFeature(xml: string): void;
  /** Current time; replaceable so that tests can pin XEP-0203 stamps. */
  now(): Date;

  /** RFC 6121 §2.1.6: push one item (or its removal) to the account's interested resources. */
  pushRoster(owner: string, item: RosterItem | { jid: string; subscription: 'remove' }, version: number): void;
  /**
   * RFC 6121 §3: run a subscription stanza from `owner` to `contact` through both sides of the
   * state machine, as if the account had sent it (roster removal uses this, §2.5.2).
   */
  subscription(owner: Jid, contact: Jid, type: SubscriptionType, stanza?: Element): void;
  /** Deliver bytes to every available resource of a local account (presence-style fan-out). */
  deliverToAvailable(bare: string, bytes: Uint8Array | string, kind: 'message' | 'presence'): number;
  /**
   * Whether presence from account `from` must not reach account `to` (bare JIDs): true when a
   * 'presence/blocked' handler says so (XEP-0191 blocking plugs in here; stanzas a client sends
   * are covered by 'stanza/pre-route'). False, at the cost of one map lookup, when nobody listens.
   */
  blocked(from: string, to: string): boolean;
  /** Forget an account's sessions: close each with `error` (XEP-0077 account removal). */
  closeAccount(bare: string, error: import('../errors.js').StreamError): void;
}

/** Where an IQ is addressed, from the router's point of view (RFC 6120 §10.3, RFC 6121 §8.5). */
export type IqTarget =
  /** the server's domain */
  | 'host'
  /** no 'to' or the sender's own bare JID: the server answers on the account's behalf */
  | 'self'
  /** another local account's bare JID: the server answers on that account's behalf */
  | 'bare'
  /** before authentication (XEP-0077 registration) */
  | 'unauth';

/** The event every 'iq-get/…' and 'iq-set/…' handler receives. */
export interface IqEvent {
  readonly ctx: RouterContext;
  /** The sending session; null before authentication. */
  readonly session: SessionState | null;
  readonly type: 'get' | 'set';
  readonly target: IqTarget;
  /** The addressee (parsed 'to'); for 'self' without 'to', the sender's bare JID. */
  readonly to: Jid | null;
  /** The whole <iq/>, parsed (cold path). */
  readonly stanza: Element;
  /** Its single payload child (RFC 6120 §8.2.3: get/set carry exactly one). */
  readonly payload: Element;
  /** Send type='result' with an optional payload (serialised XML). */
  reply(payload?: string): void;
  /** Send type='error'. */
  error(error: StanzaError): void;
}

/** A message to the server's domain (event 'message/host'). */
export interface MessageEvent {
  readonly ctx: RouterContext;
  readonly session: SessionState;
  readonly stanza: Element;
}

/**
 * Fired after a message from a local session has been routed (event 'message/routed'), for
 * modules that copy messages (XEP-0280 carbons). `delivered` lists the sessions it went to.
 */
export interface RoutedMessageEvent {
  readonly ctx: RouterContext;
  readonly sender: SessionState;
  readonly to: Jid;
  readonly type: 'chat' | 'normal' | 'headline' | 'groupchat' | 'error';
  readonly bytes: Buffer;
  readonly delivered: readonly SessionState[];
}

/**
 * Fired for a message to a local account once its 'from' is stamped and before it is delivered
 * or stored offline (event 'message/stamp'), for modules that add to what the recipient gets
 * (XEP-0359 stanza ids of XEP-0313 archives). A handler may replace `bytes`; the replacement is
 * what every resource, offline storage and 'message/routed' (carbons) see. The message may still
 * be refused after this (no such account, groupchat to a bare JID): only 'message/routed' says
 * it went through.
 */
export interface MessageStampEvent {
  readonly ctx: RouterContext;
  readonly sender: SessionState;
  readonly to: Jid;
  readonly type: 'chat' | 'normal' | 'headline' | 'groupchat' | 'error';
  bytes: Buffer;
}

/**
 * Fired before routing any stanza from a bound session (event 'stanza/pre-route'), only when a
 * handler is registered: returning true consumes the stanza (XEP-0191 blocking will use it).
 */
export interface PreRouteEvent {
  readonly ctx: RouterContext;
  readonly session: SessionState;
  readonly view: import('../core/api.js').StanzaView;
  readonly to: Jid | null;
}

/** A non-stanza top-level element of a bound session (event 'nonza/<namespace>'). */
export interface NonzaEvent {
  readonly ctx: RouterContext;
  readonly session: SessionState;
  readonly view: import('../core/api.js').StanzaView;
  /** Local name of the element. */
  readonly name: string;
}

/**
 * A stanza for a domain this server does not serve (event 'stanza/remote'). Returning true takes
 * it (XEP-0114 components, server-to-server); otherwise the sender gets remote-server-not-found.
 */
export interface RemoteEvent {
  readonly ctx: RouterContext;
  readonly session: SessionState;
  readonly view: import('../core/api.js').StanzaView;
  readonly to: Jid;
}

/**
 * Event 'presence/available': a session's available presence broadcast has been handled (the
 * session is available, `session.presence` holds the stamped bytes as broadcast). XEP-0163 reads
 * XEP-0115 caps from them; `view` is the stanza as received, valid during the call only.
 */
export interface PresenceAvailableEvent {
  readonly ctx: RouterContext;
  readonly session: SessionState;
  readonly view: import('../core/api.js').StanzaView;
}

/**
 * Event 'subscription/approved': `owner` (a local account) approved `contact`'s subscription,
 * which now receives its presence (RFC 6121 §3.1.5: roster from/both). XEP-0163 §4.3.4 sends the
 * contact the last published items then.
 */
export interface SubscriptionApprovedEvent {
  readonly ctx: RouterContext;
  readonly owner: string;
  readonly contact: string;
}

/**
 * Event 'message/offline': a message was stored for `bare` because none of its sessions was
 * available (RFC 6121 §8.5.2.2.1). Fired after the store.
 */
export interface OfflineStoredEvent {
  readonly bare: string;
}

/** Event 'presence/blocked': return true to keep `from`'s presence away from `to`. */
export interface PresenceBlockedEvent {
  readonly ctx: RouterContext;
  readonly from: string;
  readonly to: string;
}

export interface Module {
  readonly name: string;
  install(ctx: RouterContext): void;
}
