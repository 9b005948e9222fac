/**
 * Storage contracts: accounts, rosters, offline messages.
 *
 * Why SYNCHRONOUS: the default backend is better-sqlite3, which answers in microseconds without
 * a round trip, and the router must decide deterministically within one turn of the event loop
 * (a presence subscription changes the roster and is pushed to every resource before the next
 * stanza of the same stream is routed; an offline message is stored before the sender's next
 * stanza can overtake it). An async interface would let two stanzas of one stream interleave
 * across `await` points and reorder state changes.
 *
 * How a networked backend (PostgreSQL, Redis) slots in: behind these same synchronous methods as
 * a write-behind cache. Reads are served from an in-process copy (loaded when a user's session
 * starts, e.g. by a `preload(account)` hook added beside these interfaces); writes update the
 * copy at once and are queued, in order, to the remote store, with the queue flushed before
 * acknowledging anything that must be durable (shutdown, offline message limits). The router's
 * view stays synchronous and ordered; only durability moves behind the queue.
 *
 * Keying (multi-domain): every account is identified by its prepared bare JID string
 * (`Jid.bare`, e.g. 'alice@example.org'), so one data directory can hold users of several
 * domains; `UserStore.list({domain})` filters by domain. Callers pass prepared strings (what
 * `Jid.parse(...).bare` returns); only `UserStore.create` re-validates, as it is the one entry
 * point for names typed by people.
 */

/** The hash functions of the SCRAM mechanisms offered (RFC 5802, RFC 7677). */
export type ScramHash = 'SHA-1' | 'SHA-256';
export const SCRAM_HASHES: readonly ScramHash[] = ['SHA-1', 'SHA-256'];

/**
 * RFC 5802 §3: what the server keeps instead of the password. StoredKey = H(ClientKey) verifies
 * a client proof; ServerKey signs the server-final message. Neither lets anyone log in as the user
 * without the password (they do allow impersonating the server, so the file stays private).
 */
export interface ScramCredentials {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** One set of SCRAM credentials per hash, all derived from the same password. */
export type StoredPassword = Record<ScramHash, ScramCredentials>;

/** Why an account operation was refused; `reason` is stable for callers to map to replies. */
export type AccountErrorReason = 'exists' | 'not-found' | 'invalid-jid' | 'invalid-password';

export class AccountError extends Error {
  readonly code: string;
  constructor(
    readonly reason: AccountErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'AccountError';
    this.code = `ERR_HERMOD_ACCOUNT_${reason.toUpperCase().replace(/-/g, '_')}`;
  }
}

export interface UserListOptions {
  /** Only accounts of this (prepared) domain. */
  domain?: string;
  /** Keyset paging: only accounts sorting after this bare JID. */
  after?: string;
  /** At most this many (default 100). */
  limit?: number;
}

export interface UserStore {
  /**
   * Create an account. `password` is the plaintext (derived here with the store's iteration
   * count, then forgotten) or credentials already derived with `deriveStoredPassword` (async, so
   * in-band registration need not block the event loop). Throws AccountError 'exists',
   * 'invalid-jid' (not a bare JID with a localpart) or 'invalid-password'.
   */
  create(account: string, password: string | StoredPassword): void;
  /**
   * Delete an account with everything it owns: roster, roster version, pending inbound
   * subscription requests, offline messages, blocklist, stored XML (private storage, vCard),
   * PEP nodes with their items, and the message archive with its preferences. Returns false when
   * there was no such account.
   */
  delete(account: string): boolean;
  /** Replace the credentials. Returns false when there is no such account. */
  setPassword(account: string, password: string | StoredPassword): boolean;
  exists(account: string): boolean;
  /** Bare JIDs in code-point order, paged with `after`/`limit`. */
  list(options?: UserListOptions): string[];
  count(domain?: string): number;
  /** The credentials for one SCRAM hash, or null when the account does not exist. */
  getScramCredentials(account: string, hash: ScramHash): ScramCredentials | null;
}

/** RFC 6121 §2.1.2.5 */
export type Subscription = 'none' | 'to' | 'from' | 'both';

/** RFC 6121 §2.1.2: one roster item, as stored (not as shown to clients: `approved` is ours). */
export interface RosterItem {
  /** The contact's prepared bare JID. */
  jid: string;
  name: string | null;
  /** Group names, in the order the client gave them, without duplicates. */
  groups: string[];
  subscription: Subscription;
  /** RFC 6121 §3.1.2: an outbound subscription request is pending. */
  ask: 'subscribe' | null;
  /** RFC 6121 §3.4: the user pre-approved a future inbound subscription request. */
  approved: boolean;
}

/**
 * One change to send as a roster push (RFC 6121 §2.6.3), with the version it produced: the item
 * as it is now (added or modified), or the contact it removed (a push with subscription='remove').
 */
export type RosterChange = { version: number; item: RosterItem } | { version: number; removed: string };

export interface RosterChanges {
  /** The roster's current version. */
  version: number;
  /** Oldest first; each contact appears at most once, in its latest state. */
  changes: RosterChange[];
}

/** RFC 6121 §3.1.3: an inbound subscription request the user has not answered yet. */
export interface PendingSubscription {
  /** Requester's prepared bare JID. */
  from: string;
  /** The original <presence type='subscribe'/> stanza, redelivered on each login. */
  stanza: string;
  stamp: Date;
}

export interface RosterStore {
  get(owner: string, contact: string): RosterItem | null;
  /** Insert or replace the item for `item.jid`; returns the roster's new version. */
  set(owner: string, item: RosterItem): number;
  /** Returns the roster's new version, or null when there was no such item (version unchanged). */
  remove(owner: string, contact: string): number | null;
  /** All items, ordered by contact JID. */
  list(owner: string): RosterItem[];
  /**
   * The same items without copying them, for hot read-only paths (presence broadcasts): the
   * caller must not modify what it gets. Optional; callers fall back to list().
   */
  peek?(owner: string): readonly Readonly<RosterItem>[];
  /**
   * RFC 6121 §2.6: the roster version, 0 for a roster never written. Versions come from one
   * store-wide counter, so a deleted and re-created account never repeats a version that a
   * client may have cached for the old roster.
   */
  version(owner: string): number;
  /**
   * RFC 6121 §2.6.3: what changed after the version a client cached, to send as roster pushes
   * instead of the whole roster. Null when the store cannot tell (a version it never issued for
   * this roster, or one from before the account was last re-created): send the whole roster.
   */
  changesSince(owner: string, version: number): RosterChanges | null;

