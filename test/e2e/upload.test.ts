/**
 * XEP-0363 HTTP File Upload over real sockets: a client finds the service, asks for a slot over
 * XMPP, PUTs with fetch, GETs the bytes back; forged, expired and replayed PUTs are refused.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDelUser } from '../../src/admin/users.js';
import { parseServeArgs } from '../../src/config/flags.js';
import { defaultConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { startServer, type HermodServer } from '../../src/server.js';
import { loadCertificate } from '../../src/transport/tls.js';
import { checkUploadConfig } from '../../src/upload/index.js';
import { xml } from '@xmpp/component';
import { attachComponent } from './component-helpers.js';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

const UPLOAD = 'upload.localhost';
const NS = 'urn:xmpp:http:upload:0';

let t: TestServer;
let alice: RawClient;
let n = 0;

beforeAll(async () => {
  t = await startTestServer([
    '--tls',
    'optional',
    '--set',
    'upload.enabled=true',
    '--set',
    'upload.http.port=0',
    '--set',
    'upload.max_file_size=1MiB',
    '--set',
    'upload.quota=3MiB',
  ]);
  alice = await RawClient.connect(t.port);
  await alice.login('alice', { tls: false });
});

afterAll(async () => {
  alice?.close();
  await t?.stop();
});

/** Send an IQ and return the reply's text. */
async function iq(client: RawClient, body: string, to = UPLOAD): Promise<string> {
  const id = `up${++n}`;
  client.take();
  client.send(`<iq type='get' id='${id}' to='${to}'>${body}</iq>`);
  const text = await client.waitFor(new RegExp(`<iq [^>]*id='${id}'[^>]*>(.|\\n)*?</iq>|<iq [^>]*id='${id}'[^>]*/>`));
  return text;
}

interface Slot {
  put: string;
  get: string;
  auth: string;
}

async function slot(filename: string, size: number, type = 'image/png', client = alice): Promise<Slot> {
  const text = await iq(client, `<request xmlns='${NS}' filename='${filename}' size='${size}' content-type='${type}'/>`);
  const put = /<put url='([^']+)'>/.exec(text);
  if (!put) throw new Error(`no slot: ${text}`);
  return {
    put: put[1]!.replace(/&amp;/g, '&'),
    get: /<get url='([^']+)'/.exec(text)![1]!.replace(/&amp;/g, '&'),
    auth: /<header name='Authorization'>([^<]+)<\/header>/.exec(text)![1]!,
  };
}

function put(s: Slot, body: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(s.put, { method: 'PUT', body, headers: { authorization: s.auth, 'content-type': 'image/png', ...headers } });
}

