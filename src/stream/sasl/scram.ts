/**
 * SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), server side, without channel binding
 * (the -PLUS variants are not offered).
 *
 *   client-first  = gs2-header client-first-bare        (initial response)
 *   server-first  = r=<c-nonce s-nonce>,s=<salt>,i=<n>  (challenge)
 *   client-final  = c=<b64 gs2-header>,r=<nonce>,p=<proof>
 *   server-final  = v=<b64 ServerSignature>             (additional data with <success/>)
 */
import { timingSafeEqual } from 'node:crypto';
import { digest, hashSize, hmac } from '../../storage/password.js';
import type { ScramCredentials, ScramHash } from '../../storage/types.js';
import { randomBase64 } from '../random.js';
import { accountFromAuthcid, checkAuthzid, decodeUtf8, decoyCredentials, malformed, notAuthorized } from './account.js';
import type { SaslContext, SaslExchange, SaslStep } from './types.js';

/** RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma). */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * RFC 5802 §5.1 saslname: ',' and '=' travel as '=2C' and '=3D'; any other '=' makes the
 * message invalid and the server MUST fail the authentication.
 */
export function decodeSaslname(text: string): string {
  if (text === '') throw malformed('empty saslname');
  return text.replace(/=(..)?/gs, (_m, code: string | undefined) => {
    if (code === '2C') return ',';
    if (code === '3D') return '=';
    throw malformed("'=' in a saslname must start =2C or =3D");
  });
}

function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64.test(text)) throw malformed(`${what} is not base64`);
  return Buffer.from(text, 'base64');
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

interface FirstMessage {
  gs2Header: string;
  authzid: string;
  authcid: string;
  clientNonce: string;
  bare: string;
}

/** RFC 5802 §7 client-first-message, with the §6 channel-binding flag rules. */
function parseClientFirst(message: string): FirstMessage {
  const [flag, authzidField, ...rest] = message.split(',');
  if (rest.length === 0 || flag === undefined || authzidField === undefined) {
    throw malformed('client-first-message needs a GS2 header');
  }
  // §6: 'n' = client does not support channel binding; 'y' = it does but thinks we do not, which
  // is true (no -PLUS offered), so both proceed. 'p=' demands binding we never offered.
  if (flag.startsWith('p=')) throw malformed('channel binding was requested but is not offered');
  if (flag !== 'n' && flag !== 'y') throw malformed('unknown GS2 channel-binding flag');
  let authzid = '';
  if (authzidField !== '') {
    if (!authzidField.startsWith('a=')) throw malformed('malformed GS2 authzid');
    authzid = decodeSaslname(authzidField.slice(2));
  }
  const gs2Header = `${flag},${authzidField},`;
  const bare = message.slice(gs2Header.length);
  const [userField, nonceField] = rest;
  // §5.1 'm': reserved for mandatory extensions, none of which we know → MUST fail.
  if (userField!.startsWith('m=')) throw malformed('unsupported mandatory extension');
  if (!userField!.startsWith('n=')) throw malformed("client-first-message must start with 'n='");
  if (nonceField === undefined || !nonceField.startsWith('r=')) throw malformed("client-first-message lacks 'r='");
  const clientNonce = nonceField.slice(2);
  if (!PRINTABLE.test(clientNonce)) throw malformed('the client nonce must be printable and non-empty');
  return { gs2Header, authzid, authcid: decodeSaslname(userField!.slice(2)), clientNonce, bare };
}

export class ScramExchange implements SaslExchange {
  readonly mechanism: string;
  authcid?: string;
  private state: 'first' | 'awaiting-first' | 'final' | 'done' = 'first';
  private gs2Header = '';
  private nonce = '';
  private authMessagePrefix = '';
  private username: string | null = null;
  private creds: ScramCredentials | null = null;
  private known = false;

  constructor(
    private readonly hash: ScramHash,
    private readonly context: SaslContext,
  ) {
    this.mechanism = `SCRAM-${hash}`;
  }

  async step(response: Buffer | null): Promise<SaslStep> {
    return this.stepNow(response);
  }

  /** Every SCRAM step is synchronous: the server stores the keys, so no PBKDF2 runs here. */
  stepNow(response: Buffer | null): SaslStep {
    switch (this.state) {
      case 'first':
      case 'awaiting-first':
        if (response === null) {
          // SCRAM is client-first; without an initial response ask for it once (RFC 4422 §5).
          if (this.state === 'awaiting-first') throw malformed('no client-first-message');
          this.state = 'awaiting-first';
          return { done: false, challenge: Buffer.alloc(0) };
        }
        return this.first(response);
      case 'final':
        this.state = 'done';
        if (response === null) throw malformed('no client-final-message');
        return this.final(response);
      default:
        throw malformed('the exchange is over');
    }
  }

  private first(response: Buffer): SaslStep {
    this.state = 'done'; // until the message proved acceptable
    const message = parseClientFirst(decodeUtf8(response));
    this.authcid = message.authcid;
    const { domain, users } = this.context;
    this.username = accountFromAuthcid(message.authcid, domain);
    if (this.username !== null) checkAuthzid(message.authzid, this.username, domain);
    const stored = this.username === null ? null : users.getScramCredentials(`${this.username}@${domain}`, this.hash);
    this.known = stored !== null;
    // An unknown account gets a plausible challenge and fails only at the proof (RFC 5802 §9).
    this.creds = stored ?? decoyCredentials(this.context, this.hash, this.username ?? message.authcid);
    const serverNonce = this.context.nonce ? this.context.nonce() : randomBase64(18);
    this.nonce = message.clientNonce + serverNonce;
    this.gs2Header = message.gs2Header;
    const serverFirst = `r=${this.nonce},s=${this.creds.salt.toString('base64')},i=${this.creds.iterations}`;
    this.authMessagePrefix = `${message.bare},${serverFirst}`;
    this.state = 'final';
    return { done: false, challenge: Buffer.from(serverFirst, 'utf8') };
  }

  private final(response: Buffer): SaslStep {
    const message = decodeUtf8(response);
    const proofAt = message.lastIndexOf(',p=');
    if (proofAt === -1) throw malformed("client-final-message lacks 'p='");
    const withoutProof = message.slice(0, proofAt);
    const fields = withoutProof.split(',');
    if (!fields[0]?.startsWith('c=')) throw malformed("client-final-message must start with 'c='");
    if (fields[1] === undefined || !fields[1].startsWith('r=')) throw malformed("client-final-message lacks 'r='");
    // §7: c= carries the GS2 header (and, with binding, its data): it must be the one sent first.
    const binding = decodeBase64(fields[0].slice(2), 'channel binding');
    if (!binding.equals(Buffer.from(this.gs2Header, 'utf8'))) throw malformed('the GS2 header changed between messages');
    if (fields[1].slice(2) !== this.nonce) throw malformed('the nonce does not match');
    const proof = decodeBase64(message.slice(proofAt + 3), 'proof');
    const creds = this.creds!;
    if (proof.length !== hashSize(this.hash)) throw notAuthorized();

    // §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); valid iff H(ClientKey) = StoredKey.
    const authMessage = `${this.authMessagePrefix},${withoutProof}`;
    const clientSignature = hmac(this.hash, creds.storedKey, authMessage);
    const storedKey = digest(this.hash, xor(proof, clientSignature));
    if (!timingSafeEqual(storedKey, creds.storedKey) || !this.known || this.username === null) throw notAuthorized();
    const serverSignature = hmac(this.hash, creds.serverKey, authMessage);
    return {
      done: true,
      username: this.username,
      additionalData: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
    };
  }
}
