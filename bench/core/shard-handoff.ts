/**
 * Where should the work of one stanza happen? The main thread owns the sockets in every design
 * (Node 20), so what matters is main-thread CPU per stanza:
 *   (c) inline:   parse (WASM core) + route on the main thread;
 *   (a) parse-only shards: the main thread copies the chunk into a ring and takes a descriptor
 *       back per stanza, then still routes;
 *   (b) shards own core + router: the main thread copies the chunk into a ring and copies the
 *       output records back out to the sockets.
 * This measures each share on one thread (no cross-thread wake-ups: bench/core/shard-wake.ts
 * has those), for chunks of 64 message stanzas, the way a busy socket delivers them.
 *
 *   node dist/bench/core/shard-handoff.js [--iterations 2000] [--json]
 */
import { StanzaKind, type ParserHandler, type StanzaView } from '../../src/core/api.js';
import { loadCore } from '../../src/core/parser.js';
import { Jid } from '../../src/jid.js';
import { createRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { HEADER_BYTES, Op, RingSender } from '../../src/shard/protocol.js';
import { createRing, RingReader, RingWriter } from '../../src/shard/ring.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const PER_CHUNK = 64;
const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

function chunkOfMessages(n: number): Buffer {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += `<message to='user${i % 100}@localhost/res' type='chat' id='m${i}'><body>hello there, message number ${i} of a busy chat</body></message>`;
  }
  return Buffer.from(s);
}

function time(iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(200, iterations); i++) fn();
  const t0 = nowNs();
  for (let i = 0; i < iterations; i++) fn();
  return Number(nowNs() - t0) / 1000 / iterations;
}

async function main(): Promise<void> {
  const iterations = numArg('iterations', 2000);
  const chunk = chunkOfMessages(PER_CHUNK);
  const core = await loadCore();
  let seen = 0;
  let toLen = 0;
  const handler: ParserHandler = {
    onStreamOpen() {},
    onStanza(view: StanzaView) {
      seen++;
      // What the router reads of every message before deciding (RFC 6120 §10).
      if (view.kind === StanzaKind.Message) toLen += view.to()?.length ?? 0;
    },
    onStreamClose() {},
    onError(e) {
      throw new Error(e.message);
    },
  };
  const parser = core.createParser(handler);
  parser.feed(Buffer.from(HEADER));
  const parseUs = time(iterations, () => parser.feed(chunk));
  if (seen < PER_CHUNK * iterations || toLen === 0) throw new Error('parser did not see the stanzas');

  // Parse + route: the router of a shard, 100 bound recipients, deliveries into memory.
  const storage = createMemoryStorage({ iterations: 4096 });
  const router = createRouter({ domain: 'localhost', storage });
  let delivered = 0;
  const session = (user: string, id: number): ClientSession => ({
    id,
    account: Jid.parse(`${user}@localhost`),
    jid: null,
    send: () => {
      delivered++;
    },
    close: () => {},
  });
  for (let i = 0; i < 100; i++) router.bind(session(`user${i}`, i + 1), 'res');
  const sender = session('sender', 1000);
  (sender as { jid: Jid | null }).jid = router.bind(sender, 'res');
  const routing: ParserHandler = { ...handler, onStanza: (view) => router.route(sender, view) };
  const routed = core.createParser(routing);
  routed.feed(Buffer.from(HEADER));
  const routeUs = time(iterations, () => routed.feed(chunk));
  if (delivered < PER_CHUNK * iterations) throw new Error(`router delivered ${delivered}`);

  // Rings as a shard pair uses them, producer and consumer driven from this one thread.
  const toShard = createRing(1 << 22);
  const fromShard = createRing(1 << 22);
  const inSender = new RingSender(new RingWriter(toShard, { autoCommit: false }));
  const inReader = new RingReader(toShard);
  const outSender = new RingSender(new RingWriter(fromShard, { autoCommit: false }));
  const outReader = new RingReader(fromShard);
  const descriptor = new Uint8Array(48);
  let sink = 0;
  const toSocket = (rec: Uint8Array): void => {
    // The socket needs its own copy: the ring's memory is reused after the drain.
    sink += Buffer.from(rec.subarray(HEADER_BYTES)).length;
  };
  const readDescriptor = (rec: Uint8Array): void => {
    sink += rec[HEADER_BYTES]!;
  };
  const noop = (): void => {};
  const drainOnly = time(iterations, () => {
    inReader.drain(noop);
  });
  // Main thread: the chunk into the shard's ring (the drain keeps the ring from filling).
  const chunkIn = time(iterations, () => {
    inSender.send(Op.Data, 1, chunk);
    inSender.commit();
    inReader.drain(noop);
  });
  // Main thread: (b) the shard's output (as many bytes: forwarded stanzas) out to the sockets.
  const outputOut = time(iterations, () => {
    outSender.send(Op.Write, 1, chunk);
    outSender.commit();
    outReader.drain(toSocket);
  });
  // Main thread: (a) one descriptor per stanza back.
  const descriptorsOut = time(iterations, () => {
    for (let i = 0; i < PER_CHUNK; i++) outSender.send(Op.Write, 1, descriptor);
    outSender.commit();
    outReader.drain(readDescriptor);
  });
  if (sink === 0) throw new Error('nothing moved');

  const per = (us: number): number => round(us / PER_CHUNK, 3);
  const row = (name: string, us: number): Row => ({ case: name, 'µs/chunk': round(us), 'µs/stanza': per(us) });
  const routeOnly = routeUs - parseUs;
  const rows: Row[] = [
    row('parse (WASM core) + read to', parseUs),
    row('parse + route (100 recipients, from stamped)', routeUs),
    row('ring: chunk into a shard ring', chunkIn - drainOnly),
    row('ring: shard output out, copied for the socket', outputOut),
    row('ring: 64 descriptors out', descriptorsOut),
    row('(c) inline, main thread: parse + route', routeUs),
    row('(a) parse-only shards, main: in + descriptors + route', chunkIn - drainOnly + descriptorsOut + routeOnly),
    row('(b) shards own core+router, main: in + out', chunkIn - drainOnly + outputOut),
  ];
  report(`Main-thread cost per stanza, chunks of ${PER_CHUNK} messages (${chunk.length} B), socket I/O excluded`, rows);
}

await main();
