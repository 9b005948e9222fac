/**
 * `hermod serve --workers N` (N > 0): the main thread keeps the listeners, the sockets and TLS;
 * N shard threads (src/shard/worker.ts) run the XMPP side of the connections spread over them.
 * With `--workers 0` src/server.ts runs everything on the main thread instead.
 *
 * The admin socket (`hermod sessions`, `kick`, and the kicks of `passwd`/`deluser`) is served
 * here and asks every shard. XEP-0114 component connections are sockets too and stay here; their
 * stanzas are routed by the shards (src/shard/components.ts).
 */
import { AdminSocketError, listenAdmin, type AdminChannel } from '../admin/channel.js';
import type { HermodConfig } from '../config/schema.js';
import { startComponents, type ComponentListener } from '../component/service.js';
import { describeServer } from '../describe.js';
import { StreamError } from '../errors.js';
import type { Jid } from '../jid.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { openStorage } from '../storage/index.js';
import { type Listener, warnIfBacklogCapped } from '../transport/listen.js';
import type { ClientTransport } from '../transport/socket.js';
import { type AllClientListeners, listenAllClients } from '../transport/websocket.js';
import { loadServerTls, type Certificate } from '../transport/tls.js';
import { MucOnMain } from '../muc/main.js';
import { mucSettingsOf } from '../muc/service.js';
import { componentDomains } from './components.js';
import { ShardPool, type PoolComponents, type ShardEvent } from './pool.js';
import { checkUploadConfig, startUpload, uploadSettings, type UploadService } from '../upload/index.js';

export interface ShardedServer {
  readonly config: HermodConfig;
  readonly c2s: Listener;
  readonly directTls: Listener | null;
  readonly websocket: Listener | null;
  readonly certificate: Certificate;
  readonly pool: ShardPool;
  /** <data>/hermod.sock (docs/operations.md), unless ShardedOptions.adminChannel is false. */
  readonly admin: AdminChannel | null;
  /** XEP-0114 listener, when `components` names at least one. */
  readonly components: ComponentListener | null;
  /** XEP-0363 HTTP service (on this thread; the shards issue the slots), when upload.enabled. */
  readonly upload: UploadService | null;
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
  // Open (creating or migrating) the database once here, before any shard does and before a
  // port is taken: an unusable data directory is reported like in single-thread mode, and the
  // shards never race to create the schema.
  openStorage({ dataDir: config.dataDir, offlineLimit: config.offline.maxPerUser }).close();
  checkUploadConfig(config);
  const { certificate, secureContext } = await loadServerTls(config);
  // XEP-0363: the HTTP service runs on this thread; the shards sign slots for the URL it is bound
  // to (port 0 resolved), with the secret it created in the data directory.
  const upload = await startUpload(config, uploadSettings(config), certificate, options.logger);
  const shardConfig = upload ? { ...config, upload: { ...config.upload, publicUrl: upload.url } } : config;
  const onEvent =
    options.onEvent ??
    ((e: ShardEvent) => {
      if (e.type !== 'crashed') return;
      const msg = `shard ${e.shard} failed; closed its ${e.connections} connection(s), restarting it`;
      if (options.logger) options.logger.error({ err: e.error, shard: e.shard, connections: e.connections }, msg);
      else process.stderr.write(`hermod: ${msg}: ${(e.error as Error)?.message ?? String(e.error)}\n`);
    });
  // XEP-0114: the shards read one connected flag per component domain; what they route to a
  // component comes back here, to its socket.
  const domains = componentDomains(config);
  let components: ComponentListener | null = null;
  // XEP-0045: the rooms live here, reached like a component that is always connected (src/muc/main.ts).
  const mucSettings = mucSettingsOf(config);
  let mucMain: MucOnMain | null = null;
  const poolComponents: PoolComponents | undefined =
    domains.length > 0
      ? {
          domains,
          flags: new SharedArrayBuffer(4 * domains.length),
          deliver: (domain, bytes) => void (domain === mucSettings?.domain ? mucMain?.deliver(bytes) : components?.service.deliver(domain, bytes)),
        }
      : undefined;
  // The rooms' tables on this thread: muc_room, and the archive for XEP-0313 room archives (its
  // appends batched through a writer thread of its own, as on the shards).
  const mucStorage = mucSettings ? openStorage({ dataDir: config.dataDir, offlineLimit: config.offline.maxPerUser, archiveThread: mucSettings.archive === true }) : null;
  const pool = new ShardPool({
    components: poolComponents,
    shards: config.workers,
    config: shardConfig,
    onEvent,
    onAccountRemoved: (account) => mucMain?.service.accountRemoved(account),
    spinMicros: options.spinMicros,
    metrics: options.metrics,
    ringBytes: options.ringBytes,
    peerRingBytes: options.peerRingBytes,
  });
  if (mucSettings && poolComponents) {
    const encoder = new TextEncoder();
    mucMain = new MucOnMain(
      mucSettings,
      mucStorage?.muc ?? null,
      (from, xml) => pool.fromComponent(from, encoder.encode(xml)),
      options.logger ?? null,
      mucStorage?.mam ?? null,
      mucStorage?.blocklist ?? null,
    );
    Atomics.store(new Int32Array(poolComponents.flags), domains.indexOf(mucSettings.domain), 1);
  }
  try {
    await pool.start();
  } catch (err) {
    await pool.close(0);
    await upload?.close();
    mucStorage?.close();
    throw err;
  }

