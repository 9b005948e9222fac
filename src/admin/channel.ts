/**
 * The admin channel of a running server: a Unix domain socket at `<data>/hermod.sock`, mode
 * 0600 inside the 0700 data directory, so only the account that runs the server (and root) can
 * use it — the file system is the authentication, no password to configure or leak.
 *
 * Protocol: one JSON object per line each way. A connection may send several requests; each
 * gets exactly one answer line, in order.
 *   → {"cmd":"sessions"}
 *   ← {"ok":true,"sessions":[{"jid":"alice@example.org/phone","ip":"127.0.0.1","since":"2026-…Z",
 *       "transport":"c2s","tls":true,"sm":false,"shard":"main"}, …]}
 *   → {"cmd":"kick","jid":"alice@example.org[/res]","condition":"policy-violation","text":"…"}
 *   ← {"ok":true,"kicked":2}
 *   ← {"ok":false,"error":"bad-request","message":"…"}          (unknown command, bad JID, …)
 * Why a socket file rather than HTTP on the metrics port: it works when metrics are off, needs
 * no port, and a stale file is detected (nobody answers) instead of a port clash.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { ConfigError, StreamError, type StreamErrorCondition } from '../errors.js';
import { Jid } from '../jid.js';
import type { C2SStream } from '../stream/c2s.js';

export const ADMIN_SOCKET = 'hermod.sock';
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

export function adminSocketPath(dataDir: string): string {
  return join(resolve(dataDir), ADMIN_SOCKET);
}

export interface SessionInfo {
  jid: string;
  ip: string;
  /** ISO 8601, when the connection was accepted. */
  since: string;
  transport: 'c2s' | 'direct_tls' | 'websocket';
  tls: boolean;
  /** XEP-0198 stream management enabled. */
  sm: boolean;
  /** Which thread serves it: 'main' with --workers 0. */
  shard: string;
}

/** What the channel asks of the server. */
export interface AdminTarget {
  sessions(): SessionInfo[];
  /**
   * Close the sessions of a bare JID (all) or full JID (that one); returns how many. `deleted`:
   * the account was just deleted by `hermod deluser` (what else it held in the server goes too).
   */
  kick(jid: Jid, error: StreamError, deleted?: boolean): number;
}

/**
 * The same questions answered later: with `--workers N` the sessions live in the shard threads,
 * which answer over their control ports (src/shard/pool.ts). Every AdminTarget is one too.
 */
export interface AsyncAdminTarget {
  sessions(): SessionInfo[] | Promise<SessionInfo[]>;
  kick(jid: Jid, error: StreamError, deleted?: boolean): number | Promise<number>;
}

export interface AdminRequest {
  cmd: string;
  jid?: string;
  condition?: string;
  text?: string;
  /** kick: sent by `hermod deluser` after the account's deletion. */
  deleted?: boolean;
}

export type AdminReply =
  | { ok: true; sessions: SessionInfo[] }
  | { ok: true; kicked: number }
  | { ok: false; error: string; message: string };

/** Conditions an operator may close a stream with (RFC 6120 §4.9.3); the default is policy-violation. */
const KICK_CONDITIONS: ReadonlySet<string> = new Set(['policy-violation', 'not-authorized', 'conflict', 'reset', 'system-shutdown']);

/** A checked request: what to ask the target, or the refusal to send back. */
type Plan = { reply: AdminReply } | { cmd: 'sessions' } | { cmd: 'kick'; jid: Jid; error: StreamError; deleted: boolean };

function plan(req: AdminRequest): Plan {
  if (req.cmd === 'sessions') return { cmd: 'sessions' };
  if (req.cmd === 'kick') {
    const jid = typeof req.jid === 'string' ? Jid.tryParse(req.jid) : null;
    if (!jid || jid.local === null) return { reply: { ok: false, error: 'bad-request', message: `'${req.jid}' is not USER@DOMAIN[/RESOURCE]` } };
    const condition = req.condition ?? 'policy-violation';
    if (!KICK_CONDITIONS.has(condition)) return { reply: { ok: false, error: 'bad-request', message: `condition '${condition}' is not offered` } };
    const text = typeof req.text === 'string' && req.text !== '' ? req.text : 'disconnected by the server administrator';
    return { cmd: 'kick', jid, error: new StreamError(condition as StreamErrorCondition, text), deleted: req.deleted === true };
  }
  return { reply: { ok: false, error: 'bad-request', message: `unknown command '${String(req.cmd)}'` } };
}

export function answer(target: AdminTarget, req: AdminRequest): AdminReply {
  const p = plan(req);
  if ('reply' in p) return p.reply;
  if (p.cmd === 'sessions') return { ok: true, sessions: target.sessions() };
  return { ok: true, kicked: target.kick(p.jid, p.error, p.deleted) };
}

/** answer() for a target that may answer later (the shards of --workers N). */
export async function answerAsync(target: AsyncAdminTarget, req: AdminRequest): Promise<AdminReply> {
  const p = plan(req);
  if ('reply' in p) return p.reply;
  if (p.cmd === 'sessions') return { ok: true, sessions: await target.sessions() };
  return { ok: true, kicked: await target.kick(p.jid, p.error, p.deleted) };
}

