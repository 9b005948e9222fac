import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, Op, readHeader, reassembling, RingSender } from '../../src/shard/protocol.js';
import { createRing, Doorbell, recordSize, RingReader, RingWriter } from '../../src/shard/ring.js';

function bytes(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

function drainAll(reader: RingReader): Uint8Array[] {
  const out: Uint8Array[] = [];
  reader.drain((r) => out.push(r.slice()));
  return out;
}

describe('shared-memory byte ring', () => {
  it('rejects capacities that are not a power of two', () => {
    expect(() => createRing(100)).toThrow(RangeError);
    expect(() => createRing(32)).toThrow(RangeError);
    expect(() => createRing(1024)).not.toThrow();
  });

  it('hides staged records from the reader until commit', () => {
    const sab = createRing(1024);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    expect(w.tryWrite(bytes(10, 1))).toBe(true);
    expect(r.hasData()).toBe(false);
    expect(drainAll(r)).toEqual([]);
    w.commit();
    expect(r.hasData()).toBe(true);
    expect(drainAll(r)).toEqual([bytes(10, 1)]);
    expect(r.hasData()).toBe(false);
  });

  it('delivers a batch of records in order, header and body joined', () => {
    const sab = createRing(1024);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    w.tryWrite(new Uint8Array([1, 2]), new Uint8Array([3, 4, 5]));
    w.tryWrite(new Uint8Array(0));
    w.tryWrite(bytes(7, 9));
    w.commit();
    expect(drainAll(r)).toEqual([new Uint8Array([1, 2, 3, 4, 5]), new Uint8Array(0), bytes(7, 9)]);
  });

  it('carries records of every size from 0 to capacity-4, across the wrap point', () => {
    const capacity = 256;
    const sab = createRing(capacity);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    // Offset the positions so that records start at every alignment relative to the wrap.
    for (let skew = 0; skew < capacity; skew += 4) {
      for (let len = 0; len <= capacity - 4; len++) {
        const rec = bytes(len, len + skew);
        if (!w.tryWrite(rec)) throw new Error(`no room for ${len} bytes at skew ${skew}`);
        w.commit();
        const got = drainAll(r);
        if (got.length !== 1 || Buffer.compare(got[0]!, rec) !== 0) expect({ skew, len, got }).toEqual({ skew, len, got: [rec] });
      }
      w.tryWrite(new Uint8Array(0));
      w.commit();
      drainAll(r);
    }
  });

  it('refuses a record larger than the ring outright', () => {
    const w = new RingWriter(createRing(64), { autoCommit: false });
    expect(() => w.tryWrite(new Uint8Array(61))).toThrow(RangeError);
    expect(w.tryWrite(new Uint8Array(60))).toBe(true);
  });

  it('applies back-pressure when full and accepts again once the reader releases space', () => {
    const sab = createRing(64);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    let written = 0;
    while (w.tryWrite(bytes(12, written))) written++;
    expect(written).toBe(64 / recordSize(12));
    expect(w.free()).toBe(0);
    w.commit();
    // Nothing is released until the reader drains.
    expect(w.tryWrite(bytes(12, 99))).toBe(false);
    expect(r.drain(() => {}, 1)).toBe(1);
    expect(w.tryWrite(bytes(12, 99))).toBe(true);
    w.commit();
    const got = drainAll(r);
    expect(got).toHaveLength(written);
    expect(got[got.length - 1]).toEqual(bytes(12, 99));
  });

  it('resolves waitWritable when the reader frees space', async () => {
    const sab = createRing(64);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    while (w.tryWrite(bytes(28, 0)));
    const waiting = w.waitWritable(recordSize(28), 5000);
    setTimeout(() => r.drain(() => {}, 1), 10);
    await expect(waiting).resolves.toBe(true);
    expect(w.tryWrite(bytes(28, 1))).toBe(true);
  });

  it('reports false from waitWritable when the reader never drains', async () => {
    const w = new RingWriter(createRing(64), { autoCommit: false });
    while (w.tryWrite(bytes(28, 0)));
    await expect(w.waitWritable(recordSize(28), 20)).resolves.toBe(false);
  });

  it('commits by itself once per event-loop turn', async () => {
    const sab = createRing(1024);
    const w = new RingWriter(sab);
    const r = new RingReader(sab);
    w.tryWrite(bytes(3, 0));
    w.tryWrite(bytes(4, 0));
    expect(r.hasData()).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(drainAll(r)).toHaveLength(2);
  });

  it('consumes the record whose handler throws, and keeps the rest', () => {
    const sab = createRing(1024);
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    for (let i = 0; i < 3; i++) w.tryWrite(new Uint8Array([i]));
    w.commit();
    expect(() =>
      r.drain((rec) => {
        if (rec[0] === 1) throw new Error('bad record');
      }),
    ).toThrow('bad record');
    expect(drainAll(r)).toEqual([new Uint8Array([2])]);
  });

  it('survives the 2^32 wrap of its position counters', () => {
    const sab = createRing(64);
    // Start both ends just below 2^32, as a ring that has carried 4 GiB would be.
    const ctrl = new Int32Array(sab, 0, 32);
    ctrl[0] = -8;
    ctrl[16] = -8;
    const w = new RingWriter(sab, { autoCommit: false });
    const r = new RingReader(sab);
    for (let i = 0; i < 20; i++) {
      expect(w.tryWrite(bytes(20, i))).toBe(true);
      w.commit();
      expect(drainAll(r)).toEqual([bytes(20, i)]);
    }
  });

  it('behaves like a bounded FIFO queue of byte strings (model test)', () => {
    type Cmd = { op: 'write'; len: number; seed: number } | { op: 'commit' } | { op: 'drain'; max: number };
    const cmd = fc.oneof(
      fc.record({ op: fc.constant('write' as const), len: fc.nat(200), seed: fc.nat(255) }),
      fc.constant({ op: 'commit' as const }),
      fc.record({ op: fc.constant('drain' as const), max: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 200 }), (cmds: Cmd[]) => {
        const capacity = 256;
        const sab = createRing(capacity);
        const w = new RingWriter(sab, { autoCommit: false });
        const r = new RingReader(sab);
        const staged: Uint8Array[] = [];
        const published: Uint8Array[] = [];
        let used = 0;
        for (const c of cmds) {
          if (c.op === 'write') {
            const rec = bytes(c.len, c.seed);
            const fits = used + recordSize(c.len) <= capacity;
            expect(w.tryWrite(rec)).toBe(fits);
            if (fits) {
              staged.push(rec);
              used += recordSize(c.len);
            }
          } else if (c.op === 'commit') {
            w.commit();
            published.push(...staged.splice(0));
          } else {
            const got: Uint8Array[] = [];
            r.drain((rec) => got.push(rec.slice()), c.max);
            const want = published.splice(0, c.max);
            expect(got).toEqual(want);
            for (const g of got) used -= recordSize(g.length);
          }
          expect(w.free()).toBe(capacity - used);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('doorbell', () => {
  it('does not notify while the consumer is awake', () => {
    const bell = new Doorbell();
    const seq = new Int32Array(bell.sab, 0, 1);
    bell.ring();
    expect(seq[0]).toBe(0);
  });

  it('wakes a parked consumer when a producer commits', async () => {
    const bell = new Doorbell();
    const sab = createRing(1024);
    const w = new RingWriter(sab, { doorbell: bell, autoCommit: false });
    const r = new RingReader(sab);
    const parked = bell.park(() => r.hasData(), 0, 10_000);
    expect(bell.parked).toBe(true);
    w.tryWrite(bytes(5, 5));
    w.commit();
    await parked;
    expect(bell.parked).toBe(false);
    expect(drainAll(r)).toEqual([bytes(5, 5)]);
  });

  it('returns without sleeping when work is already published', async () => {
    const bell = new Doorbell();
    const sab = createRing(1024);
    const w = new RingWriter(sab, { doorbell: bell, autoCommit: false });
    w.tryWrite(bytes(1, 0));
    w.commit();
    const r = new RingReader(sab);
    await bell.park(() => r.hasData(), 0, 60_000);
    bell.parkSync(() => r.hasData(), 0, 60_000);
    expect(r.hasData()).toBe(true);
  });
});

describe('ring sender', () => {
  it('queues records behind a full ring and delivers all of them in order as the reader drains', async () => {
    const sab = createRing(256);
    const sender = new RingSender(new RingWriter(sab, { autoCommit: false }));
    const reader = new RingReader(sab);
    for (let i = 0; i < 40; i++) sender.send(Op.Data, i, bytes(20, i), i & 0xffff);
    expect(sender.queuedBytes).toBeGreaterThan(0);
    sender.commit();
    const got: { id: number; arg: number; body: Uint8Array }[] = [];
    const h = { op: Op.Data, arg: 0, id: 0 };
    while (got.length < 40) {
      reader.drain((r) => {
        readHeader(r, h);
        got.push({ id: h.id, arg: h.arg, body: r.slice(HEADER_BYTES) });
      });
      await new Promise((resolve) => setTimeout(resolve, 1));
      sender.commit();
    }
    expect(got.map((g) => g.id)).toEqual([...Array(40).keys()]);
    expect(got[39]!.body).toEqual(bytes(20, 39));
    expect(got[7]!.arg).toBe(7);
    expect(sender.queuedBytes).toBe(0);
  });

  it('drops what it holds once closed', () => {
    const sab = createRing(64);
    const sender = new RingSender(new RingWriter(sab, { autoCommit: false }));
    for (let i = 0; i < 10; i++) sender.send(Op.Data, i, bytes(20, i));
    sender.close();
    expect(sender.queuedBytes).toBe(0);
    sender.send(Op.Data, 99, bytes(1, 0));
    expect(sender.queuedBytes).toBe(0);
  });
});

describe('fragmented records', () => {
  it('carries a record larger than the ring as fragments joined back in order', async () => {
    const sab = createRing(256);
    const sender = new RingSender(new RingWriter(sab, { autoCommit: false }));
    const reader = new RingReader(sab);
    const big = bytes(5000, 3);
    sender.send(Op.Write, 7, new Uint8Array([1, 2, 3]));
    sender.send(Op.Deliver, 9, big, 2);
    sender.send(Op.Write, 7, new Uint8Array([4]));
    const got: { op: number; id: number; arg: number; body: Uint8Array }[] = [];
    const h = { op: Op.Data, arg: 0, id: 0 };
    const onRecord = reassembling((r) => {
      readHeader(r, h);
      got.push({ op: h.op, id: h.id, arg: h.arg, body: r.slice(HEADER_BYTES) });
    });
    for (let i = 0; i < 200 && got.length < 3; i++) {
      sender.commit();
      reader.drain(onRecord);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(got.map((g) => [g.op, g.id, g.arg])).toEqual([
      [Op.Write, 7, 0],
      [Op.Deliver, 9, 2],
      [Op.Write, 7, 0],
    ]);
    expect(Buffer.compare(got[1]!.body, big)).toBe(0);
    expect(got[2]!.body).toEqual(new Uint8Array([4]));
  });
});
