/**
 * The main thread's side of sharding: piscina owns the shard threads (start, replace after a
 * crash, destroy); this pool owns the shared memory between them, spreads connections over the
 * shards, and moves bytes between sockets and rings once per event-loop turn.
 *
 * Topology for N shards: main → shard k and shard k → main (one ring each), shard i → shard j
 * for every i ≠ j (direct, so cross-shard deliveries cost the main thread nothing), one doorbell
 * per shard and one for the main thread.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { HermodConfig } from '../config/schema.js';
import { STREAMS_NS, StreamError } from '../errors.js';
import { ConnectionCounter } from '../stream/limits.js';
import { AuthBan } from '../limits/auth-ban.js';
import { type HotStats, type Metrics, stats, Transport, TRANSPORTS } from '../observability/metrics.js';
import type { SessionInfo } from '../admin/channel.js';
import type { Jid } from '../jid.js';
import type { ByteSink, ClientTransport } from '../transport/socket.js';
import { WebSocketTransport } from '../transport/websocket.js';
import {
  componentRecord,
  DATA_ELEMENT,
  DATA_ERROR,
  DATA_HEADER,
  HEADER_BYTES,
  Op,
  OPEN_CAN_STARTTLS,
  OPEN_SECURE,
  readHeader,
  reassembling,
  type RecordHeader,
  RingSender,
  splitComponentRecord,
  WRITE_TEXT,
  HANDOFF_ERROR,
} from './protocol.js';
import { connectionFields, failureRecord, joinRecord } from './handoff.js';
import { createRing, Doorbell, RingReader, RingWriter } from './ring.js';
import type { PeerLink, ShardAdminReply, ShardControl, ShardInit, ShardResult } from './worker.js';

/**
 * The worker entry as compiled JavaScript. Under vitest this module runs from src/*.ts, which a
 * worker thread cannot load: use the build in dist/ (`npm install` / `npm run build` makes it).
 */
export function shardWorkerFile(): string {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return join(dirname(here), 'worker.js');
  const src = resolve(dirname(here), '..');
  const built = resolve(src, '../dist/src');
  const file = join(built, 'shard/worker.js');
  if (!existsSync(file)) throw new Error(`shard worker not built: ${file} is missing (run npm run build)`);
  // The worker runs the build while the test runs the sources: an older build of src/shard
  // would speak an older ring protocol than this module (the other layers are not checked:
  // their builds are as fresh as `npm run build` left them).
  const check = (dir: string): void => {
    for (const entry of readdirSync(join(src, dir), { withFileTypes: true })) {
      const rel = join(dir, entry.name);
      if (entry.isDirectory()) check(rel);
      else if (entry.name.endsWith('.ts')) {
        const js = join(built, rel.replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(src, rel)).mtimeMs) {
          throw new Error(`the build in dist/ is older than src/${rel} (run npm run build)`);
        }
      }
    }
  };
  check('shard');
  return file;
}

export interface ShardPoolOptions {
  shards: number;
  config: HermodConfig;
  /** Data bytes of each ring between the main thread and a shard (power of two); default 2 MiB. */
  ringBytes?: number;
  /**
   * Data bytes of each ring between two shards (power of two). The mesh has N·(N−1) of them, so
   * the default shrinks as N grows: 1 MiB up to 33 shards, then 32 MiB / (N−1), at least 64 KiB.
   */
  peerRingBytes?: number;
  /** Spin before parking in the shard threads, µs; default 20 (bench/core/shard-wake.ts). */
  spinMicros?: number;
  /** Told about shard crashes and restarts (the server logs them). */
  onEvent?: (event: ShardEvent) => void;
  /** XEP-0077 §3.2: a shard removed an account in-band (the main thread's MUC rooms drop its affiliations). */
  onAccountRemoved?: (account: string) => void;
  /** Where the shards count (one block per shard, kept across restarts). */
  metrics?: Metrics;
  /** XEP-0114 components connected to the main thread (src/shard/components.ts). */
  components?: PoolComponents;
}

export interface PoolComponents {
  /** Configured component domains, componentDomains() order. */
  readonly domains: string[];
  /** One Int32 per domain: 1 while connected (the shards read it). */
  readonly flags: SharedArrayBuffer;
  /** Bytes a shard routed to the component connected as `domain`. */
  deliver(domain: string, bytes: Uint8Array): void;
}