function serve(socket: Socket, target: AsyncAdminTarget): void {
  let buffered = '';
  // Answers may come later (shards): chained, so each request's line goes out in order.
  let answered: Promise<void> = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (text: string) => {
    buffered += text;
    // A local peer, but still bounded: one request line is small.
    if (buffered.length > 65536) return void socket.destroy();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line === '') continue;
      let reply: Promise<AdminReply>;
      try {
        reply = answerAsync(target, JSON.parse(line) as AdminRequest).catch((err: unknown) => ({
          ok: false as const,
          error: 'internal-server-error',
          message: (err as Error).message ?? String(err),
        }));
      } catch (err) {
        reply = Promise.resolve({ ok: false, error: 'bad-request', message: err instanceof SyntaxError ? 'not a JSON line' : (err as Error).message });
      }
      answered = answered.then(async () => {
        const r = await reply;
        if (!socket.destroyed) socket.write(`${JSON.stringify(r)}\n`);
      });
    }
  });
}

/** Whether something answers on the socket file (a running server) — false for a stale file. */
function alive(path: string): Promise<boolean> {
  return new Promise((done) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      done(true);
    });
    probe.once('error', () => done(false));
  });
}

/**
 * The socket file could not be created (e.g. a data directory path longer than the ~107 bytes a
 * Unix socket path may have): the server runs without `hermod sessions`/`kick` and says so.
 */
export class AdminSocketError extends Error {
  readonly code = 'ERR_HERMOD_ADMIN_SOCKET';
}

export interface AdminChannel {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listen on `<dataDir>/hermod.sock`. A file left by a crashed server is replaced; a live one
 * means another server uses this data directory, which would corrupt nothing (SQLite locks) but
 * confuse every admin command: refused with a ConfigError.
 */
export async function listenAdmin(dataDir: string, target: AsyncAdminTarget): Promise<AdminChannel> {
  const path = adminSocketPath(dataDir);
  // sockaddr_un.sun_path holds 108 bytes with the NUL on Linux (104 on BSDs); libuv would
  // silently truncate a longer path and bind somewhere else.
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new AdminSocketError(`the admin socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes`);
  if (existsSync(path)) {
    if (await alive(path)) throw new ConfigError(`another hermod is running with data directory ${resolve(dataDir)} (${path} answers)`, 'data');
    unlinkSync(path);
  }
  const server: Server = createServer((socket) => serve(socket, target));
  await new Promise<void>((done, fail) => {
    server.once('error', (err) => fail(new AdminSocketError(`cannot create the admin socket ${path}: ${err.message}`)));
    server.listen(path, () => done());
  });
  chmodSync(path, 0o600);
  server.unref();
  return {
    path,
    close: () =>
      new Promise<void>((done) => {
        // server.close() removes the socket file for a path listener.
        server.close(() => done());
      }),
  };
}

/** Client side: send one request, read one answer. Rejects with code ENOENT/ECONNREFUSED when no server runs. */
export function adminRequest(dataDir: string, req: AdminRequest): Promise<AdminReply> {
  const path = adminSocketPath(dataDir);
  return new Promise((done, fail) => {
    const socket = connect(path);
    let text = '';
    socket.setEncoding('utf8');
    socket.once('error', fail);
    socket.once('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      socket.end();
      try {
        done(JSON.parse(text.slice(0, nl)) as AdminReply);
      } catch (err) {
        fail(err as Error);
      }
    });
    socket.once('close', () => fail(new Error('the server closed the admin connection without answering')));
  });
}

/** Whether an error from adminRequest means "no server is running on this data directory". */
export function serverNotRunning(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** What the server remembers of each accepted connection, for the session list. */
export interface ConnectionFacts {
  address: string;
  since: number;
  transport: SessionInfo['transport'];
  /** Read live: STARTTLS may happen after accept. */
  readonly secure: boolean;
}

/** The bound sessions among a server's streams, as an AdminTarget. */
export function streamsTarget(
  streams: ReadonlySet<C2SStream>,
  facts: WeakMap<C2SStream, ConnectionFacts>,
  shard = 'main',
): AdminTarget {
  const bound = () => [...streams].filter((s): s is C2SStream & { jid: Jid } => s.jid !== null);
  return {
    sessions: () =>
      bound().map((s) => {
        const f = facts.get(s);
        return {
          jid: s.jid.full,
          ip: f?.address ?? '',
          since: new Date(f?.since ?? 0).toISOString(),
          transport: f?.transport ?? 'c2s',
          tls: f?.secure ?? false,
          sm: s.smEnabled,
          shard,
        };
      }),
    kick(jid, error) {
      let n = 0;
      for (const s of bound()) {
        if (jid.resource === null ? s.jid.bare === jid.bare : s.jid.full === jid.full) {
          s.close(error);
          n++;
        }
      }
      return n;
    },
  };
}