  let stopping = false;
  const accept = (transport: ClientTransport): void => {
    if (stopping) transport.destroy();
    else pool.accept(transport);
  };
  let listeners: AllClientListeners;
  try {
    listeners = await listenAllClients(config.listen, config.limits.maxStanzaBytes, secureContext, accept);
  } catch (err) {
    await pool.close(0);
    await upload?.close();
    mucStorage?.close();
    throw err;
  }
  const { c2s, directTls, websocket, sockets } = listeners;
  if (options.logger) warnIfBacklogCapped(c2s, config.listen.c2s.backlog, (facts, msg) => options.logger!.warn(facts, msg));
  if (poolComponents) {
    const connected = new Int32Array(poolComponents.flags);
    try {
      // The component streams parse on this thread: it needs a core of its own.
      const core = (await import('../core/parser.js')).loadCore();
      components = await startComponents(
        config,
        { domain: config.domain, addItem: () => {}, routeFrom: (from, view) => pool.fromComponent(from, view.raw()) },
        core,
        (domain, up) => Atomics.store(connected, domains.indexOf(domain), up ? 1 : 0),
      );
    } catch (err) {
      await listeners.close();
      await pool.close(0);
      await upload?.close();
      throw err;
    }
  }
  let admin: AdminChannel | null = null;
  if (options.adminChannel !== false) {
    try {
      // hermod deluser deleted the account from its own process: the rooms on this thread drop its
      // affiliations too (the stored ones went with users.delete), or their next change writes them back.
      const kick = (jid: Jid, error: StreamError, deleted?: boolean) => {
        // Only on deluser's word, as with --workers 0 (src/server.ts).
        if (deleted && mucMain && mucStorage && jid.resource === null && jid.domain === config.domain) {
          mucStorage.checkExternalWrites?.();
          if (!mucStorage.users.exists(jid.bare)) mucMain.service.accountRemoved(jid.bare);
        }
        return pool.kick(jid, error);
      };
      admin = await listenAdmin(config.dataDir, { sessions: () => pool.sessions(), kick });
    } catch (err) {
      if (!(err instanceof AdminSocketError)) {
        // Another server on this data directory is fatal (as with --workers 0).
        await Promise.all([listeners.close(), components?.close(new StreamError('system-shutdown'))]);
        await pool.close(0);
        await upload?.close();
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
    components,
    upload,
    get streams() {
      return { size: pool.connectionCount };
    },
    describe: () => `${describeServer(config, { c2s, directTls, websocket, components, upload })}, ${config.workers} shard thread(s)`,
    shutdown() {
      stopped ??= (async () => {
        stopping = true;
        const closing = Promise.all([
          listeners.close(),
          admin?.close(),
          components?.close(new StreamError('system-shutdown')),
          upload?.close(),
        ]);
        await pool.close(SHUTDOWN_GRACE_MS);
        for (const socket of sockets) socket.destroy();
        await closing;
        mucStorage?.close();
      })();
      return stopped;
    },
  };
}
