/**
 * A shard: one piscina worker thread running the XMPP side of its connections — its own WASM
 * core instance, C2S streams, router and SQLite connection — while the main thread owns the
 * sockets (Node 20 cannot move an accepted socket into a worker thread).
 *
 * piscina starts, replaces and destroys the thread; the shard itself is ONE long-lived task
 * (runShard below) that consumes its rings until shutdown, instead of a task per chunk (a
 * piscina task costs ~150 µs here, a batch through the ring about 1 µs per record).
 *
 * Loop: park on the doorbell (spin briefly, then Atomics.waitAsync, so timers and the control
 * port still run), drain the main thread's ring and every peer's ring, let the streams' per-turn
 * flushes run, commit the outgoing rings once. Rare control (peer restarted, peer died,
 * shutdown) comes over a MessagePort.
 */
import type { MessagePort } from 'node:worker_threads';
import type { HermodConfig } from '../config/schema.js';
import { StreamError, type StreamErrorCondition } from '../errors.js';
import { Jid } from '../jid.js';
import { createRouter, type Logger } from '../router/index.js';
import { upload, uploadSettings } from '../upload/index.js';
import { openStorage } from '../storage/index.js';
import { SaslProvider as SaslMechanisms } from '../stream/sasl/index.js';
import { keepUnacked } from '../router/unacked.js';
import { streamOptionsOf } from '../stream/options.js';
import { C2SStream, type C2SDeps, type StreamTransport } from '../stream/c2s.js';
import { AuthFailureTracker } from '../stream/limits.js';
import { HotStats, useStats } from '../observability/metrics.js';
import { type MeshRouter, ShardMesh } from './mirror.js';
import { ShardComponents } from './components.js';
import type { HermodRouter } from '../router/router.js';
import { DATA_ELEMENT, DATA_HEADER, HEADER_BYTES, Op, OPEN_CAN_STARTTLS, OPEN_SECURE, readHeader, reassembling, type RecordHeader, RingSender, WRITE_TEXT } from './protocol.js';
import { Doorbell, RingReader, RingWriter } from './ring.js';
import { CONNECTION_FIELDS, failure, smShardRouting, splitRecord } from './handoff.js';

/** The shared memory of one direction between this shard and a peer shard. */
export interface PeerLink {
  /** This shard writes, the peer reads. */
  toPeer: SharedArrayBuffer;
  /** The peer writes, this shard reads. */
  fromPeer: SharedArrayBuffer;
  /** The peer's doorbell (rung after publishing to it). */
  peerBell: SharedArrayBuffer;
}

export interface ShardInit {
  shard: number;
  shards: number;
  config: HermodConfig;
  /** main → shard records (Open, Data, Closed). */
  input: SharedArrayBuffer;
  /** shard → main records (Write, StartTls, End). */
  output: SharedArrayBuffer;
  /** This shard's doorbell: rung by the main thread and by every peer. */
  bell: SharedArrayBuffer;
  /** The main thread's doorbell. */
  mainBell: SharedArrayBuffer;
  /** Indexed by shard; null for this shard and for shards that are down. */
  peers: (PeerLink | null)[];
  /** Control channel (transferred with the task). */
  port: MessagePort;
  /** How long to spin before parking, in µs (see bench/core/shard-wake.ts). */
  spinMicros: number;
  /** This shard's metrics block (src/observability/metrics.ts), read by the main thread. */
  stats?: SharedArrayBuffer;
  /** One Int32 shared by every shard: roster caches tell each other about writes. */
  rosterEpoch?: SharedArrayBuffer;
  /** XEP-0114: one Int32 per configured component domain (componentDomains order), 1 while
   *  that component is connected to the main thread; absent without components. */
  components?: SharedArrayBuffer;
}

export type ShardControl =
  | { type: 'peer-up'; peer: number; link: PeerLink }
  | { type: 'peer-down'; peer: number; announce: boolean }
  | { type: 'shutdown' }
  /** Fault injection for the crash tests: throw from a callback, as a bug would. */
  | { type: 'crash' }
  /** The admin socket (src/admin/channel.ts) asks for this shard's bound sessions. */
  | { type: 'admin-sessions'; request: number }
  /** …or to close the sessions of a bare JID (all) or full JID (that one). */
  | { type: 'admin-kick'; request: number; jid: string; condition: StreamErrorCondition; text?: string };

