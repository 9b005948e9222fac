/**
 * XMPP over WebSocket (RFC 7395) on the same stream state machine and core as TCP.
 *
 * Each WebSocket message carries exactly one complete element (§3.3.3). Rather than teach the
 * state machine a second framing, this transport translates at the edge:
 *  - in:  <open/> becomes the equivalent <stream:stream> header (fed where a stream may start:
 *         §3.4, §3.7), <close/> its end tag, an RFC 6120 header or open/close in another
 *         namespace ends the stream with <invalid-namespace/> (§3.3.2), and every other message
 *         is fed as is as the one element it must be (§3.3.3: the stream checks that with the
 *         parse it makes anyway, ByteSink.feedElement);
 *  - out: our stream header becomes <open/>, </stream:stream> becomes <close/>, stream-level
 *         elements get their stream namespace declared, and stanzas get xmlns='jabber:client'
 *         because each message must stand alone as a document (§3.3.3).
 * TLS belongs to the HTTP layer (wss://, usually a reverse proxy); see `secure` below.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { parse as parseXml } from 'ltx';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { STREAMS_NS, StreamError, escapeXml } from '../errors.js';
import { TokenBucket } from '../stream/limits.js';
import { readStartTag } from '../xml/start-tag.js';
import { type ClientListeners, ListenError, type Listener, listenClients, trackSockets } from './listen.js';
import type { ByteSink, ClientTransport } from './socket.js';

export const FRAMING_NS = 'urn:ietf:params:xml:ns:xmpp-framing';
const CLIENT_NS = 'jabber:client';
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

const STREAM_END = '</stream:stream>';
const STREAM_END_BYTES = Buffer.from(STREAM_END);
const STANZA_START = /^<(message|presence|iq)[\s/>]/;

/** Our stream header (written by C2SStream.header()) → the RFC 7395 §3.4 <open/>. */
function openFromHeader(header: string): string {
  const attr = (name: string) => new RegExp(`\\s${name}='([^']*)'`).exec(header.slice(header.indexOf('<stream:stream')))?.[1];
  const parts = [`xmlns='${FRAMING_NS}'`];
  for (const name of ['id', 'from', 'to', 'version', 'xml:lang']) {
    const value = attr(name);
    if (value !== undefined) parts.push(`${name}='${value}'`);
  }
  return `<open ${parts.join(' ')}/>`;
}

/** Insert `attribute` right after the element name of `xml` (whose start tag lacks it). */
function withAttribute(xml: string, attribute: string): string {
  const nameEnd = xml.search(/[\s/>]/);
  return `${xml.slice(0, nameEnd)} ${attribute}${xml.slice(nameEnd)}`;
}

/**
 * True when the start tag of `xml` declares a default namespace. Read by its quotes: a routed
 * stanza's attribute value may hold '>' or ` xmlns=` (src/xml/start-tag.ts), and a wrong answer
 * either doubles the declaration (not well-formed) or leaves the stanza out of jabber:client.
 */
function declaresNamespace(xml: string): boolean {
  return readStartTag(xml).attrs.has('xmlns');
}

/** One outbound chunk (one element) as the WebSocket message RFC 7395 wants. */
export function frameOutbound(chunk: string | Uint8Array): string {
  let xml = typeof chunk === 'string' ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  if (xml.startsWith('<?xml') || xml.startsWith('<stream:stream')) return openFromHeader(xml);
  if (xml === STREAM_END) return `<close xmlns='${FRAMING_NS}'/>`;
  if (xml.startsWith('<stream:')) return withAttribute(xml, `xmlns:stream='${STREAMS_NS}'`);
  if (STANZA_START.test(xml) && !declaresNamespace(xml)) xml = withAttribute(xml, `xmlns='${CLIENT_NS}'`);
  return xml;
}

/**
 * Our own output strings cut into their top-level pieces: the stream layer may join several
 * (header and features, an error and the close tag) into one string for a single socket write,
 * but §3.3.3 wants one element per WebSocket message. Only well-formed, escaped markup we wrote
 * comes here (routed stanzas are bytes), so tracking tags, quotes and depth is enough; the
 * stream header and </stream:stream> are pieces of their own.
 */
