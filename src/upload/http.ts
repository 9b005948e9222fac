/**
 * The XEP-0363 HTTP side: PUT stores a file a slot allows, GET/HEAD serve it to anyone holding
 * the URL (XEP-0363 §6; the random id makes the URL a capability), OPTIONS answers CORS
 * preflights of web clients (Converse.js, Movim). Runs on the main thread only.
 *
 * Safety of what is served (XEP-0363 §10, Security Considerations): a file is served with the
 * type it was uploaded as only when that type cannot carry script (images other than SVG, audio,
 * video, plain text); anything else goes out as application/octet-stream, attachment. Every
 * response says nosniff and carries a CSP sandbox, so even a mislabelled file cannot run in the
 * server's origin.
 */
import { createReadStream, createWriteStream, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { UploadFiles } from './files.js';
import type { RequestLimits } from './limits.js';
import { FILE_ID, normalizeContentType, OWNER_KEY, type SlotSigner } from './slot.js';

/** Types served inline; the rest are downloads (see the header comment). */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|heic|heif|bmp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|text\/plain)$/;

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, PUT, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type',
  'access-control-max-age': '86400',
};

const SAFETY = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
  'referrer-policy': 'no-referrer',
};

export interface UploadHttpOptions {
  host: string;
  port: number;
  signer: SlotSigner;
  files: UploadFiles;
  /** Bytes per account; 0 = no quota. */
  quota: number;
  maxFileSize: number;
  /** PUTs per account and per address (limits.ts); absent = no limit. */
  putLimits?: RequestLimits;
  /** TLS key and certificate: serve https. */
  tls?: { key: string; cert: string };
  now?: () => number;
  /** Told about each stored file (logging). */
  onStored?: (info: { ownerKey: string; id: string; size: number }) => void;
}

