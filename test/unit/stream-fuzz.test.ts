/**
 * Fuzzing of the c2s stream state machine (src/stream/c2s.ts) with the real WASM core, the real
 * router and its modules, the real SASL mechanisms and memory storage: valid login transcripts
 * (header, STARTTLS, SASL PLAIN/SCRAM, restart, bind, stanzas, XEP-0198) are mutated (byte flips,
 * insertions, deletions, truncation, duplicated, dropped and reordered steps) and fed in random
 * chunks, beside two bystander sessions on the same router. Properties per session:
 *  - feed() and flush() never throw, and every SASL step settles (bounded work per chunk);
 *  - what the server wrote is, per stream header, a prefix of a well-formed XML document (saxes);
 *  - a closed stream ends with `</stream:stream>`, preceded by one stream error with an RFC 6120
 *    §4.9.3 condition, by a STARTTLS <failure/>, or by nothing when the client closed first;
 *  - the bystanders are never closed, and still exchange a message afterwards;
 *  - storage of accounts the input never names is unchanged, and nothing at all changes unless
 *    the session bound a resource.
 * Bounded here with a fixed seed; `npm run fuzz` runs it long (FUZZ_RUNS) on fresh seeds and
 * saves each counterexample under test/fixtures/stream/, which the last test replays.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setImmediate as turn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import { ScramClient } from '../../bench/load/scram.js';
import { loadCore } from '../../src/core/parser.js';
import { createRouter } from '../../src/router/index.js';
import { STREAM_ERROR_CONDITIONS } from '../../src/errors.js';
import { keepUnacked } from '../../src/server.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { C2SStream, type C2SOptions, type SaslProvider } from '../../src/stream/c2s.js';
import { SaslProvider as SaslMechanisms } from '../../src/stream/sasl/index.js';
import { HEADER, RecordingTransport, SASL, STREAM_OPTIONS } from './stream-helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** Bounded runs in the test suite are reproducible; `npm run fuzz` explores new seeds. */
const PARAMS = process.env.FUZZ_RUNS ? {} : { seed: 0x63327321 };
const TIMEOUT = process.env.FUZZ_RUNS ? RUNS * 100 : 120_000;

const core = loadCore();
const PASSWORD = 'fuzz-pw';
/** Every account; the fuzzed session logs in as alice, bob and carol are the bystanders. */
const ACCOUNTS = ['alice', 'bob', 'carol', 'dave', 'erin'];
const SM_NS = 'urn:xmpp:sm:3';
const TLS_NS = 'urn:ietf:params:xml:ns:xmpp-tls';
const XML_DECL = "<?xml version='1.0'?>";

/** RFC 6120 §4.9.3. */
const CONDITIONS = new Set<string>(STREAM_ERROR_CONDITIONS);

const RESUME_MS = 60_000;
const OPTIONS: C2SOptions = { ...STREAM_OPTIONS, streamManagement: { resumeTimeoutMs: RESUME_MS, maxUnacked: 50 } };

// ---- the world: storage, router, SASL, and a way to know when SASL work has settled ----------

interface World {
  storage: Storage;
  deps: Omit<ConstructorParameters<typeof C2SStream>[2], 'onClosed'>;
  /** SASL steps not settled yet (PBKDF2 runs on libuv's pool). */
  pending: Set<Promise<void>>;
}

function makeWorld(): World {
  const storage = createMemoryStorage({ iterations: 16 });
  for (const user of ACCOUNTS) storage.users.create(`${user}@localhost`, PASSWORD);
  const router = createRouter({ domain: 'localhost', storage });
  const inner = new SaslMechanisms({ users: storage.users, domain: 'localhost', iterations: 16 });
  const pending = new Set<Promise<void>>();
  const sasl: SaslProvider = {
    mechanisms: (plaintextOk) => inner.mechanisms(plaintextOk),
    start(mechanism) {
      const exchange = inner.start(mechanism);
      return {
        mechanism: exchange.mechanism,
        step(response) {
          const result = exchange.step(response);
          const settled = result.then(
            () => {},
            () => {},
          );
          pending.add(settled);
          void settled.then(() => pending.delete(settled));
          return result;
        },
      };
    },
  };
  return {
    storage,
    pending,
    deps: {
      core,
      router,
      sasl,
      smSessions: new Map(),
      onUnacked: (session, stanzas) => keepUnacked(storage, session.account.bare, stanzas),
    },
  };
}

