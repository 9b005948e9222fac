/**
 * XEP-0114 components with `--workers N`: the component connections are sockets, so they stay on
 * the main thread (src/component/service.ts there, wired in src/shard/serve.ts); the routing is
 * the shards'. Every shard's router sees every session (src/shard/mirror.ts), so any shard can
 * route a component's stanza, and every shard forwards stanzas for a component to the main thread.
 *
 * - Into a component: this shard's 'stanza/remote' hook takes stanzas for a configured component
 *   domain. Connected (a flag per domain in shared memory, set by the main thread): the stanza
 *   goes to the main thread with the sender's 'from' stamped (Op.ToComponent). Not connected:
 *   the same answer as with --workers 0 (refuseForAbsentComponent).
 * - Out of a component: the main thread checked 'from' and hands the stanza's bytes to one
 *   shard per component domain (so one component's stanzas keep their order) as
 *   Op.FromComponent; the shard parses them with its own core, inside a stream whose default
 *   namespace is the component one, and routes them with HermodRouter.routeFrom(). Errors for
 *   the component go back as Op.ToComponent.
 */
import type { ParserLimits, StanzaView, StreamParser } from '../core/api.js';
import type { HermodConfig } from '../config/schema.js';
import { refuseForAbsentComponent } from '../component/service.js';
import { COMPONENT_NS } from '../component/stream.js';
import { Jid } from '../jid.js';
import type { RemoteEvent } from '../router/context.js';
import type { HermodRouter } from '../router/router.js';
import type { ParserFactory } from '../stream/c2s.js';
import { attr } from '../xml/escape.js';
import { spliceFrom } from '../xml/splice.js';
import { componentRecord, Op, type RingSender, splitComponentRecord } from './protocol.js';

/**
 * The configured component domains in a fixed order: index = slot in the shared flags. The
 * XEP-0045 service (muc.enabled) is one of them: its rooms live on the main thread (src/muc/main.ts).
 */
export function componentDomains(config: HermodConfig): string[] {
  const list = Object.keys(config.components);
  const muc = mucDomainOf(config);
  if (muc !== null) list.push(muc);
  return list.sort();
}

/** The XEP-0045 service's domain when muc.enabled, else null. */
export function mucDomainOf(config: HermodConfig): string | null {
  return config.muc.enabled ? (config.muc.domain ?? `conference.${config.domain}`) : null;
}

const STREAMS_NS = 'http://etherx.jabber.org/streams';
const HEADER = `<stream:stream xmlns='${COMPONENT_NS}' xmlns:stream='${STREAMS_NS}'>`;
const encoder = new TextEncoder();

/** A shard's side of the components. */
export class ShardComponents {
  private readonly domains: string[];
  private readonly connected: Int32Array;
  private parser: StreamParser | null = null;
  /** The sender of the stanza being parsed (set around each feed). */
  private from: Jid | null = null;

  constructor(
    private readonly router: HermodRouter,
    private readonly core: ParserFactory,
    config: HermodConfig,
    flags: SharedArrayBuffer,
    private readonly out: RingSender,
    private readonly limits: Partial<ParserLimits>,
    private readonly log: (msg: string, err?: unknown) => void,
  ) {
    this.domains = componentDomains(config);
    this.connected = new Int32Array(flags);
    for (const name of this.domains) router.features.addItem(name);
    router.hooks.on('stanza/remote', (ev: RemoteEvent) => this.toComponent(ev), 10);
    const muc = mucDomainOf(config);
    if (muc !== null) {
      // XEP-0045 §7.14: the rooms on the main thread learn that a session ended or went
      // unavailable (RFC 6121 §4.5.2) from an unavailable presence to the service itself.
      const gone = (ev: { session: { jid: Jid } }) => {
        const note = `<presence type='unavailable'${attr('from', ev.session.jid.full)}${attr('to', muc)}/>`;
        this.out.send(Op.ToComponent, 0, componentRecord(muc, note));
        return false;
      };
      router.hooks.on('session/unbound', gone);
      router.hooks.on('presence/unavailable', gone);
    }
  }

  /** 'stanza/remote': true when the addressee's domain is a configured component. */
  private toComponent(ev: RemoteEvent): boolean {
    const slot = this.domains.indexOf(ev.to.domain);
    if (slot < 0) return false;
    if (Atomics.load(this.connected, slot) === 1) {
      this.out.send(Op.ToComponent, 0, componentRecord(ev.to.domain, spliceFrom(ev.view, ev.session.fromStamp)));
      return true;
    }
    refuseForAbsentComponent(ev.view, ev.to.domain);
    return true;
  }

  /** Op.FromComponent from the main thread. */
  fromMain(body: Uint8Array): void {
    const { head, bytes } = splitComponentRecord(body);
    const from = Jid.tryParse(head);
    if (!from) return this.log(`component stanza with an unusable sender '${head}' dropped`);
    this.from = from;
    try {
      this.stream().feed(bytes);
    } finally {
      this.from = null;
    }
  }

  /** One parser for every component stanza of this shard, re-opened after an error. */
  private stream(): StreamParser {
    if (this.parser) return this.parser;
    const parser = this.core.createParser(
      {
        onStreamOpen: () => {},
        onStanza: (view: StanzaView) => this.route(view),
        onStreamClose: () => this.reopen(),
        onError: (error) => {
          // The main thread's parser accepted these bytes: only a namespace prefix declared
          // on the component's own stream header can differ here.
          this.log(`component stanza from ${this.from?.full ?? '?'} could not be re-parsed: ${error.condition}`);
          this.reopen();
        },
      },
      this.limits,
    );
    parser.feed(encoder.encode(HEADER));
    this.parser = parser;
    return parser;
  }

  private reopen(): void {
    const parser = this.parser;
    this.parser = null;
    // Freed after the current feed returns: the parser is still on the stack.
    if (parser) queueMicrotask(() => parser.free());
  }

  private route(view: StanzaView): void {
    const from = this.from;
    if (!from) return;
    const domain = from.domain;
    this.router.routeFrom(from, view, (data) => this.out.send(Op.ToComponent, 0, componentRecord(domain, data)));
  }
}
