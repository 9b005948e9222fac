/** Test helpers for the WASM core: feed byte arrays in chunks and record events as plain data. */
import type { CoreError, StanzaView, StreamHeader } from '../../src/core/api.js';
import { loadCore, type Core } from '../../src/core/parser.js';

export const STREAM_OPEN =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>";
export const STREAM_OPEN_NO_DECL =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

export interface StanzaRecord {
  ev: 'stanza';
  raw: string;
  kind: number;
  type: number;
  status: number;
  name: string;
  namespace: string;
  to: string | null;
  from: string | null;
  id: string | null;
  typeString: string | null;
  childName: string | null;
  childNamespace: string | null;
  childCount: number;
  /** offsets relative to the stanza start (absolute addresses differ between chunkings) */
  length: number;
  nameEnd: number;
  fromAttr: string | null;
}

export type EventRecord =
  | { ev: 'open'; header: StreamHeader }
  | StanzaRecord
  | { ev: 'close' }
  | { ev: 'error'; code: number; condition: CoreError['condition']; offset: number; message: string };

export function recordStanza(s: StanzaView): StanzaRecord {
  const buf = Buffer.from(s.buffer.buffer, s.buffer.byteOffset, s.buffer.byteLength);
  return {
    ev: 'stanza',
    raw: s.toString(),
    kind: s.kind,
    type: s.type,
    status: s.status,
    name: s.name(),
    namespace: s.namespace(),
    to: s.to(),
    from: s.from(),
    id: s.id(),
    typeString: s.typeString(),
    childName: s.childName(),
    childNamespace: s.childNamespace(),
    childCount: s.childCount,
    length: s.end - s.start,
    nameEnd: s.nameEnd - s.start,
    fromAttr: s.fromAttrStart >= 0 ? buf.toString('utf8', s.fromAttrStart, s.fromAttrEnd) : null,
  };
}

let shared: Core | undefined;
export function core(): Core {
  shared ??= loadCore({ debug: process.env.HERMOD_CORE_DEBUG !== '0' });
  return shared;
}

/** Feed `input` cut at the given positions into a fresh parser; return the events. */
export function parseChunks(input: Uint8Array, cuts: number[] = [], limits = {}): EventRecord[] {
  const events: EventRecord[] = [];
  const p = core().createParser(
    {
      onStreamOpen: (header) => events.push({ ev: 'open', header }),
      onStanza: (s) => events.push(recordStanza(s)),
      onStreamClose: () => events.push({ ev: 'close' }),
      onError: (e) => events.push({ ev: 'error', code: e.code, condition: e.condition, offset: e.offset, message: e.message }),
    },
    limits,
  );
  let prev = 0;
  for (const c of [...cuts, input.length]) {
    if (c > prev) p.feed(input.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  p.free();
  return events;
}

export function parseWhole(input: Uint8Array | string, limits = {}): EventRecord[] {
  return parseChunks(typeof input === 'string' ? Buffer.from(input) : input, [], limits);
}

export function parseBytewise(input: Uint8Array, limits = {}): EventRecord[] {
  return parseChunks(input, Array.from({ length: input.length }, (_, i) => i), limits);
}
