/**
 * `hermod serve`: storage, the WASM core, the router and the listeners wired into one process.
 *
 * Start order is chosen so that every refusal happens before a port is taken: configuration,
 * data directory and database, certificate, core; only then the listeners. Shutdown runs the
 * other way: stop accepting, end every stream with <system-shutdown/>, let the sockets flush,
 * close the database.
 */
import { ConfigError, StreamError } from './errors.js';
import { loadCore } from './core/parser.js';
import type { HermodConfig } from './config/schema.js';
import { parseServeArgs, serveUsage, UsageError } from './config/flags.js';
import { createRouter } from './router/index.js';
import type { Router } from './router/types.js';
import { openStorage, type Storage } from './storage/index.js';
import { SaslProvider as SaslMechanisms } from './stream/sasl/index.js';
import { AuthBan } from './limits/auth-ban.js';
import { AuthFailureTracker, ConnectionCounter } from './stream/limits.js';
import { C2SStream, type C2SDeps, type ParserFactory, type SaslProvider } from './stream/c2s.js';
import { streamOptionsOf } from './stream/options.js';
import { keepUnacked } from './router/unacked.js';
import { ListenError, type Listener, warnIfBacklogCapped } from './transport/listen.js';
import { loadServerTls, type Certificate } from './transport/tls.js';
import type { ClientTransport } from './transport/socket.js';
import { WebSocketTransport, listenAllClients } from './transport/websocket.js';
import { MetricsListenError, startObservability, type Logger, type Observability } from './observability/index.js';
import { TRANSPORTS, Transport, stats } from './observability/metrics.js';
import type { ShardedServer } from './shard/serve.js';
import { describeServer } from './describe.js';
import { AdminSocketError, listenAdmin, streamsTarget, type AdminChannel, type AdminTarget, type ConnectionFacts } from './admin/channel.js';
import { startComponents, type ComponentListener } from './component/service.js';
import { muc, mucSettingsOf } from './muc/service.js';
import { checkUploadConfig, startUpload, upload as uploadModule, uploadSettings, type UploadService } from './upload/index.js';

export const EX_USAGE = 64;
export const EX_CONFIG = 78;

export interface HermodServer {
  readonly config: HermodConfig;
  readonly c2s: Listener;
  readonly directTls: Listener | null;
  /** RFC 7395 listener, when listen.websocket.enabled. */
  readonly websocket: Listener | null;
  /** XEP-0114 listener, when `components` names at least one. */
  readonly components: ComponentListener | null;
  /** XEP-0363 HTTP service, when upload.enabled. */
  readonly upload: UploadService | null;
  /** <data>/hermod.sock (docs/operations.md), unless StartOptions.adminChannel is false. */
  readonly admin: AdminChannel | null;
  readonly certificate: Certificate;
  readonly storage: Storage;
  readonly router: Router;
  /** Streams currently open, negotiated or not. */
  readonly streams: ReadonlySet<C2SStream>;
  /** One line saying where the server listens. */
  describe(): string;
  /** Stop accepting, end every stream with <system-shutdown/>, flush, close storage. Idempotent. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  /** Replace parts of the wiring (tests use in-memory storage). */
  storage?: Storage;
  core?: ParserFactory;
  /** Extension points for XEP-0198, XEP-0352 and other top-level elements. */
  elementHandlers?: C2SDeps['elementHandlers'];
  extraFeatures?: C2SDeps['extraFeatures'];
  /** Structured log for runtime events (router errors, refused connections). */
  logger?: Logger;
  /** Listen on <data>/hermod.sock for `hermod sessions`/`kick` (default true). */
  adminChannel?: boolean;
}

// Kept importable from here for existing callers; they live in their layers (stream, router).
export { streamOptionsOf } from './stream/options.js';
export { keepUnacked } from './router/unacked.js';

/** How long shutdown waits for clients to read their <system-shutdown/> before cutting them. */
const SHUTDOWN_GRACE_MS = 3000;

/**
 * What the server keeps of one accepted connection: its address and listener for bookkeeping and
 * the session list. A class, so every connection shares one object shape and `secure` is a
 * prototype getter, not a closure per connection (idle sessions dominate memory: docs/benchmarks.md).
 */
class Accepted implements ConnectionFacts {
  readonly since = Date.now();
  constructor(
    readonly address: string,
    readonly kind: number,
    readonly link: ClientTransport,
    readonly refused: boolean,
  ) {}
  get transport(): ConnectionFacts['transport'] {
    return TRANSPORTS[this.kind] as ConnectionFacts['transport'];
  }
  get secure(): boolean {
    return this.link.secure;
  }
}