describe('XEP-0363 HTTP File Upload', () => {
  it('lists the upload service in the server disco#items and describes it in its disco#info (§2)', async () => {
    const items = await iq(alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>", 'localhost');
    expect(items).toContain(`jid='${UPLOAD}'`);
    const info = await iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>");
    expect(info).toContain("<identity category='store' type='file'");
    expect(info).toContain(`<feature var='${NS}'/>`);
    expect(info).toContain(`<field var='max-file-size'><value>${1024 * 1024}</value></field>`);
  });

  it('stores a PUT within the slot and serves the same bytes back with safe headers (§4, §6)', async () => {
    const data = randomBytes(200_000);
    const s = await slot('holiday photo.png', data.length);
    expect(s.get).toBe(s.put);
    const created = await put(s, data);
    expect(created.status).toBe(201);
    const got = await fetch(s.get);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
    expect(got.headers.get('content-type')).toBe('image/png');
    expect(got.headers.get('x-content-type-options')).toBe('nosniff');
    expect(got.headers.get('access-control-allow-origin')).toBe('*');
    const head = await fetch(s.get, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(data.length));
    // Revalidation of a cached copy costs no body.
    const again = await fetch(s.get, { headers: { 'if-none-match': got.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('refuses a second PUT on a used slot', async () => {
    const data = randomBytes(10);
    const s = await slot('once.png', data.length);
    expect((await put(s, data)).status).toBe(201);
    expect((await put(s, randomBytes(10))).status).toBe(409);
  });

  it('refuses a PUT with a tampered signature, size or missing authorization', async () => {
    const data = randomBytes(64);
    const s = await slot('tamper.png', data.length);
    const forged = s.auth.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    expect((await put(s, data, { authorization: forged })).status).toBe(403);
    expect((await fetch(s.put, { method: 'PUT', body: data, headers: { 'content-type': 'image/png' } })).status).toBe(403);
    expect((await put(s, randomBytes(65))).status).toBe(413);
    expect((await put(s, randomBytes(63))).status).toBe(400);
    expect((await put(s, data, { 'content-type': 'text/html' })).status).toBe(403);
    expect((await fetch(s.get)).status).toBe(404);
    // The slot itself is still good after the refusals.
    expect((await put(s, data)).status).toBe(201);
  });

  it('refuses a PUT after the slot expired', async () => {
    const data = randomBytes(16);
    const s = await slot('late.png', data.length);
    // Rewrite the expiry: the signature no longer matches, so a client cannot extend a slot.
    const [, expiry] = /^Hermod (\d+)\./.exec(s.auth)!;
    expect((await put(s, data, { authorization: s.auth.replace(expiry!, String(Number(expiry) + 3_600_000)) })).status).toBe(403);
    // A slot signed with an expiry in the past, as the service would have issued it earlier.
    const settings = t.server.upload!.settings;
    const old = settings.signer.issue('alice@localhost', 'late.png', data.length, 'image/png', Date.now() - 1);
    const url = `${settings.publicUrl}/${old.ownerKey}/${old.id}/late.png`;
    const res = await fetch(url, { method: 'PUT', body: data, headers: { authorization: settings.signer.authorization(old), 'content-type': 'image/png' } });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('expired');
  });

  it('answers an oversized request with file-too-large and the limit (§5)', async () => {
    const text = await iq(alice, `<request xmlns='${NS}' filename='big.iso' size='${2 * 1024 * 1024}'/>`);
    expect(text).toContain("type='error'");
    expect(text).toContain('<not-acceptable');
    expect(text).toContain(`<file-too-large xmlns='${NS}'><max-file-size>${1024 * 1024}</max-file-size></file-too-large>`);
  });

  it('answers a request over the quota with resource-constraint (§5)', async () => {
    // 3 MiB quota; ~200 KB used so far. Three more files of 1 MiB do not fit.
    for (let i = 0; i < 2; i++) {
      const data = randomBytes(1024 * 1024);
      const s = await slot(`fill${i}.png`, data.length);
      expect((await put(s, data)).status).toBe(201);
    }
    const text = await iq(alice, `<request xmlns='${NS}' filename='more.png' size='${1024 * 1024}'/>`);
    expect(text).toContain('<resource-constraint');
  });

  it('answers a request without a usable file name with bad-request', async () => {
    const text = await iq(alice, `<request xmlns='${NS}' filename='..' size='10'/>`);
    expect(text).toContain('<bad-request');
  });

  it('keeps files under random ids only (no client-chosen names on disk)', () => {
    const dir = join(t.dataDir, 'uploads');
    for (const owner of readdirSync(dir)) {
      expect(owner).toMatch(/^[0-9a-f]{32}$/);
      for (const f of readdirSync(join(dir, owner))) expect(f).toMatch(/^[A-Za-z0-9_-]{22}\.(json|bin|\d+\.claim)$/);
    }
  });

  it('answers CORS preflights and 404s unknown files', async () => {
    const base = t.server.upload!.url;
    const pre = await fetch(`${base}/x`, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toContain('PUT');
    expect((await fetch(`${base}/${'0'.repeat(32)}/${'A'.repeat(22)}/a.png`)).status).toBe(404);
    expect((await fetch(`${base}/../../etc/passwd`)).status).toBe(404);
  });
});

describe('XEP-0363 serving', () => {
  it('serves one byte range with 206 and refuses one past the end with 416', async () => {
    const data = randomBytes(100);
    const s = await slot('clip.mp4', data.length, 'video/mp4');
    expect((await put(s, data, { 'content-type': 'video/mp4' })).status).toBe(201);
    const part = await fetch(s.get, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 10-19/100');
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(10, 20))).toBe(true);
    const tail = await fetch(s.get, { headers: { range: 'bytes=-5' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(95))).toBe(true);
    expect((await fetch(s.get, { headers: { range: 'bytes=100-' } })).status).toBe(416);
  });

  it('serves an uploaded HTML page as an attachment of type octet-stream, sandboxed', async () => {
    const page = Buffer.from('<script>alert(document.cookie)</script>');
    const s = await slot('page.html', page.length, 'text/html');
    expect((await put(s, page, { 'content-type': 'text/html' })).status).toBe(201);
    const got = await fetch(s.get);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('content-disposition')).toMatch(/^attachment; filename\*=UTF-8''page\.html$/);
    expect(got.headers.get('content-security-policy')).toContain('sandbox');
  });

  it('does not serve a file under another name than it was uploaded as', async () => {
    const data = randomBytes(8);
    const s = await slot('right.png', data.length);
    expect((await put(s, data)).status).toBe(201);
    expect((await fetch(s.get.replace(/right\.png$/, 'wrong.png'))).status).toBe(404);
  });
});

describe('XEP-0363 across a restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hermod-upload-restart-'));
  const start = async (): Promise<HermodServer> => {
    const flags = ['--port', '0', '--tls-port', 'off', '--tls', 'optional', '--data', dataDir, '--domain', 'localhost'];
    const sets = ['upload.enabled=true', 'upload.http.port=0', 'upload.quota=1KiB'].flatMap((v) => ['--set', v]);
    return startServer(parseServeArgs([...flags, ...sets], {}).loaded!.config, { adminChannel: false });
  };
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps files, their URLs and the quota they use', async () => {
    let server = await start();
    server.storage.users.create('bob@localhost', PASSWORDS.bob!);
    let bob = await RawClient.connect(server.c2s.port);
    await bob.login('bob', { tls: false });
    const data = randomBytes(800);
    const s = await slot('keep.png', data.length, 'image/png', bob);
    expect((await put(s, data)).status).toBe(201);
    bob.close();
    await server.shutdown();

    server = await start();
    try {
      // The port changed (0): the same path on the new service.
      const path = new URL(s.get).pathname;
      const got = await fetch(`${server.upload!.url}${path}`);
      expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
      bob = await RawClient.connect(server.c2s.port);
      await bob.login('bob', { tls: false });
      const text = await iq(bob, `<request xmlns='${NS}' filename='more.png' size='300'/>`);
      expect(text).toContain('<resource-constraint');
      bob.close();
    } finally {
      await server.shutdown();
    }
  });
});

describe('XEP-0363 rate limits (upload.rate_limit)', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** A server of its own with uploads on and `limits` (upload.rate_limit.*), carol logged in. */
  async function limited(limits: string[]): Promise<{ server: HermodServer; carol: RawClient }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-upload-rate-'));
    dirs.push(dataDir);
    const flags = ['--port', '0', '--tls-port', 'off', '--tls', 'optional', '--data', dataDir, '--domain', 'localhost'];
    const sets = ['upload.enabled=true', 'upload.http.port=0', 'upload.rate_limit.window=1h', ...limits.map((l) => `upload.rate_limit.${l}`)];
    const server = await startServer(parseServeArgs([...flags, ...sets.flatMap((v) => ['--set', v])], {}).loaded!.config, { adminChannel: false });
    server.storage.users.create('carol@localhost', PASSWORDS.carol!);
    const carol = await RawClient.connect(server.c2s.port);
    await carol.login('carol', { tls: false });
    return { server, carol };
  }

  it('answers slot requests over the per-account limit with resource-constraint and <retry stamp/>, and PUTs over it with 429 Retry-After', async () => {
    const { server, carol } = await limited(['slots_per_account=3', 'puts_per_account=1', 'puts_per_ip=3']);
    try {
      const data = randomBytes(10);
      const first = await slot('one.png', data.length, 'image/png', carol);
      const second = await slot('two.png', data.length, 'image/png', carol);
      const third = await slot('three.png', data.length, 'image/png', carol);
      // The fourth slot request in the hour: a temporary refusal saying when to retry (§5).
      const before = Date.now();
      const refused = await iq(carol, `<request xmlns='${NS}' filename='four.png' size='10'/>`);
      expect(refused).toMatch(/<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
      const stamp = /<retry xmlns='urn:xmpp:http:upload:0' stamp='(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)'\/>/.exec(refused)![1]!;
      // One request's share of the hour (20 min) after the first, give or take the test's own time.
      expect(Date.parse(stamp)).toBeGreaterThan(before + 15 * 60_000);
      expect(Date.parse(stamp)).toBeLessThanOrEqual(Date.now() + 20 * 60_000 + 1000);

      // One PUT per account an hour: the second is refused before anything is stored.
      expect((await put(first, data)).status).toBe(201);
      const tooMany = await put(second, data);
      expect(tooMany.status).toBe(429);
      expect(Number(tooMany.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await fetch(second.get)).status).toBe(404);
      // A forged attempt spends the address's budget and is refused as such; the genuine third
      // PUT is still over carol's one an hour.
      expect((await put(third, data, { authorization: 'forged' })).status).toBe(403);
      expect((await put(third, data)).status).toBe(429);
    } finally {
      carol.close();
      await server.shutdown();
    }
  });

  it('lets forged PUTs from an address use up its budget without refusing a genuine upload from that address (a proxy in front serves everyone)', async () => {
    const { server, carol } = await limited(['puts_per_ip=2']);
    try {
      const data = randomBytes(10);
      const genuine = await slot('mine.png', data.length, 'image/png', carol);
      // Anyone who can reach the HTTP service can send these: the address's budget goes, then
      // its forgeries are refused as too many.
      expect((await put(genuine, data, { authorization: 'forged' })).status).toBe(403);
      expect((await put(genuine, data, { authorization: 'forged' })).status).toBe(403);
      expect((await put(genuine, data, { authorization: 'forged' })).status).toBe(429);
      // The slot's own PUT is the account's business (puts_per_account), not the forger's.
      expect((await put(genuine, data)).status).toBe(201);
    } finally {
      carol.close();
      await server.shutdown();
    }
  });
});