/** Let SASL steps and the stream's reactions to them run; bounded, so a hang fails the run. */
async function settle(world: World): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await Promise.all(world.pending);
    await turn();
    if (world.pending.size === 0) return;
  }
  throw new Error('SASL work did not settle: the stream hangs');
}

interface Conn {
  stream: C2SStream;
  transport: RecordingTransport;
  feed(bytes: Uint8Array | string): Promise<void>;
}

function connect(world: World, secure: boolean): Conn {
  const transport = new RecordingTransport({ secure, canStartTls: !secure });
  const stream = new C2SStream(transport, OPTIONS, world.deps);
  return {
    stream,
    transport,
    async feed(bytes) {
      // Never throws out of feed or flush: a throw here fails the property.
      stream.feed(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
      await settle(world);
      stream.flush();
    },
  };
}

/** A bystander: logged in over PLAIN, bound to `resource`, available. */
async function bystander(world: World, user: string, resource = 'home'): Promise<Conn> {
  const c = connect(world, true);
  await c.feed(HEADER);
  await c.feed(`<auth ${SASL} mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64')}</auth>`);
  await c.feed(HEADER);
  await c.feed(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq><presence/>`);
  expect(c.transport.text()).toContain(`<jid>${user}@localhost/${resource}</jid>`);
  return c;
}

// ---- transcripts --------------------------------------------------------------------------

type Mechanism = 'PLAIN' | 'SCRAM-SHA-1' | 'SCRAM-SHA-256';

interface Plan {
  mechanism: Mechanism;
  starttls: boolean;
  /** The stream header declares xmlns:p (stanzas may use it: RFC 6120 §4.8.4 lets them). */
  prefixed: boolean;
  /** Which optional post-bind stanzas to send (indices into AFTER_BIND, in this order). */
  stanzas: number[];
  close: boolean;
  /**
   * XEP-0198: an earlier session of alice (SM enabled, one message unacknowledged) lost its
   * connection; this transcript resumes it instead of binding. Absent in older fixtures.
   */
  resume?: boolean;
}

/** What the world set up before the session, for steps that refer to it. */
interface Context {
  previd: string;
}

type Step = (out: string, ctx: Context) => string | Promise<string>;

/** What an ordinary client sends after binding: addressed to everyone the world has. */
const AFTER_BIND = [
  "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
  `<enable xmlns='${SM_NS}' resume='true'/>`,
  '<presence><priority>5</priority></presence>',
  "<message to='bob@localhost/home' type='chat' id='m1'><body>hello bob</body></message>",
  "<message to='dave@localhost' type='chat' id='m2'><body>for later</body></message>",
  "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>",
  "<presence to='bob@localhost' type='subscribe'/>",
  "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
  "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>",
  `<r xmlns='${SM_NS}'/>`,
  `<a xmlns='${SM_NS}' h='1'/>`,
  "<message to='localhost' id='m3'><body>to the server</body></message>",
  "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
  // To itself, through the splicer: escapes, character references, non-ASCII, a CDATA section.
  "<message to='alice@localhost/fuzz' id='m4'><body>a &amp; b &lt; c &#x263A; \u00e9\u{1f600}<![CDATA[<x>]]></body></message>",
  // Prefixes declared on the stanza (and, with `prefixed`, on the client's stream header).
  "<message to='bob@localhost/home' id='m5'><x:data xmlns:x='urn:example:x'><x:v>1</x:v></x:data></message>",
  "<message to='bob@localhost/home' id='m6'><p:data><p:v>2</p:v></p:data></message>",
  "<iq type='get' id='v1' to='bob@localhost/home'><query xmlns='jabber:iq:version'/></iq>",
];

const SCRAM_HASH = { 'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256' } as const;

function transcript(plan: Plan): Step[] {
  const header = plan.prefixed ? HEADER.replace("to='localhost'", "to='localhost' xmlns:p='urn:example:p'") : HEADER;
  const steps: Step[] = [() => header];
  if (plan.starttls) steps.push(() => `<starttls xmlns='${TLS_NS}'/>`, () => header);
  if (plan.mechanism === 'PLAIN') {
    steps.push(() => `<auth ${SASL} mechanism='PLAIN'>${Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')}</auth>`);
  } else {
    // The client nonce is fixed so that a saved finding replays the same bytes up to the proof.
    const client = new ScramClient(SCRAM_HASH[plan.mechanism], 'alice', PASSWORD, 'fuzzclientnonce');
    steps.push(
      () => `<auth ${SASL} mechanism='${plan.mechanism}'>${Buffer.from(client.first()).toString('base64')}</auth>`,
      async (out) => {
        const challenges = [...out.matchAll(/<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>([^<]*)<\/challenge>/g)];
        const last = challenges.at(-1)?.[1];
        if (last === undefined) return `<response ${SASL}/>`;
        try {
          const final = await client.final(Buffer.from(last, 'base64').toString('utf8'));
          return `<response ${SASL}>${Buffer.from(final).toString('base64')}</response>`;
        } catch {
          return `<response ${SASL}>=</response>`;
        }
      },
    );
  }
  steps.push(
    () => header,
    plan.resume
      ? (_out, ctx) => `<resume xmlns='${SM_NS}' previd='${ctx.previd}' h='0'/>`
      : () => "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>fuzz</resource></bind></iq>",
  );
  for (const i of plan.stanzas) steps.push(() => AFTER_BIND[i % AFTER_BIND.length]!);
  if (plan.close) steps.push(() => '</stream:stream>');
  return steps;
}

/** Fragments worth inserting: markup, forbidden constructs, negotiation out of place. */
const TOKENS = [
  '<', '>', '/>', '</', '"', "'", '&', '&amp;', '&#0;', '&#xD800;', '&lol;', '<!--x-->', '<?pi x?>',
  "<!DOCTYPE stream [<!ENTITY lol 'lol'>]>", '<![CDATA[x]]>', XML_DECL, HEADER, '</stream:stream>',
  "xmlns:x='urn:x'", '<x:y/>', '<stream:features/>', '\u00e9', '\u{1f600}', ' ', '\n', '\t',
  '<presence/>', "<message to='bob@localhost'><body>x</body></message>", "<iq type='get' id='z'/>",
  `<starttls xmlns='${TLS_NS}'/>`, `<abort ${SASL}/>`, `<auth ${SASL} mechanism='PLAIN'>=</auth>`,
  `<auth ${SASL} mechanism='X-NOPE'/>`, `<response ${SASL}>!!</response>`, `<enable xmlns='${SM_NS}'/>`,
  `<a xmlns='${SM_NS}' h='4294967295'/>`, `<resume xmlns='${SM_NS}' previd='nope' h='0'/>`,
  "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
].map((t) => [...Buffer.from(t)]);

type Mutation =
  | { kind: 'flip'; step: number; at: number; bit: number }
  | { kind: 'insert'; step: number; at: number; bytes: number[] }
  | { kind: 'delete'; step: number; at: number; len: number }
  | { kind: 'truncate'; step: number; at: number }
  | { kind: 'dup'; step: number }
  | { kind: 'drop'; step: number }
  | { kind: 'swap'; step: number; other: number };

interface Case {
  plan: Plan;
  mutations: Mutation[];
  /** Chunk boundaries, as offsets into each step's bytes (modulo its length). */
  cuts: number[];
}

const step = fc.nat({ max: 40 });
const at = fc.nat({ max: 400 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), step, at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    step,
    at,
    bytes: fc.oneof(fc.constantFrom(...TOKENS), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 6 })),
  }),
  fc.record({ kind: fc.constant('delete' as const), step, at, len: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ kind: fc.constant('truncate' as const), step, at }),
  fc.record({ kind: fc.constant('dup' as const), step }),
  fc.record({ kind: fc.constant('drop' as const), step }),
  fc.record({ kind: fc.constant('swap' as const), step, other: step }),
);