export function splitTopLevel(xml: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  let depth = 0;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    if (lt === -1) break;
    let gt = lt + 1;
    for (let quote = ''; gt < xml.length; gt++) {
      const c = xml[gt]!;
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === "'" || c === '"') quote = c;
      else if (c === '>') break;
    }
    const tag = xml.slice(lt, gt + 1);
    i = gt + 1;
    if (tag.startsWith('<?')) continue; // the XML declaration travels with the header
    if (depth === 0 && (tag.startsWith('<stream:stream') || tag === STREAM_END)) {
      pieces.push(xml.slice(start, i));
      start = i;
      continue;
    }
    if (tag.startsWith('</')) depth--;
    else if (!tag.endsWith('/>')) depth++;
    if (depth === 0) {
      pieces.push(xml.slice(start, i));
      start = i;
    }
  }
  if (start < xml.length) pieces.push(xml.slice(start));
  return pieces;
}

const XMLNS = Buffer.from('xmlns');
const CLIENT_XMLNS = Buffer.from(` xmlns='${CLIENT_NS}'`);

function isXmlSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * frameOutbound() for bytes, without decoding them: a message, presence or iq start tag without a
 * default namespace declaration gets xmlns='jabber:client' after its name; anything else (stream
 * header, features, close tag: always strings from C2SStream) takes the string path.
 */
export function frameOutboundBytes(chunk: Uint8Array): Uint8Array | string {
  const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  let nameEnd = 1;
  while (nameEnd < bytes.length && !isXmlSpace(bytes[nameEnd]) && bytes[nameEnd] !== 0x2f && bytes[nameEnd] !== 0x3e) nameEnd++;
  const name = bytes.toString('latin1', 1, nameEnd);
  if (bytes[0] !== 0x3c || (name !== 'message' && name !== 'presence' && name !== 'iq')) return frameOutbound(chunk);
  // Does the start tag declare a default namespace? Attribute by attribute, each value skipped
  // by its quotes: a value may hold '>' or ' xmlns=' (XML 1.0 §3.1, src/xml/start-tag.ts), and a
  // wrong answer either doubles the declaration (not well-formed) or leaves the stanza out of
  // jabber:client.
  for (let i = nameEnd; ; ) {
    while (isXmlSpace(bytes[i])) i++;
    const nameStart = i;
    while (i < bytes.length && bytes[i] !== 0x3d && bytes[i] !== 0x3e && bytes[i] !== 0x2f) i++;
    if (bytes[i] !== 0x3d) break; // '>' or '/>': the tag ends without one
    let nameStop = i;
    while (nameStop > nameStart && isXmlSpace(bytes[nameStop - 1])) nameStop--;
    if (nameStop - nameStart === XMLNS.length && bytes.compare(XMLNS, 0, XMLNS.length, nameStart, nameStop) === 0) return bytes;
    i++;
    while (isXmlSpace(bytes[i])) i++;
    const quote = bytes[i];
    if (quote !== 0x27 && quote !== 0x22) break;
    for (i++; i < bytes.length && bytes[i] !== quote; i++);
    i++;
  }
  return Buffer.concat([bytes.subarray(0, nameEnd), CLIENT_XMLNS, bytes.subarray(nameEnd)]);
}

/** What one inbound WebSocket message is, as far as RFC 7395 framing is concerned. */
export type InboundMessage =
  /** No element: whitespace (skipped), or text, a comment, a PI (the core knows the condition). */
  | { kind: 'feed' }
  /** An element for the stream, which must be the message's only one (ByteSink.feedElement). */
  | { kind: 'element' }
  /** §3.4: a stream header, already turned into the parser's <stream:stream> form. */
  | { kind: 'open'; header: string }
  /** §3.6: the end of the stream. */
  | { kind: 'close' }
  /** Framing broken: the stream ends with this error. */
  | { kind: 'error'; error: StreamError };

const FEED: InboundMessage = { kind: 'feed' };
const ELEMENT: InboundMessage = { kind: 'element' };
const CLOSE_MESSAGE: InboundMessage = { kind: 'close' };

