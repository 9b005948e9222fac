/**
 * Hostile input over XMPP-over-WebSocket (RFC 7395): every stream error must still be framed
 * as RFC 7395 wants — the error as a standalone message with its stream namespace declared, then
 * <close/> (§3.6) — whatever the stream layer joined into one write; a message larger than any
 * stanza may be is refused before it is buffered; and a TCP bystander is never disturbed.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitTopLevel } from '../../src/transport/websocket.js';
import { PASSWORDS, RawClient, SASL, plain, startTestServer, type TestServer } from './harness.js';

const FRAMING = "xmlns='urn:ietf:params:xml:ns:xmpp-framing'";
const OPEN = `<open ${FRAMING} to='localhost' version='1.0'/>`;

let t: TestServer;
let bob: RawClient;

beforeAll(async () => {
  t = await startTestServer([
    '--tls', 'optional',
    '--set', 'listen.websocket.enabled=true',
    '--set', 'listen.websocket.port=0',
    '--set', 'limits.max_stanza_bytes=64KiB',
  ]);
  bob = await RawClient.connect(t.port);
  await bob.login('bob', { tls: false, resource: 'tcp' });
});

afterAll(async () => {
  bob?.close();
  await t?.stop();
});

interface WsClient {
  ws: WebSocket;
  messages: string[];
  closed: Promise<number>;
  waitFor(pattern: RegExp): Promise<void>;
}

async function wsConnect(): Promise<WsClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.server.websocket!.port}/xmpp-websocket`, 'xmpp');
  const messages: string[] = [];
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => {});
  const listeners: (() => void)[] = [];
  ws.on('message', (data) => {
    messages.push(String(data));
    for (const l of [...listeners]) l();
  });
  await new Promise((resolve) => ws.once('open', resolve));
  const waitFor = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}: ${JSON.stringify(messages)}`)), 5000);
      const check = () => {
        if (messages.some((m) => pattern.test(m))) {
          clearTimeout(timer);
          listeners.splice(listeners.indexOf(check), 1);
          resolve();
        }
      };
      listeners.push(check);
      check();
    });
  return { ws, messages, closed, waitFor };
}

/** A WebSocket client whose stream is open: <open/> sent, our <open/> and features received. */
async function wsOpened(): Promise<WsClient> {
  const c = await wsConnect();
  c.ws.send(OPEN);
  await c.waitFor(/<\/stream:features>$/);
  return c;
}

/** §3.6: a stream error is a message of its own (stream prefix declared), then <close/>. */
function expectFramedStreamError(messages: string[], condition: string): void {
  const last = messages.slice(-2);
  expect(last[0]).toMatch(
    new RegExp(`^<stream:error xmlns:stream='http://etherx.jabber.org/streams'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>(<text [^>]*>[^<]*</text>)?</stream:error>$`),
  );
  expect(last[1]).toBe(`<close ${FRAMING}/>`);
}

/** Wait for <close/>, check the stream error framed before it, and for the WebSocket to close. */
async function closedWith(c: WsClient, condition: string): Promise<void> {
  await c.waitFor(/^<close /);
  expectFramedStreamError(c.messages, condition);
  await c.closed;
}

async function bobStillWorks(): Promise<void> {
  bob.take();
  bob.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await bob.waitFor("id='alive'");
  expect(bob.closed).toBe(false);
}

