import { setImmediate as settle } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { loadCore } from '../../src/core/parser.js';
import { C2SStream, type C2SDeps, type C2SOptions } from '../../src/stream/c2s.js';
import { StreamManagement, isStanzaBytes } from '../../src/stream/sm.js';
import { AUTH_OK, BIND, HEADER, RecordingTransport, STREAM_OPTIONS, plainSasl, recordingRouter, streamErrorOf } from './stream-helpers.js';

const OPTIONS: C2SOptions = { ...STREAM_OPTIONS, streamManagement: { resumeTimeoutMs: 60_000, maxUnacked: 5 } };
const SM = "xmlns='urn:xmpp:sm:3'";
const AUTH = AUTH_OK;

const core = loadCore();

/** A server's worth of shared state: the router, the resumable sessions, what was kept. */
function world(options: Partial<C2SOptions> = {}) {
  let now = 0;
  const router = recordingRouter();
  const smSessions = new Map<string, C2SStream>();
  const kept: string[][] = [];
  const deps: Omit<C2SDeps, 'core'> = {
    router,
    sasl: plainSasl,
    smSessions,
    now: () => now,
    onUnacked: (_s, stanzas) => kept.push(stanzas.map((x) => x.toString())),
  };
  async function connect() {
    const transport = new RecordingTransport({ secure: true });
    const stream = new C2SStream(transport, { ...OPTIONS, ...options }, { core, ...deps });
    transport.sink = stream;
    const feed = async (text: string) => {
      transport.sink!.feed(Buffer.from(text));
      await settle();
      stream.flush();
      return transport.take();
    };
    return { transport, stream, feed };
  }
  async function login(resource = true) {
    const c = await connect();
    await c.feed(HEADER);
    await c.feed(AUTH);
    const features = await c.feed(HEADER);
    if (resource) await c.feed(BIND);
    return { ...c, features };
  }
  return { router, smSessions, kept, connect, login, tick: (ms: number) => (now += ms) };
}