/**
 * A bound session as the shard knows it, with the facts of its connection that the main thread
 * sent along when it was accepted: a detached XEP-0198 session's connection is gone from the
 * main thread's records, but its session still lists where and since when it came.
 */
export interface ShardSession {
  /** The connection id of the main thread's records. */
  conn: number;
  jid: string;
  sm: boolean;
  ip: string;
  /** When the connection was accepted (ms epoch). */
  since: number;
  /** The metrics transport kind (Transport in src/observability/metrics.ts). */
  kind: number;
  tls: boolean;
}

/** What the shard knows of a connection (its address is the transport's), from its Open or Adopt record. */
interface ShardConn {
  id: number;
  since: number;
  kind: number;
  transport: RingTransport;
}

/**
 * The connection of an Open or Adopt record: the fields the main thread puts first
 * (src/shard/handoff.ts connectionFields) and the flags of the record.
 */
function shardConn(id: number, out: RingSender, flags: number, [address, since, kind]: string[]): ShardConn {
  return { id, since: Number(since), kind: Number(kind), transport: new RingTransport(id, out, flags, address!) };
}

/** Answer to an admin-* control message, on the same port. */
export type ShardAdminReply =
  | { type: 'admin-reply'; request: number; sessions: ShardSession[] }
  | { type: 'admin-reply'; request: number; kicked: number };

export interface ShardResult {
  shard: number;
  connections: number;
}

/** The main thread's socket, seen from the shard. */
class RingTransport implements StreamTransport {
  private secure_: boolean;
  private canStartTls_: boolean;
  private ended = false;

  constructor(
    private readonly id: number,
    private readonly out: RingSender,
    flags: number,
    /** The client's address as the main thread accepted it (per-address limits, admin list). */
    readonly remoteAddress: string,
  ) {
    this.secure_ = (flags & OPEN_SECURE) !== 0;
    this.canStartTls_ = (flags & OPEN_CAN_STARTTLS) !== 0;
  }

  get secure(): boolean {
    return this.secure_;
  }

  get canStartTls(): boolean {
    return !this.secure_ && this.canStartTls_;
  }

  write(chunks: (string | Uint8Array)[]): void {
    if (this.ended) return;
    // One record per chunk: the main thread hands the socket the same chunks, and a WebSocket
    // transport frames each chunk as one message (RFC 7395 §3.3.3: one element per message).
    for (const chunk of chunks) this.out.send(Op.Write, this.id, chunk, typeof chunk === 'string' ? WRITE_TEXT : 0);
  }

  startTls(): void {
    if (this.ended || !this.canStartTls) return;
    // Same contract as SocketTransport: secure from now on; the main thread wraps the socket.
    this.secure_ = true;
    this.out.send(Op.StartTls, this.id);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.out.send(Op.End, this.id);
  }

  /** The stanza-rate shaper: the main thread pauses the socket (at most 65 s per record). */
  pauseFor(ms: number): void {
    if (!this.ended && ms > 0) this.out.send(Op.Pause, this.id, undefined, Math.min(0xffff, Math.ceil(ms)));
  }
}

function log(msg: string, err?: unknown): void {
  process.stderr.write(`hermod: ${msg}${err ? `: ${(err as Error).message ?? String(err)}` : ''}\n`);
}

