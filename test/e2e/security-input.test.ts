/**
 * Hostile and broken input over real sockets against a real server (docs/security.md): each
 * case gets RFC 6120's specific answer, the server stays up, and two sessions logged in before
 * the attacks (alice, bob) keep exchanging messages afterwards; stored data (an offline message
 * waiting for dave) survives every attack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, RawClient, SASL, STREAM_HEADER, plain, startTestServer, streamError, type TestServer } from './harness.js';

const STANZAS = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'";
const HEADER_NS = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";

let t: TestServer;
let alice: RawClient;
let bob: RawClient;
let aliceJid: string;
let bobJid: string;
let roundTrips = 0;

beforeAll(async () => {
  t = await startTestServer([
    '--tls', 'optional',
    // The per-attempt back-off is tested in limits.test.ts; here it would only slow the suite.
    '--set', 'limits.auth_failure_delay=0s',
    '--set', 'limits.auth_ban_failures=0',
    '--set', 'limits.stanza_rate.rate=1000',
    '--set', 'limits.stanza_rate.burst=1000',
  ]);
  t.server.storage.users.create('dave@localhost', 'dave-secret-4');
  alice = await RawClient.connect(t.port);
  aliceJid = await alice.login('alice', { tls: false, resource: 'desk' });
  bob = await RawClient.connect(t.port);
  bobJid = await bob.login('bob', { tls: false, resource: 'phone' });
  // Stored data that must outlive every attack: a message for dave, who is offline.
  alice.send("<message to='dave@localhost' id='stored1' type='chat'><body>kept for dave</body></message>");
  await bystandersStillWork();
});

afterAll(async () => {
  alice?.close();
  bob?.close();
  await t?.stop();
});

/** A message each way between the two sessions logged in before the attacks. */
async function bystandersStillWork(): Promise<void> {
  const n = ++roundTrips;
  alice.take();
  bob.take();
  alice.send(`<message to='${bobJid}' id='rt${n}a' type='chat'><body>ping ${n}</body></message>`);
  await bob.waitFor(`ping ${n}<`);
  bob.send(`<message to='${aliceJid}' id='rt${n}b' type='chat'><body>pong ${n}</body></message>`);
  await alice.waitFor(`pong ${n}<`);
  expect(alice.closed || bob.closed).toBe(false);
}

/**
 * Where in the negotiation the bad input comes: before any header; after our features; after
 * SASL <success/> (the restart header is due); after the restart, before binding; bound.
 */
type Stage = 'connected' | 'header' | 'authenticated' | 'restarted' | 'bound';

/** Open a connection and bring it to `stage` (authenticating as carol). */
async function attacker(stage: Stage, resource = 'attacker'): Promise<RawClient> {
  const c = await RawClient.connect(t.port);
  if (stage === 'bound') {
    await c.login('carol', { tls: false, resource });
    return c;
  }
  if (stage === 'connected') return c;
  c.send(STREAM_HEADER);
  await c.waitFor('</stream:features>');
  c.take();
  if (stage === 'header') return c;
  c.send(`<auth ${SASL} mechanism='PLAIN'>${Buffer.from(`\0carol\0${PASSWORDS.carol}`).toString('base64')}</auth>`);
  await c.waitFor('<success');
  c.take();
  if (stage === 'authenticated') return c;
  c.send(STREAM_HEADER);
  await c.waitFor('</stream:features>');
  c.take();
  return c;
}

/** Send `payload` at `stage` and return everything the server answered until it closed. */
async function attack(stage: Stage, payload: string | Buffer): Promise<string> {
  const c = await attacker(stage);
  try {
    c.socket.write(payload);
    await c.waitClosed();
    return c.received;
  } finally {
    c.close();
  }
}

/** RFC 6120 §4.9.1.1: the error element, then our closing tag, then the connection closes. */
function expectStreamError(received: string, condition: string): void {
  expect(received).toMatch(streamError(condition));
}

const header = (attrs: string) => `<?xml version='1.0'?><stream:stream ${attrs}>`;

interface Case {
  name: string;
  stage: Stage;
  payload: string | Buffer;
  condition: string;
}

const utf8 = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

const BILLION_LAUGHS =
  "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>" +
  "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>" +
  `<stream:stream ${HEADER_NS} to='localhost' version='1.0'><message>&lol3;</message>`;