export async function startServer(config: HermodConfig, options: StartOptions = {}): Promise<HermodServer> {
  // Storage first: an unusable data directory is the most common start failure, and it must
  // be reported before any port is taken.
  const storage = options.storage ?? openStorage({ dataDir: config.dataDir, offlineLimit: config.offline.maxPerUser });
  try {
    checkUploadConfig(config);
    const { certificate, secureContext } = await loadServerTls(config);
    const core: ParserFactory = options.core ?? loadCore();
    // XEP-0045 on its subdomain when muc.enabled (src/muc).
    const mucSettings = mucSettingsOf(config);
    const router = createRouter({
      domain: config.domain,
      storage,
      registration: config.registration,
      mam: config.mam,
      contact: config.contact,
      ...(options.logger ? { log: options.logger } : {}),
    });
    if (mucSettings) muc(mucSettings).install(router);
    // XEP-0363: the module answers on this router; its URL is completed once the HTTP port is bound.
    const uploads = uploadSettings(config);
    if (uploads) uploadModule(uploads).install(router);
    const sasl: SaslProvider = new SaslMechanisms({ users: storage.users, domain: config.domain, plainCacheSize: config.tls.plainLoginCache });

    const streams = new Set<C2SStream>();
    const streamOptions = streamOptionsOf(config);
    const connections = new ConnectionCounter(config.limits.maxConnections, config.limits.connectionsPerIp);
    const authFailures = new AuthFailureTracker(config.limits.authFailureDelay, config.limits.authFailureDelayMax);
    const authBan = new AuthBan(config.limits.authBanFailures, config.limits.authBanTime);
    let stopping = false;
    const facts = new WeakMap<C2SStream, Accepted>();
    const { byteRate, preauthByteRate } = config.limits;
    // One deps object for every stream: what differs per connection is found through `facts`.
    const deps: C2SDeps = {
      core,
      router,
      sasl,
      elementHandlers: options.elementHandlers,
      extraFeatures: options.extraFeatures,
      smSessions: new Map(),
      onUnacked: (session, stanzas) => keepUnacked(storage, session.account.bare, stanzas),
      ...(options.logger ? { log: options.logger } : {}),
      authThrottle: {
        failed: (stream) => {
          const address = facts.get(stream)?.address ?? '';
          authBan.failed(address);
          return authFailures.failed(address);
        },
        succeeded: (stream) => {
          const conn = facts.get(stream);
          if (!conn) return;
          authFailures.succeeded(conn.address);
          // Anonymous peers read at the lower pre-authentication rate until SASL succeeds.
          conn.link.limitBytes(byteRate.rate, byteRate.burst);
        },
      },
      onClosed: (closed) => {
        const conn = facts.get(closed);
        streams.delete(closed);
        if (!conn) return;
        stats.connectionClosed(conn.kind);
        if (!conn.refused) connections.release(conn.address);
      },
    };
    const accept = (transport: ClientTransport) => {
      if (stopping) {
        transport.destroy();
        return;
      }
      const address = transport.remoteAddress ?? '';
      const kind =
        transport instanceof WebSocketTransport ? Transport.websocket : transport.secure ? Transport.direct_tls : Transport.c2s;
      stats.connectionOpened(kind);
      transport.limitBytes(preauthByteRate.rate, preauthByteRate.burst);
      const refused = authBan.bannedUntil(address) > 0 ? 'too many failed authentications from your address' : connections.admit(address);
      const stream = new C2SStream(transport, streamOptions, deps);
      streams.add(stream);
      facts.set(stream, new Accepted(address, kind, transport, refused !== null));
      transport.attach(stream);
      // Refused with a reason the client can read (after our header, RFC 6120 §4.9.1.2).
      if (refused) {
        options.logger?.info({ address, reason: refused }, 'connection refused');
        stream.close(new StreamError('policy-violation', refused));
      }
    };
    // One sweep a second for every stream's timeouts, rather than a timer per connection.
    const sweeper = setInterval(() => {
      const now = Date.now();
      for (const stream of streams) stream.checkTimeouts(now);
      authFailures.sweep();
      authBan.sweep();
    }, 1000);
    sweeper.unref();

    const listeners = await listenAllClients(config.listen, config.limits.maxStanzaBytes, secureContext, accept);
    const { c2s, directTls, websocket, sockets } = listeners;
    if (options.logger) warnIfBacklogCapped(c2s, config.listen.c2s.backlog, (facts, msg) => options.logger!.warn(facts, msg));
    let components: ComponentListener | null = null;
    let admin: AdminChannel | null = null;
    let upload: UploadService | null = null;
    try {
      components = await startComponents(config, router, core);
      upload = await startUpload(config, uploads, certificate, options.logger);
      if (options.adminChannel !== false) {
        const target = streamsTarget(streams, facts);
        // passwd/deluser write from their own process, then ask for this kick: the caches look
        // for that write now (not at their next poll), so the client's reconnect meets it.
        const kick: AdminTarget['kick'] = (jid, error, deleted) => {
          storage.checkExternalWrites?.();
          // hermod deluser deleted the account from its own process (users.delete took its stored
          // room affiliations): the live rooms learn it here, or their next change writes them back.
          // Only on deluser's word: `hermod kick` of a name nobody holds (yet) must not end a
          // membership granted to it in advance.
          if (deleted && jid.resource === null && jid.domain === config.domain && !storage.users.exists(jid.bare)) {
            router.hooks.fire('account/removed', { ctx: router, account: jid.bare });
          }
          return target.kick(jid, error);
        };
        admin = await listenAdmin(config.dataDir, { sessions: target.sessions, kick }).catch((err: unknown) => {
          // Another server on this data directory is fatal; a socket we cannot create is not.
          if (!(err instanceof AdminSocketError)) throw err;
          options.logger?.warn({ err: err.message }, 'admin socket unavailable: hermod sessions/kick will not reach this server');
          return null;
        });
      }
    } catch (err) {
      await Promise.all([listeners.close(), components?.close(new StreamError('system-shutdown')), upload?.close()]);
      throw err;
    }

    let stopped: Promise<void> | null = null;
    const server: HermodServer = {
      config,
      c2s,
      directTls,
      websocket,
      components,
      upload,
      admin,
      certificate,
      storage,
      router,
      streams,
      describe: () => describeServer(config, { c2s, directTls, websocket, components, upload }),
      shutdown() {
        stopped ??= (async () => {
          stopping = true;
          clearInterval(sweeper);
          const closing = Promise.all([
            listeners.close(),
            admin?.close(),
            components?.close(new StreamError('system-shutdown')),
            upload?.close(),
          ]);
          // RFC 6120 §4.9.3.20: tell every client why the stream ends.
          for (const stream of [...streams]) stream.close(new StreamError('system-shutdown'));
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            closing,
            new Promise<void>((done) => {
              timer = setTimeout(done, SHUTDOWN_GRACE_MS);
            }),
          ]);
          clearTimeout(timer);
          for (const socket of sockets) socket.destroy();
          await closing;
          storage.close();
        })();
        return stopped;
      },
    };
    return server;
  } catch (err) {
    if (!options.storage) storage.close();
    throw err;
  }
}

