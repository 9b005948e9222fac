/**
 * The contract between the stream layer (src/stream, src/transport: one object per client
 * connection) and the router (src/router: sessions, delivery, presence; src/modules).
 *
 * The stream layer negotiates the stream (TLS, SASL, bind) and then hands every top-level
 * <message/>, <presence/> and <iq/> to Router.route(). The router never touches sockets: it
 * writes bytes with ClientSession.send(), which queues them and flushes once per event-loop turn.
 */
import type { StanzaView } from '../core/api.js';
import type { StreamError } from '../errors.js';
import type { Jid } from '../jid.js';

/** What the router sees of one client connection. Implemented by the stream layer. */
export interface ClientSession {
  /** Unique for the life of the process. */
  readonly id: number;
  /** The authenticated account's bare JID (set by the stream layer after SASL success). */
  readonly account: Jid;
  /** The full JID once Router.bind() has returned; null before. */
  readonly jid: Jid | null;
  /** The client's IP address as its transport saw it (optional, added for per-address limits). */
  readonly remoteAddress?: string | undefined;
  /** Queue bytes for this client; they are written (corked) once per event-loop turn. */
  send(data: Uint8Array | string): void;
  /**
   * End the stream: send the stream error (if any) and </stream:stream>, then close the socket.
   * The stream layer calls Router.unbind() itself as part of closing.
   */
  close(error?: StreamError): void;
}

export interface Router {
  /**
   * RFC 6120 §7: bind a resource for an authenticated session. `requested` is the client's
   * resourcepart or null (the server generates one). On conflict the older session is replaced
   * (closed with <conflict/>). Returns the full JID; throws StanzaError (e.g. 'bad-request',
   * 'not-allowed', 'resource-constraint') when binding is refused.
   */
  bind(session: ClientSession, requested: string | null): Jid;

  /** Handle one stanza from a bound session: message, presence or iq. Never throws. */
  route(session: ClientSession, stanza: StanzaView): void;

  /**
   * Handle an <iq/> before authentication (XEP-0077 in-band registration is the only user).
   * Returns true when handled (a reply was sent with `reply`), false when the stream layer should
   * refuse it.
   */
  routeUnauthenticated(stanza: StanzaView, reply: (data: string) => void): boolean;

  /**
   * The session is gone (closed by either side, replaced, or timed out): broadcast unavailable
   * presence when it was available (RFC 6121 §4.5.2), forget it. Idempotent.
   */
  unbind(session: ClientSession): void;

  /**
   * Stream features the router's modules support, to add to the features offered after SASL
   * (RFC 6121 §2.6.1 roster versioning <ver/>, §3.4.1 pre-approval <sub/>), as serialised XML.
   * Optional: added after the first version of this contract.
   */
  streamFeatures?(): string;

  /**
   * A top-level element of a bound session that is not a stanza (kind Other), e.g. XEP-0352
   * <active/>/<inactive/>. Returns true when a module took it; false means the stream layer
   * should refuse it as before (unsupported-stanza-type). Optional, added compatibly.
   */
  nonza?(session: ClientSession, element: StanzaView): boolean;
}