const CASES: Case[] = [
  // ---- malformed XML, by position ----
  { name: 'header: unterminated start tag', stage: 'connected', payload: `<?xml version='1.0'?><stream:stream ${HEADER_NS} to='localhost' version='1.0'<x>`, condition: 'not-well-formed' },
  { name: 'header: unquoted attribute value', stage: 'connected', payload: `<stream:stream ${HEADER_NS} to=localhost version='1.0'>`, condition: 'not-well-formed' },
  { name: 'header: duplicate attribute', stage: 'connected', payload: `<stream:stream ${HEADER_NS} to='localhost' to='localhost' version='1.0'>`, condition: 'not-well-formed' },
  { name: 'header: invalid UTF-8 in an attribute', stage: 'connected', payload: utf8(`<stream:stream ${HEADER_NS} to='local`, [0xc3, 0x28], `' version='1.0'>`), condition: 'not-well-formed' },
  { name: 'header: malformed XML declaration', stage: 'connected', payload: `<?xml version=1.0?><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'not-well-formed' },
  { name: 'header: XML declaration after content', stage: 'connected', payload: ` <?xml version='1.0'?><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'not-well-formed' },
  { name: 'restart header after SASL success: malformed', stage: 'authenticated', payload: `<stream:stream ${HEADER_NS} to='localhost' version='1.0'<`, condition: 'not-well-formed' },
  { name: 'restart header after SASL success: wrong namespace', stage: 'authenticated', payload: header("xmlns='jabber:client' xmlns:stream='urn:example:x' to='localhost' version='1.0'"), condition: 'invalid-namespace' },
  { name: 'restart header after SASL success: unknown host', stage: 'authenticated', payload: header(`${HEADER_NS} to='evil.example' version='1.0'`), condition: 'host-unknown' },
  { name: 'stanza: mismatched end tag', stage: 'bound', payload: "<message to='bob@localhost'><body>hi</bdoy></message>", condition: 'not-well-formed' },
  { name: 'stanza: unclosed tags ended by the stream end', stage: 'bound', payload: "<message to='bob@localhost'><body>hi</stream:stream>", condition: 'not-well-formed' },
  { name: "stanza: '<' inside an attribute value", stage: 'bound', payload: "<message to='bob@localhost<'/>", condition: 'not-well-formed' },
  { name: 'stanza: attribute without a value', stage: 'bound', payload: "<message to><body>x</body></message>", condition: 'not-well-formed' },
  { name: 'stanza: duplicate attribute', stage: 'bound', payload: "<message to='a@localhost' to='b@localhost'/>", condition: 'not-well-formed' },
  { name: 'stanza: malformed character reference', stage: 'bound', payload: "<message to='bob@localhost'><body>&#xZZ;</body></message>", condition: 'not-well-formed' },
  { name: 'stanza: character reference to a forbidden character', stage: 'bound', payload: "<message to='bob@localhost'><body>&#0;</body></message>", condition: 'not-well-formed' },
  { name: 'stanza: text between stanzas', stage: 'bound', payload: 'hello there', condition: 'not-well-formed' },
  { name: 'stanza: invalid UTF-8 byte in text', stage: 'bound', payload: utf8("<message to='bob@localhost'><body>", [0xff, 0xfe], '</body></message>'), condition: 'not-well-formed' },
  { name: 'stanza: overlong UTF-8 encoding', stage: 'bound', payload: utf8("<message to='bob@localhost'><body>", [0xc0, 0xaf], '</body></message>'), condition: 'not-well-formed' },
  { name: 'stanza: UTF-8 encoded surrogate', stage: 'bound', payload: utf8("<message to='bob@localhost'><body>", [0xed, 0xa0, 0x80], '</body></message>'), condition: 'not-well-formed' },
  { name: 'stanza: control character', stage: 'bound', payload: utf8("<message to='bob@localhost'><body>", [0x01], '</body></message>'), condition: 'not-well-formed' },
  { name: 'header: unsupported encoding declared', stage: 'connected', payload: `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'unsupported-encoding' },
  // ---- restricted XML (RFC 6120 §11.1) ----
  { name: 'comment in a stanza', stage: 'bound', payload: "<message to='bob@localhost'><!-- hi --><body>x</body></message>", condition: 'restricted-xml' },
  { name: 'comment before the header', stage: 'connected', payload: `<!-- hi --><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'restricted-xml' },
  { name: 'processing instruction in a stanza', stage: 'bound', payload: "<message to='bob@localhost'><?evil data?></message>", condition: 'restricted-xml' },
  { name: 'DTD before the header', stage: 'connected', payload: `<?xml version='1.0'?><!DOCTYPE stream><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'restricted-xml' },
  { name: "entity expansion ('billion laughs')", stage: 'connected', payload: BILLION_LAUGHS, condition: 'restricted-xml' },
  { name: 'external entity', stage: 'connected', payload: `<?xml version='1.0'?><!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, condition: 'restricted-xml' },
  { name: 'undeclared entity reference in a stanza', stage: 'bound', payload: "<message to='bob@localhost'><body>&xxe;</body></message>", condition: 'restricted-xml' },
  { name: 'CDATA at the top level', stage: 'bound', payload: '<![CDATA[x]]>', condition: 'not-well-formed' },
  // ---- namespaces ----
  { name: 'unbound element prefix', stage: 'bound', payload: "<foo:message to='bob@localhost'/>", condition: 'bad-namespace-prefix' },
  { name: 'unbound attribute prefix', stage: 'bound', payload: "<message foo:to='bob@localhost'/>", condition: 'bad-namespace-prefix' },
  { name: 'unbound prefix on the stream header', stage: 'connected', payload: "<stream:stream xmlns='jabber:client' to='localhost' version='1.0'>", condition: 'bad-namespace-prefix' },
  { name: 'wrong stream namespace', stage: 'connected', payload: header("xmlns='jabber:client' xmlns:stream='urn:example:not-streams' to='localhost' version='1.0'"), condition: 'invalid-namespace' },
  { name: 'wrong content namespace (jabber:server on c2s)', stage: 'connected', payload: header("xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'"), condition: 'invalid-namespace' },
  { name: 'root element is not a stream', stage: 'connected', payload: `<?xml version='1.0'?><message ${HEADER_NS}>`, condition: 'invalid-namespace' },
  // ---- stream header attributes ----
  { name: 'no version (pre-1.0 stream)', stage: 'connected', payload: header(`${HEADER_NS} to='localhost'`), condition: 'unsupported-version' },
  { name: 'version 0.9', stage: 'connected', payload: header(`${HEADER_NS} to='localhost' version='0.9'`), condition: 'unsupported-version' },
  { name: 'malformed version', stage: 'connected', payload: header(`${HEADER_NS} to='localhost' version='one'`), condition: 'unsupported-version' },
  { name: "unknown 'to' host", stage: 'connected', payload: header(`${HEADER_NS} to='evil.example' version='1.0'`), condition: 'host-unknown' },
  { name: "unusable 'to' (not a domain)", stage: 'connected', payload: header(`${HEADER_NS} to='a@b/c' version='1.0'`), condition: 'host-unknown' },
  // ---- order of negotiation ----
  { name: 'message before authentication', stage: 'header', payload: "<message to='bob@localhost'><body>x</body></message>", condition: 'not-authorized' },
  { name: 'iq before authentication', stage: 'header', payload: "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>", condition: 'not-authorized' },
  { name: 'presence before authentication', stage: 'header', payload: '<presence/>', condition: 'not-authorized' },
  { name: 'unknown element before authentication', stage: 'header', payload: "<foo xmlns='urn:example:foo'/>", condition: 'not-authorized' },
  { name: 'message after authentication but before binding', stage: 'restarted', payload: "<message to='bob@localhost'><body>x</body></message>", condition: 'not-authorized' },
  { name: 'non-bind iq after authentication but before binding', stage: 'restarted', payload: "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>", condition: 'not-authorized' },
  { name: 'unknown first-level element after binding', stage: 'bound', payload: "<foo xmlns='urn:example:foo'/>", condition: 'unsupported-stanza-type' },
  { name: 'a second <auth/> after authentication', stage: 'bound', payload: `<auth ${SASL} mechanism='PLAIN'>AGNhcm9sAHg=</auth>`, condition: 'policy-violation' },
  // ---- sizes and shapes (limits.*) ----
  { name: 'stanza over the pre-authentication size limit (16KiB)', stage: 'header', payload: `<auth ${SASL} mechanism='PLAIN'>${'A'.repeat(17 * 1024)}</auth>`, condition: 'policy-violation' },
  { name: 'stanza over the size limit after authentication (256KiB)', stage: 'bound', payload: `<message to='bob@localhost'><body>${'x'.repeat(257 * 1024)}</body></message>`, condition: 'policy-violation' },
  { name: 'elements nested deeper than limits.max_depth', stage: 'bound', payload: `<message to='bob@localhost'>${'<a>'.repeat(100)}${'</a>'.repeat(100)}</message>`, condition: 'policy-violation' },
  { name: 'more attributes than limits.max_attributes', stage: 'bound', payload: `<message to='bob@localhost' ${Array.from({ length: 100 }, (_, i) => `a${i}='1'`).join(' ')}/>`, condition: 'policy-violation' },
  { name: 'an endless start tag', stage: 'header', payload: `<auth ${SASL} mechanism='PLAIN' ${'x'.repeat(20 * 1024)}`, condition: 'policy-violation' },
  { name: 'an endless stream header (attribute value never closed)', stage: 'connected', payload: `<stream:stream ${HEADER_NS} to='${'a'.repeat(40 * 1024)}`, condition: 'policy-violation' },
  { name: 'an endless element name', stage: 'header', payload: `<${'n'.repeat(40 * 1024)}`, condition: 'policy-violation' },
  { name: 'an endless character reference', stage: 'bound', payload: `<message to='bob@localhost'><body>&#${'1'.repeat(64)};</body></message>`, condition: 'policy-violation' },
  { name: 'an endless XML declaration', stage: 'connected', payload: `<?xml version='1.0' ${' '.repeat(40 * 1024)}`, condition: 'policy-violation' },
  {
    // 40 levels of 40 declarations each: within max_depth and max_attributes, but 1600 prefixes
    // in scope at once, beyond the parser's namespace table.
    name: 'namespace declarations in scope by the thousand',
    stage: 'bound',
    payload: `<message to='bob@localhost'>${Array.from({ length: 40 }, (_, d) => `<e${d} ${Array.from({ length: 40 }, (_, i) => `xmlns:p${d}x${i}='urn:x:${i}'`).join(' ')}>`).join('')}`,
    condition: 'policy-violation',
  },
];

