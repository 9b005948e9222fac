/**
 * End-to-end harness: a real Hermod server in this process, on ephemeral loopback ports, with a
 * fresh data directory and a few accounts; and a raw XMPP socket client for byte-level checks.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseServeArgs } from '../../src/config/flags.js';
import { startServer, type HermodServer, type StartOptions } from '../../src/server.js';

export interface TestServer {
  server: HermodServer;
  port: number;
  tlsPort: number;
  dataDir: string;
  stop(): Promise<void>;
}

export const PASSWORDS: Record<string, string> = {
  alice: 'alice-secret-1',
  bob: 'bob-secret-2',
  carol: 'carol-secret-3',
};

/** Start Hermod with `flags` (e.g. ['--tls', 'optional']) and the accounts of PASSWORDS. */
export async function startTestServer(flags: string[] = [], options: StartOptions = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hermod-e2e-'));
  const args = parseServeArgs(['--port', '0', '--tls-port', '0', '--data', dataDir, '--domain', 'localhost', ...flags], {});
  const server = await startServer(args.loaded!.config, options);
  for (const [user, password] of Object.entries(PASSWORDS)) server.storage.users.create(`${user}@localhost`, password);
  return {
    server,
    port: server.c2s.port,
    tlsPort: server.directTls?.port ?? 0,
    dataDir,
    async stop() {
      await server.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const STREAM_HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/** The SASL namespace declaration, for hand-written <auth/>, <response/> and <abort/>. */
export const SASL = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";

/** The base64 SASL PLAIN initial response for `user` (no authorization identity). */
export const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`).toString('base64');

/** RFC 6120 §4.9.1.1: what a stream ends with after a stream error: the error, then our close tag. */
export const streamError = (condition: string): RegExp =>
  new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>(<text [^>]*>[^<]*</text>)?</stream:error></stream:stream>$`);

/** One chat message from `a` to `b` and one back, each awaited by its unique body text. */
let trips = 0;
export async function roundTrip(a: { c: RawClient; jid: string }, b: { c: RawClient; jid: string }): Promise<void> {
  const n = ++trips;
  a.c.send(`<message to='${b.jid}' type='chat' id='t${n}'><body>there ${n}</body></message>`);
  await b.c.waitFor(`there ${n}<`);
  b.c.send(`<message to='${a.jid}' type='chat' id='u${n}'><body>back ${n}</body></message>`);
  await a.c.waitFor(`back ${n}<`);
}

/** A byte-level client: write strings, wait for patterns in what the server sent. */
export class RawClient {
  received = '';
  closed = false;
  private waiters: { test: (text: string) => boolean; resolve: () => void; reject: (e: Error) => void }[] = [];

  private constructor(public socket: Socket | TLSSocket) {
    this.listen(socket);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  private listen(socket: Socket | TLSSocket): void {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.received += text;
      this.check();
    });
    socket.on('close', () => {
      this.closed = true;
      this.check();
    });
    socket.on('error', () => {});
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      if (w.test(this.received)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      } else if (this.closed) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.reject(new Error(`connection closed; received: ${this.received}`));
      }
    }
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** Resolve with everything received once `pattern` matches it; reject after `ms`. */
  async waitFor(pattern: RegExp | string, ms = 5000): Promise<string> {
    const test = (text: string) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; received: ${this.received}`)), ms);
      this.waiters.push({
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.check();
    });
    return this.received;
  }

  /** Forget what was received so far (so the next waitFor sees only new data). */
  take(): string {
    const text = this.received;
    this.received = '';
    return text;
  }

  async waitClosed(ms = 5000): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection not closed')), ms);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** STARTTLS (RFC 6120 §5.4): after <proceed/>, wrap the socket and start over. */
  async startTls(): Promise<void> {
    this.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.waitFor('<proceed');
    this.take();
    const plain = this.socket as Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
  }

  /** Header, (STARTTLS,) SASL PLAIN, restart, bind: returns the bound full JID. */
  /** With `bind: false` it stops after the post-SASL features (to resume instead). */
  async login(user: string, options: { tls: boolean; resource?: string; bind?: boolean; password?: string }): Promise<string> {
    this.send(STREAM_HEADER);
    await this.waitFor('</stream:features>');
    if (options.tls) {
      this.take();
      await this.startTls();
      this.send(STREAM_HEADER);
      await this.waitFor('</stream:features>');
    }
    this.take();
    this.send(`<auth ${SASL} mechanism='PLAIN'>${plain(user, options.password ?? PASSWORDS[user]!)}</auth>`);
    await this.waitFor(/<success|<failure/);
    if (!this.received.includes('<success')) throw new Error(`login failed: ${this.received}`);
    this.take();
    this.send(STREAM_HEADER);
    await this.waitFor('</stream:features>');
    this.take();
    if (options.bind === false) return '';
    const resource = options.resource ? `<resource>${options.resource}</resource>` : '';
    this.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${resource}</bind></iq>`);
    const text = await this.waitFor(/<\/jid>/);
    this.take();
    return /<jid>([^<]+)<\/jid>/.exec(text)![1]!;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Debian's python3, where python3-slixmpp is installed (a pyenv python3 may shadow it on PATH). */
const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * Run a Python client script of test/e2e/ and return the JSON object on its last stdout line
 * (the scripts print their observations that way).
 */
export async function runPythonClient(script: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  if (!existsSync(DEBIAN_PYTHON)) throw new Error(`${DEBIAN_PYTHON} missing: run bash test/setup-system.sh`);
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(DEBIAN_PYTHON, [script, ...args], { timeout: timeoutMs }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
    );
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** A `hermod serve` child process (dist/, so `npm run build` first) on an ephemeral port. */
export interface ServeProcess {
  proc: ChildProcess;
  port: number;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const CLI = resolve(import.meta.dirname, '../../dist/src/cli.js');
const served = new Set<ChildProcess>();

/**
 * Run `hermod serve` on `dataDir` (plain TCP allowed, no Direct TLS) with `extra` flags, node
 * started with `nodeFlags` (e.g. --unhandled-rejections=strict); resolves once it listens.
 */
export async function spawnServe(dataDir: string, extra: string[] = [], nodeFlags: string[] = []): Promise<ServeProcess> {
  const args = [...nodeFlags, CLI, 'serve', '--port', '0', '--tls-port', 'off', '--tls', 'optional', '--data', dataDir, ...extra];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  served.add(proc);
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    proc.once('exit', (code, signal) => {
      served.delete(proc);
      done({ code, signal });
    }),
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    const port = Number(/listening on 127\.0\.0\.1:(\d+) \(c2s/.exec(output)?.[1] ?? 0);
    if (port) return { proc, port, output: () => output, exited };
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`hermod serve did not start listening; output: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGKILL every process spawnServe started that is still running (for afterEach). */
export function killServed(): void {
  for (const proc of served) proc.kill('SIGKILL');
  served.clear();
}
