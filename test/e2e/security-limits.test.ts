/**
 * Limits and fairness over real sockets (docs/security.md): refusal of an address after repeated
 * failed authentication, the total connection cap, the slow-reader output bound, the idle
 * timeout, and the shapers (which slow a client down but drop nothing). Each server here has
 * small limits so the policy shows quickly; a session logged in beforehand keeps working.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  PASSWORDS,
  RawClient,
  SASL,
  STREAM_HEADER,
  plain,
  roundTrip,
  startTestServer,
  streamError,
  type TestServer,
} from './harness.js';


/** Everything opened by a test, closed after it whatever happened. */
const open: RawClient[] = [];
async function connect(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  open.push(c);
  return c;
}
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function loggedIn(port: number, user: string, resource: string): Promise<{ c: RawClient; jid: string }> {
  const c = await connect(port);
  return { c, jid: await c.login(user, { tls: false, resource }) };
}


describe('limits.auth_ban_failures: an address that keeps failing is refused for a while', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer([
      '--tls', 'optional',
      '--set', 'limits.auth_ban_failures=3',
      '--set', 'limits.auth_ban_time=2s',
      '--set', 'limits.auth_failure_delay=0s',
      '--set', 'limits.auth_attempts=10',
    ]);
  });
  afterAll(async () => t?.stop());

  it('refuses new connections with policy-violation after the failures, lets it back after the window', async () => {
    // Logged in before the attack, from the same (loopback) address.
    const alice = await loggedIn(t.port, 'alice', 'a');
    const bob = await loggedIn(t.port, 'bob', 'b');
    const guesser = await connect(t.port);
    guesser.send(STREAM_HEADER);
    await guesser.waitFor('</stream:features>');
    for (let i = 1; i <= 3; i++) {
      guesser.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', `guess${i}`)}</auth>`);
      await guesser.waitFor(new RegExp(`(<not-authorized/>[^]*){${i}}`));
    }
    const refused = await connect(t.port);
    await refused.waitClosed();
    // RFC 6120 §4.9.1.2: our header first, so the client can parse why.
    expect(refused.received).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
    expect(refused.received).toMatch(streamError('policy-violation'));
    expect(refused.received).toContain('too many failed authentications from your address');
    // Sessions already open are not the guesser: they keep working.
    await roundTrip(alice, bob);
    // The refusal lasts while the failures are inside auth_ban_time, and no longer.
    await new Promise((r) => setTimeout(r, 2100));
    const later = await connect(t.port);
    await later.login('carol', { tls: false });
  });
});

describe('limits.max_connections: the total cap', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(['--tls', 'optional', '--set', 'limits.max_connections=3']);
  });
  afterAll(async () => t?.stop());

  it('refuses the connection past the cap after a header, and admits again once one closes', async () => {
    const alice = await loggedIn(t.port, 'alice', 'a');
    const bob = await loggedIn(t.port, 'bob', 'b');
    const third = await connect(t.port);
    const fourth = await connect(t.port);
    await fourth.waitClosed();
    expect(fourth.received).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
    expect(fourth.received).toMatch(streamError('policy-violation'));
    expect(fourth.received).toContain('the server is at its connection limit');
    await roundTrip(alice, bob);
    third.close();
    await third.waitClosed();
    // The server counts the close asynchronously: retry until a slot is seen free.
    let admitted: RawClient | null = null;
    for (let i = 0; i < 50 && !admitted; i++) {
      const c = await connect(t.port);
      c.send(STREAM_HEADER);
      await c.waitFor(/<\/stream:features>|<\/stream:stream>/);
      if (c.received.includes('</stream:features>')) admitted = c;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(admitted).not.toBeNull();
  });
});

describe('limits.output_queue_bytes: a reader too slow for what it is sent', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer([
      '--tls', 'optional',
      '--set', 'limits.output_queue_bytes=16KiB',
      // The sender must not be shaped: the point is the receiver.
      '--set', 'limits.byte_rate.rate=0',
    ]);
  });
  afterAll(async () => t?.stop());

  it('is closed with resource-constraint once its unread output passes the bound; the sender is untouched', async () => {
    const alice = await loggedIn(t.port, 'alice', 'a');
    const bob = await loggedIn(t.port, 'bob', 'b');
    const slow = await loggedIn(t.port, 'carol', 'slow');
    slow.c.socket.pause();
    const body = 'z'.repeat(200 * 1024);
    // 40 MB: far beyond what the kernel's socket buffers on both ends can absorb.
    for (let i = 0; i < 200; i++) bob.c.send(`<message to='${slow.jid}' type='chat'><body>${body}</body></message>`);
    // Once the server has routed everything bob sent and answered a ping after it, the
    // policy has been applied to the slow reader.
    bob.c.send(`<iq type='get' id='after-flood'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await bob.c.waitFor("id='after-flood'", 20_000);
    slow.c.socket.resume();
    await slow.c.waitClosed(20_000);
    expect(slow.c.received).toMatch(streamError('resource-constraint'));
    // Bounded: the server gave up long before queueing all 200 messages.
    expect(slow.c.received.split('<message ').length - 1).toBeLessThan(200);
    await roundTrip(alice, bob);
  });
});

describe('limits.idle_timeout', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(['--tls', 'optional', '--set', 'limits.idle_timeout=1s']);
  });
  afterAll(async () => t?.stop());

  it('closes a silent bound stream with connection-timeout, but not one sending whitespace keepalives (RFC 6120 §4.6.1)', async () => {
    const silent = await loggedIn(t.port, 'alice', 'silent');
    const keepalive = await loggedIn(t.port, 'bob', 'keepalive');
    const timer = setInterval(() => keepalive.c.send(' '), 250);
    try {
      await silent.c.waitClosed(5000);
      expect(silent.c.received).toMatch(streamError('connection-timeout'));
      expect(keepalive.c.closed).toBe(false);
      keepalive.c.send(`<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await keepalive.c.waitFor("id='still'");
    } finally {
      clearInterval(timer);
    }
  });
});

