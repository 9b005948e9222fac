/**
 * XEP-0198 resumption across shards, socket- and thread-free: two "shards" (each its own router
 * and resumable sessions), the records shard 1 would send the main thread when a <resume/> names
 * a session of shard 0, and shard 0 continuing the connection from those records.
 */
import { setImmediate as settle } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { loadCore } from '../../src/core/parser.js';
import { Jid } from '../../src/jid.js';
import { Metrics, stats, useStats } from '../../src/observability/metrics.js';
import { failure, joinRecord, smShardRouting, splitRecord } from '../../src/shard/handoff.js';
import { HANDOFF_ERROR, Op, type RingSender } from '../../src/shard/protocol.js';
import { C2SStream, StreamPhase, type C2SDeps, type C2SOptions } from '../../src/stream/c2s.js';
import { sample } from './metrics-sample.js';
import { AUTH_OK, BIND, HEADER, RecordingTransport, STREAM_OPTIONS, plainSasl, recordingRouter } from './stream-helpers.js';

const OPTIONS: C2SOptions = { ...STREAM_OPTIONS, streamManagement: { resumeTimeoutMs: 60_000, maxUnacked: 50 } };
const SM = "xmlns='urn:xmpp:sm:3'";
const core = loadCore();
const text = (body: Uint8Array | string): string => (typeof body === 'string' ? body : Buffer.from(body).toString());

interface Sent {
  op: Op;
  id: number;
  body: string;
  raw: Uint8Array;
  arg: number;
}

/** One shard's stream layer: its sessions, its router, and the records it sends the main thread. */
function shard(index: number) {
  const sent: Sent[] = [];
  const out = {
    send(op: Op, id: number, body: Uint8Array | string = '', arg = 0) {
      const raw = typeof body === 'string' ? new TextEncoder().encode(body) : Uint8Array.from(body);
      sent.push({ op, id, body: text(raw), raw, arg });
    },
  } as unknown as RingSender;
  const connIds = new Map<C2SStream, number>();
  const router = recordingRouter();
  const deps: C2SDeps = {
    core,
    router,
    sasl: plainSasl,
    smSessions: new Map(),
    smShards: smShardRouting(index, 2, out, (s) => connIds.get(s)),
  };
  const wire = (stream: C2SStream, transport: RecordingTransport, conn: number) => {
    transport.sink = stream;
    connIds.set(stream, conn);
    const feed = async (input: string | Uint8Array) => {
      transport.sink!.feed(typeof input === 'string' ? Buffer.from(input) : input);
      await settle();
      stream.flush();
      return transport.take();
    };
    return { stream, transport, feed };
  };
  async function login(conn: number, bind: boolean) {
    const transport = new RecordingTransport({ secure: true });
    const c = wire(new C2SStream(transport, OPTIONS, deps), transport, conn);
    await c.feed(HEADER);
    await c.feed(AUTH_OK);
    await c.feed(HEADER);
    if (bind) await c.feed(BIND);
    return c;
  }
  /** What the worker does with an Adopt record: continue the connection here. */
  function adopt(conn: number, account: string, streamId: string) {
    const transport = new RecordingTransport({ secure: true });
    return wire(C2SStream.continued(transport, OPTIONS, deps, Jid.parse(account), streamId), transport, conn);
  }
  return { sent, router, deps, login, adopt };
}

describe('XEP-0198 resumption ids of a shard', () => {
  it('name their shard, and only ids of another existing shard are routed away', () => {
    const routing = smShardRouting(1, 3, {} as RingSender, () => undefined);
    const id = routing.mint();
    expect(id).toMatch(/^0001[0-9a-f]{32}$/);
    expect(routing.mint()).not.toBe(id);
    expect(routing.ownerElsewhere(id)).toBeNull(); // ours
    expect(routing.ownerElsewhere(`0002${id.slice(4)}`)).toBe(2);
    expect(routing.ownerElsewhere(`0000${id.slice(4)}`)).toBe(0);
    expect(routing.ownerElsewhere(`0003${id.slice(4)}`)).toBeNull(); // no such shard
    expect(routing.ownerElsewhere(id.slice(4))).toBeNull(); // single-thread format
    expect(routing.ownerElsewhere(`0002${id.slice(4)}`.toUpperCase())).toBeNull();
  });

  it('hand-off records carry their fields and the raw bytes through unchanged', () => {
    const raw = new TextEncoder().encode("<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>\n<r/>");
    const { fields, rest } = splitRecord(joinRecord(['alice@localhost', 'abc'], raw), 2);
    expect(fields).toEqual(['alice@localhost', 'abc']);
    expect(text(rest)).toBe(text(raw));
    expect(() => splitRecord(new TextEncoder().encode('no newline'), 1)).toThrow();
    const err = failure(new TextEncoder().encode('not-well-formed\nunclosed tag'));
    expect([err.condition, err.text]).toEqual(['not-well-formed', 'unclosed tag']);
    expect(failure(new TextEncoder().encode('policy-violation\n')).text).toBeUndefined();
  });
});

