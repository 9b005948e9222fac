/**
 * XEP-0198 §5 resumption across shards. A session lives on the shard that bound it; the main
 * thread places a reconnecting client on any shard before it says what it wants. So resumption
 * ids name their shard, and a <resume/> read on another shard moves the connection:
 *
 *   shard A (reads <resume/>)   main thread                      shard B (owns the session)
 *   Move(conn, B, <resume/>) →  conn.shard = B, hold new reads
 *                               Adopt(conn, <resume/>)        →  C2SStream.continued, feeds it
 *                            ←  Fence(conn)
 *   MoveMore(elements read
 *   since) …, MoveDone      →   MoveMore as Data               →  (in order)
 *                               held reads as Data             →
 *
 * Shard B answers the <resume/> itself, <resumed/> or <failed/> (then the client binds there),
 * so a failure needs no way back. The fence keeps the client's bytes in order: what shard A
 * had already been sent comes back through the main thread before anything read later.
 */
import { randomBytes } from 'node:crypto';
import { StreamError, type StreamErrorCondition } from '../errors.js';
import type { C2SStream, HandOffSink, SmShardRouting } from '../stream/c2s.js';
import { HANDOFF_ERROR, Op, type RingSender } from './protocol.js';

/** Hex digits of the owning shard at the start of a resumption id (then 32 random ones). */
const SHARD_DIGITS = 4;
const ID_PATTERN = /^[0-9a-f]{36}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Resumption ids for shard `shard` of `shards`, and the Move records of its connections. */
export function smShardRouting(
  shard: number,
  shards: number,
  out: RingSender,
  connectionOf: (stream: C2SStream) => number | undefined,
): SmShardRouting {
  return {
    mint: () => shard.toString(16).padStart(SHARD_DIGITS, '0') + randomBytes(16).toString('hex'),
    ownerElsewhere: (previd) => {
      // Ids of another format, or of no such shard, are simply unknown here (<item-not-found/>).
      if (!ID_PATTERN.test(previd)) return null;
      const owner = parseInt(previd.slice(0, SHARD_DIGITS), 16);
      return owner !== shard && owner < shards ? owner : null;
    },
    moveTo: (stream, target, first) => {
      const id = connectionOf(stream);
      if (id === undefined) throw new Error('moving a stream that has no connection');
      out.send(Op.Move, id, joinRecord([stream.account.bare, stream.streamId], first), target);
      return {
        element: (bytes) => out.send(Op.MoveMore, id, bytes),
        error: (error) => out.send(Op.MoveMore, id, failureRecord(error), HANDOFF_ERROR),
      } satisfies HandOffSink;
    },
  };
}

/**
 * Open and Adopt records start with these facts of the connection the main thread accepted:
 * address, accept time (ms epoch) and metrics transport kind. The shard keeps them for the admin
 * session list, which must still show them once the main thread has forgotten the connection
 * (a detached XEP-0198 session) or after the connection moved to another shard.
 */
export const CONNECTION_FIELDS = 3;

export function connectionFields(conn: { address: string; since: number; kind: number }): string[] {
  return [conn.address, String(conn.since), String(conn.kind)];
}

/** Text fields, each followed by a newline, then raw bytes: the bodies of Move and Adopt. */
export function joinRecord(fields: string[], rest: Uint8Array): Uint8Array {
  const head = encoder.encode(fields.map((f) => `${f}\n`).join(''));
  const out = new Uint8Array(head.length + rest.length);
  out.set(head);
  out.set(rest, head.length);
  return out;
}

/** The inverse of joinRecord for `count` fields (none of which holds a newline). */
export function splitRecord(body: Uint8Array, count: number): { fields: string[]; rest: Uint8Array } {
  const fields: string[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const nl = body.indexOf(0x0a, at);
    if (nl < 0) throw new Error('truncated hand-off record');
    fields.push(decoder.decode(body.subarray(at, nl)));
    at = nl + 1;
  }
  return { fields, rest: body.subarray(at) };
}

/** A stream error as the body of a Fail record (or of a MoveMore with HANDOFF_ERROR). */
export function failureRecord(error: StreamError): string {
  return `${error.condition}\n${error.text ?? ''}`;
}

/** The body of a Fail record (or of a MoveMore with HANDOFF_ERROR) as the error it names. */
export function failure(body: Uint8Array): StreamError {
  const text = decoder.decode(body);
  const nl = text.indexOf('\n');
  const condition = (nl < 0 ? text : text.slice(0, nl)) as StreamErrorCondition;
  const detail = nl < 0 ? '' : text.slice(nl + 1);
  return new StreamError(condition, detail || undefined);
}
