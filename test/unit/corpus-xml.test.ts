/**
 * Corpora the core was never tuned on: real XML documents (test/fixtures/corpus; with CORPUS_BOX=1
 * also a fixed sample of the XML this machine has under /usr/share) sent as the
 * payload of a <message/> through the whole c2s path — the WASM core, the stream state machine,
 * the real router and SQLite storage — against saxes as the reference parser:
 *  - a document saxes finds well-formed and within the RFC 6120 §11 subset reaches the online
 *    recipient (also as RFC 7395 WebSocket framing would send it), the sender's and the
 *    recipient's other resources as carbons (XEP-0280), the
 *    recipient's archive (XEP-0313) and the offline recipient after login (XEP-0203 <delay/>
 *    added), as the same XML infoset (names, namespaces, attributes, text), whole and split at
 *    fixed random positions — and so do messages whose own start tag is unusual but legal
 *    (attribute values holding '>', '/>' or ` xmlns=`, a prefixed jabber:client name);
 *  - the same payloads sent to a MUC room (XEP-0045 §7.4) reach every occupant as the same
 *    infoset, also when the client declared a prefix on the <message/> itself;
 *  - payloads that modules store and serve later (vCard, private XML, PEP items) come back as
 *    sent, also when their prefixes were declared on the <iq/> around them;
 *  - a document saxes rejects, or one that keeps its prolog (XML declaration, DOCTYPE, comments,
 *    processing instructions: RFC 6120 §11.1 forbids them), closes the sender's stream with
 *    not-well-formed or restricted-xml, and the recipient receives nothing of it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCore } from '../../src/core/parser.js';
import { createRouter } from '../../src/router/index.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { defaultConfig } from '../../src/config/schema.js';
import { muc, mucSettingsOf } from '../../src/muc/service.js';
import { C2SStream } from '../../src/stream/c2s.js';
import { frameOutbound, frameOutboundBytes } from '../../src/transport/websocket.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { HEADER, RecordingTransport, SASL, STREAM_OPTIONS, streamErrorOf } from './stream-helpers.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/corpus/', import.meta.url));
/**
 * Where a box keeps XML of its own, sampled only on request (CORPUS_BOX=1), since machines differ
 * and the suite must give the same verdict everywhere; absent directories are skipped.
 * CORPUS_ROOTS (colon-separated directories) adds more for a long run by hand.
 */
const BOX_ROOTS = [
  ...(process.env.CORPUS_BOX === '1'
    ? ['/usr/share/mime/packages', '/usr/share/glib-2.0/schemas', '/usr/share/icons/Adwaita/scalable/actions', '/usr/share/libwacom/layouts', '/usr/libexec/valgrind']
    : []),
  ...(process.env.CORPUS_ROOTS?.split(':').filter(Boolean) ?? []),
];
/** Documents per box directory: a fixed, sorted sample keeps the run short and repeatable. */
const BOX_SAMPLE = Number(process.env.CORPUS_SAMPLE ?? 12);
const MAX_BYTES = 48_000;
const PASSWORD = 'corpus-pw';

// ---- the reference: saxes, reduced to an infoset that byte-level rewriting must preserve ----

/** Start tags as [namespace, local name, sorted attributes], text as strings, end tags as null. */
type Infoset = (string | null | [string, string, [string, string, string][]])[];

interface Reference {
  error: string | null;
  /** A comment, PI or DOCTYPE: well-formed XML outside the RFC 6120 §11 subset. */
  restricted: boolean;
  infoset: Infoset;
}

function reference(xml: string): Reference {
  const parser = new SaxesParser({ xmlns: true });
  const r: Reference = { error: null, restricted: false, infoset: [] };
  const text = (t: string) => {
    const last = r.infoset.at(-1);
    if (typeof last === 'string') r.infoset[r.infoset.length - 1] = last + t;
    else r.infoset.push(t);
  };
  parser.on('error', (e) => void (r.error ??= e.message));
  parser.on('comment', () => void (r.restricted = true));
  parser.on('processinginstruction', () => void (r.restricted = true));
  parser.on('doctype', () => void (r.restricted = true));
  parser.on('opentag', (tag: SaxesTagNS) => {
    const attrs = Object.values(tag.attributes)
      .filter((a) => a.prefix !== 'xmlns' && a.name !== 'xmlns')
      .map((a): [string, string, string] => [a.uri, a.local, a.value])
      .sort((a, b) => (a[0] + ' ' + a[1] < b[0] + ' ' + b[1] ? -1 : 1));
    r.infoset.push([tag.uri, tag.local, attrs]);
  });
  parser.on('closetag', () => void r.infoset.push(null));
  parser.on('text', text);
  parser.on('cdata', text);
  try {
    parser.write(xml).close();
  } catch (e) {
    r.error ??= (e as Error).message;
  }
  return r;
}