function print(stream: NodeJS.WriteStream, line: string): void {
  stream.write(`${line}\n`);
}

/** The `serve` command: parse flags, start, print where we listen, run until a signal. */
export async function runServe(argv: string[]): Promise<number> {
  let config: HermodConfig;
  try {
    const args = parseServeArgs(argv);
    if (args.help || !args.loaded) {
      print(process.stdout, serveUsage());
      return 0;
    }
    for (const warning of args.loaded.warnings) print(process.stderr, `hermod: warning: ${warning}`);
    config = args.loaded.config;
  } catch (err) {
    if (err instanceof UsageError) {
      print(process.stderr, `hermod serve: ${err.message}\n\n${serveUsage()}`);
      return EX_USAGE;
    }
    if (err instanceof ConfigError) {
      print(process.stderr, `hermod serve: bad configuration: ${err.message}`);
      return EX_CONFIG;
    }
    throw err;
  }

  let obs: Observability;
  try {
    // Metrics first: a taken metrics port is refused before any XMPP port is.
    obs = await startObservability(config);
  } catch (err) {
    if (err instanceof MetricsListenError) {
      print(process.stderr, `hermod serve: ${err.message}`);
      return 1;
    }
    throw err;
  }
  let server: HermodServer | ShardedServer;
  try {
    // Sharding (src/shard): with --workers N > 0 the sockets stay here and N shard threads run
    // the streams and the router; loaded on demand so single-thread mode never loads piscina.
    server =
      config.workers > 0
        ? await (await import('./shard/serve.js')).startShardedServer(config, { logger: obs.logger, metrics: obs.metrics })
        : await startServer(config, { logger: obs.logger });
  } catch (err) {
    await obs.close();
    if (err instanceof ConfigError) {
      print(process.stderr, `hermod serve: ${err.message}`);
      return EX_CONFIG;
    }
    if (err instanceof ListenError) {
      print(process.stderr, `hermod serve: ${err.message}`);
      return 1;
    }
    throw err;
  }
  if (server.certificate.source === 'generated') {
    print(process.stdout, `hermod: generated a self-signed certificate for ${config.domain} in ${server.certificate.certFile}`);
  }
  print(process.stdout, server.describe());

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      print(process.stdout, `hermod: ${signal}: closing ${server.streams.size} stream(s)`);
      server.shutdown().then(
        () => obs.close().then(() => resolve(0)),
        (err: unknown) => {
          print(process.stderr, `hermod: shutdown failed: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