describe('XEP-0198 resumption across shards (§5)', () => {
  it('moves the connection to the owner, which resumes the session with what was not acknowledged', async () => {
    const s0 = shard(0);
    const s1 = shard(1);
    // alice's session lives on shard 0; its link dies with two stanzas unacknowledged.
    const old = await s0.login(7, true);
    const enabled = await old.feed(`<enable ${SM} resume='true'/>`);
    const id = /id='([0-9a-f]+)'/.exec(enabled)![1]!;
    expect(id.startsWith('0000')).toBe(true);
    await old.feed('<presence/>');
    old.stream.send("<message from='bob@localhost/x'><body>one</body></message>");
    old.stream.send("<message from='bob@localhost/x'><body>two</body></message>");
    old.stream.flush();
    old.transport.take();
    old.stream.transportClosed();
    expect(old.stream.isDetached).toBe(true);

    // The new connection lands on shard 1 and pipelines an <r/> and half an IQ behind <resume/>.
    const fresh = await s1.login(9, false);
    const said = await fresh.feed(`<resume ${SM} previd='${id}' h='1'/><r ${SM}/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/>`);
    // Shard 1 answers nothing: the owner will.
    expect(said).toBe('');
    const move = s1.sent.find((r) => r.op === Op.Move)!;
    expect(move).toMatchObject({ id: 9, arg: 0 });
    const { fields, rest } = splitRecord(move.raw, 2);
    expect(fields[0]).toBe('alice@localhost');
    expect(text(rest)).toBe(`<resume ${SM} previd='${id}' h='1'/>`);
    // The rest of the read, and of the next, follows element by element.
    await fresh.feed('</iq>');
    expect(s1.sent.filter((r) => r.op === Op.MoveMore).map((r) => r.body)).toEqual([
      `<r ${SM}/>`,
      "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    ]);
    // Shard 1's stream never writes to the connection again, even when it times out or closes.
    fresh.stream.checkTimeouts(Date.now() + 3_600_000);
    fresh.stream.close();
    expect(fresh.transport.take()).toBe('');
    expect(fresh.transport.ended).toBe(false);
    expect(fresh.stream.phase).toBe(StreamPhase.Closed);
    expect(s1.router.log.bound).toHaveLength(0);

    // Shard 0 continues the connection with the <resume/>, then what shard 1 relayed.
    const cont = s0.adopt(9, fields[0]!, fields[1]!);
    let out = await cont.feed(rest);
    for (const r of s1.sent.filter((x) => x.op === Op.MoveMore)) out += await cont.feed(r.raw);
    expect(out).toBe(
      `<resumed ${SM} h='1' previd='${id}'/>` +
        "<message from='bob@localhost/x'><body>two</body></message>" +
        `<r ${SM}/>` +
        `<a ${SM} h='1'/>`,
    );
    expect(old.stream.isDetached).toBe(false);
    // The IQ reached the router as the resumed session's.
    expect(s0.router.log.routed.at(-1)!.session).toBe(old.stream);
    expect(cont.stream.resumedBy).toBe(old.stream);
  });

  it('lets the owner answer <failed/> for a session it no longer has, and the client binds there', async () => {
    const s0 = shard(0);
    const s1 = shard(1);
    const fresh = await s1.login(3, false);
    const previd = `0000${'ab'.repeat(16)}`;
    await fresh.feed(`<resume ${SM} previd='${previd}' h='0'/>`);
    const move = s1.sent.find((r) => r.op === Op.Move)!;
    const { fields, rest } = splitRecord(move.raw, 2);
    const cont = s0.adopt(3, fields[0]!, fields[1]!);
    expect(await cont.feed(rest)).toBe(`<failed ${SM}><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`);
    expect(await cont.feed(BIND)).toContain('<jid>alice@localhost/phone</jid>');
    expect(s0.router.log.bound).toHaveLength(1);
  });

  it('counts a <resume/> moved to another shard once in the stanzas-in metric, on the shard that answers it', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const shardStats = [metrics.createShard(), metrics.createShard()];
    const previous = stats;
    const s0 = shard(0);
    const s1 = shard(1);
    try {
      useStats(shardStats[1]!);
      const fresh = await s1.login(5, false);
      const before = await metrics.text();
      await fresh.feed(`<resume ${SM} previd='0000${'ef'.repeat(16)}' h='0'/>`);
      const { fields, rest } = splitRecord(s1.sent.find((r) => r.op === Op.Move)!.raw, 2);
      // Shard 0's thread reads the moved <resume/> again and answers it.
      useStats(shardStats[0]!);
      expect(await s0.adopt(5, fields[0]!, fields[1]!).feed(rest)).toContain('<failed ');
      const after = await metrics.text();
      const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels)! - sample(before, name, labels)!;
      expect(delta('hermod_stanzas_in_total', { kind: 'other' })).toBe(1);
      expect(delta('hermod_shard_stanzas_in_total', { shard: '0' })).toBe(1);
      expect(delta('hermod_shard_stanzas_in_total', { shard: '1' })).toBe(0);
    } finally {
      useStats(previous);
    }
  });

  it('relays broken XML after the move as the error the owner ends the stream with', async () => {
    const s1 = shard(1);
    const fresh = await s1.login(4, false);
    await fresh.feed(`<resume ${SM} previd='0000${'cd'.repeat(16)}' h='0'/><a></b>`);
    const error = s1.sent.find((r) => r.op === Op.MoveMore && r.arg === HANDOFF_ERROR)!;
    expect(failure(error.raw).condition).toBe('not-well-formed');
    expect(fresh.transport.take()).toBe('');
  });

  it('keeps resumption on the shard itself when the id is its own', async () => {
    const s0 = shard(0);
    const old = await s0.login(1, true);
    const id = /id='([0-9a-f]+)'/.exec(await old.feed(`<enable ${SM} resume='true'/>`))![1]!;
    old.stream.transportClosed();
    const fresh = await s0.login(2, false);
    expect(await fresh.feed(`<resume ${SM} previd='${id}' h='0'/>`)).toBe(`<resumed ${SM} h='0' previd='${id}'/>`);
    expect(s0.sent.filter((r) => r.op === Op.Move)).toHaveLength(0);
  });
});
