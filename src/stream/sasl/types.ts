/**
 * Server-side SASL (RFC 4422, RFC 6120 §6) as socket-free state machines.
 *
 * One exchange per <auth/>: the stream layer calls step() with the decoded initial response
 * (null when the <auth/> carried none) and then once per <response/>. Each step resolves to a
 * challenge or to success, or rejects with a SaslFailure whose condition is the one RFC 6120 §6.5
 * names. Steps may be asynchronous because verifying a PLAIN password runs PBKDF2 on libuv's
 * thread pool rather than on the event loop; the stream layer must not start another step of the
 * same exchange before the previous one settled.
 */
import type { UserStore } from '../../storage/types.js';

/** One step of a server-side SASL exchange (RFC 6120 §6.4, RFC 4422 §5). */
export type SaslStep =
  | { done: false; challenge: Buffer }
  | {
      done: true;
      /** The authenticated account's prepared localpart (the account is username@domain). */
      username: string;
      /** RFC 6120 §6.4.6 additional data with success (SCRAM's server signature), or null. */
      additionalData: Buffer | null;
    };

export interface SaslExchange {
  readonly mechanism: string;
  /** The authentication identity the client gave, once a step has read it (for logs; optional). */
  readonly authcid?: string;
  /** Resolves to the next challenge or to success; rejects with SaslFailure. */
  step(response: Buffer | null): Promise<SaslStep>;
  /**
   * The same step, answered at once when it needs no work off the event loop (SCRAM always;
   * PLAIN when the login is remembered): a SaslStep, a thrown SaslFailure, or a Promise when it
   * does need the thread pool. Optional (added): the stream layer then answers in the same turn
   * as the client's message, so replies are written together and pipelined input goes on.
   */
  stepNow?(response: Buffer | null): SaslStep | Promise<SaslStep>;
}

/** What a mechanism needs to know about the server it authenticates for. */
export interface SaslContext {
  /** The stream's prepared domain: accounts are `username@domain`. */
  domain: string;
  users: UserStore;
  /**
   * Iteration count shown for accounts that do not exist (SCRAM) so that they look like those
   * that do; the store's default (4096) unless configured otherwise.
   */
  iterations?: number;
  /** Secret from which fake salts for unknown accounts are derived; random per provider. */
  secret?: Buffer;
  /** Server nonce part for SCRAM (RFC 5802 §5.1 'r'); random unless a test fixes it. */
  nonce?: () => string;
  /**
   * Accounts whose last PLAIN login is remembered so that the next one skips PBKDF2
   * (src/stream/sasl/plain-cache.ts, docs/security.md); 0 turns the cache off. Default 10000.
   */
  plainCacheSize?: number;
  /** The cache itself, made on first use from plainCacheSize. */
  plainCache?: import('./plain-cache.js').PlainLoginCache;
}