export interface UploadHttpServer {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export function startUploadHttp(options: UploadHttpOptions): Promise<UploadHttpServer> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(options, req, res).catch(() => {
      if (!res.headersSent) reply(res, 500, 'internal error');
      else res.destroy();
    });
  };
  const server: Server = options.tls ? createHttpsServer({ ...options.tls, minVersion: 'TLSv1.2' }, onRequest) : createHttpServer(onRequest);
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 15_000;
  // Bounds one upload: a slow client cannot hold a claim (and its quota share) for long.
  server.requestTimeout = 30 * 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve({
        server,
        host: address.address,
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function reply(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  const body = `${text}\n`;
  res.writeHead(status, { ...CORS, ...SAFETY, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** The file a URL names: its last three segments (whatever prefix a reverse proxy kept). */
function target(url: string | undefined): { ownerKey: string; id: string; name: string } | null {
  const segments = (url ?? '/').split('?')[0]!.split('/');
  if (segments.length < 4) return null;
  const [ownerKey, id, encoded] = segments.slice(-3) as [string, string, string];
  if (!OWNER_KEY.test(ownerKey) || !FILE_ID.test(id)) return null;
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return null;
  }
  return { ownerKey, id, name };
}

async function handle(o: UploadHttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...CORS });
    res.end();
    return;
  }
  const file = target(req.url);
  if (req.method === 'PUT') return put(o, file, req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed', { allow: 'GET, HEAD, PUT, OPTIONS' });
  const meta = file ? o.files.meta(file.ownerKey, file.id) : null;
  // Unknown, unfinished, or asked for under another name: all the same 404.
  if (!file || !meta || meta.name !== file.name) return reply(res, 404, 'not found');
  const paths = o.files.paths(file.ownerKey, file.id);
  // A file never changes under its id: its id is its validator (RFC 9110 §8.8.3, §13.1.2).
  const etag = `"${file.id}"`;
  if (req.headers['if-none-match']?.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
    res.writeHead(304, { ...CORS, ...SAFETY, etag, 'cache-control': 'public, max-age=31536000, immutable' });
    res.end();
    return;
  }
  // RFC 9110 §14: one byte range (players seek in videos, downloads resume); several ranges or
  // an unsatisfiable one get the whole file or 416.
  const range = byteRange(req.headers.range, meta.size);
  if (range === 'unsatisfiable') return reply(res, 416, 'range not satisfiable', { 'content-range': `bytes */${meta.size}` });
  const stream = createReadStream(paths.data, range ? { start: range.start, end: range.end } : {});
  const opened = await new Promise<boolean>((done) => {
    stream.once('open', () => done(true));
    stream.once('error', () => done(false));
  });
  if (!opened) return reply(res, 404, 'not found');
  const inline = INLINE.test(meta.type);
  const disposition = `${inline ? 'inline' : 'attachment'}; filename*=UTF-8''${encodeURIComponent(meta.name)}`;
  res.writeHead(range ? 206 : 200, {
    ...CORS,
    ...SAFETY,
    'content-type': inline ? meta.type : 'application/octet-stream',
    'content-length': range ? range.end - range.start + 1 : meta.size,
    ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${meta.size}` } : {}),
    'accept-ranges': 'bytes',
    'content-disposition': disposition,
    'cache-control': 'public, max-age=31536000, immutable',
    'last-modified': new Date(meta.created).toUTCString(),
    etag,
  });
  if (req.method === 'HEAD') {
    stream.destroy();
    res.end();
    return;
  }
  await pipeline(stream, res).catch(() => res.destroy());
}

/** A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `size`; null = serve it all. */
function byteRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  const m = header === undefined ? null : /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

async function put(
  o: UploadHttpOptions,
  file: { ownerKey: string; id: string; name: string } | null,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // Refusals answer at once; the connection is closed so that an unread body is not parsed as
  // the next request.
  const refuse = (status: number, text: string, extra: Record<string, string> = {}) => {
    res.shouldKeepAlive = false;
    reply(res, status, text, { connection: 'close', ...extra });
  };
  if (!file) return refuse(404, 'not an upload URL');
  const now = o.now?.() ?? Date.now();
  // RFC 6585 §4: too many requests, and when to come back (RFC 9110 §10.2.3, in seconds). The
  // address pays for refused attempts (malformed, forged, expired), the account for PUTs whose
  // signature proves whose slot they fill: behind a reverse proxy every upload comes from one
  // address, and forgeries anyone can send must not use up the budget of genuine uploads.
  const tooMany = (waitMs: number) => refuse(429, 'too many uploads: try again later', { 'retry-after': String(Math.ceil(waitMs / 1000)) });
  const refuseAttempt = (status: number, text: string) => {
    const wait = o.putLimits?.take(null, req.socket.remoteAddress ?? '', now) ?? 0;
    return wait > 0 ? tooMany(wait) : refuse(status, text);
  };
  const lengthHeader = req.headers['content-length'];
  // XEP-0363 §6: the PUT carries exactly the size the slot was asked for.
  if (lengthHeader === undefined || !/^\d{1,15}$/.test(lengthHeader)) return refuseAttempt(411, 'Content-Length required');
  const size = Number(lengthHeader);
  if (size > o.maxFileSize) return refuseAttempt(413, `larger than the ${o.maxFileSize} bytes allowed`);
  const typeHeader = req.headers['content-type'];
  const type = typeHeader === undefined ? '' : normalizeContentType(typeHeader);
  if (type === null) return refuseAttempt(400, 'malformed Content-Type');
  // The signature covers path, size, type and expiry (§6): a different type or URL fails it.
  const check = o.signer.verify(file, size, type, req.headers.authorization, now);
  if (!check.ok) {
    if (check.why === 'expired') return refuseAttempt(403, 'slot expired: request a new one');
    // XEP-0363 §6: the body must be exactly the size the slot was requested for.
    if (check.why === 'size') return refuseAttempt(size > check.expected ? 413 : 400, `Content-Length must be ${check.expected}, the slot's size`);
    return refuseAttempt(403, check.why === 'missing' ? 'Authorization required (the slot\'s PUT header)' : 'signature does not match this upload');
  }
  const accountWait = o.putLimits?.takeAccount(file.ownerKey, now) ?? 0;
  if (accountWait > 0) return tooMany(accountWait);
  const paths = o.files.paths(file.ownerKey, file.id);
  o.files.ensureOwnerDir(file.ownerKey);
  // Quota again at upload time: slots issued together may not all fit.
  if (o.quota > 0 && o.files.usage(file.ownerKey) + size > o.quota) return refuse(413, 'upload quota exceeded');
  try {
    // The claim: only one PUT per slot gets past this (O_EXCL), and it stays after success.
    writeFileSync(paths.claim(size), '', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return refuse(409, 'this slot has been used');
    throw err;
  }
  writeFileSync(paths.meta, JSON.stringify({ name: file.name, type, size, created: now }), { mode: 0o600 });
  let received = 0;
  let tooLong = false;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > size && !tooLong) {
      tooLong = true;
      req.destroy();
    }
  });
  try {
    await pipeline(req, createWriteStream(paths.part, { flags: 'wx', mode: 0o600 }));
  } catch {
    o.files.remove(file.ownerKey, file.id, size);
    if (tooLong) refuse(413, 'body longer than Content-Length');
    else res.destroy();
    return;
  }
  if (received !== size) {
    o.files.remove(file.ownerKey, file.id, size);
    return refuse(400, `body of ${received} bytes, Content-Length said ${size}`);
  }
  // Complete: visible under its URL only now, all at once.
  renameSync(paths.part, paths.data);
  o.onStored?.({ ownerKey: file.ownerKey, id: file.id, size });
  reply(res, 201, 'created');
}
