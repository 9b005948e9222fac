/**
 * The RFC 6120 client-to-server stream, as a socket-free state machine.
 *
 * Bytes come in through feed(); the core parser turns them into a stream header, top-level
 * elements and a close; this class decides what each means in the current negotiation phase
 * (STARTTLS → SASL → restart → bind) and writes its answers to a StreamTransport. It never
 * touches a socket, so tests drive it with byte arrays and read what it wrote.
 *
 * Once bound it is the router's ClientSession: send() queues bytes and the queue is written in
 * one gathered write per event-loop turn (setImmediate), whatever the number of stanzas.
 *
 * With XEP-0198 a session can outlive its connection: it stays bound while detached, and a new
 * connection that authenticates as the same account and sends <resume/> hands it its transport
 * and parser (the parser calls through a ParserRelay, so the hand-over is a pointer change).
 */
import { randomBytes } from 'node:crypto';
import type {
  CoreError,
  ParserHandler,
  ParserLimits,
  StanzaView,
  StreamHeader,
  StreamParser,
} from '../core/api.js';
import { StanzaKind, StanzaStatus, StanzaType } from '../core/api.js';
import { SASL_NS, STANZA_ERRORS_NS, STREAMS_NS, SaslFailure, StanzaError, StreamError, escapeXml } from '../errors.js';
import { Jid, prepareDomainpart } from '../jid.js';
import type { ClientSession, Router } from '../router/types.js';
import { stats } from '../observability/metrics.js';
import { shaperFor, type Shaper } from './limits.js';
import { AckTooHigh, SM_NS, StreamManagement, isStanzaBytes, parseH } from './sm.js';
import { localName, parseElement } from '../xml/element.js';
import { readSaslElement } from './sasl/element.js';
import { scanBindResource } from './bind-element.js';
import { decodeSaslPayload, encodeSaslPayload, type SaslExchange, type SaslStep } from './sasl/index.js';
import { randomHex } from './random.js';

export const TLS_NS = 'urn:ietf:params:xml:ns:xmpp-tls';
export const BIND_NS = 'urn:ietf:params:xml:ns:xmpp-bind';
export const SESSION_NS = 'urn:ietf:params:xml:ns:xmpp-session';
export const REGISTER_FEATURE_NS = 'http://jabber.org/features/iq-register';
export const REGISTER_NS = 'jabber:iq:register';
const CLIENT_NS = 'jabber:client';

/** Anything that can turn parsed elements into a StreamParser: the WASM core (src/core). */
export interface ParserFactory {
  createParser(handler: ParserHandler, limits?: Partial<ParserLimits>): StreamParser;
}

/** Where the stream writes. Implemented over net/tls sockets by src/transport. */
export interface StreamTransport {
  /** Whether the channel is already encrypted (Direct TLS, or after STARTTLS). */
  readonly secure: boolean;
  /** Whether STARTTLS can be offered (a certificate is configured and the channel is plain). */
  readonly canStartTls: boolean;
  /** The peer's address, where there is one (for the log of failed authentications). */
  readonly remoteAddress?: string | undefined;
  /** Write these chunks in order, as one gathered write. */
  write(chunks: (string | Uint8Array)[]): void;
  /**
   * RFC 6120 §5.4.2.3: <proceed/> has just been written; wrap the connection in TLS now. The
   * next bytes fed to the stream are the decrypted start of a new stream, and `secure` is true
   * from then on.
   */
  startTls(): void;
  /** Close the connection once everything written so far is flushed. */
  end(): void;
  /** Bytes written but not yet taken by the kernel (a slow reader makes it grow). */
  readonly pendingBytes?: number;
  /** Stop reading for this long (rate limiting); bytes already read are still delivered. */
  pauseFor?(ms: number): void;
  /** Send the connection's bytes and close notice elsewhere (XEP-0198 resumption moves them). */
  attach?(sink: ByteSink): void;
}

/** Where a transport delivers what it reads. */
export interface ByteSink {
  feed(chunk: Uint8Array): void;
  transportClosed(): void;
  /**
   * Optional (added for RFC 7395): a stream header the transport recognised itself (a WebSocket
   * <open/>). Parsed like feed() where a header is due; anywhere else the stream ends with an
   * error instead of waiting for an element that never closes.
   */
  feedHeader?(header: Uint8Array): void;
  /** Optional (added for RFC 7395): end the stream with a framing error the parser cannot see. */
  streamError?(error: StreamError): void;
  /**
   * Optional (added for RFC 7395 §3.3.3): a chunk that must hold exactly one complete element (a
   * WebSocket message); anything else ends the stream with <not-well-formed/>.
   */
  feedElement?(chunk: Uint8Array): void;
}

/**
 * The stream inside feedElement() (one at a time: feeding is synchronous), the byte length its
 * one element must have (the message without surrounding whitespace), and whether it came: kept
 * here rather than in fields of every stream.
 */
let framedStream: C2SStream | null = null;
let framedLength = 0;
let framedElementSeen = false;

function isSpaceByte(b: number | undefined): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** A sink for a connection nobody listens to any more. */
const NO_SINK: ByteSink = { feed: () => {}, transportClosed: () => {} };

/**
 * Authentication failure back-off for the connection's address (shared by all its streams):
 * `failed()` records a failed attempt and returns how long to hold the <failure/> answer;
 * `succeeded()` forgets the address's failures.
 */
export interface AuthThrottle {
  /** `stream` lets one throttle object serve every connection (no closures per connection). */
  failed(stream: C2SStream): number;
  succeeded(stream: C2SStream): void;
}

/** The SASL mechanisms offered and the factory of their exchanges (src/stream/sasl). */
export interface SaslProvider {
  /** Names offered, best first. `plaintextOk` is false when PLAIN must not be offered. */
  mechanisms(plaintextOk: boolean): string[];
  /** Start an exchange; throws SaslFailure('invalid-mechanism') for unknown names. */
  start(mechanism: string): SaslExchange;
}

/** A handler for a top-level element that is neither a stanza nor part of negotiation. */
export type ElementHandler = (stream: C2SStream, element: StanzaView) => void;

export interface C2SOptions {
  domain: string;
  tls: 'required' | 'optional';
  registration: 'open' | 'closed';
  preAuthMaxStanzaBytes: number;
  maxStanzaBytes: number;
  saslMaxAttempts: number;
  /** Nesting and attribute limits for the parser (defaults: the core's). */
  maxDepth?: number;
  maxAttributes?: number;
  /** Close a stream not bound within this many ms (0 = never), RFC 6120 §4.9.3.4. */
  preauthTimeoutMs?: number;
  /** Close a bound stream silent (not even whitespace) for this many ms (0 = never). */
  idleTimeoutMs?: number;
  /** Close the stream of a reader that leaves more than this many bytes unread (0 = no bound). */
  maxOutputBytes?: number;
  /** Stanzas (top-level elements) a second, sustained and at once; reading pauses beyond. */
  stanzaRate?: { rate: number; burst: number };
  /**
   * XEP-0198 Stream Management; absent = not offered. maxUnackedBytes (added, optional) bounds
   * the bytes of the unacknowledged stanzas as maxUnacked bounds their number.
   */
  streamManagement?: { resumeTimeoutMs: number; maxUnacked: number; maxUnackedBytes?: number };
}