/** Errors the router reports (it never throws); everything below warn is dropped. */
function stderrLog(shard: number): Logger {
  const write = (level: string) => (obj: object, msg?: string): void => {
    const err = (obj as { err?: unknown }).err;
    log(`shard ${shard}: ${level}: ${msg ?? ''}${err instanceof Error ? `: ${err.stack ?? err.message}` : ''}`);
  };
  const quiet = (): void => {};
  return { debug: quiet, info: quiet, warn: write('warn'), error: write('error') };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The piscina task: run shard `init.shard` until told to shut down. */
export default async function runShard(init: ShardInit): Promise<ShardResult> {
  const { config } = init;
  // Count into the block the main thread's /metrics endpoint sums (labelled with this shard).
  if (init.stats) useStats(HotStats.attach(init.stats));
  const storage = openStorage({
    dataDir: config.dataDir,
    offlineLimit: config.offline.maxPerUser,
    rosterEpoch: init.rosterEpoch ? new Int32Array(init.rosterEpoch) : undefined,
  });
  const core = await (await import('../core/parser.js')).loadCore();
  const router: MeshRouter = createRouter({
    domain: config.domain,
    storage,
    registration: config.registration,
    mam: config.mam,
    contact: config.contact,
    log: stderrLog(init.shard),
  });
  // XEP-0077 §3.2 removal in this shard: the MUC rooms live on the main thread (src/muc/main.ts)
  // and must drop the account's affiliations there too (users.delete changed the stored ones).
  (router as HermodRouter).hooks.on('account/removed', (ev: { account: string }) => {
    init.port.postMessage({ type: 'account-removed', account: ev.account });
  });
  // XEP-0363: slots are signed, so this shard issues them; the PUT goes to the main thread's HTTP service.
  const uploads = uploadSettings(config);
  if (uploads) upload(uploads).install(router as HermodRouter);
  const sasl = new SaslMechanisms({ users: storage.users, domain: config.domain, plainCacheSize: config.tls.plainLoginCache });

  const mainBell = new Doorbell(init.mainBell);
  // Every ring of this shard is published by commitAll (below), peers first.
  const autoCommit = (): void => commitAll();
  const out = new RingSender(new RingWriter(init.output, { doorbell: mainBell, autoCommit }));
  const input = new RingReader(init.input);
  const bell = new Doorbell(init.bell);

  const peerSenders: (RingSender | null)[] = [];
  const peerReaders: (RingReader | null)[] = [];
  const peerHandlers: ((record: Uint8Array) => void)[] = [];
  const attach = (k: number, link: PeerLink | null): void => {
    peerSenders[k] = link ? new RingSender(new RingWriter(link.toPeer, { doorbell: new Doorbell(link.peerBell), autoCommit })) : null;
    peerReaders[k] = link ? new RingReader(link.fromPeer) : null;
    peerHandlers[k] = reassembling((record) => {
      try {
        mesh.onPeerRecord(k, record);
      } catch (err) {
        log(`shard ${init.shard}: record from shard ${k} failed`, err);
      }
    });
  };
  for (let k = 0; k < init.shards; k++) attach(k, init.peers[k] ?? null);
  const mesh = new ShardMesh(init.shard, router, peerSenders, log);
  const components = init.components
    ? new ShardComponents(
        router as HermodRouter,
        core,
        config,
        init.components,
        out,
        { maxStanzaBytes: config.limits.maxStanzaBytes, maxDepth: config.limits.maxDepth, maxAttributes: config.limits.maxAttributes },
        (msg, err) => log(`shard ${init.shard}: ${msg}`, err),
      )
    : null;

  const streamOptions = streamOptionsOf(config);

  const streams = new Map<number, C2SStream>();
  const conns = new WeakMap<C2SStream, ShardConn>();
  const deps: C2SDeps = {
    core,
    router: mesh.router(),
    sasl,
    // XEP-0198: the sessions this shard can resume; a <resume/> for another shard's session
    // moves the connection there (src/shard/handoff.ts).
    smSessions: new Map(),
    smShards: smShardRouting(init.shard, init.shards, out, (stream) => conns.get(stream)?.id),
    onUnacked: (session, stanzas) => keepUnacked(storage, session.account.bare, stanzas),
  };
  // Per shard: an address spreading its guesses over shards meets each shard's back-off.
  const authFailures = new AuthFailureTracker(config.limits.authFailureDelay, config.limits.authFailureDelayMax);
  // One sweep a second for every stream's timeouts, as in single-thread mode.
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const stream of streams.values()) stream.checkTimeouts(now);
    authFailures.sweep();
  }, 1000);

  // One deps object for every stream (a spread copy per connection would get its own hidden
  // class, and the closures their contexts: most of an idle session's memory, docs/benchmarks.md).
  const streamDeps: C2SDeps = {
    ...deps,
    authThrottle: {
      failed: (stream) => {
        const conn = conns.get(stream);
        if (!conn) return 0;
        out.send(Op.AuthFailed, conn.id);
        return authFailures.failed(conn.transport.remoteAddress);
      },
      succeeded: (stream) => {
        const conn = conns.get(stream);
        if (!conn) return;
        authFailures.succeeded(conn.transport.remoteAddress);
        out.send(Op.Authenticated, conn.id);
      },
    },
    onClosed: (stream) => {
      const conn = conns.get(stream);
      if (!conn) return;
      const session = stream.resumedBy;
      if (!session) {
        if (streams.get(conn.id) === stream) streams.delete(conn.id);
        return;
      }
      // XEP-0198: this connection resumed `session`, which reads it from now on; the session's
      // old connection (ended, or replaced) feeds it nothing more.
      const old = conns.get(session);
      if (old && streams.get(old.id) === session) streams.delete(old.id);
      conns.set(session, conn);
      streams.set(conn.id, session);
    },
  };

  const header: RecordHeader = { op: Op.Open, arg: 0, id: 0 };
  const onMainRecord = (record: Uint8Array): void => {
    const h = readHeader(record, header);
    switch (h.op) {
      case Op.Open: {
        const id = h.id;
        const { fields } = splitRecord(record.subarray(HEADER_BYTES), CONNECTION_FIELDS + 1);
        const refused = fields[CONNECTION_FIELDS]!;
        const conn = shardConn(id, out, h.arg, fields);
        const stream = new C2SStream(conn.transport, streamOptions, streamDeps);
        conns.set(stream, conn);
        streams.set(id, stream);
        // Refused by the main thread's connection limits, with a reason the client can read.
        if (refused) stream.close(new StreamError('policy-violation', refused));
        return;
      }
      case Op.FromComponent:
        components?.fromMain(record.subarray(HEADER_BYTES));
        return;
      case Op.OutputFull:
        streams.get(h.id)?.close(new StreamError('resource-constraint', 'output queue limit exceeded: the client reads too slowly'));
        return;
      case Op.Data: {
        const stream = streams.get(h.id);
        // The core copies the chunk into WASM memory during feed(): the shared view suffices.
        if (h.arg === 0) stream?.feed(record.subarray(HEADER_BYTES));
        else if (h.arg === DATA_ELEMENT) stream?.feedElement(record.subarray(HEADER_BYTES));
        else if (h.arg === DATA_HEADER) stream?.feedHeader(record.subarray(HEADER_BYTES));
        else stream?.streamError(failure(record.subarray(HEADER_BYTES)));
        return;
      }
      case Op.Closed: {
        const stream = streams.get(h.id);
        stream?.transportClosed();
        // A detached session (XEP-0198) stays listed: the sweep ends it when nobody resumed it.
        if (stream && !stream.isDetached) streams.delete(h.id);
        return;
      }
      case Op.Adopt: {
        // XEP-0198 §5: a connection authenticated on another shard resumes a session of ours.
        const { fields, rest } = splitRecord(record.subarray(HEADER_BYTES), CONNECTION_FIELDS + 2);
        const [account, streamId] = fields.slice(CONNECTION_FIELDS) as [string, string];
        const conn = shardConn(h.id, out, h.arg, fields);
        const stream = C2SStream.continued(conn.transport, streamOptions, streamDeps, Jid.parse(account), streamId);
        conns.set(stream, conn);
        streams.set(h.id, stream);
        stream.feed(rest);
        return;
      }
      case Op.Fence:
        // Every Data record for the moved connection came before this one: the move is done.
        streams.get(h.id)?.handOffDone();
        out.send(Op.MoveDone, h.id);
        return;
      case Op.Fail:
        streams.get(h.id)?.close(failure(record.subarray(HEADER_BYTES)));
        return;
      default:
        log(`shard ${init.shard}: unknown record op ${h.op} from the main thread`);
    }
  };
  // A bug reached by one connection's bytes costs that connection, not the shard's others.
  const onMain = reassembling((record) => {
    try {
      onMainRecord(record);
    } catch (err) {
      const id = readHeader(record, { op: Op.Open, arg: 0, id: 0 }).id;
      log(`shard ${init.shard}: connection ${id} failed`, err);
      streams.get(id)?.close(new StreamError('internal-server-error'));
    }
  });

  let stopping = false;
  init.port.on('message', (msg: ShardControl) => {
    switch (msg.type) {
      case 'peer-up':
        attach(msg.peer, msg.link);
        mesh.peerUp(msg.peer, peerSenders[msg.peer]!);
        break;
      case 'peer-down':
        peerReaders[msg.peer] = null;
        mesh.peerDown(msg.peer, msg.announce);
        peerSenders[msg.peer] = null;
        break;
      case 'shutdown':
        stopping = true;
        break;
      case 'crash':
        setImmediate(() => {
          throw new Error(`shard ${init.shard}: injected crash`);
        });
        return;
      case 'admin-sessions': {
        const sessions: ShardSession[] = [];
        for (const [id, stream] of streams) {
          const conn = conns.get(stream);
          if (!stream.jid || !conn) continue;
          sessions.push({
            conn: id,
            jid: stream.jid.full,
            sm: stream.smEnabled,
            ip: conn.transport.remoteAddress,
            since: conn.since,
            kind: conn.kind,
            tls: conn.transport.secure,
          });
        }
        init.port.postMessage({ type: 'admin-reply', request: msg.request, sessions } satisfies ShardAdminReply);
        return;
      }
      case 'admin-kick': {
        // Checked by the admin channel already; a JID that does not parse matches nobody.
        const jid = Jid.tryParse(msg.jid);
        // passwd/deluser wrote from their own process before this kick: the caches look for it
        // now, so the client's reconnect meets the new password or the missing account.
        storage.checkExternalWrites?.();
        let kicked = 0;
        for (const stream of jid ? [...streams.values()] : []) {
          const bound = stream.jid;
          if (!bound || (jid!.resource === null ? bound.bare !== jid!.bare : bound.full !== jid!.full)) continue;
          stream.close(new StreamError(msg.condition, msg.text));
          kicked++;
        }
        init.port.postMessage({ type: 'admin-reply', request: msg.request, kicked } satisfies ShardAdminReply);
        // Wake the loop so the closing streams' last bytes are committed to the main thread.
        break;
      }
    }
    // Wake the loop if it is parked.
    bell.ring();
  });

  const hasWork = (): boolean => {
    if (stopping || input.hasData()) return true;
    for (let k = 0; k < peerReaders.length; k++) if (peerReaders[k]?.hasData()) return true;
    return false;
  };
  // Peers before the main thread: a client must not be able to react to an answer (a bind
  // result, say) before the other shards have been told what that answer changed.
  const commitAll = (): void => {
    for (const p of peerSenders) p?.commit();
    out.commit();
  };

  mesh.requestSync();
  commitAll();
  init.port.postMessage({ type: 'ready', shard: init.shard });

  try {
    while (!stopping) {
      await bell.park(hasWork, init.spinMicros);
      // Peers first: their binds and presence changes happened before anything a client sends
      // in reaction to them, so stanzas read in the same wake-up see the sessions they address.
      for (let k = 0; k < peerReaders.length; k++) peerReaders[k]?.drain(peerHandlers[k]!);
      input.drain(onMain);
      // The streams flush their queues with setImmediate: let this turn's flushes run, then
      // publish everything they wrote with one commit per ring.
      await nextTurn();
      commitAll();
    }
    // RFC 6120 §4.9.3.20: tell every client why its stream ends.
    const connections = streams.size;
    for (const stream of [...streams.values()]) stream.close(new StreamError('system-shutdown'));
    await nextTurn();
    commitAll();
    return { shard: init.shard, connections };
  } finally {
    clearInterval(sweeper);
    init.port.close();
    storage.close();
  }
}
