/**
 * Test doubles for the stream layer: a transport that records what is written, a router that
 * records what it is asked, a PLAIN-only SASL provider, and a reference parser built on ltx's
 * SAX parser that implements the core's StreamParser contract closely enough to drive the state
 * machine (the real WASM core replaces it wherever it is available).
 */
import { Element } from 'ltx';
import SaxLtx from 'ltx/lib/parsers/ltx.js';
import {
  DEFAULT_LIMITS,
  StanzaKind,
  type ParserHandler,
  type ParserLimits,
  type StanzaView,
  type StreamParser,
} from '../../src/core/api.js';
import { SaslFailure, StanzaError } from '../../src/errors.js';
import { jsView } from '../scenario/js-view.js';
import type { ClientSession, Router } from '../../src/router/types.js';
import type { ByteSink, C2SOptions, ParserFactory, SaslProvider, StreamTransport } from '../../src/stream/c2s.js';

export class RecordingTransport implements StreamTransport {
  secure: boolean;
  canStartTls: boolean;
  writes: (string | Uint8Array)[][] = [];
  /** What the kernel has not taken yet; tests raise it to play a slow reader. */
  pendingBytes = 0;
  pauses: number[] = [];
  /** Who gets this connection's bytes (set by tests; moved by XEP-0198 resumption). */
  sink: ByteSink | null = null;
  ended = false;
  tlsStarted = 0;

  constructor(options: { secure?: boolean; canStartTls?: boolean } = {}) {
    this.secure = options.secure ?? false;
    this.canStartTls = options.canStartTls ?? !this.secure;
  }

  write(chunks: (string | Uint8Array)[]): void {
    if (this.ended) throw new Error('write after end');
    this.writes.push(chunks);
  }

  startTls(): void {
    this.tlsStarted++;
    this.secure = true;
    this.canStartTls = false;
  }

  end(): void {
    this.ended = true;
  }

  pauseFor(ms: number): void {
    this.pauses.push(ms);
  }

  attach(sink: ByteSink): void {
    this.sink = sink;
  }

  /** Everything written so far, as one string. */
  text(): string {
    return this.writes
      .flat()
      .map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('utf8')))
      .join('');
  }

  /** Forget what was written (to assert on the next answer only). */
  take(): string {
    const text = this.text();
    this.writes = [];
    return text;
  }
}

export interface RouterLog {
  bound: { session: ClientSession; requested: string | null }[];
  routed: { session: ClientSession; xml: string; kind: StanzaKind }[];
  unbound: ClientSession[];
  unauth: string[];
}

/** Binds `requested` or 'generated-N'; refuses resource 'taken' with conflict. */
export function recordingRouter(options: { acceptRegistration?: boolean } = {}): Router & { log: RouterLog } {
  const log: RouterLog = { bound: [], routed: [], unbound: [], unauth: [] };
  let generated = 0;
  return {
    log,
    bind(session, requested) {
      log.bound.push({ session, requested });
      if (requested === 'taken') throw new StanzaError('conflict');
      return session.account.withResource(requested ?? `generated-${++generated}`);
    },
    route(session, stanza) {
      log.routed.push({ session, xml: stanza.toString(), kind: stanza.kind });
    },
    routeUnauthenticated(stanza, reply) {
      log.unauth.push(stanza.toString());
      if (!options.acceptRegistration) return false;
      reply(`<iq type='result' id='${stanza.id()}'/>`);
      return true;
    },
    unbind(session) {
      log.unbound.push(session);
    },
    streamFeatures: () => "<ver xmlns='urn:xmpp:features:rosterver'/>",
    nonza(session, element) {
      if (element.namespace() !== 'urn:xmpp:csi:0') return false;
      log.routed.push({ session, xml: element.toString(), kind: element.kind });
      return true;
    },
  };
}

/** PLAIN only: user 'alice', password 'secret'. */
export const plainSasl: SaslProvider = {
  mechanisms: (plaintextOk) => (plaintextOk ? ['PLAIN'] : []),
  start(mechanism) {
    if (mechanism !== 'PLAIN') throw new SaslFailure('invalid-mechanism');
    return {
      mechanism: 'PLAIN',
      // Asynchronous like the real PLAIN (PBKDF2 on the thread pool), settling within a turn.
      async step(response) {
        await null;
        if (response === null) return { done: false, challenge: Buffer.alloc(0) };
        const [, user, pass] = response.toString('utf8').split('\0');
        if (user === 'alice' && pass === 'secret') return { done: true, username: user, additionalData: null };
        throw new SaslFailure('not-authorized');
      },
    };
  },
};

export function plainAuth(user: string, pass: string): string {
  return Buffer.from(`\0${user}\0${pass}`).toString('base64');
}