export interface C2SDeps {
  core: ParserFactory;
  router: Router;
  sasl: SaslProvider;
  /** Extension elements after authentication (XEP-0198 <enable/>, XEP-0352 <active/>, …) keyed `ns localName`. */
  elementHandlers?: Map<string, ElementHandler>;
  /** Extra stream features after authentication (e.g. `<sm xmlns='urn:xmpp:sm:3'/>`). */
  extraFeatures?: () => string;
  /** Called once when the stream is gone, for the server's bookkeeping. */
  onClosed?: (stream: C2SStream) => void;
  /** Back-off after failed authentication, per remote address. */
  authThrottle?: AuthThrottle;
  /** Clock for the timeouts (tests pin it). */
  now?: () => number;
  /** XEP-0198 resumable sessions by resumption id, shared by all streams of the server. */
  smSessions?: Map<string, C2SStream>;
  /**
   * Sharded servers (XEP-0198 across shards): resumption ids name the shard that owns the
   * session, and a <resume/> arriving on another shard moves the connection there.
   */
  smShards?: SmShardRouting;
  /** A session ended with stanzas the client never acknowledged (XEP-0198 §4): keep them. */
  onUnacked?: (session: C2SStream, stanzas: (string | Uint8Array)[]) => void;
  /** Where failed authentications are reported (info: operators and fail2ban watch them). */
  log?: { info(fields: object, message: string): void };
}

/**
 * XEP-0198 §5 with several shards: a resumption id is only known to the shard that issued it,
 * and a reconnecting client lands wherever the main thread put it. The stream asks this where a
 * previd belongs and, when elsewhere, hands its connection over (src/shard/worker.ts).
 */
export interface SmShardRouting {
  /** A fresh resumption id that names this shard. */
  mint(): string;
  /** The shard owning `previd` when that is another, existing shard; null otherwise. */
  ownerElsewhere(previd: string): number | null;
  /**
   * Move this authenticated connection to `shard`, which goes on with `first` (the <resume/>
   * element); what the client sent after it follows through the returned sink, in order.
   */
  moveTo(stream: C2SStream, shard: number, first: Uint8Array): HandOffSink;
}

/** Where a connection that moved to another shard sends what it still reads. */
export interface HandOffSink {
  /** One complete top-level element (or the closing tag), as the client sent it. */
  element(bytes: Uint8Array | string): void;
  /** The client's XML broke: the new owner ends the stream with this error. */
  error(error: StreamError): void;
}

/**
 * For a stream continued on another shard (C2SStream.continued): the header that primes a fresh
 * parser, so the client's next elements parse as children of the stream it opened elsewhere.
 */
const CONTINUED_HEADER = new TextEncoder().encode(
  `<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS_NS}' version='1.0'>`,
);

/** Where the stream is in RFC 6120's negotiation (§4.3). */
export enum StreamPhase {
  /** Waiting for the client's stream header (initial, or after a restart). */
  AwaitingHeader = 0,
  /** Header answered, features sent, not authenticated yet. */
  Negotiating = 1,
  /** SASL succeeded and the stream restarted; a resource must be bound (§7). */
  Authenticated = 2,
  /** A resource is bound; stanzas go to the router. */
  Bound = 3,
  /** Closing or closed: input is ignored. */
  Closed = 4,
}

let nextSessionId = 1;
/** Pre-authentication <stream:features/> per server (deps, options) and channel state. */
const preAuthFeatures = new WeakMap<C2SDeps, { options: C2SOptions; byState: string[] }>();
/** Stands for pipelined input over the pre-authentication bound (not kept). */
const TOO_MUCH_PIPELINED = new Uint8Array(0);
/** <success/> without additional data (PLAIN), built once. */
const SUCCESS_EMPTY = `<success xmlns='${SASL_NS}'></success>`;
/** Unread output past this many times limits.output_queue_bytes is cut at once, drained or not. */
const OUTPUT_BACKLOG_CAP = 64;
/** Unacknowledged bytes past this many times stream_management.max_unacked_bytes: the same. */
const UNACKED_BACKLOG_CAP = 4;
/** Between two looks at a backlog, the client must have taken some of it (ms). */
const BACKLOG_LOOK_MS = 1000;
/**
 * How much a backlog must shrink between two looks, at most: a client that takes one byte a
 * second (slowloris) would otherwise keep up to the cap in server memory for as long as it
 * likes. 64 KiB a second is far below any real link; a small bound asks for a sixteenth of it.
 */
const BACKLOG_MIN_DRAIN = 65536;

/**
 * A quantity the client works off (unread output, unacknowledged stanzas' bytes) allowed past
 * its bound while it shrinks from one look to the next (the periodic sweep, a second apart) and
 * never past a cap: a reply the server writes at once — the offline store at login, an archive
 * page, a large roster — passes a bound a reader that never reads would hit.
 */
class Backlog {
  private last = -1;
  private lookedAt = 0;

  get watching(): boolean {
    return this.last >= 0;
  }

  /** False when the client must be cut loose. */
  ok(amount: number, bound: number, cap: number, now: number, sweep: boolean): boolean {
    if (amount <= bound) {
      this.last = -1;
      return true;
    }
    const first = this.last < 0;
    const due = sweep && !first && now - this.lookedAt >= BACKLOG_LOOK_MS;
    if (amount > cap || (due && amount > this.last - Math.min(BACKLOG_MIN_DRAIN, bound / 16))) return false;
    if (first || due) {
      this.last = amount;
      this.lookedAt = now;
    }
    return true;
  }
}
let routeSamples = 0;

/**
 * Streams with queued output, flushed together once per event-loop turn: one setImmediate for
 * the whole process rather than one per stream (a presence fan-out dirties hundreds at once).
 * setImmediate runs after the poll phase, so everything routed from the reads of this turn is
 * gathered into one write per stream.
 */
let dirty: C2SStream[] = [];
let flushPending = false;

function scheduleFlush(stream: C2SStream): void {
  dirty.push(stream);
  if (!flushPending) {
    flushPending = true;
    setImmediate(flushDirty);
  }
}

function flushDirty(): void {
  flushPending = false;
  const streams = dirty;
  dirty = [];
  for (const stream of streams) stream.flush();
}

/** The kind of a stanza we send, from its first letter (for the stanzas-out metric). */
function outboundKind(data: string | Uint8Array): StanzaKind {
  const c = typeof data === 'string' ? data.charCodeAt(1) : data[1];
  return c === 0x6d ? StanzaKind.Message : c === 0x70 ? StanzaKind.Presence : c === 0x69 ? StanzaKind.Iq : StanzaKind.Other;
}

/** Length of the unprefixed element names message, presence and iq, by StanzaKind. */
const STANZA_NAME_LENGTH = [0, 7, 8, 2, 0];

/**
 * RFC 6120 §4.8.2 and §8: a stanza is a message, presence or iq qualified by the content
 * namespace. The core classifies by local name alone, so {jabber:server}message, a message in
 * no namespace or <p:message xmlns:p='urn:x:evil'/> would be routed, handing recipients an
 * element their stream does not define; such elements are other first-level elements.
 */
function inClientNamespace(view: StanzaView): boolean {
  // Unprefixed and declaring no namespace: the header's default, which checkHeader made
  // jabber:client. The common case costs one descriptor read, no string decode.
  if (view.nsInherited === true && view.nameEnd - view.start - 1 === STANZA_NAME_LENGTH[view.kind]) return true;
  return view.namespace() === CLIENT_NS;
}

function allStrings(chunks: (string | Uint8Array)[]): chunks is string[] {
  for (const c of chunks) if (typeof c !== 'string') return false;
  return true;
}

function byteSize(data: string | Uint8Array): number {
  // Strings count UTF-16 units: exact for the ASCII markup that dominates, close otherwise.
  return typeof data === 'string' ? data.length : data.byteLength;
}

/**
 * RFC 6120 §4.8.5: only the prefix 'stream' for the streams namespace (allowed "for historical
 * reasons"), and no other prefix declared on the header. Stanzas are forwarded as the peer wrote
 * them, so a prefix bound only on its header would reach the recipient's stream unbound and break
 * it. Shared with XEP-0114 component streams.
 */