const STREAM_END = '</stream:stream>';
/** The infoset of each top-level child of a stream (stanzas), header and trailer dropped. */
function stanzasOf(header: string, out: string): Infoset[] {
  const all = reference(header + out + STREAM_END);
  expect(all.error).toBeNull();
  const stanzas: Infoset[] = [];
  let depth = 0;
  for (const ev of all.infoset.slice(1, -1)) {
    if (depth === 0 && typeof ev === 'string') continue; // whitespace between stanzas
    if (depth === 0) stanzas.push([]);
    stanzas.at(-1)!.push(ev);
    depth += ev === null ? -1 : Array.isArray(ev) ? 1 : 0;
  }
  return stanzas;
}

/** Without the children the server adds (XEP-0359 <stanza-id/>, XEP-0203 <delay/>). */
function withoutStamps(stanza: Infoset): Infoset {
  const out: Infoset = [];
  let depth = 0;
  let skipping = 0;
  for (const ev of stanza) {
    const opens = Array.isArray(ev);
    if (skipping === 0 && opens && depth === 1 && (ev[0] === 'urn:xmpp:sid:0' || ev[0] === 'urn:xmpp:delay')) skipping = depth;
    if (skipping === 0) out.push(ev);
    depth += opens ? 1 : ev === null ? -1 : 0;
    if (skipping > 0 && depth === skipping) skipping = 0;
  }
  return out;
}

/** The message forwarded inside a carbon or an archive result (<x><forwarded><message/>: depth 3). */
function forwarded(stanza: Infoset): Infoset {
  let depth = 0;
  let from = -1;
  for (const [i, ev] of stanza.entries()) {
    if (Array.isArray(ev) && depth === 3 && ev[1] === 'message') from = i;
    depth += Array.isArray(ev) ? 1 : ev === null ? -1 : 0;
    if (from >= 0 && depth === 3) return stanza.slice(from, i + 1);
  }
  return [];
}

/** The message as the recipient must see it: its own 'from', anything else as sent. */
function expected(message: string, from: string, extra: Infoset = []): Infoset {
  const [top, ...rest] = reference(HEADER + message + STREAM_END).infoset.slice(1, -1);
  const [uri, local, attrs] = top as [string, string, [string, string, string][]];
  const withFrom = [...attrs.filter((a) => a[1] !== 'from'), ['', 'from', from] as [string, string, string]].sort((a, b) =>
    a[0] + ' ' + a[1] < b[0] + ' ' + b[1] ? -1 : 1,
  );
  return [[uri, local, withFrom], ...rest.slice(0, -1), ...extra, null];
}

// ---- the documents -------------------------------------------------------------------------

interface Doc {
  name: string;
  text: string;
}

function boxSample(): Doc[] {
  const docs: Doc[] = [];
  for (const root of BOX_ROOTS) {
    let names: string[];
    try {
      names = readdirSync(root).filter((n) => /\.(xml|svg)$/.test(n)).sort();
    } catch {
      continue;
    }
    const picked = names.filter((n) => statSync(join(root, n)).size <= MAX_BYTES);
    const step = Math.max(1, Math.floor(picked.length / BOX_SAMPLE));
    for (let i = 0, n = 0; i < picked.length && n < BOX_SAMPLE; i += step, n++) {
      docs.push({ name: join(root, picked[i]!), text: readFileSync(join(root, picked[i]!), 'utf8') });
    }
  }
  return docs;
}

const fixtureDocs: Doc[] = readdirSync(FIXTURES)
  .filter((n) => n.endsWith('.xml'))
  .sort()
  .map((n) => ({ name: n, text: readFileSync(join(FIXTURES, n), 'utf8') }));

/**
 * The document without what precedes and follows its root element (XML declaration, DOCTYPE,
 * comments, PIs): the part a client could legally embed in a stanza.
 */