const planArb: fc.Arbitrary<Plan> = fc.record({
  mechanism: fc.constantFrom<Mechanism>('PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256'),
  starttls: fc.boolean(),
  // Rare: such a header is refused since finding-header-prefix, so it ends the session early.
  prefixed: fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 }),
  stanzas: fc.array(fc.nat({ max: AFTER_BIND.length - 1 }), { maxLength: 10 }),
  close: fc.boolean(),
  resume: fc.boolean(),
});

const caseArb = (maxMutations: number): fc.Arbitrary<Case> =>
  fc.record({
    plan: planArb,
    mutations: fc.array(mutationArb, { maxLength: maxMutations }),
    cuts: fc.array(fc.nat({ max: 512 }), { maxLength: 8 }),
  });

/** Apply the step-level mutations; byte-level ones stay keyed by (new) step index. */
function arrange(steps: Step[], mutations: Mutation[]): Step[] {
  const out = [...steps];
  for (const m of mutations) {
    if (out.length === 0) break;
    const i = m.step % out.length;
    if (m.kind === 'dup') out.splice(i, 0, out[i]!);
    else if (m.kind === 'drop') out.splice(i, 1);
    else if (m.kind === 'swap') {
      const j = m.other % out.length;
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
  }
  return out;
}

/** Byte-level mutations of step `index`; `stop` when the transcript is truncated here. */
function mutateBytes(bytes: Buffer, index: number, count: number, mutations: Mutation[]): { bytes: Buffer; stop: boolean } {
  let b = bytes;
  let stop = false;
  for (const m of mutations) {
    if (m.kind === 'dup' || m.kind === 'drop' || m.kind === 'swap' || m.step % count !== index) continue;
    const pos = m.at % (b.length + 1);
    if (m.kind === 'flip' && b.length > 0) {
      b = Buffer.from(b);
      const p = m.at % b.length;
      b[p] = b[p]! ^ (1 << m.bit);
    } else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, pos), Buffer.from(m.bytes), b.subarray(pos)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + m.len)]);
    else if (m.kind === 'truncate') {
      b = b.subarray(0, pos);
      stop = true;
    }
  }
  return { bytes: b, stop };
}