export function headerPrefixError(header: StreamHeader): StreamError | null {
  if (header.name !== 'stream:stream' || (header.declaredPrefixes ?? []).some((p) => p !== 'stream' && p !== 'xml')) {
    return new StreamError('bad-namespace-prefix', "the stream header may declare only the prefix 'stream'");
  }
  return null;
}

/**
 * The parser's handler: forwards to whichever stream owns the parser now (XEP-0198 resumption
 * moves it). One small object with prototype methods, not four closures per connection.
 */
class ParserRelay implements ParserHandler {
  constructor(public stream: C2SStream) {}
  onStreamOpen(header: StreamHeader): void {
    this.stream.onStreamOpen(header);
  }
  onStanza(view: StanzaView): void {
    this.stream.onStanza(view);
  }
  onStreamClose(): void {
    this.stream.onStreamClose();
  }
  onError(error: CoreError): void {
    this.stream.onError(error);
  }
}

export class C2SStream implements ClientSession, ParserHandler {
  readonly id = nextSessionId++;
  /** The id of the current response stream header (RFC 6120 §4.7.3), fresh per restart. */
  streamId = '';
  phase = StreamPhase.AwaitingHeader;
  private parser: StreamParser;
  /** The parser calls through this, so that a resumed session can take the parser over. */
  private readonly parserTarget: ParserRelay;
  private parserLive = true;
  private sm: StreamManagement | null = null;
  /** XEP-0198: the connection is gone but the session waits to be resumed until then (ms). */
  private detachedUntil = 0;
  /** This connection resumed another session and handed everything to it. */
  private adoptedBy: C2SStream | null = null;
  /** This connection moved to another shard to resume a session there (XEP-0198 §5). */
  private handedOff: HandOffSink | null = null;
  private headerSent = false;
  private resetAfterFeed = false;
  /** After STARTTLS or SASL success, the rest of the chunk belongs to no stream (§5.4.3.3). */
  private discardRest = false;
  private account_: Jid | null = null;
  private jid_: Jid | null = null;
  private sasl: SaslExchange | null = null;
  private saslFailures = 0;
  /** A SASL step is being computed (PBKDF2 runs off the event loop); input waits in `held`. */
  private saslPending = false;
  private held: Uint8Array[] = [];
  /**
   * What the client pipelined behind its <auth/> or <response/> in the same read (it presumes
   * success and restarts at once): parsed as the start of the new stream after <success/>; any
   * other answer makes it a protocol violation (RFC 6120 §6.4: the client waits for it).
   */
  private pipelined: Uint8Array | null = null;
  /** `pipelined` was taken from the current read: the parser's further events in it are void. */
  private pipelinedTaken = false;
  private queue: (string | Uint8Array)[] = [];
  private flushScheduled = false;
  private closedNotified = false;
  private feeding = false;
  /** Bytes send() queued since the last flush (the output-queue gauge). */
  private queuedBytes = 0;
  private readonly openedAt: number;
  /** When bytes last arrived (whitespace keepalives count: RFC 6120 §4.6.1). */
  private lastInput: number;
  /** Past their bounds (created then): unread output, unacknowledged bytes. */
  private outputBacklog: Backlog | null = null;
  private unackedBacklog: Backlog | null = null;
  /** Stanza rate: the shared limits and this stream's bucket state (see Shaper). */
  private readonly stanzaShaper: Shaper | null;
  private stanzasFullAt = 0;

  constructor(
    private transport: StreamTransport,
    private readonly options: C2SOptions,
    private readonly deps: C2SDeps,
  ) {
    const limits: Partial<ParserLimits> = { maxStanzaBytes: options.preAuthMaxStanzaBytes };
    if (options.maxDepth !== undefined) limits.maxDepth = options.maxDepth;
    if (options.maxAttributes !== undefined) limits.maxAttributes = options.maxAttributes;
    this.parserTarget = new ParserRelay(this);
    this.parser = deps.core.createParser(this.parserTarget, limits);
    this.openedAt = this.lastInput = (deps.now ?? Date.now)();
    const rate = options.stanzaRate;
    this.stanzaShaper = rate && rate.rate > 0 ? shaperFor(rate.rate, rate.burst) : null;
  }

  // ---- ClientSession ------------------------------------------------------------------------

  get account(): Jid {
    if (!this.account_) throw new Error('session is not authenticated');
    return this.account_;
  }

  get jid(): Jid | null {
    return this.jid_;
  }

  /** Read through: the transport flips to secure when STARTTLS completes. */
  private get secure(): boolean {
    return this.transport.secure;
  }

  get isAuthenticated(): boolean {
    return this.account_ !== null;
  }

