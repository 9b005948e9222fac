/**
 * `hermod serve --workers N` (N > 0): the main thread keeps the listeners, the sockets and TLS;
 * N shard threads (src/shard/worker.ts) run the XMPP side of the connections spread over them.
 * With `--workers 0` src/server.ts runs everything on the main thread instead.
 *
 * The admin socket (`hermod sessions`, `kick`, and the kicks of `passwd`/`deluser`) is served
 * here and asks every shard. XEP-0114 components are not: the configuration check refuses
 * `components` with `workers` > 0 (src/config/file.ts), and startShardedServer does too.
 */
import { AdminSocketError, listenAdmin, type AdminChannel } from '../admin/channel.js';
import { COMPONENTS_NEED_WORKERS_0 } from '../config/file.js';
import type { HermodConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { openStorage } from '../storage/index.js';
import { listenClients, type ClientListeners, type Listener } from '../transport/listen.js';
import type { ClientTransport } from '../transport/socket.js';
import { listenWebSocketClients } from '../transport/websocket.js';
import { loadServerTls, type Certificate } from '../transport/tls.js';
import { ShardPool, type ShardEvent } from './pool.js';

export interface ShardedServer {
  readonly config: HermodConfig;
  readonly c2s: Listener;
  readonly directTls: Listener | null;
  readonly websocket: Listener | null;
  readonly certificate: Certificate;
  readonly pool: ShardPool;
  /** <data>/hermod.sock (docs/operations.md), unless ShardedOptions.adminChannel is false. */
  readonly admin: AdminChannel | null;
  /** Open client connections, over all shards. */
  readonly streams: { readonly size: number };
  describe(): string;
  shutdown(): Promise<void>;
}

export interface ShardedOptions {
  onEvent?: (event: ShardEvent) => void;
  spinMicros?: number;
  /** Where shard crashes are reported (stderr otherwise). */
  logger?: Logger;
  /** The /metrics registry: every shard counts into its own block of it. */
  metrics?: Metrics;
  /** Ring sizes (ShardPoolOptions); tests make them tiny to exercise fragments and queueing. */
  ringBytes?: number;
  peerRingBytes?: number;
  /** Listen on <data>/hermod.sock for `hermod sessions`/`kick` (default true). */
  adminChannel?: boolean;
}


/** How long shutdown waits for the shards to say <system-shutdown/> before cutting sockets. */
const SHUTDOWN_GRACE_MS = 3000;

export async function startShardedServer(config: HermodConfig, options: ShardedOptions = {}): Promise<ShardedServer> {
  // Before anything is opened: a configuration built in code skips the file check.
  if (Object.keys(config.components).length > 0) throw new ConfigError(COMPONENTS_NEED_WORKERS_0, 'components');
  // Open (creating or migrating) the database once here, before any shard does and before a
  // port is taken: an unusable data directory is reported like in single-thread mode, and the
  // shards never race to create the schema.
  openStorage({ dataDir: config.dataDir, offlineLimit: config.offline.maxPerUser }).close();
  const { certificate, secureContext } = await loadServerTls(config);
  const onEvent =
    options.onEvent ??
    ((e: ShardEvent) => {
      if (e.type !== 'crashed') return;
      const msg = `shard ${e.shard} failed; closed its ${e.connections} connection(s), restarting it`;
      if (options.logger) options.logger.error({ err: e.error, shard: e.shard, connections: e.connections }, msg);
      else process.stderr.write(`hermod: ${msg}: ${(e.error as Error)?.message ?? String(e.error)}\n`);
    });
  const pool = new ShardPool({
    shards: config.workers,
    config,
    onEvent,
    spinMicros: options.spinMicros,
    metrics: options.metrics,
    ringBytes: options.ringBytes,
    peerRingBytes: options.peerRingBytes,
  });
  try {
    await pool.start();
  } catch (err) {
    await pool.close(0);
    throw err;
  }

  let stopping = false;
  const accept = (transport: ClientTransport): void => {
    if (stopping) transport.destroy();
    else pool.accept(transport);
  };
  let listeners: ClientListeners;
  try {
    listeners = await listenClients(config.listen, secureContext, accept);
  } catch (err) {
    await pool.close(0);
    throw err;
  }
  const { c2s, directTls, sockets } = listeners;
  let websocket: Listener | null;
  try {
    websocket = await listenWebSocketClients(
      { ...config.listen.websocket, backlog: config.listen.c2s.backlog, maxMessageBytes: config.limits.maxStanzaBytes },
      sockets,
      accept,
    );
  } catch (err) {
    await listeners.close();
    await pool.close(0);
    throw err;
  }
  let admin: AdminChannel | null = null;
  if (options.adminChannel !== false) {
    try {
      admin = await listenAdmin(config.dataDir, { sessions: () => pool.sessions(), kick: (jid, error) => pool.kick(jid, error) });
    } catch (err) {
      if (!(err instanceof AdminSocketError)) {
        // Another server on this data directory is fatal (as with --workers 0).
        await Promise.all([listeners.close(), websocket?.close()]);
        await pool.close(0);
        throw err;
      }
      // A socket we cannot create is not: the server runs without hermod sessions/kick.
      const msg = 'admin socket unavailable: hermod sessions/kick will not reach this server';
      if (options.logger) options.logger.warn({ err: err.message }, msg);
      else process.stderr.write(`hermod: ${msg}: ${err.message}\n`);
    }
  }

  let stopped: Promise<void> | null = null;
  return {
    config,
    c2s,
    directTls,
    websocket,
    certificate,
    pool,
    admin,
    get streams() {
      return { size: pool.connectionCount };
    },
    describe() {
      const where = [`${c2s.host}:${c2s.port} (c2s, STARTTLS${config.tls.policy === 'required' ? ' required' : ' optional'})`];
      if (directTls) where.push(`${directTls.host}:${directTls.port} (direct TLS)`);
      if (websocket) where.push(`ws://${websocket.host}:${websocket.port}${config.listen.websocket.path} (WebSocket)`);
      return `hermod listening on ${where.join(', ')}, domain ${config.domain}, data ${config.dataDir}, ${config.workers} shard thread(s)`;
    },
    shutdown() {
      stopped ??= (async () => {
        stopping = true;
        const closing = Promise.all([listeners.close(), websocket?.close(), admin?.close()]);
        await pool.close(SHUTDOWN_GRACE_MS);
        for (const socket of sockets) socket.destroy();
        await closing;
      })();
      return stopped;
    },
  };
}