function body(text: string): string {
  let t = text.replace(/^\uFEFF/, '').trim();
  for (;;) {
    const m = /^\s*(<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!DOCTYPE(?:[^[>]|\[[\s\S]*?\])*>)/.exec(t);
    if (!m) break;
    t = t.slice(m[0].length);
  }
  for (;;) {
    const m = /(<!--[\s\S]*?-->|<\?[\s\S]*?\?>)\s*$/.exec(t);
    if (!m || !t.slice(0, m.index).trimEnd().endsWith('>')) break;
    t = t.slice(0, m.index).trimEnd();
  }
  return t.trim();
}

/** Deterministic cut positions (a linear congruential generator with a fixed seed per doc). */
function cuts(length: number, seed: number, count = 6): number[] {
  let x = seed >>> 0;
  const out = new Set<number>();
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.add(1 + (x % Math.max(1, length - 1)));
  }
  return [...out].sort((a, b) => a - b);
}

// ---- the server: core, stream, router, SQLite ------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'hermod-corpus-'));
const storage = openSqliteStorage({ dataDir: dir, iterations: 16, archiveThread: false });
for (const user of ['alice', 'bob']) storage.users.create(`${user}@localhost`, PASSWORD);
const core = loadCore();
const router = createRouter({ domain: 'localhost', storage });
muc(mucSettingsOf(defaultConfig())!).install(router);
const ROOM = 'corpus@conference.localhost';
const sasl = new SaslProvider({ users: storage.users, domain: 'localhost', iterations: 16 });
const deps = { core, router, sasl, smSessions: new Map() };
const options = { ...STREAM_OPTIONS, maxStanzaBytes: 1 << 17 };

