/**
 * What travels through the shard rings (src/shard/ring.ts), and the sender that never loses a
 * record when a ring is full.
 *
 * Every record starts with an 8-byte header: op (u8), one spare byte, a u16 argument, and a u32
 * id (a connection id between the main thread and a shard, a session id between shards), then
 * an op-specific body. Control that happens a few times per process life (shard started, shard
 * died, shutdown) goes over a MessagePort instead: it carries SharedArrayBuffers and needs no
 * speed.
 */
import { RingWriter, recordSize } from './ring.js';

export const HEADER_BYTES = 8;

/** Header byte 1: more fragments of this record follow (see RingSender.send). */
export const FLAG_MORE = 1;

export enum Op {
  // main → shard, id = connection
  /** A client connected. arg bit 0: already encrypted (Direct TLS); bit 1: STARTTLS possible.
   *  body: the connection's fields (handoff.ts connectionFields: remote address, accept time,
   *  transport kind), then why the connection is refused ('' when admitted), each + '\n'. */
  Open = 1,
  /** Bytes read from the client; arg 0, or DATA_ELEMENT / DATA_HEADER / DATA_ERROR (WebSocket). */
  Data = 2,
  /** The socket is gone (peer closed, reset, or the main thread destroyed it). */
  Closed = 3,
  /** The client leaves more unread output than limits.output_queue_bytes allows. */
  OutputFull = 4,
  /** XEP-0114: a stanza from a component, 'from' checked (id unused); body: the sender's full
   *  JID, '\n', the stanza as the component wrote it (src/shard/components.ts routes it). */
  FromComponent = 5,
  /** XEP-0198 §5 across shards: a connection moves here to resume a session of this shard.
   *  arg: Open's flags; body: the connection's fields as in Open, authenticated bare JID,
   *  stream id (each + '\n'), then the <resume/> element (src/shard/handoff.ts). */
  Adopt = 6,
  /** The connection moved away: no Data follows; answer MoveDone once this is read. */
  Fence = 7,
  /** The client's XML broke on the shard it left; body: stream error condition, '\n', text. */
  Fail = 8,

  // shard → main, id = connection
  /** Bytes for the client; arg WRITE_TEXT: the stream layer wrote them as a string. */
  Write = 16,
  /** RFC 6120 §5.4.3.3: <proceed/> was written; wrap the socket in TLS now. */
  StartTls = 17,
  /** Close the socket after flushing. */
  End = 18,
  /** Stop reading the socket for `arg` ms (the stanza-rate shaper). */
  Pause = 19,
  /** SASL failed on this connection (the process-wide ban counts the address). */
  AuthFailed = 20,
  /** SASL succeeded: lift the connection from the pre-authentication byte rate. */
  Authenticated = 21,
  /** XEP-0114: bytes for the component connected as a domain (id unused); body: the domain,
   *  '\n', the stanza with 'from' stamped. */
  ToComponent = 22,
  /** The client resumes a session of shard `arg`: move the connection there (body as Adopt's
   *  after the address). */
  Move = 23,
  /** An element read after the move, for the new owner (arg HANDOFF_ERROR: body is Fail's). */
  MoveMore = 24,
  /** Fence read: everything read for the moved connection was sent as MoveMore before this. */
  MoveDone = 25,

  // shard → shard, id = the sending (or owning) shard's session id
  /** A session was bound; body: its full JID (UTF-8). */
  Bind = 32,
  /** Presence-relevant state changed; arg bit 0: available, bit 1: interested (roster pushes);
   *  body: i8 priority, u32 count of records the sender had consumed from the receiver (a
   *  causal acknowledgement, see ShardMesh.crossProbe), then the last available presence. */
  State = 33,
  /** The session is gone. */
  Unbind = 34,
  /** Deliver bytes to the receiving shard's session `id`; arg = delivery kind. */
  Deliver = 35,
  /** Close the receiving shard's session `id`; body: stream error condition, '\n', text. */
  Close = 36,
  /** Send me Bind + State for every session you own (a shard that just started). */
  SyncRequest = 37,
  /** A subscription request was stored while the contact looked offline here; id unused;
   *  body: contact bare JID, '\n', requester bare JID (RFC 6121 §3.1.3). */
  PendingCheck = 38,
  /** A message was stored offline while the account looked offline here; id unused; body: the
   *  account's bare JID (RFC 6121 §8.5.2.2.1). */
  OfflineCheck = 39,
}

export const HANDOFF_ERROR = 1;

/**
 * Data records of a WebSocket (RFC 7395), each one message: DATA_ELEMENT, a message that must
 * be exactly one element (C2SStream.feedElement); DATA_HEADER, the stream header an <open/>
 * stands for (C2SStream.feedHeader: only where a stream may start); DATA_ERROR, the body is
 * Fail's, a framing violation that ends the stream (C2SStream.streamError).
 */
export const DATA_HEADER = 1;
export const DATA_ERROR = 2;
export const DATA_ELEMENT = 3;

export const OPEN_SECURE = 1;
export const OPEN_CAN_STARTTLS = 2;

/**
 * Write records: the chunk was a string. The stream layer writes its own output (headers,
 * features, negotiation and IQ replies) as strings that may hold several top-level elements,
 * routed stanzas as bytes of exactly one; a WebSocket transport cuts strings into one element
 * per message (RFC 7395 §3.3.3) and sends bytes whole, so the distinction must cross the ring.
 */
export const WRITE_TEXT = 1;

