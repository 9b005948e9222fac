/**
 * A single-producer / single-consumer byte ring on a SharedArrayBuffer: how bytes cross between
 * the main thread and a shard worker without a postMessage per chunk.
 *
 * Why this shape (numbers in docs/benchmarks.md, "Threads"): on this box a postMessage round trip
 * costs ~130 µs and an Atomics.wait/notify round trip ~100 µs, while reading shared memory that
 * another thread wrote costs well under a microsecond. So the producer stages any number of
 * records and publishes them with ONE atomic store per event-loop turn (`commit()`), the consumer
 * drains everything published and releases the space with ONE store, and a thread is woken (the
 * expensive part) only when the consumer has actually gone to sleep.
 *
 * Layout of the buffer:
 *   bytes [0, 64)    consumer-written line: HEAD (read position)
 *   bytes [64, 128)  producer-written line: TAIL (published write position), WRITER_WAITING
 *   bytes [128, 128 + capacity)  data
 * HEAD and TAIL sit on separate 64-byte lines so the two threads do not invalidate each other's
 * cache line on every update. Positions are free-running unsigned 32-bit counters; the capacity is
 * a power of two that divides 2^32, so `pos & mask` is the offset and `(tail - head) >>> 0` the
 * number of bytes in use, across the 2^32 wrap too.
 *
 * A record is a 4-byte little-endian length at a 4-aligned offset, then the payload, padded to a
 * multiple of 4. A payload may wrap past the end of the data area (it continues at offset 0); the
 * reader hands such a record out as a contiguous copy. The largest payload is capacity - 4.
 */

const HEAD = 0;
const TAIL = 16;
const WRITER_WAITING = 17;
const CTRL_BYTES = 128;

const SEQ = 0;
const PARKED = 1;

/** Atomics.waitAsync (V8 ≥ 8.7, every Node this project supports); absent from the ES2022 lib typings. */
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as {
  waitAsync(view: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult;
}).waitAsync;

export const MIN_RING_CAPACITY = 64;
export const MAX_RING_CAPACITY = 1 << 30;

/**
 * A pending Atomics.waitAsync does not keep Node's event loop alive: a worker whose only pending
 * work is the wait would exit. A timer of the same length holds the loop open meanwhile.
 */
async function keepAlive<T>(wait: Promise<T>, timeoutMs: number): Promise<T> {
  const timer = setTimeout(noop, timeoutMs + 1);
  try {
    return await wait;
  } finally {
    clearTimeout(timer);
  }
}

function noop(): void {}

/** Bytes a payload of `len` occupies in the ring (length word + payload + padding). */
export function recordSize(len: number): number {
  return 4 + ((len + 3) & ~3);
}