/** Stream options of the unit tests: small limits so that limit tests stay small. */
export const STREAM_OPTIONS: C2SOptions = {
  domain: 'localhost',
  tls: 'required',
  registration: 'closed',
  preAuthMaxStanzaBytes: 4096,
  maxStanzaBytes: 65536,
  saslMaxAttempts: 3,
};

export const SASL = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";
/** alice / secret, as plainSasl accepts. */
export const AUTH_OK = `<auth ${SASL} mechanism='PLAIN'>${Buffer.from('\0alice\0secret').toString('base64')}</auth>`;
export const BIND = "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>";

export const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

export function streamErrorOf(text: string): string | null {
  const m = /<stream:error><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/.exec(text);
  return m ? m[1]! : null;
}

// ---- reference parser ---------------------------------------------------------------------

/** The stanza as a StanzaView computed in JS (the same fields and verdicts as the core's). */
function viewOf(el: Element, streamNs: string): StanzaView {
  return jsView(el.toString(), streamNs, 0);
}

/** A StreamParser on ltx's SAX parser; limits: maxStanzaBytes only (counted when a stanza ends). */
export class ReferenceParser implements StreamParser {
  private sax!: SaxLtx;
  private stack: Element[] = [];
  private open = false;
  private streamNs = 'jabber:client';
  private failed = false;
  private pending = Buffer.alloc(0);
  private limits: ParserLimits;

  constructor(
    private readonly handler: ParserHandler,
    limits: Partial<ParserLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.reset();
  }

  feed(chunk: Uint8Array): void {
    if (this.failed) return;
    // ltx's SAX loses an XML declaration split across writes: hand it text up to the last '>'
    // (split handling proper is the WASM core's job, tested there).
    this.pending = Buffer.concat([this.pending, chunk]);
    const cut = this.pending.lastIndexOf(0x3e) + 1;
    if (cut === 0) return;
    const text = this.pending.subarray(0, cut).toString('utf8');
    this.pending = this.pending.subarray(cut);
    this.sax.write(text);
  }

  reset(): void {
    this.sax = new SaxLtx();
    this.pending = Buffer.alloc(0);
    this.stack = [];
    this.open = false;
    this.failed = false;
    this.sax.on('startElement', (name: string, attrs: Record<string, string>) => this.start(name, attrs));
    this.sax.on('endElement', (name: string) => this.end(name));
    this.sax.on('text', (text: string) => {
      if (this.stack.length > 0) this.stack[this.stack.length - 1]!.t(text);
    });
    this.sax.on('error', (err: Error) => this.fail('not-well-formed', err.message));
  }

  setLimits(limits: Partial<ParserLimits>): void {
    this.limits = { ...this.limits, ...limits };
  }

  free(): void {
    this.failed = true;
  }

  private fail(condition: 'not-well-formed' | 'policy-violation', message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.handler.onError({ code: 1, condition, message, offset: 0 });
  }

  private start(name: string, attrs: Record<string, string>): void {
    if (this.failed) return;
    if (!this.open) {
      const prefix = name.includes(':') ? name.slice(0, name.indexOf(':')) : null;
      const namespace = (prefix ? attrs[`xmlns:${prefix}`] : attrs['xmlns']) ?? '';
      this.streamNs = attrs['xmlns'] ?? '';
      this.open = true;
      this.handler.onStreamOpen({
        name,
        namespace,
        defaultNamespace: attrs['xmlns'] ?? null,
        to: attrs['to'] ?? null,
        from: attrs['from'] ?? null,
        id: attrs['id'] ?? null,
        version: attrs['version'] ?? null,
        lang: attrs['xml:lang'] ?? null,
        hadXmlDeclaration: true,
      });
      return;
    }
    const el = new Element(name, attrs);
    if (this.stack.length > 0) this.stack[this.stack.length - 1]!.cnode(el);
    this.stack.push(el);
  }

  private end(name: string): void {
    if (this.failed) return;
    if (this.stack.length === 0) {
      if (name.endsWith('stream') && name.includes(':')) this.handler.onStreamClose();
      else this.fail('not-well-formed', `unexpected </${name}>`);
      return;
    }
    const el = this.stack.pop()!;
    if (el.name !== name) return this.fail('not-well-formed', `</${name}> closes <${el.name}>`);
    if (this.stack.length > 0) return;
    const view = viewOf(el, this.streamNs);
    if (view.end > this.limits.maxStanzaBytes) return this.fail('policy-violation', 'stanza too large');
    this.handler.onStanza(view);
  }
}

export const referenceCore: ParserFactory = {
  createParser: (handler, limits) => new ReferenceParser(handler, limits),
};
