/**
 * A load generator the server was not written against: raw sockets, no shared client code.
 * CLIENTS connections to a `hermod serve` process (dist/, so `npm run build` first), each one
 * STARTTLS (RFC 6120 §5) + SASL PLAIN + bind + initial presence, then every client sends
 * MESSAGES chat messages to its neighbour (full JID, then bare JID), all at once. After the
 * traffic drains, every message sent was received exactly once and in order (RFC 6120 §10.1),
 * and no stream was closed —
 * inline and with two shards (where most pairs straddle the shards).
 */
import { rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { killServed, spawnServe } from './harness.js';
import { makeDataDir } from './shard-helpers.js';

/** REFEREE_CLIENTS / REFEREE_MESSAGES scale it up by hand (2000 × 20: about 40 s per variant on this 2-core box). */
const CLIENTS = Number(process.env.REFEREE_CLIENTS ?? 400);
const MESSAGES = Number(process.env.REFEREE_MESSAGES ?? 10);
/** Connections set up at once (the server's pre-auth work is PBKDF2 for PLAIN, per login). */
const PARALLEL = 40;
const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const BODY = /<body>m(\d+)-(\d+)<\/body>/;

/** One raw connection: a text buffer, waits on patterns, and the messages it was given. */
class Peer {
  socket: Socket | TLSSocket;
  private buffer = '';
  private waits: { re: RegExp; done: (m: RegExpMatchArray) => void }[] = [];
  private counting = false;
  readonly received = new Set<string>();
  /** Message numbers in arrival order (RFC 6120 §10.1: in order between two entities). */
  readonly order: number[] = [];
  duplicates = 0;
  streamError: string | null = null;
  closed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  private listen(s: Socket | TLSSocket): void {
    s.on('data', (d: Buffer) => this.onData(d.toString('utf8')));
    s.on('error', () => {});
  }

  private onData(text: string): void {
    this.buffer += text;
    for (const w of [...this.waits]) {
      const m = this.buffer.match(w.re);
      if (!m) continue;
      this.waits.splice(this.waits.indexOf(w), 1);
      this.buffer = this.buffer.slice(m.index! + m[0].length);
      w.done(m);
    }
    if (!this.counting) return;
    if (this.buffer.includes('<stream:error')) this.streamError = this.buffer;
    for (let end = this.buffer.indexOf('</message>'); end >= 0; end = this.buffer.indexOf('</message>')) {
      const m = BODY.exec(this.buffer.slice(0, end));
      if (m) {
        if (this.received.has(m[0])) this.duplicates++;
        this.received.add(m[0]);
        this.order.push(Number(m[2]));
      }
      this.buffer = this.buffer.slice(end + '</message>'.length);
    }
  }

  wait(re: RegExp): Promise<RegExpMatchArray> {
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`timed out waiting for ${re}; have ${this.buffer.slice(0, 200)}`)), 30_000);
      this.waits.push({ re, done: (m) => (clearTimeout(timer), done(m)) });
      this.onData('');
    });
  }

  async startTls(): Promise<void> {
    const tls = tlsConnect({ socket: this.socket as Socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((ok, fail) => tls.once('secureConnect', ok).once('error', fail));
    this.socket.removeAllListeners('data');
    this.socket = tls;
    this.listen(tls);
    tls.on('close', () => (this.closed = true));
  }

  count(): void {
    this.counting = true;
  }
}

async function login(port: number, user: string): Promise<Peer> {
  const peer = new Peer(netConnect({ host: '127.0.0.1', port }));
  peer.socket.write(HEADER);
  await peer.wait(/<\/stream:features>/);
  peer.socket.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await peer.wait(/<proceed [^>]*\/>/);
  await peer.startTls();
  peer.socket.write(HEADER);
  await peer.wait(/<\/stream:features>/);
  peer.socket.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}-pw`).toString('base64')}</auth>`);
  const outcome = await peer.wait(/<success[^>]*?(\/>|>[^<]*<\/success>)|<failure[\s\S]*?<\/failure>/);
  if (!outcome[0].startsWith('<success')) throw new Error(`${user}: ${outcome[0]}`);
  peer.socket.write(HEADER);
  await peer.wait(/<\/stream:features>/);
  peer.socket.write("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
  await peer.wait(/<\/iq>/);
  peer.count();
  peer.socket.write('<presence/>');
  return peer;
}

/** Sum of received messages, polled until it stops changing (the traffic has drained). */
async function drained(peers: Peer[], expected: number): Promise<number> {
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, last === expected ? 300 : 1000));
    const total = peers.reduce((n, p) => n + p.received.size, 0);
    if (total === last) return total;
    last = total;
  }
}

const dirs: string[] = [];
afterEach(() => {
  killServed();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.each([['0'], ['2']])('a raw-socket swarm over STARTTLS (--workers %s)', (workers) => {
  it(`delivers every one of ${CLIENTS} × ${MESSAGES} × 2 chat messages exactly once, in order, and closes no stream`, async () => {
    const users = Array.from({ length: CLIENTS }, (_, i) => `load${i}`);
    const dir = makeDataDir(users);
    dirs.push(dir);
    const server = await spawnServe(dir, ['--workers', workers]);

    const peers: Peer[] = new Array(CLIENTS);
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < CLIENTS) {
          const i = next++;
          peers[i] = await login(server.port, users[i]!);
        }
      }),
    );

    // Every client writes to its neighbour: first the full JID (RFC 6121 §8.5.3), then the bare
    // JID (§8.5.2.1.1, the one available resource), without waiting for anything in between.
    for (const [round, resource] of [
      [0, '/r'],
      [1, ''],
    ] as const) {
      for (let k = 0; k < MESSAGES; k++) {
        peers.forEach((p, i) => {
          const to = users[(i + 1) % CLIENTS];
          p.socket.write(`<message to='${to}@localhost${resource}' type='chat' id='m${k}'><body>m${i}-${round * MESSAGES + k}</body></message>`);
        });
        await new Promise((r) => setImmediate(r));
      }
    }
    const expected = CLIENTS * MESSAGES * 2;
    const received = await drained(peers, expected);

    expect(peers.filter((p) => p.streamError !== null).map((p) => p.streamError)).toEqual([]);
    expect(peers.filter((p) => p.closed).length).toBe(0);
    expect(peers.reduce((n, p) => n + p.duplicates, 0)).toBe(0);
    expect(received).toBe(expected);
    // in the order sent, even when sender and recipient are on different shards
    expect(peers.filter((p) => p.order.some((n, k) => k > 0 && n < p.order[k - 1]!)).length).toBe(0);
    // and each from the right sender
    peers.forEach((p, i) => {
      const from = (i + CLIENTS - 1) % CLIENTS;
      for (const body of p.received) expect(Number(BODY.exec(body)![1])).toBe(from);
    });
    for (const p of peers) p.socket.end('</stream:stream>');
    expect(server.output()).not.toMatch(/"level":"(warn|error|fatal)"/);
  }, Math.max(60_000, CLIENTS * 60));
});