describe('the shapers slow a client down and drop nothing', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer([
      '--tls', 'optional',
      '--set', 'limits.preauth_byte_rate.rate=2KiB',
      '--set', 'limits.preauth_byte_rate.burst=2KiB',
      '--set', 'limits.stanza_rate.rate=100',
      '--set', 'limits.stanza_rate.burst=100',
    ]);
  });
  afterAll(async () => t?.stop());

  it('reads an anonymous peer at limits.preauth_byte_rate, then at the full rate once authenticated', async () => {
    const c = await connect(t.port);
    // 6KiB of whitespace keepalives before authenticating: 4KiB over a 2KiB bucket at 2KiB/s.
    // A read is never cut short (what was read is handled); the pause applies to the next one.
    // How long that pause lasts is a unit test on a fake clock (test/unit/stream-limits.test.ts);
    // here: the shaped connection loses nothing and authenticates once the pause is over.
    c.send(STREAM_HEADER + ' '.repeat(6 * 1024));
    await c.waitFor('</stream:features>');
    c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('carol', PASSWORDS.carol!)}</auth>`);
    await c.waitFor('<success', 10_000);
    expect(c.closed).toBe(false);
    c.take();
    c.send(STREAM_HEADER);
    await c.waitFor('</stream:features>');
    c.take();
    // Authenticated: 64KiB (32 times the pre-auth burst) goes through whole.
    const body = 'q'.repeat(64 * 1024);
    c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
    await c.waitFor('</jid>');
    c.send(`<message to='carol@localhost' type='chat' id='self'><body>${body}</body></message>`);
    c.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await c.waitFor("id='p'", 10_000);
    expect(c.closed).toBe(false);
  });

  it('pauses a client over limits.stanza_rate and still answers every stanza, in order', async () => {
    const c = await connect(t.port);
    await c.login('alice', { tls: false, resource: 'burst' });
    let pings = '';
    for (let i = 0; i < 200; i++) pings += `<iq type='get' id='s${i}'><ping xmlns='urn:xmpp:ping'/></iq>`;
    c.send(pings);
    await c.waitFor("id='s199'", 10_000);
    // What was read is answered at once; the next read waits until the 100 stanzas over a
    // bucket of 100 are repaid at 100/s (the length of that pause is a fake-clock unit test in
    // test/unit/stream.test.ts and stream-limits.test.ts).
    c.send(`<iq type='get' id='s200'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await c.waitFor("id='s200'", 10_000);
    expect(c.closed).toBe(false);
    const ids = [...c.received.matchAll(/id='s(\d+)'/g)].map((m) => Number(m[1]));
    expect(ids).toEqual(Array.from({ length: 201 }, (_, i) => i));
  });
});

describe('input held while a SASL answer is pending', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer([
      '--tls', 'optional',
      '--set', 'limits.auth_failure_delay=2s',
      '--set', 'limits.preauth_byte_rate.rate=0',
    ]);
  });
  afterAll(async () => t?.stop());

  it('is bounded by limits.preauth_max_stanza_bytes: streaming data during the back-off is a policy-violation', async () => {
    const alice = await loggedIn(t.port, 'alice', 'a');
    const bob = await loggedIn(t.port, 'bob', 'b');
    const c = await connect(t.port);
    c.send(STREAM_HEADER);
    await c.waitFor('</stream:features>');
    c.take();
    c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', 'wrong')}</auth>`);
    // The wrong password's answer is held back 2s; meanwhile the client keeps sending.
    await new Promise((r) => setTimeout(r, 100));
    c.send(' '.repeat(64 * 1024));
    await c.waitClosed();
    expect(c.received).toMatch(streamError('policy-violation'));
    expect(c.received).toContain('too much data sent before the SASL answer');
    await roundTrip(alice, bob);
  });
});