function framingError(condition: 'invalid-namespace' | 'not-well-formed', text: string): InboundMessage {
  return { kind: 'error', error: new StreamError(condition, text) };
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const STREAM = Buffer.from('stream');
const OPEN = Buffer.from('open');
const CLOSE = Buffer.from('close');

/** Whether bytes[start, end) equals `word`. */
function bytesAre(bytes: Buffer, start: number, end: number, word: Buffer): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[start + i] !== word[i]) return false;
  return true;
}

/**
 * Where the element starting at `start` (a '<' of a start tag) ends: the index after its last
 * '>', or -1 when the text stops inside it (quoted attribute values may hold '>'). Used for
 * <open/> and <close/> only: stanzas are checked by the parser that reads them anyway
 * (C2SStream.feedElement), at no extra cost per message.
 */
function elementEnd(bytes: Buffer, start: number): number {
  let depth = 0;
  let i = start;
  while (i < bytes.length) {
    const lt = bytes.indexOf(LT, i);
    if (lt === -1) return -1;
    let gt = lt + 1;
    for (let quote = 0; gt < bytes.length; gt++) {
      const c = bytes[gt]!;
      if (quote !== 0) {
        if (c === quote) quote = 0;
      } else if (c === 0x27 || c === 0x22) quote = c;
      else if (c === GT) break;
    }
    if (gt >= bytes.length) return -1;
    if (bytes[lt + 1] === SLASH) depth--;
    else if (bytes[gt - 1] !== SLASH) depth++;
    i = gt + 1;
    if (depth <= 0) return i;
  }
  return -1;
}

/**
 * RFC 7395 §3.3.2: the stream headers are <open/> and <close/> in the framing namespace; what
 * any message holds is looked at only as far as its first tag's name. §3.3.3 (one complete
 * element per message) is the stream's to check for elements (feedElement), this function's for
 * <open/> and <close/>. Surrounding whitespace is tolerated.
 */
export function classifyInbound(bytes: Buffer): InboundMessage {
  const length = bytes.length;
  let first = 0;
  while (first < length && isXmlSpace(bytes[first])) first++;
  // Text where an element belongs, or nothing at all: the core's business.
  if (first === length || bytes[first] !== LT) return FEED;
  const next = bytes[first + 1];
  // '<!' and '<?': comments, DTDs and PIs, which the core refuses as restricted XML.
  if (next === 0x21 || next === 0x3f) return FEED;
  const nameStart = next === SLASH ? first + 2 : first + 1;
  let nameEnd = nameStart;
  let localStart = nameStart;
  for (; nameEnd < length; nameEnd++) {
    const c = bytes[nameEnd];
    if (isXmlSpace(c) || c === SLASH || c === GT) break;
    if (c === 0x3a) localStart = nameEnd + 1;
  }
  // §3.3.2: a stream header of RFC 6120's form (<stream:stream>, </stream:stream>) is a header
  // outside the framing namespace.
  if (bytesAre(bytes, localStart, nameEnd, STREAM)) {
    return framingError('invalid-namespace', `open the stream with <open xmlns='${FRAMING_NS}'/> and close it with <close/> (RFC 7395 §3.3.2)`);
  }
  const isClose = bytesAre(bytes, localStart, nameEnd, CLOSE);
  if (next === SLASH || (!isClose && !bytesAre(bytes, localStart, nameEnd, OPEN))) return ELEMENT;
  const end = elementEnd(bytes, first);
  if (end === -1) return framingError('not-well-formed', 'a WebSocket message carries one complete element (RFC 7395 §3.3.3)');
  for (let i = end; i < length; i++) {
    if (!isXmlSpace(bytes[i])) return framingError('not-well-formed', 'a WebSocket message carries exactly one element (RFC 7395 §3.3.3)');
  }
  // §3.3.2: <open/> and <close/> are the stream headers only in the framing namespace, and
  // one in any other namespace is refused as a header in the wrong one.
  let el;
  try {
    el = parseXml(bytes.toString('utf8', first, end));
  } catch {
    return framingError('not-well-formed', 'a malformed stream header');
  }
  if (el.getNS() !== FRAMING_NS) {
    return framingError('invalid-namespace', `<${isClose ? 'close' : 'open'}/> must be qualified by ${FRAMING_NS} (RFC 7395 §3.3.2)`);
  }
  if (isClose) return CLOSE_MESSAGE;
  const attrs = ['to', 'from', 'version', 'xml:lang']
    .filter((attr) => typeof el.attrs[attr] === 'string')
    .map((attr) => ` ${attr}='${escapeXml(el.attrs[attr] as string)}'`)
    .join('');
  return { kind: 'open', header: `<stream:stream xmlns='${CLIENT_NS}' xmlns:stream='${STREAMS_NS}'${attrs}>` };
}