export type ShardEvent =
  | { type: 'crashed'; shard: number; error: unknown; connections: number }
  | { type: 'started'; shard: number; generation: number };

interface Connection {
  readonly id: number;
  /** The shard that owns it (changes once when a <resume/> moves it: src/shard/handoff.ts). */
  shard: number;
  readonly transport: ClientTransport;
  readonly address: string;
  /** Metrics transport kind (the main thread counts open connections). */
  readonly kind: number;
  /** Counted by the connection limits (released when the connection goes). */
  readonly admitted: boolean;
  /** When it was accepted (ms epoch), for the admin session list. */
  readonly since: number;
  /** Whether the shard wrote anything (then our stream header went out). */
  wrote: boolean;
  /** The shard was told the client reads too slowly. */
  overflowed: boolean;
  /** Moving to another shard: reads wait here until the old shard answered the fence. */
  moving: { from: number; held: { bytes: Uint8Array; arg: number }[]; heldBytes: number; closed: boolean } | null;
}

interface Shard {
  readonly index: number;
  generation: number;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  bell: Doorbell;
  sender: RingSender;
  reader: RingReader;
  /** onOutput behind this ring's fragment reassembly. */
  onOutput: (record: Uint8Array) => void;
  port: MessagePort;
  /** The worker's end of the control channel, transferred with the task. */
  remotePort: MessagePort;
  task: Promise<ShardResult> | null;
  ready: Promise<void>;
  up: boolean;
  connections: Set<Connection>;
}

const textDecoder = new TextDecoder();

/** Open/Adopt flags: what the shard's stream may assume about the channel. */
function openFlags(transport: ClientTransport): number {
  return (transport.secure ? OPEN_SECURE : 0) | (transport.canStartTls ? OPEN_CAN_STARTTLS : 0);
}

const NO_BYTES = new Uint8Array(0);

/** How long an admin question waits for a shard (one restarting after a crash may not answer). */
const ADMIN_TIMEOUT_MS = 2000;

/** Bytes queued for a shard behind its full input ring before its clients' reads pause. */
const MAX_QUEUED_INPUT = 8 << 20;
const INPUT_PAUSE_MS = 20;

export class ShardPool {
  readonly shards: number;
  private readonly piscina: Piscina;
  private readonly config: HermodConfig;
  private readonly ringBytes: number;
  private readonly peerRingBytes: number;
  private readonly spinMicros: number;
  private readonly onEvent: (event: ShardEvent) => void;
  private readonly onAccountRemoved: (account: string) => void;
  private readonly mainBell = new Doorbell();
  private readonly list: Shard[] = [];
  /** links[i][j]: shard i → shard j. */
  private readonly links: (SharedArrayBuffer | null)[][] = [];
  /**
   * Four Int32s: [0] bumped by every shard's roster cache on each roster write
   * (src/storage/roster-cache.ts), [1] by every shard's blocklist cache on each blocklist write
   * (src/storage/blocklist-cache.ts), [2] on each XEP-0441 archive preferences write
   * (src/storage/archive-prefs-cache.ts), [3] on each password change or account deletion
   * (src/storage/credential-cache.ts).
   */
  private readonly rosterEpoch = new SharedArrayBuffer(16);
  private readonly conns = new Map<number, Connection>();
  /** Admin questions sent to the shards and not answered yet, by request number. */
  private readonly adminWaiting = new Map<number, (reply: ShardAdminReply) => void>();
  private adminRequests = 0;
  private nextConnId = 1;
  private nextShard = 0;
  private stopping = false;
  private draining: Promise<void> | null = null;
  private readonly header: RecordHeader = { op: Op.Open, arg: 0, id: 0 };
  private readonly pendingWrites = new Map<Connection, (string | Uint8Array)[]>();
  private startFailed: ((err: unknown) => void) | null = null;
  private readonly stats: HotStats[];
  /** Crashes since a shard last came up: the restart delay doubles with each. */
  private crashesInARow = 0;
  private readonly limits: ConnectionCounter;
  private readonly authBan: AuthBan;
  private readonly sweeper: NodeJS.Timeout;
  private readonly components: PoolComponents | undefined;