function chunksOf(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    if (cut > from) chunks.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return chunks;
}

// ---- properties ----------------------------------------------------------------------------

/**
 * The server's output cut into its streams: a new one starts at each header it wrote. Headers
 * are the server's own strings; routed stanzas are the sender's bytes (Uint8Array chunks), which
 * may hold an XML declaration inside CDATA, so those chunks are never cut.
 */
function serverStreams(transport: RecordingTransport): string[] {
  const streams: string[] = [];
  for (const chunk of transport.writes.flat()) {
    if (typeof chunk !== 'string') {
      if (streams.length === 0) streams.push('');
      streams[streams.length - 1] += Buffer.from(chunk).toString('utf8');
      continue;
    }
    const parts = chunk.split(XML_DECL);
    if (streams.length === 0) streams.push('');
    streams[streams.length - 1] += parts[0]!;
    for (const part of parts.slice(1)) streams.push(XML_DECL + part);
  }
  return streams;
}

/** Each stream the server opened (one per header it sent) is a well-formed prefix; the last is complete when closed. */
function checkWellFormed(transport: RecordingTransport, ended: boolean): void {
  const out = transport.text();
  if (out === '') return;
  expect(out.startsWith(XML_DECL), `output starts with a stream header: ${out.slice(0, 80)}`).toBe(true);
  const streams = serverStreams(transport).map((text) => text.slice(XML_DECL.length));
  streams.forEach((text, i) => {
    const parser = new SaxesParser({ xmlns: true });
    const errors: string[] = [];
    parser.on('error', (e) => errors.push(e.message));
    parser.write(XML_DECL + text);
    if (ended && i === streams.length - 1) parser.close();
    expect(errors, `server stream ${i} not well-formed:\n${text}`).toEqual([]);
  });
}