describe('XEP-0198 stream management', () => {
  it('is offered after authentication when configured', async () => {
    const w = world();
    expect((await w.login(false)).features).toContain("<sm xmlns='urn:xmpp:sm:3'/>");
  });

  it('refuses <enable/> before binding with unexpected-request (§3)', async () => {
    const c = await world().login(false);
    expect(await c.feed(`<enable ${SM}/>`)).toBe(
      `<failed ${SM}><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`,
    );
  });

  it('enables with a resumption id and the resume timeout in seconds, once', async () => {
    const w = world();
    const c = await w.login();
    const out = await c.feed(`<enable ${SM} resume='true'/>`);
    expect(out).toMatch(/^<enabled xmlns='urn:xmpp:sm:3' id='[0-9a-f]{32}' resume='true' max='60'\/>$/);
    expect(w.smSessions.size).toBe(1);
    expect(await c.feed(`<enable ${SM}/>`)).toContain('<unexpected-request');
  });

  it('enables without an id when resumption is not asked', async () => {
    const c = await world().login();
    expect(await c.feed(`<enable ${SM}/>`)).toBe(`<enabled ${SM}/>`);
  });

  it('counts handled stanzas and answers <r/> with h (§4)', async () => {
    const c = await world().login();
    await c.feed(`<enable ${SM}/>`);
    await c.feed("<presence/><message to='bob@localhost'><body>1</body></message><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(await c.feed(`<r ${SM}/>`)).toBe(`<a ${SM} h='3'/>`);
  });

  it('keeps sent stanzas until acknowledged, asking once per batch', async () => {
    const c = await world().login();
    await c.feed(`<enable ${SM}/>`);
    c.stream.send("<message from='bob@localhost/x'><body>1</body></message>");
    c.stream.send("<message from='bob@localhost/x'><body>2</body></message>");
    c.stream.flush();
    const out = c.transport.take();
    expect(out.endsWith(`<r ${SM}/>`)).toBe(true);
    c.stream.send("<presence from='bob@localhost/x'/>");
    c.stream.flush();
    expect(c.transport.take()).not.toContain('<r ');
    await c.feed(`<a ${SM} h='2'/>`);
    c.stream.close();
    expect(c.transport.take()).toBe('</stream:stream>');
  });

  it('closes with undefined-condition when h acknowledges more than was sent (§4)', async () => {
    const c = await world().login();
    await c.feed(`<enable ${SM}/>`);
    c.stream.send('<message><body>1</body></message>');
    expect(streamErrorOf(await c.feed(`<a ${SM} h='2'/>`))).toBe('undefined-condition');
  });

  it('closes with resource-constraint past the unacknowledged limit', async () => {
    const c = await world().login();
    await c.feed(`<enable ${SM}/>`);
    for (let i = 0; i < 6; i++) c.stream.send(`<message><body>${i}</body></message>`);
    c.stream.flush();
    expect(streamErrorOf(c.transport.take())).toBe('resource-constraint');
  });

  it('keeps a dropped session bound, then resumes it on a new connection with what was not acknowledged (§5)', async () => {
    const w = world();
    const old = await w.login();
    const enabled = await old.feed(`<enable ${SM} resume='true'/>`);
    const id = /id='([0-9a-f]+)'/.exec(enabled)![1]!;
    await old.feed('<presence/>');
    old.stream.send("<message from='bob@localhost/x'><body>seen</body></message>");
    old.stream.send("<message from='bob@localhost/x'><body>lost in flight</body></message>");
    old.stream.flush();
    old.transport.take();
    old.stream.transportClosed();
    expect(old.stream.isDetached).toBe(true);
    expect(w.router.log.unbound).toEqual([]);
    old.stream.send("<message from='bob@localhost/x'><body>while away</body></message>");

    const fresh = await w.login(false);
    const out = await fresh.feed(`<resume ${SM} previd='${id}' h='1'/>`);
    expect(out).toBe(
      `<resumed ${SM} h='1' previd='${id}'/>` +
        "<message from='bob@localhost/x'><body>lost in flight</body></message>" +
        "<message from='bob@localhost/x'><body>while away</body></message>" +
        `<r ${SM}/>`,
    );
    expect(old.stream.isDetached).toBe(false);
    expect(old.stream.jid?.full).toBe('alice@localhost/phone');
    // The connection now speaks for the old session: the router sees the same session object.
    await fresh.feed("<message to='bob@localhost'><body>after</body></message>");
    expect(w.router.log.routed.at(-1)!.session).toBe(old.stream);
    expect(await fresh.feed(`<r ${SM}/>`)).toBe(`<a ${SM} h='2'/>`);
    old.stream.send('<presence/>');
    old.stream.flush();
    expect(fresh.transport.take()).toBe('<presence/>');
    expect(w.router.log.bound).toHaveLength(1);
  });

  it('keeps working when the transport cannot re-attach: the resuming connection forwards its bytes', async () => {
    const w = world();
    const old = await w.login();
    const id = /id='([0-9a-f]+)'/.exec(await old.feed(`<enable ${SM} resume='true'/>`))![1]!;
    old.stream.transportClosed();
    const fresh = await w.login(false);
    (fresh.transport as { attach?: unknown }).attach = undefined;
    await fresh.feed(`<resume ${SM} previd='${id}' h='0'/>`);
    await fresh.feed("<message to='bob@localhost'><body>via the carrier</body></message>");
    expect(w.router.log.routed.at(-1)!.session).toBe(old.stream);
    fresh.stream.transportClosed();
    expect(old.stream.isDetached).toBe(true);
  });

  it('takes over a session whose old connection is still open, closing that one', async () => {
    const w = world();
    const old = await w.login();
    const id = /id='([0-9a-f]+)'/.exec(await old.feed(`<enable ${SM} resume='true'/>`))![1]!;
    const fresh = await w.login(false);
    expect(await fresh.feed(`<resume ${SM} previd='${id}' h='0'/>`)).toBe(`<resumed ${SM} h='0' previd='${id}'/>`);
    expect(old.transport.ended).toBe(true);
    old.transport.sink!.transportClosed();
    expect(w.router.log.unbound).toEqual([]);
  });

  it('answers an unknown or foreign previd with item-not-found, and binding still works', async () => {
    const w = world();
    const c = await w.login(false);
    expect(await c.feed(`<resume ${SM} previd='nope' h='0'/>`)).toContain('<item-not-found');
    expect(await c.feed(BIND)).toContain('<jid>alice@localhost/phone</jid>');
  });

  it('ends a detached session after the resume timeout and keeps its unacknowledged stanzas', async () => {
    const w = world();
    const c = await w.login();
    await c.feed(`<enable ${SM} resume='true'/>`);
    c.stream.send("<message type='chat'><body>never acked</body></message>");
    c.stream.flush();
    c.stream.transportClosed();
    c.stream.checkTimeouts(w.tick(60_000));
    expect(w.router.log.unbound).toEqual([]);
    c.stream.checkTimeouts(w.tick(1));
    expect(w.router.log.unbound).toEqual([c.stream]);
    expect(w.kept).toEqual([["<message type='chat'><body>never acked</body></message>"]]);
    expect(w.smSessions.size).toBe(0);
  });

  it('ends a detached session that collects more than the unacknowledged limit', async () => {
    const w = world();
    const c = await w.login();
    await c.feed(`<enable ${SM} resume='true'/>`);
    c.stream.transportClosed();
    for (let i = 0; i < 6; i++) c.stream.send(`<message type='chat'><body>${i}</body></message>`);
    c.stream.flush();
    expect(w.router.log.unbound).toEqual([c.stream]);
    expect(w.kept[0]).toHaveLength(6);
  });

  it('keeps unacknowledged stanzas of a session closed without resumption', async () => {
    const w = world();
    const c = await w.login();
    await c.feed(`<enable ${SM}/>`);
    c.stream.send('<message><body>x</body></message>');
    await c.feed('</stream:stream>');
    expect(w.kept).toEqual([['<message><body>x</body></message>']]);
  });
});

describe('stream management arithmetic', () => {
  it('wraps h at 2^32 (§5)', () => {
    const sm = new StreamManagement(null);
    for (let i = 0; i < 3; i++) sm.sentStanza(`<message>${i}</message>`);
    (sm as unknown as { acked: number; sent: number }).acked = 2 ** 32 - 1;
    (sm as unknown as { acked: number; sent: number }).sent = 2 ** 32 + 2;
    sm.acknowledge(1);
    expect(sm.unackedCount).toBe(1);
  });

  it('tells stanzas from nonzas', () => {
    expect(isStanzaBytes('<message/>')).toBe(true);
    expect(isStanzaBytes(Buffer.from("<presence from='a'/>"))).toBe(true);
    expect(isStanzaBytes("<iq type='result'/>")).toBe(true);
    expect(isStanzaBytes("<inactive xmlns='urn:xmpp:csi:0'/>")).toBe(false);
    expect(isStanzaBytes('<messages/>')).toBe(false);
    expect(isStanzaBytes("<r xmlns='urn:xmpp:sm:3'/>")).toBe(false);
  });
});