afterAll(() => {
  storage.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Conn {
  transport: RecordingTransport;
  feed(bytes: Uint8Array | string, at?: number[]): Promise<void>;
}

function connect(): Conn {
  const transport = new RecordingTransport({ secure: true });
  const stream = new C2SStream(transport, options, { ...deps, onClosed: () => {} });
  return {
    transport,
    async feed(input, at = []) {
      const bytes = typeof input === 'string' ? Buffer.from(input) : input;
      let prev = 0;
      for (const c of [...at, bytes.length]) {
        if (c > prev) stream.feed(bytes.subarray(prev, c));
        prev = c;
      }
      for (let i = 0; i < 3; i++) await turn();
      stream.flush();
    },
  };
}

async function login(user: string, resource: string): Promise<Conn> {
  const c = connect();
  await c.feed(HEADER);
  await c.feed(`<auth ${SASL} mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64')}</auth>`);
  // PBKDF2 runs on libuv's pool: wait for the outcome, bounded
  for (let i = 0; i < 200 && !c.transport.text().includes('<success'); i++) await new Promise((r) => setTimeout(r, 5));
  await c.feed(HEADER);
  await c.feed(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq><presence/>`);
  const out = c.transport.take();
  expect(out).toContain(`<jid>${user}@localhost/${resource}</jid>`);
  // what the session received after its bind result (offline messages), for the caller
  c.transport.writes = [[out.slice(out.indexOf('</iq>') + 5)]];
  return c;
}

// ---- the properties ----------------------------------------------------------------------------

interface Verdict {
  doc: Doc;
  message: string;
  ref: Reference;
}

function classify(docs: Doc[], tag: string, crafted: Doc[] = []): { good: Verdict[]; bad: Verdict[]; prolog: Verdict[] } {
  const good: Verdict[] = [];
  const bad: Verdict[] = [];
  const prolog: Verdict[] = [];
  docs.forEach((doc, i) => {
    const message = `<message to='bob@localhost' type='chat' id='${tag}${i}'>${body(doc.text)}</message>`;
    const ref = reference(HEADER + message + STREAM_END);
    (ref.error || ref.restricted ? bad : good).push({ doc, message, ref });
    const kept = doc.text.replace(/^\uFEFF/, '').trim();
    if (kept !== body(doc.text)) {
      const whole = `<message to='bob@localhost' type='chat' id='${tag}p${i}'>${kept}</message>`;
      prolog.push({ doc, message: whole, ref: reference(HEADER + whole + STREAM_END) });
    }
  });
  for (const doc of crafted) good.push({ doc, message: doc.text, ref: reference(HEADER + doc.text + STREAM_END) });
  return { good, bad, prolog };
}

/**
 * Whole messages whose start tag is legal but unusual: attribute values may hold '>', '/>' and
 * text that looks like a namespace declaration (XML 1.0 §3.1), and a stanza may bind
 * jabber:client to a prefix of its own. Every copy the server makes must keep them intact.
 */
const CRAFTED: Doc[] = [
  "<message to='bob@localhost' type='chat' id='k1 a>b' xmlns='jabber:client'><body>a '>' in a value before xmlns</body></message>",
  "<message to='bob@localhost' type='chat' id='k2 xmlns=x'><body>xmlns= inside a value</body></message>",
  `<message to='bob@localhost' type='chat' id="k3 '/>"><body>quote and slash</body></message>`,
  "<c:message xmlns:c='jabber:client' to='bob@localhost' type='chat' id='k4'><c:body>prefixed</c:body></c:message>",
  "<message\n\tto='bob@localhost'\ttype = 'chat' id='k5' ><body>spaces around =</body></message>",
].map((text, i) => ({ name: `crafted start tag ${i + 1}`, text }));

/** What is between a message's start and end tags. */
function innerOf(message: string): string {
  return message.slice(message.indexOf('>', message.indexOf(" id='")) + 1, message.lastIndexOf('</'));
}

/** The stanzas of a recipient's output that are messages (presence, IQ results left out). */
const messagesOf = (out: string) => stanzasOf(HEADER, out).filter((st) => Array.isArray(st[0]) && st[0][1] === 'message');

function suite(label: string, docs: () => Doc[], tag: string, offlineUser: string, crafted: Doc[] = []) {
  describe(label, () => {
    storage.users.create(`${offlineUser}@localhost`, PASSWORD);
    const sample = docs();
    const { good, bad, prolog } = classify(sample, tag, crafted);

    it('routes every well-formed document, whole and split, to the recipient, both sides\' carbons and the archive as the same infoset', async () => {
      if (sample.length === 0) return;
      expect(good.length).toBeGreaterThan(0);
      const alice = await login('alice', `desk${tag}`);
      const aliceCopy = await login('alice', `copy${tag}`);
      const bob = await login('bob', `home${tag}`);
      const bobCopy = await login('bob', `copy${tag}`);
      // XEP-0280 on the other resources; XEP-0441: bob archives everything
      for (const c of [aliceCopy, bobCopy]) await c.feed("<iq type='set' id='cc'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
      await bob.feed("<iq type='set' id='pp'><prefs xmlns='urn:xmpp:mam:2' default='always'/></iq>");
      for (const c of [aliceCopy, bob, bobCopy]) c.transport.take();
      const wants: Infoset[] = [];
      for (const [i, v] of good.entries()) {
        const message = v.message.replace("to='bob@localhost'", `to='bob@localhost/home${tag}'`);
        const bytes = Buffer.from(message);
        await alice.feed(bytes);
        await alice.feed(bytes, cuts(bytes.length, i + 1));
        const want = expected(message, `alice@localhost/desk${tag}`);
        wants.push(want, want);
        // Byte for byte: the client's own bytes with the server's 'from' after the name (the
        // splicer re-serialises nothing), and the archive's <stanza-id/> before the end tag.
        const raw = bob.transport.writes.flat().filter((c): c is Uint8Array => typeof c !== 'string');
        const nameEnd = message.search(/[\s/>]/);
        const spliced = `${message.slice(0, nameEnd)} from='alice@localhost/desk${tag}'${message.slice(nameEnd)}`;
        const unstamped = raw.map((c) => Buffer.from(c).toString('utf8').replace(/<stanza-id xmlns='urn:xmpp:sid:0' by='[^']*' id='[^']*'\/>/g, ''));
        expect(unstamped, `${v.doc.name}: bytes`).toEqual([spliced, spliced]);
        // as the WebSocket transport frames them: bytes (routed stanzas) and strings each their way
        const chunks = bob.transport.writes.flat().map((c) => {
          const framed = typeof c === 'string' ? frameOutbound(c) : frameOutboundBytes(c);
          return typeof framed === 'string' ? framed : Buffer.from(framed).toString('utf8');
        });
        expect(messagesOf(bob.transport.take()).map(withoutStamps), v.doc.name).toEqual([want, want]);
        // RFC 7395 §3.3.3: over WebSocket each stanza is a message of its own carrying its namespace
        const framed = chunks.filter((c) => /^<([^\s>/:]+:)?message[\s>/]/.test(c)).map((c) => reference(c));
        expect(framed.map((f) => f.error)).toEqual([null, null]);
        expect(framed.map((f) => withoutStamps(f.infoset)), `${v.doc.name}: WebSocket`).toEqual([want, want]);
        expect(messagesOf(aliceCopy.transport.take()).map((c) => withoutStamps(forwarded(c))), `${v.doc.name}: sent carbon`).toEqual([want, want]);
        expect(messagesOf(bobCopy.transport.take()).map((c) => withoutStamps(forwarded(c))), `${v.doc.name}: received carbon`).toEqual([want, want]);
      }
      expect(streamErrorOf(alice.transport.text())).toBeNull();
      // XEP-0313: what the archive took (at least every message with a plain <body/> child, its
      // business rule), it returns as it was delivered
      storage.mam.flush();
      await bob.feed("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>250</max></set></query></iq>");
      const idOf = (m: Infoset) => (m[0] as [string, string, [string, string, string][]])[2].find((a) => a[1] === 'id')?.[2];
      const byId = new Map(wants.map((w) => [idOf(w), w]));
      const archived = messagesOf(bob.transport.take())
        .map((r) => withoutStamps(forwarded(r)))
        .filter((m) => byId.has(idOf(m)));
      for (const m of archived) expect(m).toEqual(byId.get(idOf(m)));
      const plainBody = (v: Verdict) => {
        let depth = 0;
        return expected(v.message, '').some((e) => {
          depth += Array.isArray(e) ? 1 : e === null ? -1 : 0;
          return Array.isArray(e) && depth === 2 && e[0] === 'jabber:client' && e[1] === 'body';
        }) && !/<[^\s>]+:body[\s>]/.test(v.message);
      };
      const withBody = good.filter(plainBody);
      if (crafted.length > 0) expect(withBody.length).toBeGreaterThan(0);
      for (const v of withBody) expect(archived.filter((m) => idOf(m) === idOf(expected(v.message, ''))).length, v.doc.name).toBe(2);
    });

    it('reflects every well-formed document sent to a room to each occupant as the same payload (XEP-0045 §7.4)', async () => {
      if (sample.length === 0) return;
      const alice = await login('alice', `muc${tag}`);
      const bob = await login('bob', `muc${tag}`);
      const room = `${tag}${ROOM}`;
      await alice.feed(`<presence to='${room}/A${tag}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
      await alice.feed(`<iq type='set' id='cfg' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
      await bob.feed(`<presence to='${room}/B${tag}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
      expect(bob.transport.take()).toContain("status code='110'");
      // within muc.max_message_bytes; and a prefix declared on the message, used by a child
      const payloads = [
        ...good.filter((v) => !crafted.includes(v.doc) && Buffer.byteLength(v.message) < 15_000).map((v) => ({ name: v.doc.name, attrs: '', inner: innerOf(v.message) })),
        { name: 'prefix on <message/>', attrs: " xmlns:j='urn:example:j'", inner: "<body>hi</body><j:x j:a='1'><j:y/></j:x>" },
      ];
      for (const [i, p] of payloads.entries()) {
        const message = `<message to='${room}' type='groupchat' id='g${i}'${p.attrs}>${p.inner}</message>`;
        const bytes = Buffer.from(message);
        await alice.feed(bytes, cuts(bytes.length, i + 3, 2));
        const [top, ...rest] = expected(message, '');
        const want: Infoset = [
          [(top as [string, string, unknown])[0], 'message', [['', 'from', `${room}/A${tag}`], ['', 'id', `g${i}`], ['', 'to', `bob@localhost/muc${tag}`], ['', 'type', 'groupchat']]],
          ...rest,
        ];
        // Exactly, whitespace references included: the room parses and writes with XML 1.0's
        // normalisations (src/xml/exact.ts), so a &#9; in a value is still a tab for bob.
        expect(messagesOf(bob.transport.take()).map((m) => withoutStamps(m)), p.name).toEqual([want]);
      }
      expect(streamErrorOf(alice.transport.text())).toBeNull();
    });

    it('stores every well-formed document for an offline recipient and delivers it intact at login', async () => {
      if (good.length === 0) return;
      const alice = await login('alice', 'desk2');
      for (const v of good) await alice.feed(v.message.replace("to='bob@localhost'", `to='${offlineUser}@localhost'`));
      const dave = await login(offlineUser, 'later');
      const got = stanzasOf(HEADER, dave.transport.take()).filter((s) => Array.isArray(s[0]) && s[0][1] === 'message');
      expect(got.length).toBe(good.length);
      got.forEach((stanza, i) => {
        expect(stanza.some((e) => Array.isArray(e) && e[0] === 'urn:xmpp:delay'), good[i]!.doc.name).toBe(true);
        const want = expected(good[i]!.message.replace("to='bob@localhost'", `to='${offlineUser}@localhost'`), 'alice@localhost/desk2');
        expect(withoutStamps(stanza), good[i]!.doc.name).toEqual(want);
      });
    });

    it('closes the stream of a sender whose document is not well-formed or outside the XMPP subset, and routes nothing of it', async () => {
      const refused = [...bad, ...prolog];
      if (sample.length === 0) return;
      expect(refused.length).toBeGreaterThan(0);
      const bob = await login('bob', 'watch');
      bob.transport.take();
      for (const [i, v] of refused.entries()) {
        const sender = await login('alice', `bad${i}`);
        const bytes = Buffer.from(v.message);
        await sender.feed(bytes, cuts(bytes.length, i + 7, 3));
        const condition = streamErrorOf(sender.transport.text());
        // saxes stops at the document's end; a document cut short (unclosed) only waits for more
        if (condition === null && v.ref.error && /unclosed|end of/i.test(v.ref.error)) continue;
        expect(condition, `${v.doc.name}: ${v.ref.error ?? 'restricted'}`).toMatch(/^(not-well-formed|restricted-xml|bad-namespace-prefix)$/);
        if (v.ref.restricted && !v.ref.error) expect(condition, v.doc.name).toBe('restricted-xml');
      }
      expect(stanzasOf(HEADER, bob.transport.take()).filter((s) => Array.isArray(s[0]) && s[0][1] === 'message')).toEqual([]);
    });
  });
}

