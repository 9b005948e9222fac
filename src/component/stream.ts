/**
 * XEP-0114 Jabber Component Protocol, the server's side of one component connection.
 *
 * Socket-free like the c2s stream: bytes in through feed() (the WASM core parses them, with the
 * component namespace as default), bytes out through a StreamTransport. The sequence (§3):
 *   component: <stream:stream xmlns='jabber:component:accept' to='echo.example'>
 *   server:    <stream:stream … from='echo.example' id='ID'>
 *   component: <handshake>hex(SHA-1(ID + secret))</handshake>
 *   server:    <handshake/>  — from now on stanzas flow both ways.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { StanzaKind, type CoreError, type ParserHandler, type StanzaView, type StreamHeader, type StreamParser } from '../core/api.js';
import { StreamError } from '../errors.js';
import { Jid } from '../jid.js';
import { headerPrefixError, type ByteSink, type ParserFactory, type StreamTransport } from '../stream/c2s.js';
import { localName } from '../xml/element.js';
import { attr } from '../xml/escape.js';

export const COMPONENT_NS = 'jabber:component:accept';
const STREAMS_NS = 'http://etherx.jabber.org/streams';

/** What a component stream needs from the server: secrets, the registry, the router. */
export interface ComponentHost {
  /** The shared secret of a configured component domain, or undefined (→ host-unknown). */
  secretOf(domain: string): string | undefined;
  /** Register an authenticated component; false when that domain is already connected. */
  attach(stream: ComponentStream): boolean;
  /** Forget it (idempotent). */
  detach(stream: ComponentStream): void;
  /** Route a checked stanza from the component into the server. */
  route(stream: ComponentStream, from: Jid, view: StanzaView): void;
}

export interface ComponentStreamOptions {
  maxStanzaBytes: number;
  maxDepth?: number;
  maxAttributes?: number;
  /** Time allowed from connection to a successful handshake (ms); 0 = no limit. */
  handshakeTimeoutMs?: number;
  /** Bytes left unread by the component before its stream is closed (0 = no bound). */
  maxOutputBytes?: number;
}

type Phase = 'header' | 'handshake' | 'ready' | 'closed';

/** hex(SHA-1(streamId + secret)), XEP-0114 §3 (both strings UTF-8). */
export function handshakeDigest(streamId: string, secret: string): string {
  return createHash('sha1').update(streamId + secret, 'utf8').digest('hex');
}

export class ComponentStream implements ByteSink, ParserHandler {
  /** Fresh per connection: the handshake is bound to it. */
  readonly streamId = randomBytes(12).toString('hex');
  /** The component's domain once its header named a configured one. */
  domain: string | null = null;
  /** When the handshake succeeded (ms since the epoch), 0 before. */
  since = 0;
  private phase: Phase = 'header';
  private readonly parser: StreamParser;
  private parserLive = true;
  private feeding = false;
  private headerSent = false;
  private queue: (string | Uint8Array)[] = [];
  private flushScheduled = false;
  private readonly timer: NodeJS.Timeout | null;