  /** Remember an inbound request; a newer one from the same contact replaces the older. */
  addPending(owner: string, from: string, stanza: string): void;
  /** Forget an inbound request (approved, denied, or cancelled). False when there was none. */
  removePending(owner: string, from: string): boolean;
  getPending(owner: string, from: string): PendingSubscription | null;
  /** Oldest first, for redelivery when the user next sends available presence. */
  listPending(owner: string): PendingSubscription[];
}

export interface OfflineMessage {
  /** The stanza exactly as it is to be delivered (with 'from' stamped by the router). */
  stanza: string;
  /** When it was accepted, for the XEP-0203 <delay stamp=…/>. */
  stamp: Date;
}

export interface OfflineStore {
  /**
   * Append to the user's queue. Returns false (and stores nothing) when the queue already holds
   * `offlineLimit` messages; the router then answers the sender per RFC 6121 §8.5.2.1.1
   * (service-unavailable). When true is returned the message is durable.
   */
  push(account: string, stanza: string, stamp?: Date): boolean;
  /** Remove and return every queued message, oldest first, in one transaction. */
  takeAll(account: string): OfflineMessage[];
  count(account: string): number;
}

/**
 * XEP-0191 blocking command: the JIDs an account blocks. Items are prepared JIDs of any form
 * (domain, domain/resource, bare, full: XEP-0191 §3.3 and the JID matching of XEP-0016 §2.1);
 * matching is the caller's business, the store only keeps the set.
 */
export interface BlocklistStore {
  /** Every blocked JID of the owner, in code-point order. */
  list(owner: string): string[];
  /** Block these JIDs; returns those that were not blocked before, in the order given. */
  add(owner: string, jids: readonly string[]): string[];
  /** Unblock these JIDs; returns those that were blocked, in the order given. */
  remove(owner: string, jids: readonly string[]): string[];
  /** Unblock everything (XEP-0191 §3.4 'unblock all'); returns what was blocked, in order. */
  clear(owner: string): string[];
  /**
   * Optional, for the per-stanza checks: the owner's list as a set that the caller only reads
   * and does not keep across writes (no copy, no query when cached).
   */
  peek?(owner: string): ReadonlySet<string>;
  /** Optional: whether any account blocks anything (lets the per-stanza checks end at once). */
  anyBlocked?(): boolean;
}

/**
 * Per-account XML documents by key (XEP-0049 private storage, XEP-0054 vCards, …): each module
 * owns its key prefix ('private:<ns>', 'vcard'). Values are serialised XML, kept verbatim.
 */
export interface XmlStore {
  get(owner: string, key: string): string | null;
  /** Insert or replace. */
  set(owner: string, key: string, xml: string): void;
  /** False when there was nothing under the key. */
  remove(owner: string, key: string): boolean;
  /** How many keys of `owner` start with `prefix` (for per-account quotas). Optional: added. */
  count?(owner: string, prefix: string): number;
  /**
   * set(), written at the end of this event-loop turn with the other deferred writes in one
   * transaction (and by close()); get() sees it at once, and any other write or account deletion
   * comes after it. For records written in storms (XEP-0012's logout time); a record whose
   * owner is no account when the batch is written is dropped. Optional: added.
   */
  setSoon?(owner: string, key: string, xml: string): void;
}

/** One XEP-0060 item of a PEP node, as published: its id and the payload XML, verbatim. */
export interface PepItem {
  id: string;
  /** The serialised <item/> payload (the one child element), kept as published. */
  xml: string;
  /** When it was published (or last replaced). */
  stamp: Date;
  /** Full JID of the publishing resource (XEP-0060 §7.1.2 'publisher'), when known. */
  publisher?: string | null;
}

/**
 * One PEP node (XEP-0163): its name and configuration as XEP-0060 §16.4.4 form fields
 * ('pubsub#access_model' → 'presence', …). The store keeps the fields without reading them; the
 * module owns their meaning and defaults.
 */
export interface PepNode {
  node: string;
  config: Record<string, string>;
}

/**
 * XEP-0163 personal eventing: each account's nodes and their items. Items are ordered by
 * publication, newest first when listed; publishing an id that exists replaces that item and
 * makes it the newest (XEP-0060 §7.1.2 'overwrite').
 */
export interface PepStore {
  /** Every node of the owner, in code-point order of their names. */
  nodes(owner: string): PepNode[];
  node(owner: string, node: string): PepNode | null;
  /** Create the node, or replace its configuration (items are kept: trim() them if needed). */
  setNode(owner: string, node: string, config: Record<string, string>): void;
  /** Remove the node and its items; false when there was no such node. */
  deleteNode(owner: string, node: string): boolean;
  /**
   * Store the item in an existing node (insert or replace by id), then keep only the newest
   * `keep` items; returns the ids dropped to make room, oldest first.
   */
  publish(owner: string, node: string, item: PepItem, keep: number): string[];
  /** Keep only the newest `keep` items; returns the ids removed, oldest first. */
  trim(owner: string, node: string, keep: number): string[];
  /** Newest first, at most `max` (all when omitted). */
  items(owner: string, node: string, max?: number): PepItem[];
  item(owner: string, node: string, id: string): PepItem | null;
  /** False when there was no such item. */
  retract(owner: string, node: string, id: string): boolean;
  /** Remove every item of the node; returns how many there were. */
  purge(owner: string, node: string): number;
  /** UTF-8 bytes of the payloads of every item the owner keeps, all nodes together (quotas). */
  usage(owner: string): number;
}

/** XEP-0045 persistent rooms: one JSON record per room (configuration, affiliations, subject). */
export interface MucStore {
  /** Every stored room of a service domain. */
  list(service: string): { jid: string; data: string }[];
  save(room: string, data: string): void;
  /** False when there was no such room. */
  remove(room: string): boolean;
}

export interface Storage {
  readonly users: UserStore;
  readonly rosters: RosterStore;
  readonly offline: OfflineStore;
  /** XEP-0191 blocklists (added in schema 3). */
  readonly blocklist: BlocklistStore;
  /** Per-account XML documents (added in schema 4). */
  readonly xml: XmlStore;
  /** XEP-0163 PEP nodes and items (added in schema 5). */
  readonly pep: PepStore;
  /** XEP-0313 message archives and archiving preferences (added in schema 6). */
  readonly mam: import('./archive.js').ArchiveStore;
  /** XEP-0045 persistent rooms (added in schema 7; optional so that other backends stay valid). */
  readonly muc?: MucStore;
  /**
   * Look now for writes other processes made to what the caches hold (`hermod passwd`,
   * `deluser`), instead of at the next poll: the admin socket's kick that follows such a write
   * calls it before closing the streams, so the client's reconnect meets the new state.
   * Optional (added): backends without caches need none.
   */
  checkExternalWrites?(): void;
  /** Flush and release the backend. Further calls on the stores throw. Idempotent. */
  close(): void;
}

export interface StorageOptions {
  /** PBKDF2 iteration count for passwords set from now on (RFC 5802 §5.1 'i'); default 4096. */
  iterations?: number;
  /** Offline messages kept per user before push() refuses; default 1000. */
  offlineLimit?: number;
}

export const DEFAULT_ITERATIONS = 4096;
export const DEFAULT_OFFLINE_LIMIT = 1000;