const ENDING = new RegExp(
  "<stream:error><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>(?:<text [^>]*>[^<]*</text>)?</stream:error></stream:stream>$",
);

/** A closed stream says why (RFC 6120 §4.9), or closes cleanly because the client did. */
function checkClose(out: string, ended: boolean, input: Buffer): void {
  const errors = out.split('<stream:error>').length - 1;
  if (!ended) {
    expect(errors, 'stream error without closing the stream').toBe(0);
    expect(out).not.toContain('</stream:stream>');
    return;
  }
  expect(out.endsWith('</stream:stream>'), `closed stream ends with </stream:stream>: ${out.slice(-200)}`).toBe(true);
  const m = ENDING.exec(out);
  if (m) {
    expect(CONDITIONS.has(m[1]!), `known condition ${m[1]}`).toBe(true);
    expect(errors).toBe(1);
    return;
  }
  expect(errors, `stream error not at the end: ${out.slice(-300)}`).toBe(0);
  // Without an error: the client closed its stream, or STARTTLS was refused (RFC 6120 §5.4.2.2).
  const tlsFailure = out.endsWith(`<failure xmlns='${TLS_NS}'/></stream:stream>`);
  expect(tlsFailure || input.includes('</'), `close without a reason: ${out.slice(-200)}`).toBe(true);
}

function snapshot(storage: Storage, user: string): string {
  const bare = `${user}@localhost`;
  return JSON.stringify({
    exists: storage.users.exists(bare),
    roster: storage.rosters.list(bare),
    pending: storage.rosters.listPending(bare),
    offline: storage.offline.count(bare),
    blocks: storage.blocklist.list(bare),
    sha1: storage.users.getScramCredentials(bare, 'SHA-1'),
    sha256: storage.users.getScramCredentials(bare, 'SHA-256'),
  });
}

let serial = 0;
/** What the sessions reached, so that a generator that degenerates (never binds, one error) shows. */
const seen = { sessions: 0, bound: 0, resumed: 0, clean: 0, conditions: new Map<string, number>() };