export const STATE_AVAILABLE = 1;
export const STATE_INTERESTED = 2;

export const DELIVERY_KINDS = ['message', 'presence', 'iq', 'other'] as const;
export type DeliveryKindName = (typeof DELIVERY_KINDS)[number];

export interface RecordHeader {
  op: Op;
  arg: number;
  id: number;
}

/** Read the header of a record; the body is `record.subarray(HEADER_BYTES)`. */
export function readHeader(record: Uint8Array, into: RecordHeader): RecordHeader {
  into.op = record[0]!;
  into.arg = record[2]! | (record[3]! << 8);
  into.id = (record[4]! | (record[5]! << 8) | (record[6]! << 16) | (record[7]! << 24)) >>> 0;
  return into;
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * Writes records to one ring. When the ring is full the record is copied to a queue that drains
 * as the consumer frees space (Atomics.waitAsync on the ring's HEAD, no polling), so callers never
 * block and order is kept. `queuedBytes` lets a caller apply its own back-pressure upstream.
 */
export class RingSender {
  private readonly header = new Uint8Array(HEADER_BYTES);
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private pumping = false;
  private closed = false;
  /** Largest body per ring record; longer ones travel as fragments (a quarter of the ring). */
  private readonly maxBody: number;

  constructor(readonly writer: RingWriter) {
    this.maxBody = Math.max(16, (writer.capacity >> 2) - HEADER_BYTES - 4);
  }

  get queuedBytes(): number {
    return this.queued;
  }

  send(op: Op, id: number, body: Uint8Array | string = EMPTY, arg = 0): void {
    if (this.closed) return;
    const bytes = typeof body === 'string' ? encoder.encode(body) : body;
    if (bytes.length <= this.maxBody) return this.sendOne(op, id, bytes, arg, 0);
    // A stanza or chunk bigger than the ring allows (limits.max_stanza_bytes can exceed it):
    // consecutive fragments, joined by the reader (reassembling()) before anyone sees them.
    for (let off = 0; off < bytes.length; off += this.maxBody) {
      const end = Math.min(bytes.length, off + this.maxBody);
      this.sendOne(op, id, bytes.subarray(off, end), arg, end < bytes.length ? FLAG_MORE : 0);
    }
  }

  private sendOne(op: Op, id: number, bytes: Uint8Array, arg: number, flags: number): void {
    const h = this.header;
    h[0] = op;
    h[1] = flags;
    h[2] = arg & 0xff;
    h[3] = (arg >>> 8) & 0xff;
    h[4] = id & 0xff;
    h[5] = (id >>> 8) & 0xff;
    h[6] = (id >>> 16) & 0xff;
    h[7] = (id >>> 24) & 0xff;
    if (this.queue.length === 0 && this.writer.tryWrite(h, bytes)) return;
    const copy = new Uint8Array(HEADER_BYTES + bytes.length);
    copy.set(h, 0);
    copy.set(bytes, HEADER_BYTES);
    this.queue.push(copy);
    this.queued += copy.length;
    if (!this.pumping) void this.pump();
  }

  /** Publish what is staged (the writer also does this by itself once per event-loop turn). */
  commit(): void {
    this.writer.commit();
  }

  /** Stop sending (the peer is gone); queued records are dropped. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.queued = 0;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const next = this.queue[0]!;
        if (this.writer.tryWrite(next)) {
          this.queue.shift();
          this.queued -= next.length;
          continue;
        }
        await this.writer.waitWritable(recordSize(next.length));
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * Wrap a record handler so that it sees fragmented records (FLAG_MORE) joined into one. One
 * wrapper per ring: fragments of one record are consecutive in their ring.
 */
export function reassembling(handler: (record: Uint8Array) => void): (record: Uint8Array) => void {
  let parts: Uint8Array[] | null = null;
  return (record) => {
    if ((record[1]! & FLAG_MORE) !== 0) {
      // Copied: the ring's memory is reused once the drain ends.
      (parts ??= []).push(record.slice());
      return;
    }
    if (parts === null) return handler(record);
    parts.push(record);
    let length = HEADER_BYTES;
    for (const p of parts) length += p.length - HEADER_BYTES;
    const whole = new Uint8Array(length);
    whole.set(parts[0]!.subarray(0, HEADER_BYTES), 0);
    whole[1] = 0;
    let at = HEADER_BYTES;
    for (const p of parts) {
      whole.set(p.subarray(HEADER_BYTES), at);
      at += p.length - HEADER_BYTES;
    }
    parts = null;
    handler(whole);
  };
}

// ---- XEP-0114 component records ---------------------------------------------------------

const NL = 0x0a;
const decoder = new TextDecoder();

/** `head`, a newline, then `bytes`: the body of FromComponent / ToComponent records. */
export function componentRecord(head: string, bytes: Uint8Array | string): Uint8Array {
  const h = encoder.encode(`${head}\n`);
  const b = typeof bytes === 'string' ? encoder.encode(bytes) : bytes;
  const out = new Uint8Array(h.length + b.length);
  out.set(h);
  out.set(b, h.length);
  return out;
}

/** Split a component record body into its head and its stanza bytes. */
export function splitComponentRecord(body: Uint8Array): { head: string; bytes: Uint8Array } {
  const nl = body.indexOf(NL);
  if (nl < 0) return { head: decoder.decode(body), bytes: body.subarray(body.length) };
  return { head: decoder.decode(body.subarray(0, nl)), bytes: body.subarray(nl + 1) };
}
