/**
 * SCRAM client (RFC 5802; SCRAM-SHA-256 per RFC 7677) without channel binding ("n,,"), the
 * variant servers offer over plain TCP. The PBKDF2 step dominates a login's client CPU. Real
 * clients (Conversations, Gajim, Dino) keep ClientKey and ServerKey per account and derive them
 * again only when the server's salt or iteration count changes; this client does the same, keyed
 * by (hash, password, salt, iterations) — the salt is per account, so in effect per account — so
 * a reconnecting client pays PBKDF2 once and the swarm is not the bottleneck of a login run.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export type ScramHash = 'sha1' | 'sha256';

export const SCRAM_MECHANISMS: Record<string, ScramHash> = { 'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256' };

/** What RFC 5802 §3 lets a client keep instead of the password: ClientKey and ServerKey. */
interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Settled keys are kept as values, so a reconnecting client computes its proof in the same turn. */
const keyCache = new Map<string, ScramKeys | Promise<ScramKeys>>();
/** PBKDF2 runs of this process (the cache misses), for the tool's own cost accounting. */
export const scramCounters = { derived: 0, reused: 0 };

function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** RFC 5802 §5.1: ',' and '=' in a username are escaped as =2C and =3D. */
function saslName(user: string): string {
  return user.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/**
 * The value of attribute `key` (one letter) of a SCRAM message, RFC 5802 §7: 'k=value' pairs
 * separated by ',', which no value contains. Scanned in place (no split, no Map per login).
 */
function scramAttr(msg: string, key: string): string | undefined {
  const k = key.charCodeAt(0);
  for (let at = 0; at < msg.length; ) {
    const comma = msg.indexOf(',', at);
    const end = comma < 0 ? msg.length : comma;
    if (msg.charCodeAt(at) === k && msg.charCodeAt(at + 1) === 0x3d /* = */) return msg.slice(at + 2, end);
    at = end + 1;
  }
  return undefined;
}

function scramKeys(hash: ScramHash, password: string, salt: string, iterations: number): ScramKeys | Promise<ScramKeys> {
  const key = `${hash}\0${salt}\0${iterations}\0${password}`;
  const cached = keyCache.get(key);
  if (cached) {
    scramCounters.reused++;
    return cached;
  }
  scramCounters.derived++;
  const len = hash === 'sha1' ? 20 : 32;
  // Hi() of RFC 5802 §2.2 is PBKDF2 with HMAC; the async form runs on libuv's pool so a swarm
  // of logins does not stall the event loop that is also timing messages.
  const p = new Promise<ScramKeys>((resolve, reject) =>
    pbkdf2(password, Buffer.from(salt, 'base64'), iterations, len, hash, (e, salted) => {
      if (e) return reject(e);
      const clientKey = hmac(hash, salted, 'Client Key');
      const keys = { clientKey, storedKey: createHash(hash).update(clientKey).digest(), serverKey: hmac(hash, salted, 'Server Key') };
      keyCache.set(key, keys);
      resolve(keys);
    }),
  );
  // A failed derivation must not stick: the next login tries again.
  p.catch(() => keyCache.delete(key));
  keyCache.set(key, p);
  return p;
}

/**
 * Client nonces (RFC 5802 §5.1: 18 random bytes, base64) cut from one CSPRNG block: a
 * `randomBytes` call per login was a visible share of the tool's CPU in a login storm.
 */
const NONCE_BYTES = 18;
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): string {
  if (nonceAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 256);
    nonceAt = 0;
  }
  nonceAt += NONCE_BYTES;
  return noncePool.toString('base64', nonceAt - NONCE_BYTES, nonceAt);
}

export class ScramClient {
  private clientFirstBare = '';
  private serverSignature: Buffer | null = null;

  constructor(
    private readonly hash: ScramHash,
    private readonly user: string,
    private readonly password: string,
    private readonly nonce: string = freshNonce(),
  ) {}

  /** client-first-message (RFC 5802 §7), to base64 into <auth/>. */
  first(): string {
    this.clientFirstBare = `n=${saslName(this.user)},r=${this.nonce}`;
    return 'n,,' + this.clientFirstBare;
  }

  /**
   * client-final-message for the server-first-message of the <challenge/>: a string at once
   * when this account's keys are known, a promise while PBKDF2 derives them.
   */
  final(serverFirst: string): string | Promise<string> {
    const r = scramAttr(serverFirst, 'r');
    const s = scramAttr(serverFirst, 's');
    const i = Number(scramAttr(serverFirst, 'i'));
    if (scramAttr(serverFirst, 'm') !== undefined) throw new Error('SCRAM: unsupported mandatory extension');
    if (!r || !s || !Number.isInteger(i) || i < 1) throw new Error('SCRAM: malformed server-first-message');
    // RFC 5802 §5.1: the server's nonce must extend ours, or this is not our exchange.
    if (!r.startsWith(this.nonce)) throw new Error('SCRAM: server nonce does not extend the client nonce');
    const keys = scramKeys(this.hash, this.password, s, i);
    return keys instanceof Promise ? keys.then((k) => this.prove(serverFirst, r, k)) : this.prove(serverFirst, r, keys);
  }

  private prove(serverFirst: string, r: string, { clientKey, storedKey, serverKey }: ScramKeys): string {
    const withoutProof = `c=biws,r=${r}`; // biws = base64("n,,")
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.hash, storedKey, authMessage);
    this.serverSignature = hmac(this.hash, serverKey, authMessage);
    return `${withoutProof},p=${xor(clientKey, clientSignature).toString('base64')}`;
  }

  /** Check the server-final-message (from <success/>): mutual authentication, RFC 5802 §3. */
  verify(serverFinal: string): boolean {
    const v = scramAttr(serverFinal, 'v');
    if (!v || !this.serverSignature) return false;
    const got = Buffer.from(v, 'base64');
    return got.length === this.serverSignature.length && timingSafeEqual(got, this.serverSignature);
  }
}