  constructor(options: ShardPoolOptions) {
    this.components = options.components;
    if (!Number.isInteger(options.shards) || options.shards < 1) throw new RangeError('a shard pool needs at least one shard');
    this.shards = options.shards;
    this.config = options.config;
    this.ringBytes = options.ringBytes ?? 1 << 21;
    // A wake-up moves what arrived since the last one (tens of KB at 100k stanzas/s); a full ring
    // only queues the sender, so small peer rings cost latency under bursts, not correctness.
    const share = 2 ** Math.floor(Math.log2((32 << 20) / Math.max(1, this.shards - 1)));
    this.peerRingBytes = options.peerRingBytes ?? Math.min(1 << 20, Math.max(1 << 16, share));
    this.spinMicros = options.spinMicros ?? 20;
    this.onEvent = options.onEvent ?? (() => {});
    this.onAccountRemoved = options.onAccountRemoved ?? (() => {});
    this.stats = options.metrics ? Array.from({ length: this.shards }, () => options.metrics!.createShard()) : [];
    this.limits = new ConnectionCounter(this.config.limits.maxConnections, this.config.limits.connectionsPerIp);
    this.authBan = new AuthBan(this.config.limits.authBanFailures, this.config.limits.authBanTime);
    this.sweeper = setInterval(() => this.authBan.sweep(), 1000);
    this.sweeper.unref();
    this.piscina = new Piscina({
      filename: shardWorkerFile(),
      minThreads: this.shards,
      maxThreads: this.shards,
      // One never-ending task per thread: no queueing behind a busy shard, no idle reaping.
      concurrentTasksPerWorker: 1,
      idleTimeout: 2 ** 31 - 1,
      atomics: 'disabled',
    });
    for (let i = 0; i < this.shards; i++) this.links.push(new Array<SharedArrayBuffer | null>(this.shards).fill(null));
  }

