/**
 * The XEP-0114 stream state machine without sockets: bytes in (through the real WASM core),
 * bytes out, the host's registry and router replaced by a recorder.
 */
import { describe, expect, it } from 'vitest';
import { loadCore } from '../../src/core/parser.js';
import { ComponentStream, handshakeDigest, type ComponentHost } from '../../src/component/stream.js';
import type { Jid } from '../../src/jid.js';

const core = loadCore();
const HEADER = (to: string, ns = 'jabber:component:accept') =>
  `<stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`;

function setup(connected = new Map<string, ComponentStream>()) {
  const out: string[] = [];
  const routed: { from: string; xml: string }[] = [];
  let ended = false;
  const host: ComponentHost = {
    secretOf: (d) => (d === 'echo.example' ? 's3cret' : undefined),
    attach: (s) => {
      if (connected.has(s.domain!)) return false;
      connected.set(s.domain!, s);
      return true;
    },
    // As the service does: only the registered stream itself unregisters its name.
    detach: (s) => {
      if (connected.get(s.domain ?? '') === s) connected.delete(s.domain!);
    },
    route: (_s, from: Jid, view) => routed.push({ from: from.full, xml: view.toString() }),
  };
  const transport = {
    secure: false,
    canStartTls: false,
    write: (chunks: (string | Uint8Array)[]) => out.push(...chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString()))),
    startTls: () => {},
    end: () => {
      ended = true;
    },
  };
  const stream = new ComponentStream(transport, host, { maxStanzaBytes: 65536 }, core);
  /** Feed in 1..7-byte pieces: the state machine must not care where chunks end. */
  const feed = (text: string) => {
    const bytes = Buffer.from(text);
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 7) + 1) stream.feed(bytes.subarray(i, i + n));
  };
  return { stream, out: () => out.join(''), routed, ended: () => ended, feed, connected };
}

async function turn(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe('XEP-0114 component stream', () => {
  it('answers the header with the component namespace and a fresh id, accepts the handshake (hex in any case), then routes stanzas', async () => {
    const t = setup();
    t.feed(HEADER('Echo.Example'));
    expect(t.out()).toMatch(/^<\?xml version='1.0'\?><stream:stream xmlns:stream='http:\/\/etherx\.jabber\.org\/streams' xmlns='jabber:component:accept' from='echo\.example' id='[0-9a-f]{24}'>$/);
    t.feed(`<handshake>${handshakeDigest(t.stream.streamId, 's3cret').toUpperCase()}</handshake>`);
    await turn();
    expect(t.out()).toContain('<handshake/>');
    expect(t.stream.ready).toBe(true);
    t.feed("<message from='bot@echo.example/x' to='alice@example.org'><body>é</body></message>");
    expect(t.routed).toEqual([{ from: 'bot@echo.example/x', xml: "<message from='bot@echo.example/x' to='alice@example.org'><body>é</body></message>" }]);
    expect(t.ended()).toBe(false);
  });

  const refusals: [string, (t: ReturnType<typeof setup>) => void, string][] = [
    ['an unknown component name', (t) => t.feed(HEADER('other.example')), 'host-unknown'],
    ['a client namespace', (t) => t.feed(HEADER('echo.example', 'jabber:client')), 'invalid-namespace'],
    // RFC 6120 §4.8.5: its stanzas are forwarded as written, so a header-only prefix would reach users unbound.
    ['another prefix declared on the header', (t) => t.feed(HEADER('echo.example').replace(' to=', " xmlns:x='urn:x' to=")), 'bad-namespace-prefix'],
    ['a stanza before the handshake', (t) => t.feed(HEADER('echo.example') + "<message from='echo.example' to='a@b'/>"), 'not-authorized'],
    ['a wrong handshake', (t) => t.feed(HEADER('echo.example') + `<handshake>${'0'.repeat(40)}</handshake>`), 'not-authorized'],
    ['an empty handshake', (t) => t.feed(HEADER('echo.example') + '<handshake/>'), 'not-authorized'],
  ];
  it.each(refusals)('refuses %s with a stream error and closes', (_name, act, condition) => {
    const t = setup();
    act(t);
    expect(t.out()).toContain(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`);
    expect(t.out().endsWith('</stream:stream>')).toBe(true);
    expect(t.ended()).toBe(true);
    expect(t.routed).toEqual([]);
  });

  function ready() {
    const t = setup();
    t.feed(HEADER('echo.example'));
    t.feed(`<handshake>${handshakeDigest(t.stream.streamId, 's3cret')}</handshake>`);
    return t;
  }

  it("closes with invalid-from when 'from' is not at its domain, improper-addressing without 'to' or 'from'", () => {
    const a = ready();
    a.feed("<message from='echo.example.evil' to='a@b'/>");
    expect(a.out()).toContain('<invalid-from ');
    const b = ready();
    b.feed("<iq type='get' id='1' from='echo.example'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(b.out()).toContain('<improper-addressing ');
    const c = ready();
    c.feed("<presence to='a@b'/>");
    expect(c.out()).toContain('<improper-addressing ');
    expect([...a.routed, ...b.routed, ...c.routed]).toEqual([]);
  });

  it('refuses a second authenticated connection under the same name with conflict and leaves the first registered', () => {
    const first = ready();
    const second = setup(first.connected);
    second.feed(HEADER('echo.example'));
    second.feed(`<handshake>${handshakeDigest(second.stream.streamId, 's3cret')}</handshake>`);
    expect(second.out()).toContain('<conflict ');
    expect(first.connected.has('echo.example')).toBe(true);
    expect(first.stream.ready).toBe(true);
  });

  it('forgets the registration when the connection drops', () => {
    const t = ready();
    expect(t.connected.has('echo.example')).toBe(true);
    t.stream.transportClosed();
    expect(t.connected.has('echo.example')).toBe(false);
  });
});

describe('XEP-0114 component stream output bound', () => {
  it('closes a component that leaves more than maxOutputBytes unread with resource-constraint', async () => {
    const out: string[] = [];
    let pending = 0;
    const host: ComponentHost = { secretOf: () => 'k', attach: () => true, detach: () => {}, route: () => {} };
    const transport = {
      secure: false,
      canStartTls: false,
      get pendingBytes() {
        return pending;
      },
      write: (chunks: (string | Uint8Array)[]) => {
        for (const c of chunks) {
          out.push(String(c));
          pending += c.length;
        }
      },
      startTls: () => {},
      end: () => {},
    };
    const s = new ComponentStream(transport, host, { maxStanzaBytes: 65536, maxOutputBytes: 1000 }, core);
    s.feed(Buffer.from(HEADER('echo.example') + `<handshake>${handshakeDigest(s.streamId, 'k')}</handshake>`));
    await turn();
    expect(out.join('')).toContain('<handshake/>');
    s.send(`<message to='a@echo.example'><body>${'x'.repeat(2000)}</body></message>`);
    await turn();
    expect(out.join('')).toContain("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    expect(s.ready).toBe(false);
  });
});
