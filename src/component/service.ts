/**
 * XEP-0114 components on their own listener: the registry of connected components and the two
 * directions of routing.
 *
 * - Into a component: the router's 'stanza/remote' hook (a stanza for a domain it does not serve)
 *   finds the component connected under that domain and forwards the stanza with the sender's
 *   'from' stamped, as spliced bytes. A configured component that is not connected answers
 *   service-unavailable; unknown domains are left to the router (remote-server-not-found).
 * - Out of a component: after the stream checked 'from' (a JID at the component's domain), the
 *   stanza goes through HermodRouter.routeFrom(): the local users' delivery rules apply.
 *
 * Runs with --workers 0 only (the router must live on the thread that owns the sockets).
 */
import { StanzaKind, StanzaType, type StanzaView } from '../core/api.js';
import { ConfigError, StanzaError, type StreamError } from '../errors.js';
import type { Jid } from '../jid.js';
import type { RemoteEvent } from '../router/context.js';
import { HermodRouter } from '../router/router.js';
import type { Router } from '../router/types.js';
import type { HermodConfig } from '../config/schema.js';
import type { ParserFactory } from '../stream/c2s.js';
import { listenTcp, type Listener, type ListenOptions } from '../transport/listen.js';
import type { ClientTransport } from '../transport/socket.js';
import { spliceFrom } from '../xml/splice.js';
import { Transport, stats } from '../observability/metrics.js';
import { ComponentStream, type ComponentHost, type ComponentStreamOptions } from './stream.js';

export interface ComponentServiceOptions extends ComponentStreamOptions {
  /** Component domain → shared secret (config `components`). */
  secrets: Record<string, string>;
}

export class ComponentService implements ComponentHost {
  private readonly connected = new Map<string, ComponentStream>();
  /** Every open component connection, authenticated or not (for shutdown). */
  readonly streams = new Set<ComponentStream>();
  private readonly secrets: Map<string, string>;
  private readonly removeHook: () => void;

  constructor(
    private readonly router: HermodRouter,
    private readonly core: ParserFactory,
    private readonly options: ComponentServiceOptions,
  ) {
    this.secrets = new Map(Object.entries(options.secrets));
    for (const name of this.secrets.keys()) {
      // The server's own domain is routed locally: a component there would never see a stanza.
      if (name === router.domain) throw new ConfigError(`component ${name} cannot have the server's own domain`, `components.${name}`);
      // XEP-0030 §4: clients find gateways and services in the server's disco#items.
      router.features.addItem(name);
    }
    this.removeHook = router.hooks.on('stanza/remote', (ev: RemoteEvent) => this.toComponent(ev), 10);
  }

  /** Components connected now: domain and since when (ms). */
  list(): { domain: string; since: number }[] {
    return [...this.connected.values()].map((s) => ({ domain: s.domain!, since: s.since }));
  }

  /** A new connection on the component port. */
  accept(transport: ClientTransport): ComponentStream {
    stats.connectionOpened(Transport.component);
    const stream = new ComponentStream(transport, this, this.options, this.core, (s) => {
      stats.connectionClosed(Transport.component);
      this.streams.delete(s);
    });
    this.streams.add(stream);
    transport.attach(stream);
    return stream;
  }

  secretOf(domain: string): string | undefined {
    return this.secrets.get(domain);
  }

  attach(stream: ComponentStream): boolean {
    const domain = stream.domain!;
    if (this.connected.has(domain)) return false;
    this.connected.set(domain, stream);
    return true;
  }

  detach(stream: ComponentStream): void {
    if (stream.domain !== null && this.connected.get(stream.domain) === stream) this.connected.delete(stream.domain);
  }

  route(stream: ComponentStream, from: Jid, view: StanzaView): void {
    this.router.routeFrom(from, view, (data) => stream.send(data));
  }

  /** 'stanza/remote': true when the addressee's domain is a configured component. */
  private toComponent(ev: RemoteEvent): boolean {
    if (!this.secrets.has(ev.to.domain)) return false;
    const target = this.connected.get(ev.to.domain);
    if (target) {
      target.send(spliceFrom(ev.view, ev.session.fromStamp));
      return true;
    }
    // Configured but not connected: the service exists and is down (RFC 6120 §8.3.3.19);
    // errors and results are never answered (§8.3.1).
    const { view } = ev;
    if (view.type === StanzaType.Error || (view.kind === StanzaKind.Iq && view.type === StanzaType.Result)) return true;
    if (view.kind === StanzaKind.Presence) return true;
    throw new StanzaError('service-unavailable', `${ev.to.domain} is not connected`);
  }

  /** Stop routing to components and end their streams (server shutdown). */
  closeAll(error: StreamError): void {
    this.removeHook();
    for (const s of [...this.streams]) s.close(error);
  }
}

/** The component listener (plain TCP: XEP-0114 has no TLS; keep it on loopback or a private net). */
export function listenComponents(service: ComponentService, options: ListenOptions): Promise<Listener> {
  return listenTcp(options, null, (transport) => service.accept(transport));
}

export interface ComponentListener {
  readonly service: ComponentService;
  readonly host: string;
  readonly port: number;
  /** Stop accepting, end every component stream with `error`. */
  close(error: StreamError): Promise<void>;
}

/** Start the component listener when the configuration names at least one component. */
export async function startComponents(config: HermodConfig, router: Router, core: ParserFactory): Promise<ComponentListener | null> {
  if (Object.keys(config.components).length === 0) return null;
  if (!(router instanceof HermodRouter)) throw new ConfigError('components need the built-in router', 'components');
  const service = new ComponentService(router, core, {
    secrets: config.components,
    maxStanzaBytes: config.limits.maxStanzaBytes,
    maxDepth: config.limits.maxDepth,
    maxAttributes: config.limits.maxAttributes,
    handshakeTimeoutMs: config.limits.preauthTimeout,
    maxOutputBytes: config.limits.outputQueueBytes,
  });
  const listener = await listenComponents(service, { ...config.listen.component, backlog: config.listen.c2s.backlog });
  return {
    service,
    host: listener.host,
    port: listener.port,
    async close(error) {
      const closing = listener.close();
      service.closeAll(error);
      await closing;
    },
  };
}