  constructor(
    private readonly transport: StreamTransport,
    private readonly host: ComponentHost,
    private readonly options: ComponentStreamOptions,
    core: ParserFactory,
    private readonly onClosed?: (stream: ComponentStream) => void,
  ) {
    const limits: { maxStanzaBytes: number; maxDepth?: number; maxAttributes?: number } = { maxStanzaBytes: options.maxStanzaBytes };
    if (options.maxDepth !== undefined) limits.maxDepth = options.maxDepth;
    if (options.maxAttributes !== undefined) limits.maxAttributes = options.maxAttributes;
    this.parser = core.createParser(this, limits);
    const ms = options.handshakeTimeoutMs ?? 0;
    this.timer = ms > 0 ? setTimeout(() => this.close(new StreamError('connection-timeout', 'no handshake in time')), ms) : null;
    this.timer?.unref();
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** Queue bytes for the component; written once per event-loop turn. */
  send(data: Uint8Array | string): void {
    if (this.phase === 'closed') return;
    this.queue.push(data);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const chunks = this.queue;
    this.queue = [];
    this.transport.write(chunks);
    const limit = this.options.maxOutputBytes ?? 0;
    if (limit > 0 && (this.transport.pendingBytes ?? 0) > limit && this.phase !== 'closed') {
      // As for clients: a reader this slow would make the server buffer without bound.
      this.close(new StreamError('resource-constraint', 'output queue limit exceeded: the component reads too slowly'));
    }
  }

  /** RFC 6120 §4.9.1: the error (after our header, when none went out yet), then the close tag. */
  close(error?: StreamError): void {
    if (this.phase === 'closed') return;
    if (!this.headerSent) this.queue.push(this.header(this.domain));
    if (error) this.queue.push(error.toXml());
    this.queue.push('</stream:stream>');
    this.phase = 'closed';
    this.flush();
    this.transport.end();
    this.finish();
  }

  // ---- ByteSink ----------------------------------------------------------------------------

  feed(chunk: Uint8Array): void {
    if (this.phase === 'closed') return;
    this.feeding = true;
    try {
      this.parser.feed(chunk);
    } catch {
      this.feeding = false;
      this.close(new StreamError('internal-server-error'));
    } finally {
      this.feeding = false;
    }
    if ((this.phase as Phase) === 'closed') this.freeParser();
  }

  transportClosed(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.queue = [];
    this.finish();
  }

  // ---- ParserHandler -----------------------------------------------------------------------

  onStreamOpen(header: StreamHeader): void {
    if (this.phase !== 'header') return this.close(new StreamError('not-authorized', 'the stream was already opened'));
    // RFC 6120 §4.9.3.10: the stream and default namespaces must be the component protocol's.
    if (header.namespace !== STREAMS_NS || localName(header.name) !== 'stream') {
      return this.close(new StreamError('invalid-namespace', 'not an XMPP stream'));
    }
    if (header.defaultNamespace !== COMPONENT_NS) {
      return this.close(new StreamError('invalid-namespace', `components speak ${COMPONENT_NS}`));
    }
    // RFC 6120 §4.8.5, as for clients: the component's stanzas are forwarded as written.
    const prefixError = headerPrefixError(header);
    if (prefixError) return this.close(prefixError);
    // XEP-0114 §3 / RFC 6120 §4.9.3.6: 'to' names the component; one we do not know is host-unknown.
    const domain = header.to === null ? null : (Jid.tryParse(header.to)?.domain ?? null);
    if (domain === null || this.host.secretOf(domain) === undefined) {
      return this.close(new StreamError('host-unknown', 'no component is configured with that name'));
    }
    this.domain = domain;
    this.queue.push(this.header(domain));
    this.headerSent = true;
    this.phase = 'handshake';
    this.flush();
  }

  onStanza(view: StanzaView): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'handshake') return this.onHandshake(view);
    if (view.kind === StanzaKind.Other) {
      return this.close(new StreamError('unsupported-stanza-type', `<${view.name()}/> is not a stanza`));
    }
    // XEP-0114 §3 (as in jabber:server, RFC 6120 §4.9.3.7): both addresses are required.
    const fromText = view.from();
    if (fromText === null || view.to() === null) {
      return this.close(new StreamError('improper-addressing', "stanzas from a component need 'from' and 'to'"));
    }
    // RFC 6120 §4.9.3.9: a component speaks only for JIDs at its own domain.
    const from = Jid.tryParse(fromText);
    if (from === null || from.domain !== this.domain) {
      return this.close(new StreamError('invalid-from', `'from' must be a JID at ${this.domain}`));
    }
    this.host.route(this, from, view);
  }

  onStreamClose(): void {
    this.close();
  }

  onError(error: CoreError): void {
    this.close(new StreamError(error.condition, error.message));
  }

  // ---- internals ---------------------------------------------------------------------------

  private onHandshake(view: StanzaView): void {
    // XEP-0114 §3: nothing but <handshake/> before the component is authenticated.
    if (view.kind !== StanzaKind.Other || localName(view.name()) !== 'handshake' || view.namespace() !== COMPONENT_NS) {
      return this.close(new StreamError('not-authorized', 'handshake first'));
    }
    const text = view.toString();
    const given = /^<[^>]*>\s*([0-9a-fA-F]{40})\s*<\//.exec(text)?.[1]?.toLowerCase();
    const expected = handshakeDigest(this.streamId, this.host.secretOf(this.domain!)!);
    if (given === undefined || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
      return this.close(new StreamError('not-authorized', 'handshake does not match the shared secret'));
    }
    // Checked after authentication, so only the secret's holder learns that the name is in use.
    if (!this.host.attach(this)) {
      return this.close(new StreamError('conflict', `${this.domain} is already connected`));
    }
    if (this.timer) clearTimeout(this.timer);
    this.phase = 'ready';
    this.since = Date.now();
    this.send('<handshake/>');
  }

  private header(from: string | null): string {
    return (
      `<?xml version='1.0'?><stream:stream xmlns:stream='${STREAMS_NS}' xmlns='${COMPONENT_NS}'` +
      `${attr('from', from)}${attr('id', this.streamId)}>`
    );
  }

  private finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.host.detach(this);
    this.freeParser();
    this.onClosed?.(this);
  }

  private freeParser(): void {
    if (!this.parserLive || this.feeding) return;
    this.parserLive = false;
    this.parser.free();
  }
}