  /** Start every shard; resolves when all of them have loaded their core and storage. */
  async start(): Promise<void> {
    for (let k = 0; k < this.shards; k++) this.list.push(this.createShard(k));
    const failed = new Promise<never>((_, reject) => (this.startFailed = reject));
    for (const shard of this.list) this.run(shard);
    this.draining = this.drainLoop();
    // A shard that cannot start (unusable database, missing core) fails the whole start
    // instead of being restarted forever.
    await Promise.race([Promise.all(this.list.map((s) => s.ready)), failed]);
    this.startFailed = null;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Connections per shard, for tests and statistics. */
  connectionsPerShard(): number[] {
    return this.list.map((s) => s.connections.size);
  }

  /** Hand an accepted connection to the shard with the fewest connections. */
  accept(transport: ClientTransport, preferShard?: number): number {
    const shard = this.pick(preferShard);
    const address = transport.remoteAddress ?? '';
    const limits = this.config.limits;
    // Anonymous peers read at the lower pre-authentication rate until SASL succeeds.
    transport.limitBytes(limits.preauthByteRate.rate, limits.preauthByteRate.burst);
    // The limits are process-wide, so they are counted here; the shard says why to the client.
    const refused = this.authBan.bannedUntil(address) > 0 ? 'too many failed authentications from your address' : this.limits.admit(address);
    const kind = transport instanceof WebSocketTransport ? Transport.websocket : transport.secure ? Transport.direct_tls : Transport.c2s;
    stats.connectionOpened(kind);
    const conn: Connection = { id: this.nextConnId++, shard: shard.index, transport, address, kind, admitted: refused === null, since: Date.now(), wrote: false, overflowed: false, moving: null };
    if (this.nextConnId > 0xffffffff) this.nextConnId = 1;
    this.conns.set(conn.id, conn);
    shard.connections.add(conn);
    shard.sender.send(Op.Open, conn.id, joinRecord([...connectionFields(conn), refused ?? ''], NO_BYTES), openFlags(transport));
    const sink: ByteSink = {
      feed: (chunk) => this.input(conn, chunk, 0),
      transportClosed: () => {
        if (this.conns.get(conn.id) !== conn) return;
        // Told after the bytes that came before it, once the move completes (moveDone).
        if (conn.moving) return void (conn.moving.closed = true);
        this.forget(conn);
        this.list[conn.shard]!.sender.send(Op.Closed, conn.id);
      },
    };
    if (kind === Transport.websocket) {
      // RFC 7395 framing: each message reaches the shard's stream as what it is (an element to
      // be the message's only one, a header where one may start, or the stream error of a
      // broken frame), in order with the rest.
      sink.feedElement = (chunk) => this.input(conn, chunk, DATA_ELEMENT);
      sink.feedHeader = (header) => this.input(conn, header, DATA_HEADER);
      sink.streamError = (error) => this.input(conn, Buffer.from(failureRecord(error)), DATA_ERROR);
    }
    transport.attach(sink);
    return conn.id;
  }

  /** Client input for the connection's shard (`arg`: Data's flags), held while it moves. */
  private input(conn: Connection, chunk: Uint8Array, arg: number): void {
    if (this.conns.get(conn.id) !== conn) return;
    if (conn.moving) {
      // Copied: the transport reuses its buffer. Bounded like a full ring: a client that
      // streams while the old shard is slow to answer the fence waits in the kernel.
      conn.moving.held.push({ bytes: Uint8Array.from(chunk), arg });
      conn.moving.heldBytes += chunk.length;
      if (conn.moving.heldBytes > MAX_QUEUED_INPUT) conn.transport.pauseFor?.(INPUT_PAUSE_MS);
      return;
    }
    const sender = this.list[conn.shard]!.sender;
    sender.send(Op.Data, conn.id, chunk, arg);
    // The shard falls behind: stop reading this client for a moment instead of queueing
    // without bound here (its bytes wait in the kernel's socket buffer meanwhile).
    if (sender.queuedBytes > MAX_QUEUED_INPUT) conn.transport.pauseFor?.(INPUT_PAUSE_MS);
  }

  /**
   * The bound sessions of every shard that is up, for the admin socket (`hermod sessions`): each
   * shard lists its streams with the facts of their connections (sent along in Open and Adopt,
   * so a detached XEP-0198 session keeps its address and start). A shard that does not answer
   * within `timeoutMs` (restarting after a crash) is left out of the list.
   */
  async sessions(timeoutMs = ADMIN_TIMEOUT_MS): Promise<SessionInfo[]> {
    const replies = await this.askShards((request) => ({ type: 'admin-sessions', request }), timeoutMs);
    const list: SessionInfo[] = [];
    for (const [k, reply] of replies) {
      if (!('sessions' in reply)) continue;
      for (const s of reply.sessions) {
        list.push({
          jid: s.jid,
          ip: s.ip,
          since: new Date(s.since).toISOString(),
          transport: (TRANSPORTS[s.kind] ?? 'c2s') as SessionInfo['transport'],
          tls: s.tls,
          sm: s.sm,
          shard: String(k),
        });
      }
    }
    return list;
  }

  /** Close the sessions of a bare JID (all) or full JID (that one) on every shard; how many. */
  async kick(jid: Jid, error: StreamError, timeoutMs = ADMIN_TIMEOUT_MS): Promise<number> {
    const replies = await this.askShards(
      (request) => ({ type: 'admin-kick', request, jid: jid.full, condition: error.condition, text: error.text }),
      timeoutMs,
    );
    let kicked = 0;
    for (const reply of replies.values()) if ('kicked' in reply) kicked += reply.kicked;
    return kicked;
  }

  /** One control message to every shard that is up; their answers by shard index. */
  private async askShards(make: (request: number) => ShardControl, timeoutMs: number): Promise<Map<number, ShardAdminReply>> {
    const replies = new Map<number, ShardAdminReply>();
    await Promise.all(
      this.list
        .filter((shard) => shard.up)
        .map(
          (shard) =>
            new Promise<void>((done) => {
              const request = ++this.adminRequests;
              const finish = (reply?: ShardAdminReply): void => {
                clearTimeout(timer);
                this.adminWaiting.delete(request);
                if (reply) replies.set(shard.index, reply);
                done();
              };
              const timer = setTimeout(finish, timeoutMs);
              this.adminWaiting.set(request, finish);
              shard.port.postMessage(make(request));
            }),
        ),
    );
    return replies;
  }

  /**
   * XEP-0114: route a component's stanza ('from' checked by its stream) through a shard. One
   * shard per component domain while it is up, so a component's stanzas keep their order.
   */
  fromComponent(from: Jid, stanza: Uint8Array): void {
    const slot = Math.max(0, this.components?.domains.indexOf(from.domain) ?? 0);
    const shard = this.pick(slot % this.shards);
    shard.sender.send(Op.FromComponent, 0, componentRecord(from.full, stanza));
  }

  /** Fault injection for tests: make shard k's thread throw from a callback. */
  crash(k: number): void {
    this.list[k]?.port.postMessage({ type: 'crash' } satisfies ShardControl);
  }

  /** Wait until shard k is up again (after a crash). */
  async whenUp(k: number): Promise<void> {
    for (;;) {
      const shard = this.list[k]!;
      await shard.ready;
      if (this.list[k] === shard && shard.up) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Stop: every shard closes its streams with <system-shutdown/> (RFC 6120 §4.9.3.20) and
   * returns; the bytes reach the sockets; then the threads are destroyed.
   */
  async close(graceMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.sweeper);
    for (const shard of this.list) shard.port.postMessage({ type: 'shutdown' } satisfies ShardControl);
    const tasks = this.list.map((s) => s.task?.catch(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(tasks), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    // Last records (the shutdown errors) are in the output rings: deliver them.
    this.drainOutputs();
    for (const conn of [...this.conns.values()]) conn.transport.end();
    this.mainBell.ring();
    await this.piscina.destroy();
    await this.draining;
  }

  private pick(prefer?: number): Shard {
    if (prefer !== undefined && this.list[prefer]?.up) return this.list[prefer]!;
    let best: Shard | null = null;
    for (let i = 0; i < this.list.length; i++) {
      const s = this.list[(this.nextShard + i) % this.list.length]!;
      if (!s.up) continue;
      if (!best || s.connections.size < best.connections.size) best = s;
    }
    this.nextShard = (this.nextShard + 1) % this.list.length;
    // Every shard down at once (all restarting): queue on the first; its ring keeps the records.
    return best ?? this.list[0]!;
  }

  private createShard(k: number, generation = 0): Shard {
    const { port1, port2 } = new MessageChannel();
    const input = createRing(this.ringBytes);
    const output = createRing(this.ringBytes);
    const bell = new Doorbell();
    let markReady!: () => void;
    const ready = new Promise<void>((r) => (markReady = r));
    port1.on('message', (msg: { type: string } | ShardAdminReply) => {
      if (msg.type === 'ready') {
        shard.up = true;
        this.crashesInARow = 0;
        markReady();
      } else if (msg.type === 'admin-reply') {
        this.adminWaiting.get((msg as ShardAdminReply).request)?.(msg as ShardAdminReply);
      } else if (msg.type === 'account-removed') {
        this.onAccountRemoved((msg as { type: string; account: string }).account);
      }
    });
    // The control port must not keep the process alive on its own.
    port1.unref();
    const shard: Shard = {
      index: k,
      generation,
      input,
      output,
      bell,
      sender: new RingSender(new RingWriter(input, { doorbell: bell })),
      reader: new RingReader(output),
      onOutput: reassembling(this.onOutput),
      port: port1,
      remotePort: port2,
      task: null,
      ready,
      up: false,
      connections: new Set(),
    };
    // Fresh rings between k and every peer (a restarted shard's old rings hold garbage).
    for (let j = 0; j < this.shards; j++) {
      if (j === k) continue;
      this.links[k]![j] = createRing(this.peerRingBytes);
      this.links[j]![k] = createRing(this.peerRingBytes);
    }
    return shard;
  }

  private linkFor(from: number, to: number): PeerLink {
    return { toPeer: this.links[from]![to]!, fromPeer: this.links[to]![from]!, peerBell: this.list[to]!.bell.sab };
  }

  private run(shard: Shard): void {
    const k = shard.index;
    const port = shard.remotePort;
    const peers: (PeerLink | null)[] = [];
    for (let j = 0; j < this.shards; j++) peers.push(j === k || !this.list[j] ? null : this.linkFor(k, j));
    const init: ShardInit = {
      shard: k,
      shards: this.shards,
      config: this.config,
      input: shard.input,
      output: shard.output,
      bell: shard.bell.sab,
      mainBell: this.mainBell.sab,
      peers,
      port,
      spinMicros: this.spinMicros,
      stats: this.stats[k]?.buffer,
      rosterEpoch: this.rosterEpoch,
      components: this.components?.flags,
    };
    shard.task = this.piscina.run(init, { transferList: [port] }) as Promise<ShardResult>;
    shard.task.then(
      () => {
        if (!this.stopping) this.onCrash(shard, new Error(`shard ${k} returned unexpectedly`));
      },
      (err: unknown) => {
        if (!this.stopping) this.onCrash(shard, err);
      },
    );
    void shard.ready.then(() => this.onEvent({ type: 'started', shard: k, generation: shard.generation }));
  }

  /**
   * A shard thread died. Its clients get <internal-server-error/> (RFC 6120 §4.9.3.8) and are
   * disconnected; the other shards forget its sessions (one of them announces them unavailable);
   * a new thread takes its place with fresh rings.
   */
  private onCrash(shard: Shard, error: unknown): void {
    if (this.list[shard.index] !== shard) return;
    if (this.startFailed) {
      this.startFailed(error);
      return;
    }
    shard.up = false;
    shard.sender.close();
    const k = shard.index;
    // What the dead shard had already published still belongs to its clients.
    this.drainShard(shard);
    this.flushWrites();
    const victims = [...shard.connections];
    for (const conn of victims) {
      this.forget(conn);
      const err = new StreamError('internal-server-error', 'the shard serving this stream failed');
      const head = conn.wrote
        ? ''
        : `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS_NS}' from='${this.config.domain}' version='1.0'>`;
      conn.transport.write([`${head}${err.toXml()}</stream:stream>`]);
      conn.transport.end();
    }
    // A connection it was handing over (XEP-0198 resumption) never gets its fence answered, and
    // what the dead shard had read for it is lost: the new owner ends that stream cleanly.
    for (const conn of this.conns.values()) {
      if (conn.moving?.from !== k) continue;
      this.list[conn.shard]!.sender.send(Op.Fail, conn.id, 'internal-server-error\nthe shard serving this stream failed');
      this.moveDone(conn);
    }
    // Its connections and sessions are gone; what it counted so far still counts.
    this.stats[k]?.resetGauges();
    this.onEvent({ type: 'crashed', shard: k, error, connections: victims.length });
    const survivors = this.list.filter((s) => s !== shard && s.up);
    survivors.forEach((s, i) => s.port.postMessage({ type: 'peer-down', peer: k, announce: i === 0 } satisfies ShardControl));
    shard.port.close();
    const next = this.createShard(k, shard.generation + 1);
    this.list[k] = next;
    for (const s of this.list) {
      if (s === next) continue;
      s.port.postMessage({ type: 'peer-up', peer: k, link: this.linkFor(s.index, k) } satisfies ShardControl);
    }
    // A shard that dies again and again (a bug hit by every start) is restarted ever more
    // slowly, so the process stays responsive and the log readable.
    const delay = this.crashesInARow === 0 ? 0 : Math.min(5000, 100 * 2 ** (this.crashesInARow - 1));
    this.crashesInARow++;
    if (delay === 0) this.run(next);
    else setTimeout(() => !this.stopping && this.run(next), delay).unref();
  }

  private forget(conn: Connection): void {
    if (this.conns.get(conn.id) !== conn) return;
    this.conns.delete(conn.id);
    this.list[conn.shard]?.connections.delete(conn);
    stats.connectionClosed(conn.kind);
    if (conn.admitted) this.limits.release(conn.address);
  }

  private readonly onOutput = (record: Uint8Array): void => {
    const h = readHeader(record, this.header);
    if (h.op === Op.ToComponent) {
      const { head, bytes } = splitComponentRecord(record.subarray(HEADER_BYTES));
      // Shared memory is reused once the drain ends: the component's socket gets a copy.
      this.components?.deliver(head, Buffer.from(bytes));
      return;
    }
    const conn = this.conns.get(h.id);
    if (!conn) return;
    switch (h.op) {
      case Op.Write: {
        conn.wrote = true;
        // Shared memory is reused as soon as the drain ends: the socket gets its own copy. A
        // WebSocket gets the stream layer's strings back as strings, to cut per element.
        const body = record.subarray(HEADER_BYTES);
        const bytes = h.arg & WRITE_TEXT && conn.kind === Transport.websocket ? textDecoder.decode(body) : Buffer.from(body);
        const list = this.pendingWrites.get(conn);
        if (list) list.push(bytes);
        else this.pendingWrites.set(conn, [bytes]);
        return;
      }
      case Op.StartTls:
        this.flushWrite(conn);
        conn.transport.startTls();
        return;
      case Op.End:
        this.flushWrite(conn);
        this.forget(conn);
        conn.transport.end();
        return;
      case Op.Pause:
        conn.transport.pauseFor?.(h.arg);
        return;
      case Op.AuthFailed:
        this.authBan.failed(conn.address);
        return;
      case Op.Authenticated:
        conn.transport.limitBytes(this.config.limits.byteRate.rate, this.config.limits.byteRate.burst);
        return;
      case Op.Move:
        return this.move(conn, h.arg, record.subarray(HEADER_BYTES));
      case Op.MoveMore:
        // Read by the old shard before the fence: ahead of everything held here.
        if (conn.moving) this.list[conn.shard]!.sender.send(h.arg & HANDOFF_ERROR ? Op.Fail : Op.Data, conn.id, record.subarray(HEADER_BYTES));
        return;
      case Op.MoveDone:
        return this.moveDone(conn);
    }
  };

  /**
   * XEP-0198 §5 across shards (src/shard/handoff.ts): the connection's <resume/> names a session
   * of shard `to`. That shard takes the connection from here on; the old one is fenced, and the
   * client's reads wait until it has sent back what it had been given but not handled.
   */
  private move(conn: Connection, to: number, body: Uint8Array): void {
    const target = this.list[to];
    if (conn.moving || !target || to === conn.shard) {
      // A second <resume/> pipelined before the first move completed: the sending shard has
      // let go of the stream already, so the error is written from here (RFC 6120 §4.9.3.13).
      const error = new StreamError('policy-violation', 'another <resume/> before the first was answered');
      this.flushWrite(conn);
      conn.transport.write([`${error.toXml()}</stream:stream>`]);
      conn.transport.end();
      this.forget(conn);
      this.list[conn.shard]!.sender.send(Op.Closed, conn.id);
      return;
    }
    const from = this.list[conn.shard]!;
    from.connections.delete(conn);
    target.connections.add(conn);
    conn.shard = to;
    conn.moving = { from: from.index, held: [], heldBytes: 0, closed: false };
    target.sender.send(Op.Adopt, conn.id, joinRecord(connectionFields(conn), body), openFlags(conn.transport));
    from.sender.send(Op.Fence, conn.id);
  }

  /** The old shard has sent everything: the held reads (and a close) go to the new owner. */
  private moveDone(conn: Connection): void {
    const moving = conn.moving;
    if (!moving) return;
    conn.moving = null;
    const sender = this.list[conn.shard]!.sender;
    for (const chunk of moving.held) sender.send(Op.Data, conn.id, chunk.bytes, chunk.arg);
    if (moving.closed) {
      this.forget(conn);
      sender.send(Op.Closed, conn.id);
    }
  }

  private flushWrite(conn: Connection): void {
    const list = this.pendingWrites.get(conn);
    if (!list) return;
    this.pendingWrites.delete(conn);
    this.write(conn, list);
  }

  private flushWrites(): void {
    for (const [conn, list] of this.pendingWrites) this.write(conn, list);
    this.pendingWrites.clear();
  }

  private write(conn: Connection, chunks: (string | Uint8Array)[]): void {
    conn.transport.write(chunks);
    const limit = this.config.limits.outputQueueBytes;
    // Only the main thread sees the socket's backlog: it tells the shard to end the stream.
    if (limit > 0 && !conn.overflowed && (conn.transport.pendingBytes ?? 0) > limit && this.conns.get(conn.id) === conn) {
      conn.overflowed = true;
      this.list[conn.shard]!.sender.send(Op.OutputFull, conn.id);
    }
  }

  private drainShard(shard: Shard): void {
    shard.reader.drain(shard.onOutput);
  }

  private drainOutputs(): void {
    for (const shard of this.list) this.drainShard(shard);
    this.flushWrites();
  }

  private readonly hasOutput = (): boolean => {
    for (const s of this.list) if (s.reader.hasData()) return true;
    return this.stopping;
  };

  /**
   * The main thread never spins (its sockets need it): it sleeps in Atomics.waitAsync on its
   * doorbell, then moves every shard's output to the sockets, gathered per connection.
   */
  private async drainLoop(): Promise<void> {
    while (!this.stopping) {
      await this.mainBell.park(this.hasOutput, 0);
      this.drainOutputs();
    }
  }
}

