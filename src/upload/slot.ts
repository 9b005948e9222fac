/**
 * XEP-0363 upload slots without server-side slot state: a slot is a URL path plus a signature
 * the HTTP service can check on its own (any shard may hand out slots; only the main thread's
 * HTTP service receives the PUT). The signature is an HMAC-SHA256, keyed by a secret kept in the
 * data directory, over everything the PUT must match: the path (owner key, random id, file
 * name), the size, the content type and the expiry time.
 *
 * Layout of a file's URL: <public_url>/<owner key>/<id>/<file name>
 *  - owner key: 32 hex digits, an HMAC of the account's bare JID (quota accounting per account
 *    without writing JIDs into URLs or onto disk);
 *  - id: 22 base64url characters from 16 random bytes (unguessable, so URLs are capabilities);
 *  - file name: the client's name, sanitised, percent-encoded. Only ever part of a URL: files are
 *    stored under their id, so no name can reach outside the upload directory.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const UPLOAD_NS = 'urn:xmpp:http:upload:0';

export const OWNER_KEY = /^[0-9a-f]{32}$/;
export const FILE_ID = /^[A-Za-z0-9_-]{22}$/;
/** Longest file name kept, in UTF-8 bytes (what common file systems allow for one name). */
export const MAX_NAME_BYTES = 200;
/** A MIME type without parameters (RFC 6838 §4.2 restricted names). */
const MIME = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** The file name a client asked for, made safe to show and to put into a URL; null if nothing is left. */
export function sanitizeFilename(raw: string): string | null {
  // A path is not a name: keep what follows the last separator of either convention.
  let name = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1).normalize('NFC');
  // Control and format characters (including bidi overrides that disguise extensions) and the
  // characters Windows refuses in names become '_'; the zero-width joiner of emoji sequences stays.
  name = name.replace(/(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}<>:"|?*]/gu, '_');
  name = name.replace(/\s+/gu, ' ').trim().replace(/^\.+/, '');
  if (name === '') return null;
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    // Keep the extension (clients pick viewers by it) and cut the stem on a code point boundary.
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
    let stem = ext ? name.slice(0, dot) : name;
    while (Buffer.byteLength(stem + ext) > MAX_NAME_BYTES) stem = [...stem].slice(0, -1).join('');
    name = stem + ext;
  }
  return name;
}

/** A request's content type, lower-cased and without parameters; null when malformed. */
export function normalizeContentType(raw: string): string | null {
  const type = raw.split(';')[0]!.trim().toLowerCase();
  return MIME.test(type) ? type : null;
}

/** What one slot allows: one PUT of exactly `size` bytes of `contentType` before `expires`. */
export interface Slot {
  ownerKey: string;
  id: string;
  /** Sanitised file name. */
  name: string;
  size: number;
  /** Normalised type, or '' when the request named none (any type is accepted then). */
  contentType: string;
  /** Milliseconds since the epoch. */
  expires: number;
}

export function slotPath(slot: Pick<Slot, 'ownerKey' | 'id' | 'name'>): string {
  return `${slot.ownerKey}/${slot.id}/${encodeURIComponent(slot.name)}`;
}

/** The signer both sides share: the module issues, the HTTP service verifies. */
export class SlotSigner {
  constructor(private readonly secret: Buffer) {}

  ownerKey(bareJid: string): string {
    return createHmac('sha256', this.secret).update(`owner\0${bareJid}`).digest('hex').slice(0, 32);
  }

  /** A new slot for `owner` (a bare JID). */
  issue(owner: string, name: string, size: number, contentType: string, expires: number): Slot {
    return { ownerKey: this.ownerKey(owner), id: randomBytes(16).toString('base64url'), name, size, contentType, expires };
  }

  /**
   * The Authorization header value the PUT must carry: `Hermod <expiry>.<size>.<signature>`. The
   * size travels in clear (signed) so that a PUT of another length is told so (413/400) rather
   * than merely refused.
   */
  authorization(slot: Slot): string {
    return `Hermod ${slot.expires}.${slot.size}.${this.mac(slot)}`;
  }

  /**
   * Check a PUT: the path's parts, its Content-Length and type, and the Authorization header.
   * Returns the expiry on success, or why it fails ('expired' and 'size' are told apart so that
   * the client learns what to fix; `expected` is the slot's size then).
   */
  verify(
    path: Pick<Slot, 'ownerKey' | 'id' | 'name'>,
    length: number,
    contentType: string,
    authorization: string | undefined,
    now: number,
  ): { ok: true; expires: number } | { ok: false; why: 'missing' | 'bad' | 'expired' } | { ok: false; why: 'size'; expected: number } {
    const m = authorization === undefined ? null : /^Hermod (\d{1,15})\.(\d{1,15})\.([0-9a-f]{64})$/.exec(authorization.trim());
    if (!m) return { ok: false, why: authorization === undefined ? 'missing' : 'bad' };
    const expires = Number(m[1]);
    const size = Number(m[2]);
    const given = Buffer.from(m[3]!, 'hex');
    const typed = Buffer.from(this.mac({ ...path, size, contentType, expires }), 'hex');
    // Signed without a type: the client may send any.
    if (!timingSafeEqual(typed, given) && !timingSafeEqual(Buffer.from(this.mac({ ...path, size, contentType: '', expires }), 'hex'), given)) {
      return { ok: false, why: 'bad' };
    }
    if (now > expires) return { ok: false, why: 'expired' };
    if (length !== size) return { ok: false, why: 'size', expected: size };
    return { ok: true, expires };
  }

  private mac(slot: Omit<Slot, 'name'> & { name: string }): string {
    return createHmac('sha256', this.secret)
      .update(`${slotPath(slot)}\n${slot.size}\n${slot.contentType}\n${slot.expires}`)
      .digest('hex');
  }
}

/**
 * The signing secret in <data>/upload.secret (created at first use, mode 0600): kept across
 * restarts so that URLs and owner keys stay valid, shared by every shard thread.
 */
export function loadUploadSecret(dataDir: string): Buffer {
  const file = join(dataDir, 'upload.secret');
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another thread made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}
