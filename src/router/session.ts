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

export class SessionState {
  /** ` from='full jid'` bytes, computed once: stamped on every stanza this session sends. */
  readonly fromStamp: Buffer;
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
  readonly directed = new Set<string>();
  /** Per-module state (carbons enabled, CSI inactive, …), keyed by module name. */
  readonly data = new Map<string, unknown>();
  readonly filters: OutputFilter[] = [];

  constructor(
    readonly session: ClientSession,
    readonly jid: Jid,
  ) {
    this.fromStamp = fromAttribute(jid.full);
    this.bare = jid.bare;
  }

  /** Write bytes to the client, unless an output filter takes them. */
  deliver(bytes: Uint8Array | string, kind: DeliveryKind): void {
    for (let i = 0; i < this.filters.length; i++) if (this.filters[i]!(bytes, kind)) return;
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
