/**
 * SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd` in one message.
 *
 * No plaintext is stored, so the password is checked by recomputing SCRAM-SHA-256's StoredKey
 * from it (PBKDF2 on the thread pool, then two hashes) and comparing in constant time. An unknown
 * account runs the same computation against decoy credentials, so neither the answer nor the
 * time it takes says whether the account exists.
 *
 * A password verified this way is remembered (plain-cache.ts): the same account with the same
 * password against the same stored credentials skips PBKDF2 next time.
 */
import { timingSafeEqual } from 'node:crypto';
import { credentialsFromSaltedPassword, normalizePassword, saltedPassword } from '../../storage/password.js';
import { plainCacheOf } from './plain-cache.js';
import { accountFromAuthcid, checkAuthzid, decodeUtf8, decoyCredentials, malformed, notAuthorized } from './account.js';
import type { SaslContext, SaslExchange, SaslStep } from './types.js';

const HASH = 'SHA-256';

export class PlainExchange implements SaslExchange {
  readonly mechanism = 'PLAIN';
  authcid?: string;
  private state: 'start' | 'awaiting-response' | 'done' = 'start';

  constructor(private readonly context: SaslContext) {}

  async step(response: Buffer | null): Promise<SaslStep> {
    return this.stepNow(response);
  }

  /** Synchronous unless the password has to go through PBKDF2 (not a remembered login). */
  stepNow(response: Buffer | null): SaslStep | Promise<SaslStep> {
    if (this.state === 'done') throw malformed('the exchange is over');
    if (response === null) {
      // RFC 4616 §2 / RFC 4422 §5: no initial response → an empty challenge asks for it.
      if (this.state === 'awaiting-response') throw malformed('an empty response to PLAIN');
      this.state = 'awaiting-response';
      return { done: false, challenge: Buffer.alloc(0) };
    }
    this.state = 'done';
    return this.verify(response);
  }

  private verify(message: Buffer): SaslStep | Promise<SaslStep> {
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
    const parts = decodeUtf8(message).split('\u0000');
    if (parts.length !== 3) throw malformed('PLAIN needs exactly three NUL-separated fields');
    const [authzid, authcid, password] = parts as [string, string, string];
    if (authcid === '' || password === '') throw malformed('empty authentication identity or password');
    this.authcid = authcid;

    const { domain, users } = this.context;
    const username = accountFromAuthcid(authcid, domain);
    if (username !== null) checkAuthzid(authzid, username, domain);
    const account = username === null ? null : `${username}@${domain}`;
    const stored = account === null ? null : users.getScramCredentials(account, HASH);
    const creds = stored ?? decoyCredentials(this.context, HASH, username ?? authcid);

    const cache = plainCacheOf(this.context);
    if (stored !== null && username !== null && cache.matches(account!, stored, password)) {
      return { done: true, username, additionalData: null };
    }
    return saltedPassword(HASH, normalizePassword(password), creds.salt, creds.iterations).then((salted) => {
      const candidate = credentialsFromSaltedPassword(HASH, salted, creds.salt, creds.iterations);
      const match = timingSafeEqual(candidate.storedKey, creds.storedKey);
      if (!match || stored === null || username === null) throw notAuthorized();
      cache.remember(account!, stored, password);
      return { done: true, username, additionalData: null };
    });
  }
}
