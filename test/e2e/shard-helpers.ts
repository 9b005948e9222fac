/**
 * Clients for the shard end-to-end tests: bench/load's lean c2s client (real TCP, SASL, bind),
 * with every stanza and the close reason recorded, and a wait that polls for a condition.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { LoadClient } from '../../bench/load/client.js';
import { defaultConfig, type HermodConfig } from '../../src/config/schema.js';
import { openStorage } from '../../src/storage/index.js';

/** A fresh data directory whose database holds `users` (password: `${user}-pw`). */
export function makeDataDir(users: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-shard-e2e-'));
  const storage = openStorage({ dataDir: dir, offlineLimit: 100 });
  for (const u of users) storage.users.create(`${u}@localhost`, `${u}-pw`);
  storage.close();
  return dir;
}

/** Two shards on an ephemeral loopback port, plain TCP allowed, no Direct TLS listener. */
export function shardedConfig(dataDir: string, workers = 2): HermodConfig {
  const config = defaultConfig();
  config.dataDir = dataDir;
  config.workers = workers;
  config.tls.policy = 'optional';
  config.listen.c2s.port = 0;
  config.listen.directTls.enabled = false;
  return config;
}

export interface TestClient {
  client: LoadClient;
  stanzas: string[];
  closed: string | null | undefined;
  /** Resolves when the session is bound, rejects if it closes first. */
  ready: Promise<void>;
}

export function connect(port: number, user: string, password: string, resource = 'e2e'): TestClient {
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const t: TestClient = {
    client: undefined as unknown as LoadClient,
    stanzas: [],
    closed: undefined,
    ready: new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    }),
  };
  t.client = new LoadClient(
    { host: '127.0.0.1', port, domain: 'localhost', password, resource, sasl: 'plain', starttls: false, timeoutMs: 20_000 },
    {
      ready: () => resolveReady(),
      message: (_c, xml) => t.stanzas.push(xml),
      presence: (_c, xml) => t.stanzas.push(xml),
      closed: (_c, reason) => {
        t.closed = reason;
        rejectReady(new Error(`${user}: closed before ready: ${reason}`));
      },
    },
    0,
    user,
  );
  t.client.start();
  return t;
}

/** Poll until `check` returns a value (not undefined/false), or fail after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The first recorded stanza matching `re`, removed from the record. */
export function take(t: TestClient, re: RegExp): string | undefined {
  const i = t.stanzas.findIndex((s) => re.test(s));
  return i < 0 ? undefined : t.stanzas.splice(i, 1)[0];
}

/** An RFC 7395 client: `frames` collects what it received, `frame` takes the first matching one. */
export interface WsTestClient {
  ws: WebSocket;
  frames: string[];
  frame: (re: RegExp) => Promise<string>;
}

/** A WebSocket client authenticated (SASL PLAIN, password `<user>-pw`) and restarted, not bound. */
export async function wsAuth(port: number, user: string, path = '/xmpp-websocket'): Promise<WsTestClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, ['xmpp']);
  const frames: string[] = [];
  ws.on('message', (d) => frames.push(d.toString()));
  const frame = (re: RegExp): Promise<string> =>
    until(`a WebSocket frame matching ${re}`, () => {
      const i = frames.findIndex((f) => re.test(f));
      return i < 0 ? undefined : frames.splice(i, 1)[0];
    });
  await new Promise((ok, fail) => ws.once('open', ok).once('error', fail));
  const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
  ws.send(open);
  await frame(/^<stream:features/);
  ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}-pw`).toString('base64')}</auth>`);
  await frame(/^<success/);
  ws.send(open);
  await frame(/^<stream:features/);
  return { ws, frames, frame };
}
