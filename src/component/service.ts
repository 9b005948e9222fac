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
 * With --workers 0 both directions use the router of this thread (routerRouting). With
 * --workers N the component connections stay on the main thread with the other sockets, and
 * the routing is the shards' (src/shard/serve.ts): each shard forwards stanzas for a connected
 * component to this thread (deliver()), and a component's stanzas are routed by one shard.
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
  /** Told when a component domain connects or goes (the shards keep a flag per domain). */
  onConnected?: (domain: string, connected: boolean) => void;
}

/** What the component service needs of the routing, wherever that runs. */
export interface ComponentRouting {
  /** The server's own domain (a component cannot take it). */
  readonly domain: string;
  /** XEP-0030 §4: list the component in the server's disco#items. */
  addItem(name: string): void;
  /** Route a component's stanza (its 'from' already checked); errors go to `reply`. */
  routeFrom(from: Jid, view: StanzaView, reply: (data: Uint8Array | string) => void): void;
  /**
   * Call `handler` for stanzas to domains this server does not serve; returns the unhook.
   * Absent when the routing runs elsewhere and hands the stanzas to deliver() instead.
   */
  onRemote?(handler: (ev: RemoteEvent) => boolean): () => void;
}

/** The routing of --workers 0: this thread's router. */
export function routerRouting(router: HermodRouter): ComponentRouting {
  return {
    domain: router.domain,
    addItem: (name) => router.features.addItem(name),
    routeFrom: (from, view, reply) => router.routeFrom(from, view, reply),
    onRemote: (handler) => router.hooks.on('stanza/remote', handler, 10),
  };
}

/**
 * A stanza for a configured component that is not connected: the service exists and is down
 * (RFC 6120 §8.3.3.19) — service-unavailable, except that errors, IQ results (§8.3.1) and
 * presence are dropped. Shared by both routings.
 */
export function refuseForAbsentComponent(view: StanzaView, domain: string): void {
  if (view.type === StanzaType.Error || (view.kind === StanzaKind.Iq && view.type === StanzaType.Result)) return;
  if (view.kind === StanzaKind.Presence) return;
  throw new StanzaError('service-unavailable', `${domain} is not connected`);
}

export class ComponentService implements ComponentHost {
  private readonly connected = new Map<string, ComponentStream>();
  /** Every open component connection, authenticated or not (for shutdown). */
  readonly streams = new Set<ComponentStream>();
  private readonly secrets: Map<string, string>;
  private readonly removeHook: () => void;

  constructor(
    private readonly routing: ComponentRouting,
    private readonly core: ParserFactory,
    private readonly options: ComponentServiceOptions,
  ) {
    this.secrets = new Map(Object.entries(options.secrets));
    for (const name of this.secrets.keys()) {
      // The server's own domain is routed locally: a component there would never see a stanza.
      if (name === routing.domain) throw new ConfigError(`component ${name} cannot have the server's own domain`, `components.${name}`);
      // XEP-0030 §4: clients find gateways and services in the server's disco#items.
      routing.addItem(name);
    }
    this.removeHook = routing.onRemote?.((ev: RemoteEvent) => this.toComponent(ev)) ?? (() => {});
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
    this.options.onConnected?.(domain, true);
    return true;
  }

  detach(stream: ComponentStream): void {
    if (stream.domain !== null && this.connected.get(stream.domain) === stream) {
      this.connected.delete(stream.domain);
      this.options.onConnected?.(stream.domain, false);
    }
  }

  route(stream: ComponentStream, from: Jid, view: StanzaView): void {
    this.routing.routeFrom(from, view, (data) => stream.send(data));
  }

  /** Bytes routed elsewhere (a shard) for the component at `domain`; false when not connected. */
  deliver(domain: string, data: Uint8Array | string): boolean {
    const target = this.connected.get(domain);
    target?.send(data);
    return target !== undefined;
  }

  /** 'stanza/remote': true when the addressee's domain is a configured component. */
  private toComponent(ev: RemoteEvent): boolean {
    if (!this.secrets.has(ev.to.domain)) return false;
    const target = this.connected.get(ev.to.domain);
    if (target) {
      target.send(spliceFrom(ev.view, ev.session.fromStamp));
      return true;
    }
    refuseForAbsentComponent(ev.view, ev.to.domain);
    return true;
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
export async function startComponents(
  config: HermodConfig,
  router: Router | ComponentRouting,
  core: ParserFactory,
  onConnected?: ComponentServiceOptions['onConnected'],
): Promise<ComponentListener | null> {
  if (Object.keys(config.components).length === 0) return null;
  let routing: ComponentRouting;
  if (router instanceof HermodRouter) routing = routerRouting(router);
  else if ('addItem' in router) routing = router;
  else throw new ConfigError('components need the built-in router', 'components');
  const service = new ComponentService(routing, core, {
    secrets: config.components,
    onConnected,
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
