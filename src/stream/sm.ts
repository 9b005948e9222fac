/**
 * XEP-0198 Stream Management bookkeeping for one session: the count of stanzas handled from the
 * client, the stanzas sent to it and not yet acknowledged, and the arithmetic of `h` (an
 * unsigned 32-bit counter that wraps, §5). Socket-free; C2SStream drives it.
 */
export const SM_NS = 'urn:xmpp:sm:3';

const WRAP = 2 ** 32;

/** Thrown when the client acknowledges more than was sent (§4: handled-count-too-high). */
export class AckTooHigh extends Error {
  constructor(
    readonly h: number,
    readonly sent: number,
  ) {
    super(`h='${h}' acknowledges more than the ${sent} stanzas sent`);
  }
}

export class StreamManagement {
  /** Stanzas handled from the client (§4 'h' of our answers), mod 2^32. */
  inbound = 0;
  /** Stanzas sent since enable (total, not wrapped). */
  private sent = 0;
  /** Stanzas acknowledged by the client (total, not wrapped). */
  private acked = 0;
  /** Sent and not acknowledged, oldest first: entry i has sequence number acked + i + 1. */
  private unacked: (string | Uint8Array)[] = [];
  /** Their size (strings by UTF-16 length: exact for the markup that dominates, close otherwise). */
  unackedBytes = 0;
  /** An <r/> is outstanding: no new request until the client answers. */
  ackRequested = false;

  constructor(
    /** Opaque id clients quote in <resume previd/>; null when resumption was not granted. */
    readonly resumeId: string | null,
  ) {}

  get unackedCount(): number {
    return this.unacked.length;
  }

  handledInbound(): void {
    this.inbound = (this.inbound + 1) % WRAP;
  }

  sentStanza(data: string | Uint8Array): void {
    this.sent++;
    this.unacked.push(data);
    this.unackedBytes += sizeOf(data);
  }

  /** Apply the client's `h` (wrapping): drop what it acknowledges. Throws AckTooHigh. */
  acknowledge(h: number): void {
    const delta = (h - (this.acked % WRAP) + WRAP) % WRAP;
    if (delta > this.sent - this.acked) throw new AckTooHigh(h, this.sent % WRAP);
    this.acked += delta;
    for (const gone of this.unacked.splice(0, delta)) this.unackedBytes -= sizeOf(gone);
  }

  /** What is still unacknowledged (to resend after resumption, or to store when it dies). */
  pending(): (string | Uint8Array)[] {
    return [...this.unacked];
  }

  /** Forget the queue (it has been handed elsewhere). */
  drain(): (string | Uint8Array)[] {
    const out = this.unacked;
    this.unacked = [];
    this.unackedBytes = 0;
    this.acked = this.sent;
    return out;
  }
}

function sizeOf(data: string | Uint8Array): number {
  return typeof data === 'string' ? data.length : data.byteLength;
}

/** Parse an `h` attribute: an unsigned 32-bit integer, else null. */
export function parseH(value: unknown): number | null {
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value)) return null;
  const h = Number(value);
  return h < WRAP ? h : null;
}

/** True when bytes queued for a client form a stanza (counted by XEP-0198), not a nonza. */
export function isStanzaBytes(data: string | Uint8Array): boolean {
  // '<' then 'm'essage, 'p'resence or 'i'q: the first letters decide among what we send.
  const c = typeof data === 'string' ? data.charCodeAt(1) : data[1];
  if (c === 0x6d) return startsWith(data, '<message');
  if (c === 0x70) return startsWith(data, '<presence');
  if (c === 0x69) return startsWith(data, '<iq');
  return false;
}

function startsWith(data: string | Uint8Array, prefix: string): boolean {
  if (typeof data === 'string') return data.startsWith(prefix) && /[\s/>]/.test(data.charAt(prefix.length));
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix.charCodeAt(i)) return false;
  const next = data[prefix.length];
  return next === 0x20 || next === 0x2f || next === 0x3e || next === 0x09 || next === 0x0a || next === 0x0d;
}
