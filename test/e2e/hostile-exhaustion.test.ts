/**
 * Resource exhaustion against a real server (--workers 0, so the test can read the core's and
 * the process's own counters): connection floods that never authenticate, a slowloris header,
 * more resources and roster items than an account may hold, subscription and IQ floods. Each
 * must hit a bound with its RFC answer while two bystanders keep exchanging messages, and the
 * memory it took must come back.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCore } from '../../src/core/parser.js';
import { RawClient, STREAM_HEADER, roundTrip, startTestServer, streamError, type TestServer } from './harness.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

const STANZAS_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let t: TestServer;
let alice: { c: RawClient; jid: string };
let bob: { c: RawClient; jid: string };
const open: RawClient[] = [];

beforeAll(async () => {
  t = await startTestServer([
    '--tls', 'optional',
    '--set', 'limits.preauth_timeout=2s',
    '--set', 'limits.auth_failure_delay=0s',
    '--set', 'limits.auth_ban_failures=0',
    // The floods below are about memory and answers, not the shaper (security-limits tests it).
    '--set', 'limits.stanza_rate.rate=100000',
    '--set', 'limits.stanza_rate.burst=100000',
    '--set', 'limits.byte_rate.rate=0',
    // The flooding client reads in this same process, so replies may wait in the socket; the
    // slow-reader bound is security-limits' subject, not these floods'.
    '--set', 'limits.output_queue_bytes=256MiB',
    // Below the default (5000) so the never-acknowledging client trips it with a small flood.
    '--set', 'stream_management.max_unacked=1000',
  ]);
  alice = { c: await connect(), jid: '' };
  alice.jid = await alice.c.login('alice', { tls: false, resource: 'desk' });
  bob = { c: await connect(), jid: '' };
  bob.jid = await bob.c.login('bob', { tls: false, resource: 'phone' });
});

afterAll(async () => {
  for (const c of open) c.close();
  await t?.stop();
});

async function connect(): Promise<RawClient> {
  const c = await RawClient.connect(t.port);
  open.push(c);
  return c;
}

async function bystandersStillWork(): Promise<void> {
  await roundTrip(alice, bob);
  expect(alice.c.closed || bob.c.closed).toBe(false);
}

/** Send `stanza(i)` for i in [from, to) in writes of 500 stanzas. */
function sendAll(c: RawClient, from: number, to: number, stanza: (i: number) => string): void {
  for (let i = from; i < to; i += 500) {
    let chunk = '';
    for (let j = i; j < Math.min(to, i + 500); j++) chunk += stanza(j);
    c.send(chunk);
  }
}

/** Send `n` copies of `stanza(i)` and return once `last` was received. */
async function flood(c: RawClient, n: number, stanza: (i: number) => string, last: string): Promise<string> {
  sendAll(c, 0, n, stanza);
  return c.waitFor(last, 60_000);
}

