/**
 * Uploaded files on disk, one folder per account (named by its owner key):
 *   <dir>/<owner key>/<id>.<size>.claim  empty; created with O_EXCL when a PUT starts, so one
 *                                        slot takes one upload, ever; its name carries the size
 *   <dir>/<owner key>/<id>.json          metadata {name, type, size, created}, for GET
 *   <dir>/<owner key>/<id>.part          the body while it arrives (never served)
 *   <dir>/<owner key>/<id>.bin           the finished file, renamed from .part once complete
 * Quota accounting sums the sizes in the claims' names (one readdir, no file read), so it
 * survives restarts and is the same for every thread (shards check quotas when they issue slots;
 * the HTTP service checks again at PUT time).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_ID, OWNER_KEY } from './slot.js';

export interface FileMeta {
  name: string;
  /** Content type the uploader declared (normalised), '' when none. */
  type: string;
  size: number;
  /** Milliseconds since the epoch. */
  created: number;
}

/**
 * A claim whose upload never finished (the server stopped mid-PUT) is forgotten after this; an
 * upload takes at most the HTTP service's request timeout, which is shorter.
 */
const STALE_CLAIM_MS = 60 * 60 * 1000;

/** `<id>.<size>.claim` */
const CLAIM = /^[A-Za-z0-9_-]{22}\.(\d{1,15})\.claim$/;

/** Accounts whose usage is remembered (per thread). */
const USAGE_CACHE = 10_000;

/**
 * A folder mtime this recent is not trusted to change with the next claim: file systems stamp
 * with a coarse clock (the kernel's tick, a few ms, unless it has multigrain timestamps (Linux
 * 6.13+); whole seconds on some, two on FAT), so a claim created within the same tick leaves the
 * mtime as it was, and a sum cached against it would miss that claim: a quota race.
 */
const MTIME_SETTLED_MS = 2_000;

export class UploadFiles {
  /**
   * Usage per owner key with the folder's mtime it was computed at: any claim created or deleted
   * (by any thread) changes the folder's mtime, so an unchanged mtime means an unchanged sum, once
   * that mtime has settled (MTIME_SETTLED_MS).
   */
  private readonly usageCache = new Map<string, { mtimeMs: number; bytes: number }>();

  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  ownerDir(ownerKey: string): string {
    if (!OWNER_KEY.test(ownerKey)) throw new Error('bad owner key');
    return join(this.dir, ownerKey);
  }

  /** Paths of one file's parts; the id is checked so that no input can leave the folder. */
  paths(ownerKey: string, id: string): { meta: string; part: string; data: string; claim(size: number): string } {
    if (!FILE_ID.test(id)) throw new Error('bad file id');
    const base = join(this.ownerDir(ownerKey), id);
    return { meta: `${base}.json`, part: `${base}.part`, data: `${base}.bin`, claim: (size) => `${base}.${size}.claim` };
  }

  ensureOwnerDir(ownerKey: string): void {
    mkdirSync(this.ownerDir(ownerKey), { recursive: true, mode: 0o700 });
  }

  /** Bytes an account holds or is uploading (every claim counts with its declared size). */
  usage(ownerKey: string): number {
    const folder = this.ownerDir(ownerKey);
    const before = safeStat(folder);
    if (!before) return 0;
    const cached = this.usageCache.get(ownerKey);
    if (cached && cached.mtimeMs === before.mtimeMs) return cached.bytes;
    let total = 0;
    for (const name of this.list(folder)) {
      const m = CLAIM.exec(name);
      if (m) total += Number(m[1]);
    }
    if (safeStat(folder)?.mtimeMs === before.mtimeMs && this.now() - before.mtimeMs >= MTIME_SETTLED_MS) {
      if (this.usageCache.size >= USAGE_CACHE) this.usageCache.clear();
      this.usageCache.set(ownerKey, { mtimeMs: before.mtimeMs, bytes: total });
    }
    return total;
  }

  meta(ownerKey: string, id: string): FileMeta | null {
    return readMeta(this.paths(ownerKey, id).meta);
  }

  /** Every file of one account. */
  removeOwner(ownerKey: string): void {
    rmSync(this.ownerDir(ownerKey), { recursive: true, force: true });
  }

  /** One file with its claim (of `size` bytes) and metadata. */
  remove(ownerKey: string, id: string, size: number): void {
    const p = this.paths(ownerKey, id);
    for (const f of [p.data, p.part, p.meta, p.claim(size)]) rmSync(f, { force: true });
  }

  /**
   * Delete files created more than `maxAge` ms before `now` (0 = keep them), claims of uploads
   * that never finished, and leftovers without a claim. Returns how many files went.
   */
  sweep(now: number, maxAge: number): number {
    let removed = 0;
    for (const owner of this.list(this.dir)) {
      if (!OWNER_KEY.test(owner)) continue;
      const folder = join(this.dir, owner);
      // Every name of a folder, grouped by file id.
      const byId = new Map<string, string[]>();
      for (const name of this.list(folder)) {
        const id = name.slice(0, name.indexOf('.'));
        if (!FILE_ID.test(id)) continue;
        const names = byId.get(id);
        if (names) names.push(name);
        else byId.set(id, [name]);
      }
      for (const [id, names] of byId) {
        const claim = names.find((n) => CLAIM.test(n));
        const finished = names.includes(`${id}.bin`);
        // Created: from the metadata, else (a crash before it was written) the claim's mtime.
        const created = readMeta(join(folder, `${id}.json`))?.created ?? safeStat(join(folder, claim ?? names[0]!))?.mtimeMs ?? 0;
        const age = now - created;
        const expired = claim !== undefined && finished && maxAge > 0 && age > maxAge;
        // An upload that never finished, or parts without a claim (a crash between deletions).
        const abandoned = (!finished || claim === undefined) && age > STALE_CLAIM_MS;
        if (!expired && !abandoned) continue;
        for (const n of names) rmSync(join(folder, n), { force: true });
        removed++;
      }
    }
    return removed;
  }

  private list(folder: string): string[] {
    try {
      return readdirSync(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}

function readMeta(file: string): FileMeta | null {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Partial<FileMeta>;
    if (typeof m.name !== 'string' || typeof m.size !== 'number' || typeof m.created !== 'number') return null;
    return { name: m.name, type: typeof m.type === 'string' ? m.type : '', size: m.size, created: m.created };
  } catch {
    return null;
  }
}

function safeStat(file: string): { mtimeMs: number } | null {
  try {
    return statSync(file);
  } catch {
    return null;
  }
}