export class WebSocketTransport implements ClientTransport {
  private sink: ByteSink | null = null;
  private gone = false;
  private byteBucket: TokenBucket | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  readonly canStartTls = false;

  /**
   * `secure`: the WebSocket came over TLS, or from the loopback address (a reverse proxy on the
   * same host that terminated TLS, the usual deployment). Only then may SASL run under
   * `tls.policy: required`.
   */
  constructor(
    private readonly ws: WebSocket,
    readonly secure: boolean,
    readonly remoteAddress: string | undefined,
  ) {
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onGone());
    ws.on('error', () => {});
  }

  attach(sink: ByteSink): void {
    this.sink = sink;
  }

  limitBytes(rate: number, burst: number): void {
    this.byteBucket = rate > 0 ? new TokenBucket(rate, burst) : null;
  }

  get pendingBytes(): number {
    return this.ws.bufferedAmount;
  }

  write(chunks: (string | Uint8Array)[]): void {
    if (this.gone) return;
    // §3.3.3: one element per message; the stream queues one element per chunk. Routed stanzas
    // arrive as spliced bytes and go out as text frames without a decode to a string.
    for (const chunk of chunks) {
      if (typeof chunk !== 'string') this.ws.send(frameOutboundBytes(chunk), { binary: false });
      else for (const piece of splitTopLevel(chunk)) this.ws.send(frameOutbound(piece), { binary: false });
    }
  }

  startTls(): void {
    // Never offered (canStartTls is false): TLS is the HTTP layer's business here.
  }

  end(): void {
    if (this.gone) return;
    this.ws.close(1000);
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 5000).unref();
  }

  destroy(): void {
    this.ws.terminate();
  }

  pauseFor(ms: number): void {
    if (this.gone) return;
    this.ws.pause();
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      if (!this.gone) this.ws.resume();
    }, ms);
    this.resumeTimer.unref();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const sink = this.sink;
    if (!sink) return;
    if (isBinary) {
      // §3.2: XMPP data frames MUST be text. RFC 6455 §7.4.1 has the answer of an endpoint that
      // takes text only: close with 1003 (as Prosody does).
      this.ws.close(1003, 'XMPP travels in text messages (RFC 7395 section 3.2)');
      return;
    }
    // ws hands over a Buffer of its own (binaryType 'nodebuffer'): the core copies it once, so
    // no copy here.
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    // Each message is fed as received, without a decode to a string and an encode back; only the
    // stream headers are rewritten (§3.3.2).
    const message = classifyInbound(bytes);
    switch (message.kind) {
      case 'feed':
        sink.feed(bytes);
        break;
      case 'element':
        if (sink.feedElement) sink.feedElement(bytes);
        else sink.feed(bytes);
        break;
      case 'open':
        if (sink.feedHeader) sink.feedHeader(Buffer.from(message.header));
        else sink.feed(Buffer.from(message.header));
        break;
      case 'close':
        sink.feed(STREAM_END_BYTES);
        break;
      case 'error':
        if (sink.streamError) sink.streamError(message.error);
        else this.end();
        return;
    }
    if (this.byteBucket) {
      const wait = this.byteBucket.take(bytes.length);
      if (wait > 0) this.pauseFor(wait);
    }
  }

  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.sink?.transportClosed();
  }
}