suite('test/fixtures/corpus', () => fixtureDocs, 'f', 'dave', CRAFTED);
suite("this box's XML (CORPUS_BOX=1 / CORPUS_ROOTS: a fixed sample of each directory)", boxSample, 'b', 'erin');

describe('payloads stored by modules, with prefixes declared around them', () => {
  /** The subtree of the first element in `ns` inside the stanza of `out` whose id is `id`. */
  function payloadOf(out: string, id: string, ns: string): Infoset {
    const stanza = stanzasOf(HEADER, out).find((st) => Array.isArray(st[0]) && st[0][2].some((a) => a[1] === 'id' && a[2] === id));
    expect(stanza, id).toBeDefined();
    const from = stanza!.findIndex((ev) => Array.isArray(ev) && ev[0] === ns);
    expect(from, ns).toBeGreaterThan(0);
    let depth = 0;
    const end = stanza!.findIndex((ev, i) => i >= from && (depth += Array.isArray(ev) ? 1 : ev === null ? -1 : 0) === 0);
    return stanza!.slice(from, end + 1);
  }

  const cases = [
    {
      name: 'vcard-temp (XEP-0054), read by another account',
      set: "<iq type='set' id='s' xmlns:v='vcard-temp' xmlns:x='urn:example:x'><v:vCard><v:FN>Al</v:FN><x:ext v:kind='1'/></v:vCard></iq>",
      get: "<iq type='get' id='g' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
      ns: 'vcard-temp',
      reader: 'bob',
    },
    {
      name: 'private XML storage (XEP-0049)',
      set: "<iq type='set' id='s' xmlns:p='urn:example:p'><query xmlns='jabber:iq:private'><p:data><p:v>1</p:v></p:data></query></iq>",
      get: "<iq type='get' id='g'><query xmlns='jabber:iq:private'><data xmlns='urn:example:p'/></query></iq>",
      ns: 'urn:example:p',
      reader: 'alice',
    },
    {
      name: 'a PEP item (XEP-0163), fetched by its owner',
      set: "<iq type='set' id='s' xmlns:g='urn:example:g'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:g'><item id='i'><g:geo><g:lat>1</g:lat></g:geo></item></publish></pubsub></iq>",
      get: "<iq type='get' id='g'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:example:g'/></pubsub></iq>",
      ns: 'urn:example:g',
      reader: 'alice',
    },
  ];

  for (const c of cases) {
    it(`serves ${c.name} well-formed and as sent`, async () => {
      const alice = await login('alice', 'store');
      await alice.feed(c.set);
      expect(alice.transport.take()).toMatch(/<iq [^>]*type='result'/);
      const reader = c.reader === 'alice' ? alice : await login(c.reader, 'store');
      reader.transport.take();
      await reader.feed(c.get);
      expect(payloadOf(reader.transport.take(), 'g', c.ns)).toEqual(payloadOf(c.set, 's', c.ns));
    });
  }
});