  send(data: Uint8Array | string): void {
    if (this.phase === StreamPhase.Closed) return;
    // XEP-0198: every stanza is kept until the client acknowledges it.
    if (this.sm && isStanzaBytes(data)) this.sm.sentStanza(data);
    stats.stanzaOut(outboundKind(data));
    const size = byteSize(data);
    stats.queued(size);
    this.queuedBytes += size;
    this.queue.push(data);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      scheduleFlush(this);
    }
  }

  /** Write what is queued at the end of this turn, with everything else queued by then. */
  private flushLater(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      scheduleFlush(this);
    }
  }

  /** Write everything queued now, in one gathered write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const chunks = this.queue;
    this.queue = [];
    if (this.queuedBytes > 0) {
      stats.queued(-this.queuedBytes);
      this.queuedBytes = 0;
    }
    const sm = this.sm;
    if (sm && this.phase === StreamPhase.Bound) {
      // Bounded even while detached: a flood to a vanished client must not grow without limit,
      // in stanzas and in bytes (5000 stanzas of 256 KiB would be a gigabyte held for one client).
      if (sm.unackedCount > (this.options.streamManagement?.maxUnacked ?? Infinity) || !this.unackedOk((this.deps.now ?? Date.now)(), false)) {
        this.close(new StreamError('resource-constraint', 'too many unacknowledged stanzas'));
        return;
      }
      // Detached (XEP-0198): nothing to write to; the stanzas wait in the unacked queue.
      if (this.detachedUntil > 0) return;
      // XEP-0198 §4: ask for an acknowledgement once per outstanding batch.
      if (sm.unackedCount > 0 && !sm.ackRequested) {
        chunks.push(`<r xmlns='${SM_NS}'/>`);
        sm.ackRequested = true;
      }
    }
    if (chunks.length > 1 && this.phase !== StreamPhase.Bound && allStrings(chunks)) {
      // Negotiation replies are short strings: one joined string is one plain write, cheaper
      // than a corked writev of several.
      this.transport.write([chunks.join('')]);
    } else {
      this.transport.write(chunks);
    }
    let bytes = 0;
    for (const chunk of chunks) bytes += byteSize(chunk);
    stats.flushed(bytes);
    if (this.phase !== StreamPhase.Closed) this.checkBacklog((this.deps.now ?? Date.now)(), false);
  }

  /**
   * The slow-reader policy (limits.output_queue_bytes): a reader this slow would make the server
   * buffer without bound, so it is cut loose — once its unread output has not shrunk over a
   * second, or passes OUTPUT_BACKLOG_CAP times the bound (Backlog).
   */
  private checkBacklog(now: number, sweep: boolean): void {
    const limit = this.options.maxOutputBytes ?? 0;
    if (limit <= 0) return;
    const pending = this.transport.pendingBytes ?? 0;
    if (pending <= limit && !this.outputBacklog) return;
    this.outputBacklog ??= new Backlog();
    if (!this.outputBacklog.ok(pending, limit, limit * OUTPUT_BACKLOG_CAP, now, sweep)) {
      this.close(new StreamError('resource-constraint', 'output queue limit exceeded: the client reads too slowly'));
    }
  }

  /** XEP-0198: the unacknowledged stanzas' bytes, under the same kind of policy as the output. */
  private unackedOk(now: number, sweep: boolean): boolean {
    const limit = this.options.streamManagement?.maxUnackedBytes ?? 0;
    const bytes = this.sm?.unackedBytes ?? 0;
    if (limit <= 0 || (bytes <= limit && !this.unackedBacklog)) return true;
    this.unackedBacklog ??= new Backlog();
    return this.unackedBacklog.ok(bytes, limit, limit * UNACKED_BACKLOG_CAP, now, sweep);
  }

  /**
   * Called periodically by the server (one sweep for all streams, not a timer each): close a
   * stream that negotiates too long or, once bound, stays silent too long.
   */
  checkTimeouts(now: number): void {
    // A connection handed to another shard is timed there.
    if (this.phase === StreamPhase.Closed || this.handedOff) return;
    if (this.detachedUntil > 0) {
      // XEP-0198 §5: not resumed in time: the session ends for good.
      if (now > this.detachedUntil) {
        this.phase = StreamPhase.Closed;
        this.finish();
      }
      return;
    }
    if (this.outputBacklog?.watching) {
      this.checkBacklog(now, true);
      if ((this.phase as StreamPhase) === StreamPhase.Closed) return;
    }
    if (this.unackedBacklog?.watching && !this.unackedOk(now, true)) {
      return this.close(new StreamError('resource-constraint', 'too many unacknowledged stanzas'));
    }
    const preauth = this.options.preauthTimeoutMs ?? 0;
    const idle = this.options.idleTimeoutMs ?? 0;
    if (this.phase !== StreamPhase.Bound) {
      if (preauth > 0 && now - this.openedAt > preauth) {
        this.close(new StreamError('connection-timeout', 'stream negotiation took too long'));
      }
    } else if (idle > 0 && now - this.lastInput > idle) {
      this.close(new StreamError('connection-timeout', 'no traffic from the client'));
    }
  }

  /**
   * RFC 6120 §4.4 and §4.9.1.1: the error (if any), our closing tag, flush, then close the
   * connection. Before our header went out, §4.9.1.2 wants a header first so the error parses.
   */
  close(error?: StreamError): void {
    if (this.phase === StreamPhase.Closed) return;
    // The connection belongs to another shard now: it writes and closes there.
    if (this.handedOff) return this.handOffDone();
    if (error) stats.streamError(error.condition);
    if (!this.headerSent) this.queue.push(this.header(null));
    if (error) this.queue.push(error.toXml());
    this.queue.push('</stream:stream>');
    this.phase = StreamPhase.Closed;
    this.flush();
    this.transport.end();
    this.finish();
  }

  /**
   * The connection went away (peer closed, reset, TLS failure): forget the session, unless it
   * may be resumed (XEP-0198 §5): then it stays bound, keeps collecting stanzas, and waits.
   */
  transportClosed(): void {
    if (this.adoptedBy) return this.adoptedBy.transportClosed();
    if (this.phase === StreamPhase.Closed) return;
    if (this.handedOff) return this.handOffDone();
    this.queue = [];
    const resumeMs = this.options.streamManagement?.resumeTimeoutMs ?? 0;
    if (this.phase === StreamPhase.Bound && this.sm?.resumeId && resumeMs > 0 && this.detachedUntil === 0) {
      this.detachedUntil = (this.deps.now ?? Date.now)() + resumeMs;
      this.freeParser();
      return;
    }
    this.phase = StreamPhase.Closed;
    this.finish();
  }

  /** Whether the connection is gone and the session waits for a <resume/> (XEP-0198). */
  get isDetached(): boolean {
    return this.detachedUntil > 0;
  }

  /** The session this connection resumed (its transport and parser now serve that one). */
  get resumedBy(): C2SStream | null {
    return this.adoptedBy;
  }

  /** Whether the client enabled XEP-0198 stream management (for the admin session list). */
  get smEnabled(): boolean {
    return this.sm !== null;
  }

  /** The client's address (ClientSession; per-address limits of modules). */
  get remoteAddress(): string | undefined {
    return this.transport.remoteAddress;
  }

  private freeParser(): void {
    // The parser may be mid-feed (we were called from its handler): feed() frees it after.
    if (!this.parserLive || this.feeding) return;
    this.parserLive = false;
    this.parser.free();
  }

  private finish(): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    if (this.jid_) {
      this.deps.router.unbind(this);
      stats.sessionUnbound();
    }
    if (this.queuedBytes > 0) {
      stats.queued(-this.queuedBytes);
      this.queuedBytes = 0;
    }
    if (this.sm) {
      if (this.sm.resumeId) this.deps.smSessions?.delete(this.sm.resumeId);
      // XEP-0198 §4: what the client never acknowledged is not known to be delivered.
      const unacked = this.sm.drain();
      if (unacked.length > 0) this.deps.onUnacked?.(this, unacked);
    }
    this.freeParser();
    this.deps.onClosed?.(this);
  }

  // ---- input --------------------------------------------------------------------------------

  feed(chunk: Uint8Array): void {
    // A transport that cannot re-attach keeps feeding the connection that resumed a session.
    if (this.adoptedBy) return this.adoptedBy.feed(chunk);
    if (this.phase === StreamPhase.Closed) return;
    this.lastInput = (this.deps.now ?? Date.now)();
    if (this.saslPending) {
      // RFC 6120 §6.4: the client waits for our answer; whatever it sends meanwhile is parsed
      // after it (and after the restart, on success). Copied: the caller may reuse its buffer.
      this.held.push(Uint8Array.from(chunk));
      // Bounded: a client may pipeline its next few elements, not stream megabytes into
      // memory while a failed attempt's back-off holds the answer (docs/security.md).
      if (this.held.reduce((n, c) => n + c.length, 0) > this.options.preAuthMaxStanzaBytes) {
        this.held = [];
        this.close(new StreamError('policy-violation', 'too much data sent before the SASL answer'));
      }
      return;
    }
    this.feeding = true;
    try {
      this.parser.feed(chunk);
    } catch {
      // A throw from the core is a bug there; one connection pays for it, not the process.
      this.feeding = false;
      (this.adoptedBy ?? this).close(new StreamError('internal-server-error'));
      return;
    } finally {
      this.feeding = false;
    }
    // Set during the feed when this chunk resumed a session (XEP-0198).
    const session = this.adoptedBy as C2SStream | null;
    if (session) {
      // The parser and what follows are the resumed session's business.
      session.feeding = false;
      if (session.phase === StreamPhase.Closed) session.freeParser();
      return;
    }
    if ((this.phase as StreamPhase) === StreamPhase.Closed) {
      this.freeParser();
    } else if (this.resetAfterFeed) {
      this.resetAfterFeed = false;
      this.discardRest = false;
      this.parser.reset();
    } else if (this.pipelinedTaken) {
      // The step is still running; what followed it waits in `held`.
      this.pipelinedTaken = false;
      this.discardRest = false;
    }
    const pipelined = this.pipelined;
    if (pipelined && !this.saslPending && this.phase === StreamPhase.AwaitingHeader) {
      // Answered in this turn with <success/>: the rest of the read opens the new stream.
      this.pipelined = null;
      this.pipelinedTaken = false;
      this.feed(pipelined);
    }
  }

  /**
   * RFC 6120 §4.3.3 and RFC 7395 §3.4, §3.7: a stream opens at the start of the connection and
   * again after SASL success, nowhere else. A header held behind a pending SASL answer is
   * judged with the rest of the held input once the answer is out.
   */
  feedHeader(header: Uint8Array): void {
    if (this.adoptedBy) return this.adoptedBy.feedHeader(header);
    if (this.phase === StreamPhase.AwaitingHeader || this.saslPending) return this.feed(header);
    this.streamError(new StreamError('bad-format', 'a new stream opens only at the start or after SASL success'));
  }

  streamError(error: StreamError): void {
    if (this.adoptedBy) return this.adoptedBy.streamError(error);
    if (this.phase === StreamPhase.Closed) return;
    if (this.handedOff) return this.handedOff.error(error);
    this.close(error);
  }

  /**
   * RFC 7395 §3.3.3: a WebSocket message, exactly one complete element. The parser, which reads
   * it anyway, tells at no cost: an element shorter than the message (a second one follows, or
   * text) is refused before it is acted on, an unfinished one once the message is read (no
   * element came). What waits behind a pending SASL answer is judged with the rest of the held
   * input (feed()).
   */
  feedElement(chunk: Uint8Array): void {
    if (this.adoptedBy) return this.adoptedBy.feedElement(chunk);
    if (this.saslPending || this.phase === StreamPhase.Closed) return this.feed(chunk);
    let start = 0;
    let end = chunk.length;
    while (start < end && isSpaceByte(chunk[start])) start++;
    while (end > start && isSpaceByte(chunk[end - 1])) end--;
    framedStream = this;
    framedLength = end - start;
    framedElementSeen = false;
    try {
      this.feed(chunk);
    } finally {
      framedStream = null;
    }
    if (!framedElementSeen) this.streamError(new StreamError('not-well-formed', 'a WebSocket message carries one complete element (RFC 7395 §3.3.3)'));
  }

  /** During feedElement(): whether this element is the message's only one (else the stream ends). */
  private onlyFramedElement(view: StanzaView): boolean {
    if (!framedElementSeen && view.end - view.start === framedLength) {
      framedElementSeen = true;
      return true;
    }
    // Said once: the check after the message stays quiet.
    framedElementSeen = true;
    framedStream = null;
    this.streamError(new StreamError('not-well-formed', 'a WebSocket message carries exactly one element (RFC 7395 §3.3.3)'));
    return false;
  }

  // ---- ParserHandler ------------------------------------------------------------------------

  onStreamOpen(header: StreamHeader): void {
    if (this.phase === StreamPhase.Closed || this.discardRest || this.handedOff) return;
    if (this.saslPending) return this.pipelinedDuringSasl();
    const error = this.checkHeader(header);
    // RFC 6120 §4.7.2: echo the client's 'from' as our 'to' when it is a usable JID.
    const to = header.from !== null && Jid.tryParse(header.from) ? header.from : null;
    if (error) {
      if (!this.headerSent) this.queue.push(this.header(to));
      this.close(error);
      return;
    }
    if (!this.account_ && !this.authAllowed() && !this.transport.canStartTls) {
      // Policy wants TLS, and this channel can neither offer it nor is it protected (a
      // WebSocket from a remote address without a TLS proxy): say so instead of hanging.
      this.queue.push(this.header(to));
      return this.close(new StreamError('policy-violation', 'TLS is required: connect over TLS'));
    }
    // One string, one write: header and features go out together (a login's replies are small
    // and many; each write is a syscall, and a writev of two strings costs more than one write).
    this.queue.push(this.header(to) + this.features());
    this.headerSent = true;
    this.phase = this.account_ ? StreamPhase.Authenticated : StreamPhase.Negotiating;
    // At the end of the turn: a client that pipelined its bind request behind the restart gets
    // <success/>, header, features and the bind result in one write.
    this.flushLater();
  }

  onStanza(view: StanzaView): void {
    if (this.phase === StreamPhase.Closed || this.discardRest) return;
    if (framedStream === this && !this.onlyFramedElement(view)) return;
    // Read after a <resume/> that moved the connection: the owning shard handles it, in order.
    if (this.handedOff) return this.handedOff.element(view.raw());
    if (this.saslPending) return this.pipelinedDuringSasl();
    const kind = view.kind;
    const shaper = this.stanzaShaper;
    if (shaper) {
      // Over the rate: stop reading for a while; what was already read is still handled.
      // The time of the current chunk, not the clock: one clock read per read from the socket
      // instead of one per stanza.
      this.stanzasFullAt = shaper.spend(this.stanzasFullAt, this.lastInput, 1);
      const wait = shaper.wait(this.stanzasFullAt, this.lastInput);
      if (wait > 0) this.transport.pauseFor?.(wait);
    }
    try {
      if (kind === StanzaKind.Other || !inClientNamespace(view)) this.onElement(view);
      else this.onXmppStanza(view);
    } catch (err) {
      // The router promises never to throw; anything escaping here is a bug on our side, so
      // the client gets a stream error instead of a silent hang and the process lives on.
      this.close(err instanceof StreamError ? err : new StreamError('internal-server-error'));
    }
    // Counted once, where it is handled: a <resume/> that moved the connection to another shard
    // (XEP-0198 §5) is read again and counted there.
    if (!this.handedOff) stats.stanzaIn(kind);
  }

  onStreamClose(): void {
    if (this.phase === StreamPhase.Closed || this.discardRest) return;
    if (this.handedOff) return this.handedOff.element('</stream:stream>');
    // RFC 6120 §4.4: answer the closing tag with ours, then terminate the connection.
    this.close();
  }

  onError(error: CoreError): void {
    if (this.phase === StreamPhase.Closed || this.discardRest) return;
    if (this.handedOff) return this.handedOff.error(new StreamError(error.condition, error.message));
    this.close(new StreamError(error.condition, error.message));
  }

  /**
   * RFC 6120 §6.4: each SASL message waits for the server's answer. What a client pipelines
   * behind it is honoured only as the start of the new stream after <success/> (`pipelined`);
   * behind a challenge or a failure, beyond the pre-authentication bound, or without a parser
   * that can hand the rest of a read over (its views die with the call), it ends the stream.
   */
  private pipelinedDuringSasl(): void {
    this.close(new StreamError('policy-violation', 'data sent before the SASL answer'));
  }

  // ---- stream header ------------------------------------------------------------------------

  /** RFC 6120 §4.7 and §4.8: which header attributes make the stream unusable, and why. */
  private checkHeader(header: StreamHeader): StreamError | null {
    // §4.8.1: the root must be qualified by the streams namespace, and be a <stream/>.
    if (header.namespace !== STREAMS_NS || localName(header.name) !== 'stream') {
      return new StreamError('invalid-namespace', `stream element must be {${STREAMS_NS}}stream`);
    }
    const prefixError = headerPrefixError(header);
    if (prefixError) return prefixError;
    // §4.8.2 and §4.9.3.10: the content namespace of a c2s stream is jabber:client.
    if (header.defaultNamespace !== CLIENT_NS) {
      return new StreamError('invalid-namespace', `default namespace must be ${CLIENT_NS}`);
    }
    // §4.9.3.6: the 'to' must name the domain we serve. A missing 'to' is tolerated (the
    // SHOULD of §4.7.2 is broken by some bots) and treated as our domain.
    if (header.to !== null) {
      // Our own (prepared) domain as written needs no preparation: it is its own prepared form.
      let to: string | null = header.to === this.options.domain ? header.to : null;
      if (to === null) {
        try {
          to = prepareDomainpart(header.to);
        } catch {
          to = null;
        }
      }
      if (to !== this.options.domain) {
        return new StreamError('host-unknown', `this server serves ${this.options.domain}`);
      }
    }
    // §4.7.5: no version means pre-1.0 (RFC 3920 §4.4.1), which we do not speak; a higher
    // minor is answered with our 1.0, the lower of the two. A new major version means formats
    // we cannot interoperate with, refused as in §4.9.3.25's example (leading zeros ignored).
    if (header.version === '1.0') return null;
    const match = header.version === null ? null : /^(\d+)\.(\d+)$/.exec(header.version);
    if (!match || Number(match[1]) !== 1) {
      return new StreamError('unsupported-version', 'XMPP 1.0 streams only');
    }
    return null;
  }

  private header(to: string | null): string {
    this.streamId = randomHex(16);
    const toAttr = to === null ? '' : ` to='${escapeXml(to)}'`;
    this.headerSent = true;
    return (
      `<?xml version='1.0'?><stream:stream xmlns='${CLIENT_NS}' xmlns:stream='${STREAMS_NS}'` +
      ` id='${this.streamId}' from='${escapeXml(this.options.domain)}'${toAttr} version='1.0' xml:lang='en'>`
    );
  }

  /** RFC 6120 §4.3.2: the features the client may negotiate in the current phase. */
  private features(): string {
    if (this.account_) {
      // §7.4 resource binding; RFC 3921 §3 session kept optional for old clients (RFC 6121 App. E).
      const body =
        `<bind xmlns='${BIND_NS}'/><session xmlns='${SESSION_NS}'><optional/></session>` +
        // RFC 6121 §2.6.1 roster versioning, §3.4.1 pre-approval: the router knows what it does.
        (this.deps.router.streamFeatures?.() ?? '') +
        (this.options.streamManagement ? `<sm xmlns='${SM_NS}'/>` : '') +
        (this.deps.extraFeatures?.() ?? '');
      return `<stream:features>${body}</stream:features>`;
    }
    // Fixed per server and channel state, and sent twice per login attempt: built once.
    const state = (this.secure ? 1 : 0) | (this.transport.canStartTls ? 2 : 0);
    let cached = preAuthFeatures.get(this.deps);
    if (!cached || cached.options !== this.options) {
      cached = { options: this.options, byState: [] };
      preAuthFeatures.set(this.deps, cached);
    }
    return (cached.byState[state] ??= `<stream:features>${this.preAuthFeatureBody()}</stream:features>`);
  }

  /** §5.3.1 STARTTLS, §6.3.3 the SASL mechanisms, XEP-0077 §4 registration, as policy allows. */
  private preAuthFeatureBody(): string {
    let body = '';
    const tlsRequired = this.options.tls === 'required';
    if (!this.secure && this.transport.canStartTls) {
      // §5.3.1: <required/> marks TLS as mandatory-to-negotiate under our policy.
      body += `<starttls xmlns='${TLS_NS}'>${tlsRequired ? '<required/>' : ''}</starttls>`;
    }
    if (this.authAllowed()) {
      const mechanisms = this.deps.sasl.mechanisms(this.secure || !tlsRequired);
      body += `<mechanisms xmlns='${SASL_NS}'>${mechanisms.map((m) => `<mechanism>${escapeXml(m)}</mechanism>`).join('')}</mechanisms>`;
      if (this.options.registration === 'open') {
        // XEP-0077 §4: advertise in-band registration as a stream feature.
        body += `<register xmlns='${REGISTER_FEATURE_NS}'/>`;
      }
    }
    return body;
  }

  /** SASL (and registration) may run once TLS is up, or on plain TCP when policy allows it. */
  private authAllowed(): boolean {
    return this.secure || this.options.tls === 'optional';
  }

  /**
   * RFC 6120 §4.3.3: after STARTTLS or SASL success both sides start a fresh stream. Mid-chunk
   * the parser is reset once feed() returns; after STARTTLS the rest of the chunk is dropped
   * (§5.4.3.3), after SASL it is kept (`keepRest`) and opens the new stream.
   */
  private restart(keepRest = false): void {
    this.phase = StreamPhase.AwaitingHeader;
    this.headerSent = false;
    if (this.feeding) {
      if (keepRest && !this.pipelined) this.pipelined = this.pipelinedRest();
      this.resetAfterFeed = true;
      this.discardRest = true;
    } else {
      this.parser.reset();
    }
  }

  /** During onStanza: the bytes of this read after the current element, unless only whitespace. */
  private pipelinedRest(): Uint8Array | null {
    const rest = this.parser.rest?.();
    if (!rest) return null;
    for (const b of rest) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return rest;
    return null;
  }

  // ---- negotiation elements -----------------------------------------------------------------

  private onElement(view: StanzaView): void {
    const ns = view.namespace();
    const name = localName(view.name());
    if (ns === TLS_NS && name === 'starttls') return this.onStartTls();
    if (ns === SASL_NS && (name === 'auth' || name === 'response' || name === 'abort')) {
      return this.onSasl(name, view);
    }
    if (ns === SM_NS && this.account_ && this.options.streamManagement) return this.onSmElement(name, view);
    if (this.phase === StreamPhase.Bound || this.phase === StreamPhase.Authenticated) {
      const handler = this.deps.elementHandlers?.get(`${ns} ${name}`);
      if (handler) return handler(this, view);
    }
    // Router modules take their own nonzas (XEP-0352 <active/>, …) once a resource is bound.
    if (this.phase === StreamPhase.Bound && this.deps.router.nonza?.(this, view)) return;
    if (!this.account_) {
      // §4.9.3.12: nothing but negotiation is allowed before authentication.
      return this.close(new StreamError('not-authorized', `<${name}/> before authentication`));
    }
    // §4.9.3.24: a first-level element we do not support.
    this.close(new StreamError('unsupported-stanza-type', `{${ns}}${name} is not supported`));
  }

  /** RFC 6120 §5.4.2: STARTTLS, once, before authentication, on a plain channel. */
  private onStartTls(): void {
    if (this.secure || this.account_ || !this.transport.canStartTls) {
      // §5.4.2.2: <failure/>, then the stream and the connection are closed.
      this.queue.push(`<failure xmlns='${TLS_NS}'/>`);
      return this.close();
    }
    this.queue.push(`<proceed xmlns='${TLS_NS}'/>`);
    this.flush();
    this.restart();
    // §5.4.3.3: bytes after <starttls/> in the same read are plaintext injection, never parsed.
    this.transport.startTls();
  }

  private onSasl(name: 'auth' | 'response' | 'abort', view: StanzaView): void {
    if (this.account_) {
      // §6.4.6 ends SASL with <success/>; re-authenticating on the same stream is not allowed.
      return this.close(new StreamError('policy-violation', 'already authenticated'));
    }
    let exchange: SaslExchange;
    let payload: Buffer | null;
    try {
      if (name === 'abort') {
        // §6.4.4: the client gave up; <aborted/> and a chance to retry.
        throw new SaslFailure('aborted');
      }
      const element = readSaslElement(view);
      if (name === 'auth') {
        if (!this.authAllowed()) {
          // §5.3.1 / §6.5.4: under our policy TLS is mandatory-to-negotiate before SASL.
          throw new SaslFailure('encryption-required');
        }
        const mechanism = element.mechanism;
        if (mechanism === null || mechanism === '') {
          throw new SaslFailure('invalid-mechanism', 'no mechanism named');
        }
        if (!this.deps.sasl.mechanisms(this.secure || this.options.tls === 'optional').includes(mechanism)) {
          // §6.5.7: unknown, or not offered to this stream (PLAIN in the clear).
          throw new SaslFailure('invalid-mechanism', `${mechanism} is not offered`);
        }
        // §6.4.2: a new <auth/> replaces any exchange in progress.
        this.sasl = null;
        exchange = this.deps.sasl.start(mechanism);
      } else {
        if (!this.sasl) throw new SaslFailure('malformed-request', 'no authentication in progress');
        exchange = this.sasl;
      }
      payload = decodeSaslPayload(element.text);
    } catch (err) {
      return this.onSaslFailure(err);
    }
    this.sasl = exchange;
    let step: Promise<SaslStep>;
    try {
      // Answered in this turn when the mechanism needs no thread-pool work (SCRAM against stored
      // keys, a remembered PLAIN login) and the parser can hand over what follows the element.
      const now = exchange.stepNow && this.parser.rest ? exchange.stepNow(payload) : exchange.step(payload);
      if (!(now instanceof Promise)) {
        this.onSaslStep(exchange, now);
        this.flushLater();
        return;
      }
      step = now;
    } catch (err) {
      step = Promise.reject(err);
    }
    this.saslPending = true;
    if (this.feeding) {
      // Whatever the client pipelined behind this element in the same read waits for the answer.
      const rest = this.pipelinedRest();
      if (rest) {
        // Held until the answer (PBKDF2, or a failure's back-off), so bounded like `held`: too
        // much is not kept, and the answer then ends the stream.
        this.pipelined = rest.length > this.options.preAuthMaxStanzaBytes ? TOO_MUCH_PIPELINED : rest;
        this.pipelinedTaken = true;
        this.discardRest = true;
      }
    }
    step.then(
      (result) => this.afterSaslStep(() => this.onSaslStep(exchange, result)),
      (err: unknown) => {
        const answer = () => this.afterSaslStep(() => this.onSaslFailure(err));
        // Wrong credentials slow the address down (input stays held meanwhile), so that
        // guessing passwords costs time; other failures are answered at once.
        const delay =
          err instanceof SaslFailure && err.condition === 'not-authorized' ? (this.deps.authThrottle?.failed(this) ?? 0) : 0;
        if (delay > 0) setTimeout(answer, delay);
        else answer();
      },
    );
  }

  /** Apply a settled step, then let the input that waited for it through. */
  private afterSaslStep(apply: () => void): void {
    this.saslPending = false;
    if (this.phase === StreamPhase.Closed) return;
    try {
      apply();
    } catch {
      this.close(new StreamError('internal-server-error'));
      return;
    }
    const pipelined = this.pipelined;
    if (pipelined) {
      this.pipelined = null;
      // Only a <success/> makes pipelined input meaningful (it opens the new stream); behind a
      // challenge or a failure the client sent what §6.4 says it must wait with.
      if (pipelined === TOO_MUCH_PIPELINED || this.phase !== StreamPhase.AwaitingHeader || !this.account_) {
        return this.pipelinedDuringSasl();
      }
      this.held.unshift(pipelined);
    }
    this.flush();
    while (this.held.length > 0 && !this.saslPending && (this.phase as StreamPhase) !== StreamPhase.Closed) {
      this.feed(this.held.shift()!);
    }
  }

  private onSaslStep(exchange: SaslExchange, result: SaslStep): void {
    if (this.sasl !== exchange) return; // replaced by a newer <auth/> or aborted meanwhile
    if (!result.done) {
      // §6.4.3: a challenge, answered by a <response/>.
      this.queue.push(`<challenge xmlns='${SASL_NS}'>${encodeSaslPayload(result.challenge)}</challenge>`);
      return;
    }
    this.sasl = null;
    let account: Jid;
    try {
      account = Jid.of(result.username, this.options.domain);
    } catch {
      return this.onSaslFailure(new SaslFailure('not-authorized'));
    }
    this.account_ = account;
    stats.authSucceeded(exchange.mechanism);
    this.deps.authThrottle?.succeeded(this);
    // §6.4.6: <success/>, with the mechanism's additional data (SCRAM's server signature). It
    // goes out with whatever else this turn produces (the caller flushes).
    this.queue.push(
      result.additionalData === null ? SUCCESS_EMPTY : `<success xmlns='${SASL_NS}'>${encodeSaslPayload(result.additionalData)}</success>`,
    );
    // §6.4.6: both sides now start a new stream, without closing the connection.
    this.restart(true);
    this.parser.setLimits({ maxStanzaBytes: this.options.maxStanzaBytes });
  }

  private onSaslFailure(err: unknown): void {
    if (!(err instanceof SaslFailure)) throw err;
    stats.saslFailure(err.condition);
    if (err.condition === 'not-authorized') {
      const mechanism = this.sasl?.mechanism ?? 'other';
      stats.authFailed(mechanism);
      // One line per failed attempt, at info: the successes are only counted (metrics), the
      // failures are what an operator (or fail2ban) looks for. No credentials, only the name tried.
      this.deps.log?.info(
        { account: this.sasl?.authcid ?? null, mechanism, address: this.transport.remoteAddress ?? null },
        'authentication failed',
      );
    }
    this.sasl = null;
    this.saslFailures++;
    this.queue.push(err.toXml());
    // §6.4.5: a reasonable number of retries, then the stream is closed.
    if (this.saslFailures >= this.options.saslMaxAttempts) {
      this.close(new StreamError('policy-violation', 'too many failed authentication attempts'));
    } else {
      this.flush();
    }
  }

  // ---- XEP-0198 stream management ----------------------------------------------------------

  private onSmElement(name: string, view: StanzaView): void {
    const sm = this.sm;
    switch (name) {
      case 'enable':
        return this.onSmEnable(view);
      case 'resume':
        return this.onSmResume(view);
      case 'r':
        // §4: answer a request with how many stanzas we handled.
        if (!sm) break;
        this.queue.push(`<a xmlns='${SM_NS}' h='${sm.inbound}'/>`);
        return this.flush();
      case 'a': {
        if (!sm) break;
        const h = parseH(parseElement(view.toString()).attrs['h']);
        if (h === null) return this.close(new StreamError('undefined-condition', "<a/> without a valid 'h'"));
        sm.ackRequested = false;
        try {
          sm.acknowledge(h);
        } catch (err) {
          if (!(err instanceof AckTooHigh)) throw err;
          // §4: an acknowledgement of stanzas never sent ends the stream.
          return this.close(new StreamError('undefined-condition', err.message));
        }
        return;
      }
    }
    this.smFailed('unexpected-request');
  }

  private smFailed(condition: 'unexpected-request' | 'item-not-found' | 'bad-request', h?: number): void {
    const hAttr = h === undefined ? '' : ` h='${h}'`;
    this.queue.push(`<failed xmlns='${SM_NS}'${hAttr}><${condition} xmlns='${STANZA_ERRORS_NS}'/></failed>`);
    this.flush();
  }

  /** §3: enable after binding, once; resumption granted when asked and configured. */
  private onSmEnable(view: StanzaView): void {
    if (this.phase !== StreamPhase.Bound || this.sm) return this.smFailed('unexpected-request');
    const resume = parseElement(view.toString()).attrs['resume'];
    const resumeMs = this.options.streamManagement?.resumeTimeoutMs ?? 0;
    const resumable = (resume === 'true' || resume === '1') && resumeMs > 0 && this.deps.smSessions !== undefined;
    const id = resumable ? (this.deps.smShards?.mint() ?? randomBytes(16).toString('hex')) : null;
    this.sm = new StreamManagement(id);
    if (id) this.deps.smSessions!.set(id, this);
    const attrs = id ? ` id='${id}' resume='true' max='${Math.ceil(resumeMs / 1000)}'` : '';
    this.queue.push(`<enabled xmlns='${SM_NS}'${attrs}/>`);
    this.flush();
  }

  /**
   * §5: after authentication and instead of binding, take over a detached (or not yet noticed
   * dead) session of the same account: its resource, its presence, its unacknowledged stanzas.
   */
  private onSmResume(view: StanzaView): void {
    if (this.phase !== StreamPhase.Authenticated) return this.smFailed('unexpected-request');
    const el = parseElement(view.toString());
    const previd = el.attrs['previd'];
    const h = parseH(el.attrs['h']);
    if (typeof previd !== 'string' || h === null) return this.smFailed('bad-request');
    const owner = this.deps.smShards?.ownerElsewhere(previd) ?? null;
    if (owner !== null) return this.handOff(owner, view.raw());
    const session = this.deps.smSessions?.get(previd);
    if (!session || session.phase === StreamPhase.Closed || session.account_?.bare !== this.account_?.bare) {
      return this.smFailed('item-not-found');
    }
    try {
      session.sm!.acknowledge(h);
    } catch (err) {
      if (!(err instanceof AckTooHigh)) throw err;
      return this.close(new StreamError('undefined-condition', err.message));
    }
    session.adopt(this);
  }

  /**
   * The session named by <resume/> lives on another shard: the connection goes there, and that
   * shard answers the <resume/> (<resumed/> or <failed/>) as if it had been read there. This
   * stream only relays what the parser still yields until the worker says the move is complete.
   */
  private handOff(shard: number, resume: Uint8Array): void {
    // Whatever we owe the client goes out first, in order, before the other shard speaks.
    this.flush();
    this.handedOff = this.deps.smShards!.moveTo(this, shard, resume);
  }

  /** The move is complete (or the connection is gone): nothing more comes through here. */
  handOffDone(): void {
    if (this.phase === StreamPhase.Closed) return;
    this.phase = StreamPhase.Closed;
    this.closedNotified = true;
    this.queue = [];
    this.freeParser();
    this.deps.onClosed?.(this);
  }

  /**
   * A connection moved here from another shard, authenticated as `account`, to resume a session
   * of this shard (XEP-0198 §5): a stream already past SASL and the restart, whose parser is
   * primed with a stream header so the client's next elements (the <resume/> first) parse.
   */
  static continued(transport: StreamTransport, options: C2SOptions, deps: C2SDeps, account: Jid, streamId: string): C2SStream {
    const stream = new C2SStream(transport, options, deps);
    stream.parser.setLimits({ maxStanzaBytes: options.maxStanzaBytes });
    // Closed while the parser reads our own header: its stream-open event is not the client's.
    stream.phase = StreamPhase.Closed;
    stream.parser.feed(CONTINUED_HEADER);
    stream.account_ = account;
    stream.streamId = streamId;
    stream.headerSent = true;
    stream.phase = StreamPhase.Authenticated;
    return stream;
  }

  /** Continue this session on `carrier`'s connection (its transport and parser). */
  private adopt(carrier: C2SStream): void {
    if (this.detachedUntil === 0) {
      // The old connection still looks alive (a dead link not yet noticed, or a second client
      // racing with the same resumption id): RFC 6120 §4.9.3.3, it is replaced by the new one.
      this.transport.attach?.(NO_SINK);
      this.transport.write([new StreamError('conflict', 'replaced by a resumed connection').toXml(), '</stream:stream>']);
      this.transport.end();
    }
    this.freeParser();
    this.transport = carrier.transport;
    this.parser = carrier.parser;
    this.parserLive = true;
    this.feeding = carrier.feeding;
    carrier.parserTarget.stream = this;
    carrier.parserLive = false;
    this.transport.attach?.(this);
    this.streamId = carrier.streamId;
    this.headerSent = true;
    this.detachedUntil = 0;
    this.lastInput = (this.deps.now ?? Date.now)();
    // The carrier is done: it never bound, and its connection now belongs to this session.
    carrier.adoptedBy = this;
    carrier.phase = StreamPhase.Closed;
    carrier.closedNotified = true;
    carrier.deps.onClosed?.(carrier);
    const sm = this.sm!;
    sm.ackRequested = false;
    this.queue = [`<resumed xmlns='${SM_NS}' h='${sm.inbound}' previd='${sm.resumeId}'/>`, ...sm.pending()];
    this.flush();
  }

  // ---- stanzas ------------------------------------------------------------------------------

  private onXmppStanza(view: StanzaView): void {
    if (this.phase === StreamPhase.Bound) {
      this.sm?.handledInbound();
      if (view.kind === StanzaKind.Iq && view.type === StanzaType.Set && view.status === StanzaStatus.Ok) {
        const childNs = view.childNamespace();
        if (childNs === SESSION_NS) {
          // RFC 3921 §3 legacy session establishment: nothing left to do but say yes.
          return this.send(`<iq type='result' id='${escapeXml(view.id() ?? '')}'/>`);
        }
        if (childNs === BIND_NS) {
          return this.replyError(view, new StanzaError('not-allowed', 'a resource is already bound'));
        }
      }
      // Routing time is sampled (1 stanza in 16): a clock read costs ~0.1 µs here, a tenth of
      // the whole per-stanza budget, and the histogram's shape needs no more.
      if ((++routeSamples & 15) !== 0) return this.deps.router.route(this, view);
      const started = performance.now();
      this.deps.router.route(this, view);
      stats.routedSince(started);
      return;
    }
    if (this.phase === StreamPhase.Authenticated) {
      if (view.kind === StanzaKind.Iq && view.childNamespace() === BIND_NS) return this.onBind(view);
      // RFC 6120 §7.1: stanzas need a bound resource first.
      return this.close(new StreamError('not-authorized', 'bind a resource first'));
    }
    // Before authentication only XEP-0077 registration may pass, when enabled and allowed.
    if (
      view.kind === StanzaKind.Iq &&
      this.options.registration === 'open' &&
      this.authAllowed() &&
      view.status === StanzaStatus.Ok &&
      view.childNamespace() === REGISTER_NS &&
      this.deps.router.routeUnauthenticated(view, (data) => this.send(data))
    ) {
      return;
    }
    // RFC 6120 §4.9.3.12.
    this.close(new StreamError('not-authorized', 'stanza before authentication'));
  }

  /** RFC 6120 §7.5–7.7: bind the requested or a generated resource, reply with the full JID. */
  private onBind(view: StanzaView): void {
    if (view.type !== StanzaType.Set || view.status !== StanzaStatus.Ok) {
      return this.replyError(view, new StanzaError('bad-request', 'bind is an iq of type set with one <bind/>'));
    }
    // §7.6: the resource asked for, read without a tree in the usual shape (src/stream/bind-element.ts).
    const raw = view.toString();
    let requested = scanBindResource(raw);
    if (requested === undefined) {
      requested = null;
      const resource = parseElement(raw).getChild('bind', BIND_NS)?.getChild('resource');
      if (resource) {
        const text = resource.getText();
        requested = text.length === 0 ? null : text;
      }
    }
    let jid: Jid;
    try {
      jid = this.deps.router.bind(this, requested);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      // §7.7.2.1: a resourcepart that fails preparation is bad-request, not jid-malformed.
      const error = err.condition === 'jid-malformed' ? new StanzaError('bad-request', err.text) : err;
      return this.replyError(view, error);
    }
    this.jid_ = jid;
    stats.sessionBound();
    this.phase = StreamPhase.Bound;
    this.send(
      `<iq type='result' id='${escapeXml(view.id() ?? '')}'><bind xmlns='${BIND_NS}'><jid>${escapeXml(jid.full)}</jid></bind></iq>`,
    );
  }

  private replyError(view: StanzaView, error: StanzaError): void {
    const id = view.id();
    const idAttr = id === null ? '' : ` id='${escapeXml(id)}'`;
    this.send(`<iq type='error'${idAttr}>${error.toXml()}</iq>`);
  }
}
