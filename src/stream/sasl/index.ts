/**
 * The SASL mechanisms Hermod offers, and the rules for offering them.
 *
 * Preference order (best first, RFC 6120 §6.3.3 lets the server order them): SCRAM-SHA-256,
 * SCRAM-SHA-1, PLAIN. PLAIN sends the password itself, so it is offered only on a TLS-protected
 * stream, unless the operator configured `tls: optional` (loopback benchmarks, tests).
 */
import { SaslFailure } from '../../errors.js';
import { PlainExchange } from './plain.js';
import { ScramExchange } from './scram.js';
import type { SaslContext, SaslExchange } from './types.js';

export type { SaslContext, SaslExchange, SaslStep } from './types.js';
export { PlainExchange } from './plain.js';
export { ScramExchange } from './scram.js';

export const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-1'] as const;
export const ALL_MECHANISMS = [...SCRAM_MECHANISMS, 'PLAIN'] as const;
export type MechanismName = (typeof ALL_MECHANISMS)[number];

export type TlsPolicy = 'required' | 'optional';

/**
 * The <mechanisms/> to advertise. With `tls: required` nothing is offered before STARTTLS
 * (RFC 6120 §5.3.1: TLS is then mandatory-to-negotiate, and SASL comes after it); with
 * `tls: optional` everything is, PLAIN included.
 */
export function offeredMechanisms(options: { secure: boolean; tls: TlsPolicy }): MechanismName[] {
  if (options.secure || options.tls === 'optional') return [...ALL_MECHANISMS];
  return [];
}

/**
 * RFC 6120 §6.4.2 / §6.4.3: the text of <auth/>, <response/>. No text means no data (for
 * <auth/>: no initial response), a lone '=' means present but empty, anything else must be
 * base64 (whitespace tolerated, as XML may wrap it); otherwise <incorrect-encoding/> (§6.5.5).
 */
export function decodeSaslPayload(text: string): Buffer | null {
  // One pass over the characters instead of a whitespace-stripping replace and a validating
  // regex (the two took ~3 % of a login's server CPU): count data and padding, note whitespace.
  let data = 0;
  let pad = 0;
  let space = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      space = true;
    } else if (c === 0x3d /* = */) {
      pad++;
    } else if (pad > 0 || c > 0x7a || BASE64_CHAR[c] !== 1) {
      // Data after padding, or not in the base64 alphabet.
      throw new SaslFailure('incorrect-encoding', 'the payload is not base64');
    } else {
      data++;
    }
  }
  if (data === 0 && pad === 0) return null;
  if (data === 0 && pad === 1) return Buffer.alloc(0);
  if ((data + pad) % 4 !== 0 || pad > 2) throw new SaslFailure('incorrect-encoding', 'the payload is not base64');
  return Buffer.from(space ? text.replace(/[ \t\r\n]/g, '') : text, 'base64');
}

/** 1 for the characters of the base64 alphabet (RFC 4648 §4), indexed by char code. */
const BASE64_CHAR = new Uint8Array(0x7b);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_CHAR[c.charCodeAt(0)] = 1;

/**
 * The text of <challenge/> and <success/>: base64; '=' for data present but empty (§6.4.6);
 * nothing at all when there is no data (null).
 */
export function encodeSaslPayload(data: Buffer | null): string {
  if (data === null) return '';
  return data.length === 0 ? '=' : data.toString('base64');
}

/** Start an exchange for a named mechanism; unknown names fail with <invalid-mechanism/> (§6.5.7). */
export function startExchange(mechanism: string, context: SaslContext): SaslExchange {
  switch (mechanism) {
    case 'SCRAM-SHA-256':
      return new ScramExchange('SHA-256', context);
    case 'SCRAM-SHA-1':
      return new ScramExchange('SHA-1', context);
    case 'PLAIN':
      return new PlainExchange(context);
    default:
      throw new SaslFailure('invalid-mechanism', `${mechanism} is not supported`);
  }
}

/**
 * What the stream layer holds: one per server domain. `mechanisms(plaintextOk)` lists what to
 * advertise when SASL may run (plaintextOk: the stream is TLS-protected or policy allows PLAIN
 * in the clear); `start()` makes one exchange per <auth/>.
 */
export class SaslProvider {
  constructor(private readonly context: SaslContext) {}

  mechanisms(plaintextOk: boolean): string[] {
    return plaintextOk ? [...ALL_MECHANISMS] : [...SCRAM_MECHANISMS];
  }

  start(mechanism: string): SaslExchange {
    return startExchange(mechanism, this.context);
  }
}