/** Allocate the shared memory of a ring with `capacity` data bytes (a power of two). */
export function createRing(capacity: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < MIN_RING_CAPACITY || capacity > MAX_RING_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity must be a power of two in [${MIN_RING_CAPACITY}, ${MAX_RING_CAPACITY}], got ${capacity}`);
  }
  return new SharedArrayBuffer(CTRL_BYTES + capacity);
}

function ringCapacity(sab: SharedArrayBuffer): number {
  const capacity = sab.byteLength - CTRL_BYTES;
  if (capacity < MIN_RING_CAPACITY || (capacity & (capacity - 1)) !== 0) throw new RangeError('not a ring buffer');
  return capacity;
}

/**
 * The consumer's wake-up word, shared by every ring that consumer reads (a shard worker reads the
 * main thread's ring and one ring per other shard, and must sleep on all of them at once).
 * Producers call `ring()` after publishing; it costs one atomic load unless the consumer is
 * parked, and only then a notify.
 */
export class Doorbell {
  readonly sab: SharedArrayBuffer;
  private readonly words: Int32Array;

  constructor(sab: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.sab = sab;
    this.words = new Int32Array(sab, 0, 2);
  }

  /** Producer side: wake the consumer if (and only if) it is parked. */
  ring(): void {
    // Ordering argument (all Atomics are sequentially consistent): the producer stores TAIL, then
    // loads PARKED; the consumer stores PARKED, then loads SEQ and TAIL. Either the producer sees
    // PARKED = 1 and bumps SEQ (the consumer's wait on the old SEQ returns), or the consumer's
    // later TAIL load sees the new records and it does not sleep. No wake-up is lost.
    if (Atomics.load(this.words, PARKED) !== 0) {
      Atomics.add(this.words, SEQ, 1);
      Atomics.notify(this.words, SEQ);
    }
  }

  /** Whether the consumer is parked right now (for tests and statistics). */
  get parked(): boolean {
    return Atomics.load(this.words, PARKED) !== 0;
  }

  /**
   * Consumer side: return once `hasWork()` is true, spinning for `spinMicros` first (a wake-up
   * through the kernel costs ~100 µs here, a spin iteration well under 1 µs), then sleeping
   * without blocking this thread's event loop (Atomics.waitAsync). Resolves after `timeoutMs` at
   * the latest so the caller can check for shutdown.
   */
  async park(hasWork: () => boolean, spinMicros: number, timeoutMs = 1000): Promise<void> {
    if (this.spin(hasWork, spinMicros)) return;
    const seq = this.arm();
    try {
      if (hasWork()) return;
      const r = waitAsync(this.words, SEQ, seq, timeoutMs);
      if (r.async) await keepAlive(r.value, timeoutMs);
    } finally {
      Atomics.store(this.words, PARKED, 0);
    }
  }

  /** Like park(), but blocks the calling thread in Atomics.wait (measured in bench/core/shard-wake.ts). */
  parkSync(hasWork: () => boolean, spinMicros: number, timeoutMs = 1000): void {
    if (this.spin(hasWork, spinMicros)) return;
    const seq = this.arm();
    try {
      if (!hasWork()) Atomics.wait(this.words, SEQ, seq, timeoutMs);
    } finally {
      Atomics.store(this.words, PARKED, 0);
    }
  }

  private arm(): number {
    Atomics.store(this.words, PARKED, 1);
    return Atomics.load(this.words, SEQ);
  }

  private spin(hasWork: () => boolean, spinMicros: number): boolean {
    if (hasWork()) return true;
    if (spinMicros <= 0) return false;
    const deadline = process.hrtime.bigint() + BigInt(Math.round(spinMicros * 1000));
    do {
      for (let i = 0; i < 64; i++) if (hasWork()) return true;
    } while (process.hrtime.bigint() < deadline);
    return false;
  }
}

export interface RingWriterOptions {
  /** Rung after every commit that published something (the consumer's doorbell). */
  doorbell?: Doorbell;
  /**
   * Publish staged records once per event-loop turn by itself (setImmediate runs after all I/O
   * callbacks of the turn), so every socket read of one turn travels in one batch. Default true.
   * A function is called instead of this writer's own commit(): a thread with several rings
   * commits them together, in an order of its choosing.
   */
  autoCommit?: boolean | (() => void);
}

/** The producing end of a ring. Exactly one thread may own it. */
export class RingWriter {
  readonly capacity: number;
  private readonly mask: number;
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private readonly words: Int32Array;
  private readonly doorbell: Doorbell | undefined;
  private readonly autoCommit: boolean;
  private readonly commitBound: () => void;
  /** Staged write position (ahead of the published TAIL until commit()). */
  private tail: number;
  private published: number;
  /** Last HEAD seen; refreshed only when the cached value says the ring is full. */
  private head: number;
  private scheduled = false;

  constructor(sab: SharedArrayBuffer, options: RingWriterOptions = {}) {
    this.capacity = ringCapacity(sab);
    this.mask = this.capacity - 1;
    this.ctrl = new Int32Array(sab, 0, CTRL_BYTES >> 2);
    this.data = new Uint8Array(sab, CTRL_BYTES, this.capacity);
    this.words = new Int32Array(sab, CTRL_BYTES, this.capacity >> 2);
    this.doorbell = options.doorbell;
    const auto = options.autoCommit ?? true;
    this.autoCommit = auto !== false;
    this.commitBound = typeof auto === 'function' ? auto : (): void => this.commit();
    this.tail = Atomics.load(this.ctrl, TAIL) >>> 0;
    this.published = this.tail;
    this.head = Atomics.load(this.ctrl, HEAD) >>> 0;
  }

  /** Bytes that can be staged now (including the length words of the records). */
  free(): number {
    this.head = Atomics.load(this.ctrl, HEAD) >>> 0;
    return this.capacity - ((this.tail - this.head) >>> 0);
  }

  /** Records staged but not yet published. */
  get pending(): boolean {
    return this.tail !== this.published;
  }

  /**
   * Stage one record whose payload is `a` followed by `b` (a header and a body without
   * concatenating them first). Returns false, staging nothing, when the ring lacks the space: the
   * caller keeps the record and retries after waitWritable(). Throws RangeError for a payload that
   * could never fit.
   */
  tryWrite(a: Uint8Array, b?: Uint8Array): boolean {
    const len = a.length + (b === undefined ? 0 : b.length);
    const need = recordSize(len);
    if (need > this.capacity) throw new RangeError(`record of ${len} bytes exceeds ring capacity ${this.capacity}`);
    if (this.capacity - ((this.tail - this.head) >>> 0) < need && this.free() < need) return false;
    const p = this.tail & this.mask;
    this.words[p >> 2] = len;
    let q = (p + 4) & this.mask;
    q = this.copyIn(q, a);
    if (b !== undefined) this.copyIn(q, b);
    this.tail = (this.tail + need) >>> 0;
    if (this.autoCommit && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.commitBound);
    }
    return true;
  }

  private copyIn(q: number, src: Uint8Array): number {
    const room = this.capacity - q;
    if (src.length <= room) {
      this.data.set(src, q);
    } else {
      this.data.set(src.subarray(0, room), q);
      this.data.set(src.subarray(room), 0);
    }
    return (q + src.length) & this.mask;
  }

  /** Publish every staged record with one atomic store, and wake the consumer if it sleeps. */
  commit(): void {
    this.scheduled = false;
    if (this.tail === this.published) return;
    this.published = this.tail;
    Atomics.store(this.ctrl, TAIL, this.tail | 0);
    this.doorbell?.ring();
  }

  /**
   * Resolve once at least `bytes` are free (back-pressure when the consumer falls behind),
   * without blocking the event loop. Commits staged records first: the consumer cannot free
   * space for records it has not been shown.
   */
  async waitWritable(bytes: number, timeoutMs = 1000): Promise<boolean> {
    if (bytes > this.capacity) throw new RangeError(`${bytes} bytes exceed ring capacity ${this.capacity}`);
    this.commit();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.free() >= bytes) return true;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      Atomics.store(this.ctrl, WRITER_WAITING, 1);
      const head = Atomics.load(this.ctrl, HEAD);
      // Re-check after announcing: the reader loads WRITER_WAITING after storing HEAD.
      if (this.free() >= bytes) break;
      const r = waitAsync(this.ctrl, HEAD, head, remaining);
      if (r.async) await keepAlive(r.value, remaining);
    }
    Atomics.store(this.ctrl, WRITER_WAITING, 0);
    return true;
  }
}

/** The consuming end of a ring. Exactly one thread may own it. */
export class RingReader {
  readonly capacity: number;
  private readonly mask: number;
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private readonly words: Int32Array;
  private head: number;
  private scratch = new Uint8Array(256);

  constructor(sab: SharedArrayBuffer) {
    this.capacity = ringCapacity(sab);
    this.mask = this.capacity - 1;
    this.ctrl = new Int32Array(sab, 0, CTRL_BYTES >> 2);
    this.data = new Uint8Array(sab, CTRL_BYTES, this.capacity);
    this.words = new Int32Array(sab, CTRL_BYTES, this.capacity >> 2);
    this.head = Atomics.load(this.ctrl, HEAD) >>> 0;
  }

  /** Whether a published record is waiting. One atomic load. */
  hasData(): boolean {
    return Atomics.load(this.ctrl, TAIL) >>> 0 !== this.head;
  }

  /**
   * Hand every published record (at most `max`) to `onRecord`, then release their space with one
   * store. The view is valid only during the call: it is shared memory the producer reuses.
   * If `onRecord` throws, that record and the ones before it stay consumed and the error
   * propagates (a poisoned record must not be replayed forever).
   */
  drain(onRecord: (record: Uint8Array) => void, max = Infinity): number {
    const tail = Atomics.load(this.ctrl, TAIL) >>> 0;
    let head = this.head;
    let n = 0;
    try {
      while (head !== tail && n < max) {
        const p = head & this.mask;
        const len = this.words[p >> 2] >>> 0;
        const q = (p + 4) & this.mask;
        const next = (head + recordSize(len)) >>> 0;
        let view: Uint8Array;
        if (q + len <= this.capacity) {
          view = this.data.subarray(q, q + len);
        } else {
          if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2));
          const first = this.capacity - q;
          this.scratch.set(this.data.subarray(q), 0);
          this.scratch.set(this.data.subarray(0, len - first), first);
          view = this.scratch.subarray(0, len);
        }
        head = next;
        n++;
        onRecord(view);
      }
    } finally {
      if (head !== this.head) this.release(head);
    }
    return n;
  }

  private release(head: number): void {
    this.head = head;
    Atomics.store(this.ctrl, HEAD, head | 0);
    if (Atomics.load(this.ctrl, WRITER_WAITING) !== 0) Atomics.notify(this.ctrl, HEAD);
  }
}