/** Run one session beside two bystanders and check every property. */
async function runSession(feedAll: (fuzz: Conn, ctx: Context) => Promise<Buffer>, secure: boolean, resumable = false): Promise<void> {
  const world = makeWorld();
  const bob = await bystander(world, 'bob');
  const carol = await bystander(world, 'carol');
  const ctx: Context = { previd: 'none' };
  let old: Conn | null = null;
  if (resumable) {
    old = await bystander(world, 'alice', 'old');
    await old.feed(`<enable xmlns='${SM_NS}' resume='true'/>`);
    ctx.previd = /<enabled [^>]*id='([^']+)'/.exec(old.transport.text())![1]!;
    await carol.feed("<message to='alice@localhost/old' type='chat' id='u1'><body>unacked</body></message>");
    await turn();
    old.stream.flush();
    expect(old.transport.text()).toContain('unacked');
    old.stream.transportClosed();
    expect(old.stream.isDetached).toBe(true);
  }
  const before = new Map(ACCOUNTS.map((u) => [u, snapshot(world.storage, u)]));
  const fuzz = connect(world, secure);
  const input = await feedAll(fuzz, ctx);
  const out = fuzz.transport.text();
  checkWellFormed(fuzz.transport, fuzz.transport.ended);
  checkClose(out, fuzz.transport.ended, input);
  seen.sessions++;
  if (/<jid>|<resumed /.test(out)) seen.bound++;
  if (/<resumed /.test(out)) seen.resumed++;
  const condition = ENDING.exec(out)?.[1];
  if (condition) seen.conditions.set(condition, (seen.conditions.get(condition) ?? 0) + 1);
  else if (fuzz.transport.ended) seen.clean++;
  // The connection drops; a resumable session waits, then ends for good (XEP-0198 §5).
  fuzz.stream.transportClosed();
  fuzz.stream.checkTimeouts(Date.now() + 2 * RESUME_MS);
  old?.stream.checkTimeouts(Date.now() + 2 * RESUME_MS);
  await settle(world);

  // Bystanders: never closed, never sent a stream error, and still talk to each other.
  const id = `by${++serial}`;
  await carol.feed(`<message to='bob@localhost/home' type='chat' id='${id}'><body>still here</body></message>`);
  await turn();
  bob.stream.flush();
  for (const [name, c] of [['bob', bob], ['carol', carol]] as const) {
    expect(c.transport.ended, `${name} was closed`).toBe(false);
    checkWellFormed(c.transport, false);
    expect(c.transport.text()).not.toContain('<stream:error>');
  }
  expect(bob.transport.text()).toContain(`id='${id}'`);

  // Storage: nothing unless bound; never anything of an account the input does not name.
  const bound = /<jid>alice@localhost\/[^<]*<\/jid>|<resumed /.test(out);
  const named = input.toString('latin1').toLowerCase();
  for (const user of ACCOUNTS) {
    // A detached session that ends stores its unacknowledged messages (alice's, XEP-0198 §4).
    if ((bound || resumable) && (user === 'alice' || (bound && named.includes(user)))) continue;
    expect(snapshot(world.storage, user), `storage of ${user} changed (bound: ${bound})`).toBe(before.get(user));
  }
}

async function runCase(c: Case): Promise<void> {
  const steps = arrange(transcript(c.plan), c.mutations);
  await runSession(async (fuzz, ctx) => {
    const fed: Buffer[] = [];
    for (let i = 0; i < steps.length; i++) {
      const rendered = Buffer.from(await steps[i]!(fuzz.transport.text(), ctx));
      const { bytes, stop } = mutateBytes(rendered, i, steps.length, c.mutations);
      fed.push(bytes);
      for (const chunk of chunksOf(bytes, c.cuts)) await fuzz.feed(chunk);
      if (stop) break;
    }
    return Buffer.concat(fed);
  }, !c.plan.starttls, c.plan.resume ?? false);
}

/** Random sessions: a header (or not) and then fragments and random bytes, in random chunks. */
interface RandomCase {
  header: boolean;
  /** Bytes, or (in hand-written fixtures) UTF-8 text. */
  parts: (number[] | string)[];
}

const randomArb: fc.Arbitrary<RandomCase> = fc.record({
  header: fc.boolean(),
  parts: fc.array(fc.oneof(fc.constantFrom(...TOKENS), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 16 })), { maxLength: 16 }),
});

async function runRandom(c: RandomCase): Promise<void> {
  await runSession(async (fuzz) => {
    const parts = [...(c.header ? [[...Buffer.from(HEADER)]] : []), ...c.parts].map((p) => Buffer.from(p));
    for (const part of parts) await fuzz.feed(part);
    return Buffer.concat(parts);
  }, true);
}

// ---- findings ------------------------------------------------------------------------------

const fixturesDir = fileURLToPath(new URL('../fixtures/stream/', import.meta.url));

type Finding = { kind: 'transcript'; case: Case } | { kind: 'random'; case: RandomCase };

function replay(f: Finding): Promise<void> {
  return f.kind === 'transcript' ? runCase(f.case) : runRandom(f.case);
}

/**
 * Run a property; a long run (FUZZ_RUNS) keeps its shrunk counterexample as a fixture that the
 * suite replays from then on.
 */