describe('XEP-0363 configuration', () => {
  it('refuses the WebSocket port for the upload service, and the server domain as its JID', () => {
    const config = defaultConfig();
    config.upload.enabled = true;
    config.listen.websocket.enabled = true;
    expect(() => checkUploadConfig(config)).toThrow(ConfigError);
    config.listen.websocket.enabled = false;
    config.upload.domain = 'localhost';
    expect(() => checkUploadConfig(config)).toThrow(/upload.domain/);
  });

  it('speaks https when public_url is https and a certificate is configured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-upload-tls-'));
    const cert = await loadCertificate({ certFile: null, keyFile: null, dataDir: dir, domain: 'localhost' });
    const flags = ['--port', '0', '--tls-port', 'off', '--data', dir, '--domain', 'localhost', '--cert', cert.certFile, '--key', cert.keyFile];
    const sets = ['upload.enabled=true', 'upload.http.port=0', 'upload.public_url=https://localhost'].flatMap((v) => ['--set', v]);
    const server = await startServer(parseServeArgs([...flags, ...sets], {}).loaded!.config, { adminChannel: false });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        httpsGet({ host: '127.0.0.1', port: server.upload!.http.port, path: '/nothing', rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      expect(status).toBe(404);
      expect(server.upload!.url).toBe('https://localhost');
    } finally {
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('XEP-0363 and account removal', () => {
  it('deletes the files of an account removed in-band (XEP-0077 §3.2)', async () => {
    t.server.storage.users.create('dave@localhost', 'dave-secret-4');
    const dave = await RawClient.connect(t.port);
    await dave.login('dave', { tls: false, password: 'dave-secret-4' });
    const data = randomBytes(32);
    const s = await slot('mine.png', data.length, 'image/png', dave);
    expect((await put(s, data)).status).toBe(201);
    dave.send("<iq type='set' id='rm1'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    await dave.waitFor("id='rm1'");
    expect((await fetch(s.get)).status).toBe(404);
    const ownerKey = new URL(s.get).pathname.split('/').at(-3)!;
    expect(readdirSync(join(t.dataDir, 'uploads'))).not.toContain(ownerKey);
    dave.close();
  });

  it('deletes the files of an account removed with hermod deluser', async () => {
    t.server.storage.users.create('erin@localhost', 'erin-secret-5');
    const erin = await RawClient.connect(t.port);
    await erin.login('erin', { tls: false, password: 'erin-secret-5' });
    const data = randomBytes(32);
    const s = await slot('hers.png', data.length, 'image/png', erin);
    expect((await put(s, data)).status).toBe(201);
    let out = '';
    const io = { out: (x: string) => void (out += x), err: () => {}, readPassword: async () => null, interactive: false, env: {} };
    expect(await runDelUser(['erin@localhost', '--data', t.dataDir], io)).toBe(0);
    expect(out).toContain('deleted the files erin@localhost uploaded');
    expect((await fetch(s.get)).status).toBe(404);
    erin.close();
  });
});

describe('XEP-0363 and components', () => {
  it('refuses a slot to an XEP-0114 component with not-allowed (§5): it has no account to count', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-upload-component-'));
    const flags = ['--port', '0', '--tls-port', 'off', '--component-port', '0', '--tls', 'optional', '--data', dataDir, '--domain', 'localhost'];
    const sets = ['upload.enabled=true', 'upload.http.port=0'].flatMap((v) => ['--set', v]);
    const config = parseServeArgs([...flags, ...sets], {}).loaded!.config;
    const server = await startServer({ ...config, components: { 'bot.localhost': 'bot-secret' } }, { adminChannel: false });
    const bot = await attachComponent(server.components!.port, 'bot.localhost', 'bot-secret');
    try {
      await bot.xmpp.send(
        xml('iq', { from: 'news@bot.localhost', to: UPLOAD, id: 'c1', type: 'get' }, xml('request', { xmlns: NS, filename: 'a.png', size: '10' })),
      );
      const answer = await bot.next((el) => el.attrs.id === 'c1');
      expect(answer.attrs.type).toBe('error');
      expect(answer.getChild('error')?.getChild('not-allowed')).toBeTruthy();
      // Discovery still works for it.
      await bot.xmpp.send(xml('iq', { from: 'bot.localhost', to: UPLOAD, id: 'c2', type: 'get' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
      const info = await bot.next((el) => el.attrs.id === 'c2');
      expect(info.attrs.type).toBe('result');
    } finally {
      await bot.xmpp.stop();
      await server.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