describe('bad input is answered per RFC 6120 and costs nothing else', () => {
  for (const c of CASES) {
    it(`${c.name} → <${c.condition}/>`, async () => {
      const received = await attack(c.stage, c.payload);
      expectStreamError(received, c.condition);
      // §4.9.1.2: an error before the client's header was read is still preceded by ours.
      if (c.stage === 'connected') expect(received).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
      await bystandersStillWork();
    });
  }

  it('a stanza between the two size limits is refused before authentication and delivered after it', async () => {
    const body = 'y'.repeat(20 * 1024);
    const c = await attacker('bound');
    try {
      c.send(`<message to='${bobJid}' id='big' type='chat'><body>${body}</body></message>`);
      bob.take();
      await bob.waitFor(`${body}</body>`);
      expect(c.closed).toBe(false);
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it('a stream restart the server did not ask for (new XML declaration and header) is not-well-formed', async () => {
    // RFC 6120 §4.3.3: only STARTTLS and SASL success restart a stream; mid-stream, an XML
    // declaration is not well-formed XML (XML 1.0 §2.8).
    expectStreamError(await attack('bound', STREAM_HEADER), 'not-well-formed');
    await bystandersStillWork();
  });

  it('a stream header repeated without a restart is a nested first-level element: unsupported-stanza-type', async () => {
    const received = await attack('bound', `<stream:stream ${HEADER_NS} to='localhost' version='1.0'><message/></stream:stream>`);
    expectStreamError(received, 'unsupported-stanza-type');
    await bystandersStillWork();
  });

  it('a stream header repeated before authentication is refused as not-authorized', async () => {
    const received = await attack('header', `<stream:stream ${HEADER_NS} to='localhost' version='1.0'></stream:stream>`);
    expectStreamError(received, 'not-authorized');
    await bystandersStillWork();
  });

  it('STARTTLS after authentication is refused with a TLS <failure/> and the stream closed (RFC 6120 §5.4.2.2)', async () => {
    const received = await attack('restarted', "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    expect(received).toBe("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>");
    await bystandersStillWork();
  });

  it('a connection dropped in the middle of a stanza frees its session: the resource can be bound again at once', async () => {
    const c = await attacker('bound', 'dropped');
    c.socket.write("<message to='bob@localhost'><body>half a sta");
    c.close();
    await c.waitClosed();
    const again = await RawClient.connect(t.port);
    try {
      // No <conflict/> for anyone: the old session is gone, not replaced.
      expect(await again.login('carol', { tls: false, resource: 'dropped' })).toBe('carol@localhost/dropped');
      again.send(`<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await again.waitFor("id='alive'");
      expect(again.received).not.toContain('conflict');
    } finally {
      again.close();
    }
    expect(bob.received).not.toContain('half a sta');
    await bystandersStillWork();
  });

  it('plaintext garbage instead of a TLS handshake after <proceed/> closes only that connection', async () => {
    const c = await attacker('header');
    try {
      c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      await c.waitFor('<proceed');
      c.socket.write('this is not a TLS ClientHello\r\n'.repeat(20));
      await c.waitClosed();
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it('garbage after </stream:stream> is never parsed: the stream closes cleanly without an error', async () => {
    const c = await attacker('bound');
    c.take();
    c.socket.write("</stream:stream><message to='bob@localhost'><body>after the end</body></message>\xff\xfe garbage <<<");
    await c.waitClosed();
    expect(c.received).toBe('</stream:stream>');
    await bystandersStillWork();
    expect(bob.received).not.toContain('after the end');
  });

  it("a 'from' naming another user is overwritten with the sender's full JID (RFC 6120 §8.1.2.1)", async () => {
    const c = await attacker('bound', 'spoofer');
    try {
      bob.take();
      c.send(`<message from='${aliceJid}' to='${bobJid}' id='spoof1' type='chat'><body>trust me</body></message>`);
      const got = await bob.waitFor('trust me');
      const stanza = /<message[^>]*id='spoof1'[^>]*>/.exec(got)![0];
      expect(stanza).toContain("from='carol@localhost/spoofer'");
      expect(stanza).not.toContain(aliceJid);
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it("binding another account's resource name gives the attacker its own JID and leaves the victim's session alone", async () => {
    const c = await RawClient.connect(t.port);
    try {
      const jid = await c.login('carol', { tls: false, resource: 'phone' });
      expect(jid).toBe('carol@localhost/phone');
      expect(bob.closed).toBe(false);
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it('binding a resource already bound by the same account replaces only that session, with <conflict/>', async () => {
    const first = await RawClient.connect(t.port);
    const second = await RawClient.connect(t.port);
    try {
      await first.login('carol', { tls: false, resource: 'laptop' });
      first.take();
      expect(await second.login('carol', { tls: false, resource: 'laptop' })).toBe('carol@localhost/laptop');
      await first.waitClosed();
      expectStreamError(first.received, 'conflict');
      expect(second.closed).toBe(false);
    } finally {
      first.close();
      second.close();
    }
    await bystandersStillWork();
  });

  it('an IQ flood is answered in full and in order (reading is paused, nothing dropped) while others keep working', async () => {
    const c = await attacker('bound');
    const n = 3000;
    try {
      let flood = '';
      for (let i = 0; i < n; i++) flood += `<iq type='get' id='f${i}'><ping xmlns='urn:xmpp:ping'/></iq>`;
      c.send(flood);
      // While the flood is being worked through, the others are served.
      await bystandersStillWork();
      await c.waitFor(`id='f${n - 1}'`, 20_000);
      const ids = [...c.received.matchAll(/<iq [^>]*id='f(\d+)'/g)].map((m) => Number(m[1]));
      expect(ids).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(c.closed).toBe(false);
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it('IQs nobody handles are each answered service-unavailable, never silence', async () => {
    const c = await attacker('bound');
    try {
      for (let i = 0; i < 50; i++) c.send(`<iq type='get' id='u${i}' to='localhost'><nothing xmlns='urn:example:none'/></iq>`);
      await c.waitFor("id='u49'");
      const answers = c.received.match(new RegExp(`<service-unavailable ${STANZAS}/>`, 'g')) ?? [];
      expect(answers.length).toBe(50);
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });
});

describe('SASL abuse gets the RFC 6120 §6.5 failure condition and a chance to retry', () => {
  async function saslClient(): Promise<RawClient> {
    return attacker('header');
  }

  const FAILURES: { name: string; payload: string; condition: string }[] = [
    { name: 'bad base64', payload: `<auth ${SASL} mechanism='PLAIN'>!!!not base64***</auth>`, condition: 'incorrect-encoding' },
    { name: 'base64 with a bad padding', payload: `<auth ${SASL} mechanism='PLAIN'>AGFsaWNl=AGI=</auth>`, condition: 'incorrect-encoding' },
    { name: 'wrong password', payload: `<auth ${SASL} mechanism='PLAIN'>${plain('alice', 'wrong')}</auth>`, condition: 'not-authorized' },
    { name: 'unknown user', payload: `<auth ${SASL} mechanism='PLAIN'>${plain('mallory', 'x')}</auth>`, condition: 'not-authorized' },
    { name: 'unknown mechanism', payload: `<auth ${SASL} mechanism='X-EVIL'>=</auth>`, condition: 'invalid-mechanism' },
    { name: 'no mechanism', payload: `<auth ${SASL}>=</auth>`, condition: 'invalid-mechanism' },
    { name: 'a <response/> with no exchange in progress', payload: `<response ${SASL}>=</response>`, condition: 'malformed-request' },
    { name: 'an <abort/>', payload: `<abort ${SASL}/>`, condition: 'aborted' },
    { name: 'PLAIN without the NUL separators', payload: `<auth ${SASL} mechanism='PLAIN'>${Buffer.from('alice').toString('base64')}</auth>`, condition: 'malformed-request' },
    { name: 'PLAIN with an authorization identity of another user', payload: `<auth ${SASL} mechanism='PLAIN'>${Buffer.from(`bob@localhost\0alice\0${PASSWORDS.alice}`).toString('base64')}</auth>`, condition: 'invalid-authzid' },
  ];

  for (const f of FAILURES) {
    it(`${f.name} → <failure><${f.condition}/></failure>, then the right password succeeds`, async () => {
      const c = await saslClient();
      try {
        c.send(f.payload);
        await c.waitFor('</failure>');
        expect(c.take()).toMatch(new RegExp(`^<failure ${SASL}><${f.condition}/>(<text>[^<]*</text>)?</failure>$`));
        c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('carol', PASSWORDS.carol!)}</auth>`);
        await c.waitFor('<success');
      } finally {
        c.close();
      }
      await bystandersStillWork();
    });
  }

  it('an exchange aborted halfway (SCRAM after the first challenge) is <aborted/>, and a new one may start', async () => {
    const c = await saslClient();
    try {
      const first = Buffer.from('n,,n=carol,r=abcdefghijklmnop').toString('base64');
      c.send(`<auth ${SASL} mechanism='SCRAM-SHA-1'>${first}</auth>`);
      await c.waitFor('</challenge>');
      c.take();
      c.send(`<abort ${SASL}/>`);
      await c.waitFor('</failure>');
      expect(c.take()).toContain('<aborted/>');
      // The old exchange is gone: a <response/> now belongs to nothing.
      c.send(`<response ${SASL}>=</response>`);
      await c.waitFor('</failure>');
      expect(c.take()).toContain('<malformed-request/>');
      c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('carol', PASSWORDS.carol!)}</auth>`);
      await c.waitFor('<success');
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });

  it('after limits.auth_attempts failures the stream is closed with <policy-violation/> (RFC 6120 §6.4.5)', async () => {
    const c = await saslClient();
    try {
      for (let i = 0; i < 3; i++) {
        c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', `guess${i}`)}</auth>`);
        await c.waitFor(new RegExp(`(<not-authorized/>[^]*){${i + 1}}`));
      }
      await c.waitClosed();
      expectStreamError(c.received, 'policy-violation');
    } finally {
      c.close();
    }
    await bystandersStillWork();
  });
});

describe('after every attack', () => {
  it('the stored offline message is delivered intact and the accounts still log in', async () => {
    const dave = await RawClient.connect(t.port);
    try {
      PASSWORDS.dave = 'dave-secret-4';
      await dave.login('dave', { tls: false });
      dave.send('<presence/>');
      const got = await dave.waitFor('kept for dave</body>');
      expect(got).toContain("id='stored1'");
      expect(got).toContain(`from='${aliceJid}'`);
    } finally {
      delete PASSWORDS.dave;
      dave.close();
    }
    await bystandersStillWork();
  });
});