async function fuzz<T>(kind: Finding['kind'], arb: fc.Arbitrary<T>, numRuns: number): Promise<void> {
  const out = await fc.check(
    fc.asyncProperty(arb, (c) => replay({ kind, case: c } as Finding)),
    { ...PARAMS, numRuns },
  );
  if (!out.failed) return;
  if (process.env.FUZZ_RUNS && out.counterexample) {
    mkdirSync(fixturesDir, { recursive: true });
    const finding = { kind, case: out.counterexample[0] };
    const id = createHash('sha1').update(JSON.stringify(finding)).digest('hex').slice(0, 12);
    const error = String(out.errorInstance).slice(0, 500);
    writeFileSync(`${fixturesDir}finding-${id}.json`, JSON.stringify({ ...finding, error }, null, 2) + '\n');
  }
  throw new Error(fc.defaultReportMessage(out));
}

describe('c2s stream state machine under fuzzing (WASM core, router, memory storage)', () => {
  it('keeps its properties on valid login transcripts fed in random chunks', async () => {
    await fuzz('transcript', caseArb(0), RUNS);
  }, TIMEOUT);

  it('keeps its properties on mutated login transcripts', async () => {
    await fuzz('transcript', caseArb(4), RUNS * 4);
  }, TIMEOUT);

  it('reaches the bound phase and many distinct stream errors across the mutated sessions', () => {
    if (process.env.SFUZZ_STATS) console.log(seen);
    expect(seen.bound / seen.sessions).toBeGreaterThan(0.2);
    expect(seen.resumed).toBeGreaterThan(0);
    expect(seen.clean).toBeGreaterThan(0);
    expect(seen.conditions.size).toBeGreaterThanOrEqual(5);
  });

  it('keeps its properties on random input', async () => {
    await fuzz('random', randomArb, RUNS * 2);
  }, TIMEOUT);

  /** An unmutated transcript, whole steps fed one by one; what the server wrote. */
  async function clean(plan: Plan): Promise<string> {
    let out = '';
    await runSession(
      async (fuzz, ctx) => {
        const fed: Buffer[] = [];
        for (const step of transcript(plan)) {
          const bytes = Buffer.from(await step(fuzz.transport.text(), ctx));
          fed.push(bytes);
          await fuzz.feed(bytes);
        }
        out = fuzz.transport.text();
        return Buffer.concat(fed);
      },
      !plan.starttls,
      plan.resume,
    );
    return out;
  }

  it('logs in and binds on an unmutated transcript (the generator reaches the bound phase)', async () => {
    for (const mechanism of ['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256'] as const) {
      const out = await clean({ mechanism, starttls: true, prefixed: false, stanzas: [1, 3, 4, 7], close: true });
      expect(out).toContain('<jid>alice@localhost/fuzz</jid>');
      expect(out).toContain(`<enabled xmlns='${SM_NS}'`);
      expect(out).toMatch(/<iq [^>]*id='p1'/);
      expect(out.endsWith('</stream:stream>')).toBe(true);
      expect(out).not.toContain('<stream:error>');
    }
  });

  it('resumes the detached session on an unmutated resume transcript and replays what was unacknowledged', async () => {
    const out = await clean({ mechanism: 'PLAIN', starttls: false, prefixed: false, stanzas: [7], close: true, resume: true });
    expect(out).toMatch(new RegExp(`<resumed xmlns='${SM_NS}' h='0' previd='[^']+'/>`));
    expect(out.indexOf('unacked')).toBeGreaterThan(out.indexOf('<resumed'));
    expect(out).toMatch(/<iq [^>]*id='p1'/);
    expect(out).not.toContain('<stream:error>');
  });

  const fixtures = readdirSync(fixturesDir).filter((f) => f.endsWith('.json'));
  it.each(fixtures)('replays the saved finding %s', async (file) => {
    const finding = JSON.parse(readFileSync(`${fixturesDir}${file}`, 'utf8')) as Finding;
    await replay(finding);
  });
});