describe('connections that never authenticate', () => {
  it('are each closed with <connection-timeout/> after limits.preauth_timeout, and their parsers and memory come back', async () => {
    const core = loadCore();
    const parsersBefore = core.stats().parsers;
    let heapTopAfterFirst = 0;
    for (let round = 0; round < 2; round++) {
      const idle: RawClient[] = [];
      // Half send nothing at all, half stop after the header.
      for (let i = 0; i < 400; i++) {
        const c = await connect();
        if (i % 2 === 1) c.send(STREAM_HEADER);
        idle.push(c);
      }
      expect(core.stats().parsers).toBeGreaterThanOrEqual(parsersBefore + 400);
      await bystandersStillWork();
      await Promise.all(idle.map((c) => c.waitClosed(15_000)));
      for (const c of idle) {
        // RFC 6120 §4.9.3.4, with our header first when the client sent none (§4.9.1.2).
        expect(c.received).toMatch(streamError('connection-timeout'));
        expect(c.received.startsWith("<?xml version='1.0'?><stream:stream ")).toBe(true);
      }
      expect(core.stats().parsers).toBe(parsersBefore);
      expect(t.server.streams.size).toBe(2);
      // The second wave reuses the first wave's WASM memory: nothing leaked per connection.
      if (round === 0) heapTopAfterFirst = core.stats().heapBytes;
      else expect(core.stats().heapBytes).toBe(heapTopAfterFirst);
    }
    await bystandersStillWork();
  });

  it('a slowloris header (one byte at a time, never finished in time) is closed by the same timeout', async () => {
    const c = await connect();
    const header = Buffer.from(STREAM_HEADER);
    let sent = 0;
    // A byte every 50 ms: the header would take over 6 s; the timeout is 2 s, and each byte
    // arriving must not restart it.
    while (!c.closed && sent < header.length) {
      c.socket.write(header.subarray(sent, sent + 1));
      sent++;
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.waitClosed();
    expect(sent).toBeLessThan(header.length);
    expect(c.received).toMatch(streamError('connection-timeout'));
    await bystandersStillWork();
  });
});

describe('per-account bounds', () => {
  it('an eleventh resource of one account is refused with <resource-constraint/>; the ten bound stay usable', async () => {
    const sessions: RawClient[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await connect();
      await c.login('carol', { tls: false, resource: `r${i}` });
      sessions.push(c);
    }
    const extra = await connect();
    await extra.login('carol', { tls: false, bind: false });
    extra.send("<iq type='set' id='b11'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r10</resource></bind></iq>");
    const got = await extra.waitFor("id='b11'");
    // RFC 6120 §7.6.2.1: the account has reached its limit of connected resources.
    expect(got).toMatch(new RegExp(`<iq type='error' id='b11'><error type='wait'><resource-constraint xmlns='${STANZAS_NS}'/>`));
    expect(extra.closed).toBe(false);
    // Every bound session still answers.
    for (const [i, c] of sessions.entries()) {
      c.send(`<iq type='get' id='alive${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await c.waitFor(`id='alive${i}'`);
    }
    for (const c of [...sessions, extra]) c.close();
    await bystandersStillWork();
  });

  it('a roster filled to its bound (1000 items) refuses the next item and the next subscription with <resource-constraint/>', async () => {
    const c = await connect();
    await c.login('carol', { tls: false, resource: 'roster' });
    const set = (i: number) =>
      `<iq type='set' id='rs${i}'><query xmlns='jabber:iq:roster'><item jid='contact${i}@example.org'/></query></iq>`;
    await flood(c, 1000, set, "<iq type='result' id='rs999'");
    expect(c.received).not.toContain("type='error'");
    c.take();
    c.send(set(1000));
    const refused = await c.waitFor("id='rs1000'");
    expect(refused).toMatch(new RegExp(`<iq type='error' id='rs1000'[^>]*><error type='wait'><resource-constraint xmlns='${STANZAS_NS}'/>`));
    c.take();
    // RFC 6121 §3.1.2: a subscribe would create a roster item; the bound applies there too.
    c.send("<presence to='alice@localhost' type='subscribe' id='sub1'/>");
    const subRefused = await c.waitFor("id='sub1'");
    expect(subRefused).toMatch(new RegExp(`<presence [^>]*type='error'[^>]*><error type='wait'><resource-constraint xmlns='${STANZAS_NS}'/>`));
    // Updating an item already there is still allowed at the bound.
    c.send("<iq type='set' id='upd'><query xmlns='jabber:iq:roster'><item jid='contact5@example.org' name='Five'/></query></iq>");
    await c.waitFor("<iq type='result' id='upd'");
    expect(t.server.storage.rosters.list('carol@localhost')).toHaveLength(1000);
    c.close();
    await bystandersStillWork();
    // The refused subscription never reached its target.
    expect(alice.c.received).not.toContain("type='subscribe'");
  });
});

describe('roster items (RFC 6121 §2.3.3: server-configured limits → <not-acceptable/>)', () => {
  const set = (id: string, item: string) => `<iq type='set' id='${id}'><query xmlns='jabber:iq:roster'>${item}</query></iq>`;
  const groups = (n: number, prefix = 'g') => Array.from({ length: n }, (_, i) => `<group>${prefix}${i}</group>`).join('');

  it('a name or a group name over 1024 characters, or more than 100 groups, is refused and nothing is stored', async () => {
    const c = await connect();
    await c.login('carol', { tls: false, resource: 'items' });
    const cases: [string, string][] = [
      ['long-name', `<item jid='long-name@example.org' name='${'n'.repeat(1025)}'/>`],
      ['long-group', `<item jid='long-group@example.org'><group>${'g'.repeat(1025)}</group></item>`],
      ['many-groups', `<item jid='many-groups@example.org'>${groups(101)}</item>`],
      // 11000 groups fit in one 256 KiB stanza; checking them pairwise cost ~0.1 s of CPU each.
      ['huge-groups', `<item jid='huge-groups@example.org'>${groups(11000)}</item>`],
    ];
    for (const [id, item] of cases) {
      c.send(set(id, item));
      const got = await c.waitFor(`id='${id}'`);
      expect(got, id).toMatch(new RegExp(`<iq type='error' id='${id}'[^>]*><error type='modify'><not-acceptable xmlns='${STANZAS_NS}'/>`));
      expect(t.server.storage.rosters.get('carol@localhost', `${id}@example.org`)).toBeFalsy();
    }
    // At the limits the item is accepted (carol's roster is full from the test above, so an
    // item already there is updated).
    c.send(set('at-limits', `<item jid='contact7@example.org' name='${'n'.repeat(1024)}'>${groups(99)}<group>${'g'.repeat(1024)}</group></item>`));
    await c.waitFor(/<iq type='result' id='at-limits'/);
    expect(t.server.storage.rosters.get('carol@localhost', 'contact7@example.org')?.groups).toHaveLength(100);
    c.close();
    await bystandersStillWork();
  });
});

describe('XEP-0198 acknowledgements', () => {
  it('a client that enables stream management and never acknowledges is closed with <resource-constraint/> past stream_management.max_unacked (set to 1000 here)', async () => {
    const lazy = await connect();
    const jid = await lazy.login('carol', { tls: false, resource: 'never-acks' });
    lazy.send("<enable xmlns='urn:xmpp:sm:3'/>");
    await lazy.waitFor('<enabled');
    // bob sends 1100 messages; carol's client never answers an <r/>: the bound trips and only
    // carol's stream ends.
    sendAll(bob.c, 0, 1100, (i) => `<message to='${jid}' type='chat' id='u${i}'><body>unacked ${i}</body></message>`);
    await lazy.waitClosed(20_000);
    expect(lazy.received).toMatch(streamError('resource-constraint'));
    // The sender is not affected.
    await bystandersStillWork();
  });
});

describe('private XML storage (XEP-0049)', () => {
  it('keeps at most 100 namespaces per account: the 101st is <resource-constraint/>, replacing one still works', async () => {
    const c = await connect();
    await c.login('carol', { tls: false, resource: 'private' });
    const store = (id: string, ns: string) =>
      `<iq type='set' id='${id}'><query xmlns='jabber:iq:private'><data xmlns='${ns}'>${'p'.repeat(1000)}</data></query></iq>`;
    for (let i = 0; i < 100; i++) c.send(store(`p${i}`, `urn:example:private:${i}`));
    await c.waitFor(/<iq type='result' id='p99'/);
    expect(c.received).not.toContain("type='error'");
    c.take();
    c.send(store('p100', 'urn:example:private:100'));
    const refused = await c.waitFor("id='p100'");
    expect(refused).toMatch(new RegExp(`<iq type='error' id='p100'[^>]*><error type='wait'><resource-constraint xmlns='${STANZAS_NS}'/>`));
    expect(t.server.storage.xml.get('carol@localhost', 'private:urn:example:private:100')).toBeNull();
    c.send(store('p7', 'urn:example:private:7'));
    await c.waitFor(/<iq type='result' id='p7'/);
    c.close();
    await bystandersStillWork();
  });
});

describe('floods', () => {
  it('directed presence to 30000 addresses nobody is at grows nothing, while one that reached bob still gets him our unavailable (RFC 6121 §4.6.3)', async () => {
    const c = await connect();
    const jid = await c.login('carol', { tls: false, resource: 'directed' });
    // Directed presence to a session that exists: remembered, so bob hears the unavailable.
    c.send(`<presence to='${bob.jid}' id='d-real'/>`);
    await bob.c.waitFor(new RegExp(`<presence from='${jid}'[^>]* id='d-real'`));
    const presence = (i: number) => `<presence to='nobody${i}@localhost/r${i}' id='d${i}'/>`;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    const before = heap();
    sendAll(c, 0, 30000, presence);
    // Presence to nobody is dropped silently (§8.5.2.2.2); a ping answered means all were handled.
    c.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>");
    await c.waitFor("id='alive'", 60_000);
    // 30000 remembered addresses would be megabytes in the session's directed-presence set.
    expect(heap() - before).toBeLessThan(2 * 1024 * 1024);
    c.close();
    await bob.c.waitFor(new RegExp(`<presence [^>]*from='${jid.replace(/[.]/g, '\\.')}'[^>]*type='unavailable'`));
    await bystandersStillWork();
  });

  it('20000 IQs to namespaces nobody serves are each answered <service-unavailable/>, and the heap returns to where it was', async () => {
    const sender = await connect();
    await sender.login('carol', { tls: false, resource: 'flood' });
    const iq = (i: number) => `<iq type='get' id='f${i}'><query xmlns='urn:example:unknown:${i % 97}'/></iq>`;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    // A first flood warms every cache and JIT path, so the second one measures growth only.
    await flood(sender, 20000, iq, "id='f19999'");
    const answered = sender.take().match(/<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/g)?.length ?? 0;
    expect(answered).toBe(20000);
    const before = heap();
    await flood(sender, 20000, (i) => iq(i).replace(`id='f${i}'`, `id='g${i}'`), "id='g19999'");
    sender.take();
    const grown = heap() - before;
    // 20000 leaked stanza copies or closures would be megabytes; allow GC noise only.
    expect(grown).toBeLessThan(2 * 1024 * 1024);
    await bystandersStillWork();
  });
});
