/**
 * kill -9 of a `hermod serve` process (dist/, so `npm run build` first) under mixed write load:
 * several senders stream chat messages to offline users (XEP-0198 enabled, <r/> after every
 * batch) while other sessions write roster items as fast as they are answered. After the crash
 * the database passes its integrity check, the server starts on it with no repair step, every
 * message the server acknowledged (<a h/>) is delivered to its offline recipient unless it was
 * bounced with an error, and every roster item whose set was answered `result` is there — inline
 * and with two shards (senders and writers spread over both). A generated certificate a crash
 * left empty is made again at the next start instead of failing every TLS handshake.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DATABASE_FILE } from '../../src/storage/sqlite.js';
import { loadServerTls } from '../../src/transport/tls.js';
import { RawClient, killServed, spawnServe } from './harness.js';
import { makeDataDir, until } from './shard-helpers.js';

const SM = "xmlns='urn:xmpp:sm:3'";
const PAIRS = 4;
const BATCH = 20;

const dirs: string[] = [];
afterEach(() => {
  killServed();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function login(port: number, user: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, { tls: false, resource: 'r', password: `${user}-pw` });
  return c;
}

/** Ids of this sender's messages that came back as errors (offline storage full, …). */
function bounced(c: RawClient): Set<number> {
  return new Set([...c.received.matchAll(/<message [^>]*type='error'[^>]*>/g)].map((m) => Number(/id='x(\d+)'/.exec(m[0])?.[1] ?? -1)));
}

describe.each([['0'], ['2']])('kill -9 under message and roster writes (--workers %s)', (workers) => {
  it('restarts without repair and keeps every acknowledged message and answered roster write', async () => {
    const users = Array.from({ length: PAIRS }, (_, i) => [`snd${i}`, `off${i}`, `ros${i}`]).flat();
    const dir = makeDataDir(users);
    dirs.push(dir);
    const first = await spawnServe(dir, ['--workers', workers, '--set', 'offline.max_per_user=300']);
    const senders: RawClient[] = [];
    const writers: RawClient[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const s = await login(first.port, `snd${i}`);
      s.send(`<enable ${SM}/>`);
      await s.waitFor('<enabled');
      senders.push(s);
      writers.push(await login(first.port, `ros${i}`));
    }

    let stop = false;
    const load = [
      ...senders.map(async (s, i) => {
        for (let k = 0; !stop; ) {
          let batch = '';
          for (let j = 0; j < BATCH; j++, k++) batch += `<message to='off${i}@localhost' type='chat' id='x${k}'><body>n${k}.</body></message>`;
          s.send(batch + `<r ${SM}/>`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
      ...writers.map(async (w) => {
        for (let k = 0; !stop; k++) {
          w.send(`<iq type='set' id='rs${k}'><query xmlns='jabber:iq:roster'><item jid='c${k}@example.org' name='C${k}'><group>G${k % 3}</group></item></query></iq>`);
          await new Promise((r) => setTimeout(r, 4));
        }
      }),
    ];
    const acked = (s: RawClient) => Math.max(0, ...[...s.received.matchAll(/<a xmlns='urn:xmpp:sm:3' h='(\d+)'\/>/g)].map((m) => Number(m[1])));
    // Crash once every sender has had some of its messages acknowledged (offline storage
    // filling past its cap bounces the rest with errors, which counts too).
    await until('acknowledgements from every session', () => senders.every((s) => acked(s) >= 100 + BATCH) || undefined, 30_000);
    first.proc.kill('SIGKILL');
    await first.exited;
    stop = true;
    await Promise.all(load);
    const ackedBy = senders.map(acked);
    const bouncedBy = senders.map(bounced);
    const rosterAcked = writers.map((w) => [...w.received.matchAll(/<iq [^>]*id='rs(\d+)'[^>]*type='result'|<iq [^>]*type='result'[^>]*id='rs(\d+)'/g)].map((m) => Number(m[1] ?? m[2])));
    for (const c of [...senders, ...writers]) c.close();
    expect(rosterAcked.every((ids) => ids.length > 0)).toBe(true);

    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      db.close();
    }

    const second = await spawnServe(dir, ['--workers', workers]);
    for (let i = 0; i < PAIRS; i++) {
      const off = await login(second.port, `off${i}`);
      off.send('<presence/>');
      const want = Array.from({ length: ackedBy[i]! }, (_, k) => k).filter((k) => !bouncedBy[i]!.has(k));
      const got = () => new Set([...off.received.matchAll(/<body>n(\d+)\.<\/body>/g)].map((m) => Number(m[1])));
      await until(`off${i}'s acknowledged messages`, () => want.every((k) => got().has(k)) || undefined, 15_000).catch(() => {});
      const missing = want.filter((k) => !got().has(k));
      expect({ pair: i, missing }).toEqual({ pair: i, missing: [] });

      const ros = await login(second.port, `ros${i}`);
      ros.send("<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>");
      const roster = await ros.waitFor(/<iq [^>]*id='rg'[\s\S]*?(<\/iq>|\/>)/);
      expect(rosterAcked[i]!.filter((k) => !roster.includes(`jid='c${k}@example.org'`))).toEqual([]);
      off.close();
      ros.close();
    }
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(second.output()).not.toMatch(/"level":"(error|fatal)"/);
  }, 60_000);
});

describe('the generated certificate after a crash', () => {
  /** One TLS handshake against a server using `secureContext`; resolves with the peer's CN. */
  async function handshake(secureContext: Awaited<ReturnType<typeof loadServerTls>>['secureContext']): Promise<string> {
    // (a server's own `secureContext` option is not used for handshakes; SNI hands it over)
    const server = createTlsServer({ SNICallback: (_name, use) => use(null, secureContext) }, (s) => s.end());
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const port = (server.address() as { port: number }).port;
      return await new Promise<string>((ok, fail) => {
        const c = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
          ok(String(c.getPeerCertificate().subject.CN));
          c.end();
        });
        c.on('error', fail);
      });
    } finally {
      server.close();
    }
  }

  it('is generated again when a crash left it empty, and then serves handshakes; a configured empty one is refused at start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-referee-tls-'));
    dirs.push(dataDir);
    const config = { domain: 'localhost', dataDir, tls: { cert: null, key: null } };
    const first = await loadServerTls(config);
    expect(first.certificate.source).toBe('generated');
    // what a kill -9 between open(O_TRUNC) and write, or a power loss before the data reached the disk, leaves
    writeFileSync(first.certificate.certFile, '');
    const second = await loadServerTls(config);
    expect(second.certificate.source).toBe('generated');
    expect(await handshake(second.secureContext)).toBe('localhost');
    expect(readdirSync(join(dataDir, 'tls')).sort()).toEqual(['localhost.crt', 'localhost.key']);
    const third = await loadServerTls(config);
    expect(third.certificate.source).toBe('generated-earlier');
    expect(third.certificate.cert).toBe(second.certificate.cert);
    // An operator's files are not ours to replace: an empty one stops the start with the reason.
    const empty = join(dataDir, 'empty.crt');
    writeFileSync(empty, '');
    await expect(loadServerTls({ ...config, tls: { cert: empty, key: second.certificate.keyFile } })).rejects.toThrow(ConfigError);
  });
});
