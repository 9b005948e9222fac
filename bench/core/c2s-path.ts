/**
 * Shared by the in-process path benchmarks (router-path.ts, pep.ts): client streams driven
 * through C2SStream → WASM core → router without sockets, writing into a transport that only
 * counts bytes, and a ring of accounts subscribed both ways to their neighbours.
 */
import type { Storage } from '../../src/storage/types.js';
import { C2SStream, type C2SDeps, type C2SOptions, type StreamTransport } from '../../src/stream/c2s.js';

export const DOMAIN = 'localhost';
export const PASSWORD = 'bench';
/** Stanzas fed per event-loop turn: the streams flush once per turn, as over real sockets. */
export const PER_TURN = 100;

export const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;
export const OPTIONS: C2SOptions = {
  domain: DOMAIN,
  tls: 'optional',
  registration: 'closed',
  preAuthMaxStanzaBytes: 65536,
  maxStanzaBytes: 262144,
  saslMaxAttempts: 3,
};

/** Writes go nowhere; the bytes are counted so the work cannot be skipped. */
export class CountingTransport implements StreamTransport {
  readonly secure = true;
  readonly canStartTls = false;
  bytes = 0;
  text = '';
  keepText = true;
  write(chunks: (string | Uint8Array)[]): void {
    for (const c of chunks) {
      this.bytes += typeof c === 'string' ? c.length : c.byteLength;
      if (this.keepText) this.text += typeof c === 'string' ? c : Buffer.from(c).toString('utf8');
    }
  }
  startTls(): void {}
  end(): void {}
}

export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Account names u0 … u(users-1), indices taken modulo users. */
export const ringName =
  (users: number) =>
  (i: number): string =>
    `u${((i % users) + users) % users}`;

/** Contacts are ring neighbours (i±1 … i±contacts/2), subscribed both ways. */
export function seedRing(storage: Storage, users: number, contacts: number): void {
  const name = ringName(users);
  for (let i = 0; i < users; i++) {
    storage.users.create(`${name(i)}@${DOMAIN}`, PASSWORD);
    for (let d = 1; d <= contacts / 2; d++) {
      for (const j of [i - d, i + d]) {
        storage.rosters.set(`${name(i)}@${DOMAIN}`, { jid: `${name(j)}@${DOMAIN}`, name: null, groups: [], subscription: 'both', ask: null, approved: false });
      }
    }
  }
}

export interface PathSession {
  stream: C2SStream;
  transport: CountingTransport;
  feed(xml: string): void;
}

/** A stream logged in with PLAIN as `user`, then fed `after` (bind, roster, presence, …). */
export async function login(deps: C2SDeps, user: string, after: string): Promise<PathSession> {
  const transport = new CountingTransport();
  const stream = new C2SStream(transport, OPTIONS, deps);
  const feed = (xml: string) => stream.feed(Buffer.from(xml));
  feed(HEADER);
  feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64')}</auth>`);
  while (!transport.text.includes('<success')) await turn();
  feed(HEADER);
  feed(after);
  return { stream, transport, feed };
}