export interface WebSocketListenOptions {
  host: string;
  port: number;
  path: string;
  backlog: number;
  /** Largest message accepted (limits.max_stanza_bytes): ws refuses bigger ones with 1009 before buffering them. */
  maxMessageBytes?: number;
}

/**
 * The WebSocket listener when enabled (null otherwise), its sockets tracked in `sockets` with the
 * TCP clients' so that shutdown closes them too. Both the inline and the sharded server use it.
 */
async function listenWebSocketClients(
  options: (WebSocketListenOptions & { enabled: boolean }) | { enabled: false },
  sockets: Set<Socket>,
  onConnection: (transport: WebSocketTransport) => void,
): Promise<Listener | null> {
  if (!options.enabled) return null;
  const listener = await listenWebSocket(options, onConnection);
  trackSockets(listener, sockets);
  return listener;
}

/** Every client listener: c2s and Direct TLS (listenClients) plus the WebSocket one. */
export interface AllClientListeners extends ClientListeners {
  /** null when listen.websocket.enabled is false. */
  websocket: Listener | null;
}

/**
 * Start every client listener of a configuration, all on the c2s backlog, their sockets tracked
 * together; close() stops all of them. If one cannot start, the others are closed again before
 * the error is thrown. Both the inline and the sharded server start their clients here.
 */
export async function listenAllClients(
  listen: Parameters<typeof listenClients>[0] & { websocket: Omit<WebSocketListenOptions, 'backlog' | 'maxMessageBytes'> & { enabled: boolean } },
  maxMessageBytes: number,
  secureContext: Parameters<typeof listenClients>[1],
  onConnection: (transport: Parameters<Parameters<typeof listenClients>[2]>[0] | WebSocketTransport) => void,
): Promise<AllClientListeners> {
  const clients = await listenClients(listen, secureContext, onConnection);
  let websocket: Listener | null;
  try {
    websocket = await listenWebSocketClients({ ...listen.websocket, backlog: listen.c2s.backlog, maxMessageBytes }, clients.sockets, onConnection);
  } catch (err) {
    await clients.close();
    throw err;
  }
  return {
    ...clients,
    websocket,
    close: async () => {
      await Promise.all([clients.close(), websocket?.close()]);
    },
  };
}

/** An HTTP listener that upgrades `path` to RFC 7395 WebSockets with the 'xmpp' subprotocol. */
export function listenWebSocket(
  options: WebSocketListenOptions,
  onConnection: (transport: WebSocketTransport) => void,
): Promise<Listener> {
  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('XMPP over WebSocket (RFC 7395): connect with the "xmpp" subprotocol\n');
  });
  const wss = new WebSocketServer({
    server: http,
    path: options.path,
    // §3.1: only the 'xmpp' subprotocol; a client that does not offer it is refused below.
    handleProtocols: (protocols: Set<string>) => (protocols.has('xmpp') ? 'xmpp' : false),
    // §3.3.3: a message is one element, so nothing larger than a stanza may be is ever useful;
    // without this bound ws would buffer up to its default (100 MiB) per connection, before
    // authentication and before the core's size check could see a byte.
    maxPayload: (options.maxMessageBytes ?? 16 * 1024 * 1024) + 1024,
  });
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    if (ws.protocol !== 'xmpp') {
      ws.close(1002, 'the xmpp subprotocol is required (RFC 7395 §3.1)');
      return;
    }
    const socket = req.socket as Socket & { encrypted?: boolean };
    const address = socket.remoteAddress;
    const secure = socket.encrypted === true || (address !== undefined && LOOPBACK.test(address));
    onConnection(new WebSocketTransport(ws, secure, address));
  });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(`${options.host}:${options.port}`, err));
    http.once('error', onError);
    http.listen({ host: options.host, port: options.port, backlog: options.backlog }, () => {
      http.off('error', onError);
      const address = http.address();
      resolve({
        server: http,
        host: options.host,
        port: typeof address === 'object' && address ? address.port : options.port,
        close: () =>
          new Promise((done) => {
            wss.close();
            http.close(() => done());
            http.closeIdleConnections?.();
          }),
      });
    });
  });
}