describe('hostile input over WebSocket (RFC 7395)', () => {
  it('every reply is one element per message: <open/> and the features arrive as two messages (§3.3.3)', async () => {
    const c = await wsOpened();
    expect(c.messages[0]).toMatch(/^<open [^>]*\/>$/);
    expect(c.messages[1]).toMatch(/^<stream:features xmlns:stream='http:\/\/etherx.jabber.org\/streams'>.*<\/stream:features>$/);
    c.ws.terminate();
  });

  it('text where an element belongs → <not-well-formed/> as its own message, then <close/>', async () => {
    const c = await wsOpened();
    c.ws.send('just text');
    await closedWith(c, 'not-well-formed');
    await bobStillWorks();
  });

  it('two elements in one message → <not-well-formed/>, framed, and neither is acted on (§3.3.3)', async () => {
    const c = await wsOpened();
    c.ws.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', PASSWORDS.alice!)}</auth><message to='bob@localhost'/>`);
    await c.waitFor(/^<close /);
    expect(c.messages.some((m) => m.startsWith('<success '))).toBe(false);
    expectFramedStreamError(c.messages, 'not-well-formed');
    await c.closed;
    await bobStillWorks();
  });

  it('an element split over two messages → <not-well-formed/>, framed (§3.3.3)', async () => {
    const c = await wsOpened();
    c.ws.send(`<auth ${SASL} mechanism='PLAIN'>`);
    await closedWith(c, 'not-well-formed');
  });

  it('an RFC 6120 <stream:stream> header instead of <open/> → our <open/>, <invalid-namespace/>, <close/> (§3.3.2)', async () => {
    const c = await wsConnect();
    c.ws.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
    await c.waitFor(/^<close /);
    expect(c.messages).toHaveLength(3);
    expect(c.messages[0]).toMatch(/^<open [^>]*\/>$/);
    expectFramedStreamError(c.messages, 'invalid-namespace');
    await c.closed;
  });

  it('<open/> outside the framing namespace → <invalid-namespace/>, also mid-stream (§3.3.2)', async () => {
    const c = await wsOpened();
    c.ws.send("<open xmlns='jabber:client' to='localhost' version='1.0'/>");
    await closedWith(c, 'invalid-namespace');
  });

  it('a second <open/> where no restart is due is answered: <bad-format/>, framed, then <close/> (§3.4, RFC 6120 §4.3.3)', async () => {
    const c = await wsOpened();
    c.ws.send(OPEN);
    await closedWith(c, 'bad-format');
  });

  it('after SASL success the new <open/> is answered with <open/> and features, also when sent before <success/> arrived (§3.7)', async () => {
    const c = await wsOpened();
    // Pipelined: the <open/> is held until the SASL answer, then opens the new stream.
    c.ws.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', PASSWORDS.alice!)}</auth>`);
    c.ws.send(OPEN);
    await c.waitFor(/xmpp-bind/);
    const success = c.messages.findIndex((m) => m.startsWith('<success '));
    expect(success).toBeGreaterThan(0);
    expect(c.messages[success + 1]).toMatch(/^<open [^>]*\/>$/);
    expect(c.messages[success + 2]).toMatch(/^<stream:features xmlns:stream='http:\/\/etherx.jabber.org\/streams'>.*xmpp-bind/);
    // A third <open/> once the new stream is open is no restart either.
    c.ws.send(OPEN);
    await closedWith(c, 'bad-format');
    await bobStillWorks();
  });

  it('a binary message is refused with close code 1003: XMPP frames are text (§3.2, RFC 6455 §7.4.1)', async () => {
    const c = await wsOpened();
    c.ws.send(Buffer.from("<presence xmlns='jabber:client'/>"), { binary: true });
    expect(await c.closed).toBe(1003);
    expect(c.messages.some((m) => m.startsWith('<presence'))).toBe(false);
    await bobStillWorks();
  });

  it('a message larger than limits.max_stanza_bytes is refused without buffering it (close 1009)', async () => {
    const c = await wsOpened();
    c.ws.send(`<message to='bob@localhost'><body>${'x'.repeat(4 * 1024 * 1024)}</body></message>`);
    // RFC 6455 §7.4.1: 1009, message too big to process; the server never holds the 4 MiB.
    expect(await c.closed).toBe(1009);
    await bobStillWorks();
    expect(bob.received).not.toContain('xxxx');
  });

  it('a stanza just over the limit but under the message bound gets <policy-violation/>, framed', async () => {
    const c = await wsOpened();
    c.ws.send(`<message to='bob@localhost'><body>${'x'.repeat(20 * 1024)}</body></message>`);
    await c.waitFor(/^<close /);
    // Before authentication the bound is limits.preauth_max_stanza_bytes (16 KiB).
    expectFramedStreamError(c.messages, 'policy-violation');
    await bobStillWorks();
  });
});

describe('splitTopLevel (what the WebSocket transport cuts our joined writes into)', () => {
  it('separates the header, elements, a self-closed element and the close tag, keeping quotes intact', () => {
    const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='a>b' version='1.0'>";
    const features = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
    const error = "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text>a &gt; b</text></stream:error>";
    expect(splitTopLevel(header + features + "<r xmlns='urn:xmpp:sm:3'/>" + error + '</stream:stream>')).toEqual([
      header,
      features,
      "<r xmlns='urn:xmpp:sm:3'/>",
      error,
      '</stream:stream>',
    ]);
    expect(splitTopLevel("<iq type='result' id='x'/>")).toEqual(["<iq type='result' id='x'/>"]);
    expect(splitTopLevel(' ')).toEqual([' ']);
  });
});
