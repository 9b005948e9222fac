/**
 * The router's side of one bound client session, and the registry that finds sessions by full
 * and by bare JID (RFC 6120 §7: one full JID per session; RFC 6121 §8.5: delivery by bare JID
 * looks at every resource of the account).
 */
import { randomBytes } from 'node:crypto';
import { StanzaError, StreamError } from '../errors.js';
import type { Jid } from '../jid.js';
import { fromAttribute } from '../xml/splice.js';
import type { ClientSession } from './types.js';

/** What a delivered stanza is, for output filters (XEP-0352 CSI holds presence, not messages). */
export type DeliveryKind = 'message' | 'presence' | 'iq' | 'other';

/**
 * An output filter returns true when it took the bytes (held or dropped them). Installed by
 * modules such as client state indication; runs on every delivery to the session.
 */
export type OutputFilter = (bytes: Uint8Array | string, kind: DeliveryKind) => boolean;

/**
 * A Map that allocates its table on the first write: most sessions never store module state,
 * and an empty Map still costs ~180 bytes of hash table (heap snapshot, docs/benchmarks.md).
 * Reads of an empty one allocate nothing.
 */
class LazyMap<K, V> implements Map<K, V> {
  private map: Map<K, V> | null = null;
  get size(): number {
    return this.map === null ? 0 : this.map.size;
  }
  get(key: K): V | undefined {
    return this.map === null ? undefined : this.map.get(key);
  }
  has(key: K): boolean {
    return this.map !== null && this.map.has(key);
  }
  set(key: K, value: V): this {
    (this.map ??= new Map()).set(key, value);
    return this;
  }
  delete(key: K): boolean {
    return this.map !== null && this.map.delete(key);
  }
  clear(): void {
    this.map = null;
  }
  forEach(fn: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    this.map?.forEach((v, k) => fn.call(thisArg, v, k, this));
  }
  entries(): IterableIterator<[K, V]> {
    return (this.map ?? EMPTY_MAP).entries() as IterableIterator<[K, V]>;
  }
  keys(): IterableIterator<K> {
    return (this.map ?? EMPTY_MAP).keys() as IterableIterator<K>;
  }
  values(): IterableIterator<V> {
    return (this.map ?? EMPTY_MAP).values() as IterableIterator<V>;
  }
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
  get [Symbol.toStringTag](): string {
    return 'Map';
  }
}

/** The same for a Set (directed presence is rare: most sessions never send any). */
class LazySet<T> implements Set<T> {
  private set: Set<T> | null = null;
  get size(): number {
    return this.set === null ? 0 : this.set.size;
  }
  has(value: T): boolean {
    return this.set !== null && this.set.has(value);
  }
  add(value: T): this {
    (this.set ??= new Set()).add(value);
    return this;
  }
  delete(value: T): boolean {
    return this.set !== null && this.set.delete(value);
  }
  clear(): void {
    this.set = null;
  }
  forEach(fn: (value: T, value2: T, set: Set<T>) => void, thisArg?: unknown): void {
    this.set?.forEach((v) => fn.call(thisArg, v, v, this));
  }
  entries(): IterableIterator<[T, T]> {
    return (this.set ?? EMPTY_SET).entries() as IterableIterator<[T, T]>;
  }
  keys(): IterableIterator<T> {
    return this.values();
  }
  values(): IterableIterator<T> {
    return (this.set ?? EMPTY_SET).values() as IterableIterator<T>;
  }
  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
  get [Symbol.toStringTag](): string {
    return 'Set';
  }
}

const EMPTY_MAP: ReadonlyMap<unknown, unknown> = new Map();
const EMPTY_SET: ReadonlySet<unknown> = new Set();
const NO_FILTERS: OutputFilter[] = [];

export class SessionState {
  private stamp: Buffer | null = null;
  readonly bare: string;
  /** RFC 6121 §4.2: has sent initial presence and not gone unavailable since. */
  available = false;
  /** RFC 6121 §4.7.2.3: -128..127, 0 when the presence carried none. */
  priority = 0;
  /** The last available presence, stamped, as delivered to subscribers (probe answers reuse it). */
  presence: Buffer | null = null;
  /** RFC 6121 §2.1.6: requested the roster, so it receives roster pushes. */
  interested = false;
  /** RFC 6121 §4.6: JIDs that got directed presence and must hear our unavailable. */
  readonly directed: Set<string> = new LazySet<string>();
  /** Per-module state (carbons enabled, CSI inactive, …), keyed by module name. */
  readonly data: Map<string, unknown> = new LazyMap<string, unknown>();
  private filters_: OutputFilter[] = NO_FILTERS;

