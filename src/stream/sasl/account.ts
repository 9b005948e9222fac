/**
 * Identity rules shared by the mechanisms: how an authentication identity names an account,
 * when an authorization identity is acceptable, and what an unknown account looks like.
 */
import { randomBytes } from 'node:crypto';
import { SaslFailure } from '../../errors.js';
import { Jid, prepareDomainpart, prepareLocalpart } from '../../jid.js';
import { hmac, hashSize } from '../../storage/password.js';
import { DEFAULT_ITERATIONS, type ScramCredentials, type ScramHash } from '../../storage/types.js';
import type { SaslContext } from './types.js';

/**
 * RFC 6120 §6.3.8: in c2s the authcid is a simple user name, i.e. the localpart, prepared with
 * the UsernameCaseMapped profile (RFC 7622 §3.3). A client that sends its bare JID instead is
 * understood when the domain is ours (a localpart cannot contain '@', so this is unambiguous).
 * Returns null for names that cannot be an account here; callers answer those exactly like a
 * wrong password, so the reply does not tell which names exist.
 */
export function accountFromAuthcid(authcid: string, domain: string): string | null {
  let local = authcid;
  const at = authcid.lastIndexOf('@');
  if (at !== -1) {
    try {
      if (prepareDomainpart(authcid.slice(at + 1)) !== domain) return null;
    } catch {
      return null;
    }
    local = authcid.slice(0, at);
  }
  try {
    return prepareLocalpart(local);
  } catch {
    return null;
  }
}

/**
 * RFC 6120 §6.3.8: an authzid, when given, must be the bare JID the credentials belong to; we do
 * not let one account act for another. An empty authzid means none (RFC 4422 §3.4.1).
 */
export function checkAuthzid(authzid: string, username: string, domain: string): void {
  if (authzid === '') return;
  const jid = Jid.tryParse(authzid);
  if (!jid || jid.local !== username || jid.domain !== domain || jid.resource !== null) {
    throw new SaslFailure('invalid-authzid', 'the authorization identity must be your own bare JID');
  }
}

/** Per-provider secret, so fake salts are stable within a process and unguessable. */
export function contextSecret(context: SaslContext): Buffer {
  return context.secret ?? (context.secret = randomBytes(32));
}

/**
 * Credentials for an account that does not exist: a salt derived from the name (the same name
 * always gets the same salt, as a real account would), the usual iteration count, and keys no
 * proof can match. Used so that SCRAM's server-first message and PLAIN's running time look the
 * same whether or not the account exists.
 */
export function decoyCredentials(context: SaslContext, hash: ScramHash, account: string): ScramCredentials {
  const salt = hmac('SHA-256', contextSecret(context), `${hash}\u0000${account}@${context.domain}`).subarray(0, 16);
  return {
    salt,
    iterations: context.iterations ?? DEFAULT_ITERATIONS,
    storedKey: randomBytes(hashSize(hash)),
    serverKey: randomBytes(hashSize(hash)),
  };
}

/** The same answer for an unknown account and a wrong password (RFC 6120 §6.5.10). */
export function notAuthorized(): SaslFailure {
  return new SaslFailure('not-authorized');
}

export function malformed(text: string): SaslFailure {
  return new SaslFailure('malformed-request', text);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** SASL messages are UTF-8 (RFC 4616 §2, RFC 5802 §7); anything else is malformed. */
export function decodeUtf8(data: Buffer): string {
  try {
    return utf8.decode(data);
  } catch {
    throw malformed('not UTF-8');
  }
}