  constructor(
    readonly session: ClientSession,
    readonly jid: Jid,
  ) {
    this.bare = jid.bare;
  }

  /**
   * ` from='full jid'` bytes, stamped on every stanza this session sends: made on the first
   * stanza, since a session that never sends (most idle ones) need not hold them.
   */
  get fromStamp(): Buffer {
    return (this.stamp ??= fromAttribute(this.jid.full));
  }

  /** Output filters (XEP-0352 CSI, …); the array is made on first access, then kept. */
  get filters(): OutputFilter[] {
    if (this.filters_ === NO_FILTERS) this.filters_ = [];
    return this.filters_;
  }

  /** Write bytes to the client, unless an output filter takes them. */
  deliver(bytes: Uint8Array | string, kind: DeliveryKind): void {
    const filters = this.filters_;
    for (let i = 0; i < filters.length; i++) if (filters[i]!(bytes, kind)) return;
    this.session.send(bytes);
  }
}

export interface RegistryOptions {
  /** RFC 6120 §7.6.2.1: at most this many resources per account (default 10). */
  maxResources: number;
}

export class SessionRegistry {
  private readonly byId = new Map<number, SessionState>();
  private readonly byFull = new Map<string, SessionState>();
  private readonly byBare = new Map<string, SessionState[]>();

  constructor(private readonly options: RegistryOptions) {}

  get size(): number {
    return this.byId.size;
  }

  get(session: ClientSession): SessionState | undefined {
    return this.byId.get(session.id);
  }

  full(jid: string): SessionState | undefined {
    return this.byFull.get(jid);
  }

  /** Every bound session of an account (available or not); empty array when none. */
  bare(jid: string): readonly SessionState[] {
    return this.byBare.get(jid) ?? EMPTY;
  }

  all(): IterableIterator<SessionState> {
    return this.byId.values();
  }

  /**
   * RFC 6120 §7.6–7.7: choose the resource. Returns the full JID and the session it would
   * replace (resource conflict: the newer session wins, §7.7.2.2 option 2); the caller retires
   * that one, then calls add().
   */
  prepare(session: ClientSession, requested: string | null): { jid: Jid; replaced: SessionState | null } {
    if (this.byId.has(session.id)) throw new StanzaError('not-allowed', 'resource already bound');
    const account = session.account;
    let jid: Jid;
    if (requested === null || requested === '') {
      // §7.6: the server generates a resourcepart unique for the account.
      do jid = account.withResource(randomBytes(6).toString('hex'));
      while (this.byFull.has(jid.full));
    } else {
      try {
        jid = account.withResource(requested);
      } catch {
        // §7.7.2.1: a resourcepart that cannot be prepared is a bad-request.
        throw new StanzaError('bad-request', 'resourcepart not allowed');
      }
    }
    const replaced = this.byFull.get(jid.full) ?? null;
    const others = this.bare(jid.bare).length - (replaced ? 1 : 0);
    if (others >= this.options.maxResources) {
      throw new StanzaError('resource-constraint', `at most ${this.options.maxResources} resources per account`);
    }
    return { jid, replaced };
  }

  add(session: ClientSession, jid: Jid): SessionState {
    const state = new SessionState(session, jid);
    this.byId.set(session.id, state);
    this.byFull.set(jid.full, state);
    const list = this.byBare.get(jid.bare);
    if (list) list.push(state);
    else this.byBare.set(jid.bare, [state]);
    return state;
  }

  /** Forget a session; false when it was not registered. */
  remove(state: SessionState): boolean {
    if (this.byId.get(state.session.id) !== state) return false;
    this.byId.delete(state.session.id);
    if (this.byFull.get(state.jid.full) === state) this.byFull.delete(state.jid.full);
    const list = this.byBare.get(state.bare);
    if (list) {
      const i = list.indexOf(state);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byBare.delete(state.bare);
    }
    return true;
  }
}

const EMPTY: readonly SessionState[] = Object.freeze([]);

/** The stream error a replaced session is closed with (RFC 6120 §4.9.3.3). */
export function conflictError(): StreamError {
  return new StreamError('conflict', 'replaced by a new session with the same resource');
}
