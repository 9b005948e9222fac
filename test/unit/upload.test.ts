/**
 * XEP-0363 pieces without sockets: slot signatures, file-name sanitising, the §5 errors of a slot
 * request, quota accounting from the upload folder, and the expiry sweep.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/file.js';
import { StanzaError } from '../../src/errors.js';
import { UploadFiles } from '../../src/upload/files.js';
import { KeyedLimit, RequestLimits, retryStamp } from '../../src/upload/limits.js';
import { requestSlot, type UploadSettings } from '../../src/upload/module.js';
import { loadUploadSecret, normalizeContentType, sanitizeFilename, SlotSigner, MAX_NAME_BYTES } from '../../src/upload/slot.js';
import { parseElement } from '../../src/xml/element.js';

const signer = new SlotSigner(Buffer.alloc(32, 1));
const NOW = 1_800_000_000_000;

describe('slot signatures', () => {
  const slot = signer.issue('alice@localhost', 'cat.jpg', 1234, 'image/jpeg', NOW + 60_000);
  const auth = signer.authorization(slot);

  it('accepts the PUT the slot describes, until it expires', () => {
    expect(signer.verify(slot, 1234, 'image/jpeg', auth, NOW)).toEqual({ ok: true, expires: NOW + 60_000 });
    expect(signer.verify(slot, 1234, 'image/jpeg', auth, NOW + 60_001)).toEqual({ ok: false, why: 'expired' });
  });

  it('refuses another size, type, name, id, owner or a missing header', () => {
    expect(signer.verify(slot, 1235, 'image/jpeg', auth, NOW)).toEqual({ ok: false, why: 'size', expected: 1234 });
    expect(signer.verify(slot, 1234, 'text/html', auth, NOW).ok).toBe(false);
    expect(signer.verify({ ...slot, name: 'cat.html' }, 1234, 'image/jpeg', auth, NOW).ok).toBe(false);
    expect(signer.verify({ ...slot, id: 'A'.repeat(22) }, 1234, 'image/jpeg', auth, NOW).ok).toBe(false);
    expect(signer.verify({ ...slot, ownerKey: signer.ownerKey('eve@localhost') }, 1234, 'image/jpeg', auth, NOW).ok).toBe(false);
    expect(signer.verify(slot, 1234, 'image/jpeg', undefined, NOW)).toEqual({ ok: false, why: 'missing' });
  });

  it('refuses a later expiry written into the header (the signature covers it)', () => {
    const extended = auth.replace(String(NOW + 60_000), String(NOW + 3_600_000));
    expect(signer.verify(slot, 1234, 'image/jpeg', extended, NOW + 120_000)).toEqual({ ok: false, why: 'bad' });
  });

  it('refuses a size written into the header (the signature covers it)', () => {
    const bigger = auth.replace('.1234.', '.99999.');
    expect(signer.verify(slot, 99999, 'image/jpeg', bigger, NOW)).toEqual({ ok: false, why: 'bad' });
  });

  it('refuses a signature made with another secret', () => {
    const other = new SlotSigner(Buffer.alloc(32, 2));
    expect(signer.verify(slot, 1234, 'image/jpeg', other.authorization(slot), NOW).ok).toBe(false);
  });

  it('lets a slot issued without a type be PUT with any type', () => {
    const untyped = signer.issue('alice@localhost', 'notes', 10, '', NOW + 1000);
    expect(signer.verify(untyped, 10, 'text/plain', signer.authorization(untyped), NOW).ok).toBe(true);
  });

  it('keeps one owner key per account and different ones across accounts', () => {
    expect(signer.ownerKey('alice@localhost')).toBe(slot.ownerKey);
    expect(signer.ownerKey('bob@localhost')).not.toBe(slot.ownerKey);
    expect(slot.ownerKey).toMatch(/^[0-9a-f]{32}$/);
    expect(slot.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe('upload secret', () => {
  it('is created once in the data directory and read back after a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-secret-'));
    try {
      const first = loadUploadSecret(dir);
      expect(first.length).toBe(32);
      expect(loadUploadSecret(dir).equals(first)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('file names', () => {
  it('keeps the last path component only', () => {
    expect(sanitizeFilename('../../etc/passwd')).toBe('passwd');
    expect(sanitizeFilename('C:\\Users\\me\\photo.png')).toBe('photo.png');
  });

  it('replaces control, bidi-override and reserved characters', () => {
    expect(sanitizeFilename('evil\u202Egnp.exe')).toBe('evil_gnp.exe');
    expect(sanitizeFilename('a\u0000b\nc<d>.txt')).toBe('a_b_c_d_.txt');
    expect(sanitizeFilename('family \u{1F468}\u200d\u{1F469}\u200d\u{1F467}.jpg')).toBe('family \u{1F468}\u200d\u{1F469}\u200d\u{1F467}.jpg');
  });

  it('refuses names that are nothing but dots or separators', () => {
    expect(sanitizeFilename('..')).toBeNull();
    expect(sanitizeFilename('/')).toBeNull();
    expect(sanitizeFilename('   ')).toBeNull();
  });

  it('shortens long names keeping the extension and whole characters', () => {
    const name = sanitizeFilename(`${'é'.repeat(300)}.jpeg`)!;
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(name.endsWith('é.jpeg')).toBe(true);
  });

  it('normalises content types and refuses malformed ones', () => {
    expect(normalizeContentType('Image/PNG; charset=x')).toBe('image/png');
    expect(normalizeContentType('text html')).toBeNull();
    expect(normalizeContentType('')).toBeNull();
  });
});

describe('slot requests (XEP-0363 §4, §5)', () => {
  let dir: string;
  let settings: UploadSettings;
  const request = (attrs: string) => parseElement(`<request xmlns='urn:xmpp:http:upload:0' ${attrs}/>`);
  const refusal = (owner: string | null, attrs: string): StanzaError => {
    try {
      requestSlot(settings, owner, request(attrs), NOW);
    } catch (err) {
      return err as StanzaError;
    }
    throw new Error('not refused');
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hermod-upload-unit-'));
    settings = { domain: 'upload.localhost', publicUrl: 'https://f.example/up', maxFileSize: 1000, quota: 2000, slotLifetime: 300_000, signer, files: new UploadFiles(dir) };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('answers with put and get URLs under the public URL and the signed header', () => {
    const xml = requestSlot(settings, 'alice@localhost', request("filename='a b.png' size='10' content-type='image/png'"), NOW);
    const url = /<put url='([^']+)'>/.exec(xml)![1]!;
    expect(url).toMatch(/^https:\/\/f\.example\/up\/[0-9a-f]{32}\/[A-Za-z0-9_-]{22}\/a%20b\.png$/);
    expect(xml).toContain(`<get url='${url}'/>`);
    const [, ownerKey, id] = /up\/([^/]+)\/([^/]+)\//.exec(url)!;
    const auth = /<header name='Authorization'>([^<]+)</.exec(xml)![1]!;
    expect(signer.verify({ ownerKey: ownerKey!, id: id!, name: 'a b.png' }, 10, 'image/png', auth, NOW).ok).toBe(true);
  });

  it('refuses a file over the limit with file-too-large carrying the limit', () => {
    const err = refusal('alice@localhost', "filename='x' size='1001'");
    expect(err.condition).toBe('not-acceptable');
    expect(err.type).toBe('modify');
    expect(err.appCondition).toContain('<max-file-size>1000</max-file-size>');
  });

  it('refuses missing, zero, negative and non-numeric sizes and unusable names with bad-request', () => {
    for (const attrs of ["filename='x'", "size='5'", "filename='x' size='0'", "filename='x' size='-1'", "filename='x' size='1e3'", "filename='..' size='5'"]) {
      expect(refusal('alice@localhost', attrs).condition, attrs).toBe('bad-request');
    }
  });

  it('refuses requesters that are not accounts of this server', () => {
    expect(refusal(null, "filename='x' size='5'").condition).toBe('not-allowed');
  });

  it('refuses a request beyond the quota with resource-constraint, counting files on disk', () => {
    const key = signer.ownerKey('alice@localhost');
    mkdirSync(join(dir, key), { recursive: true });
    writeFileSync(join(dir, key, `${'B'.repeat(22)}.1500.claim`), '');
    expect(settings.files.usage(key)).toBe(1500);
    // The remembered sum follows claims added and removed behind its back (other threads).
    writeFileSync(join(dir, key, `${'C'.repeat(22)}.100.claim`), '');
    expect(settings.files.usage(key)).toBe(1600);
    rmSync(join(dir, key, `${'C'.repeat(22)}.100.claim`));
    expect(settings.files.usage(key)).toBe(1500);
    const err = refusal('alice@localhost', "filename='x' size='501'");
    expect(err.condition).toBe('resource-constraint');
    expect(err.type).toBe('wait');
    // Another account's quota is its own.
    expect(requestSlot(settings, 'bob@localhost', request("filename='x' size='501'"), NOW)).toContain('<slot');
    // Exactly at the quota is allowed.
    expect(requestSlot(settings, 'alice@localhost', request("filename='x' size='500'"), NOW)).toContain('<slot');
  });
});

describe('upload rate limits (XEP-0363 §5)', () => {
  it('allows count requests per window per key, then says how long to wait, counting nothing refused', () => {
    const limits = new RequestLimits({ perAccount: 3, perAddress: 5, windowMs: 60_000 });
    for (let i = 0; i < 3; i++) expect(limits.take('alice', '10.0.0.1', NOW)).toBe(0);
    // The fourth: one request's share of the window (20 s) until the bucket has room again.
    expect(limits.take('alice', '10.0.0.1', NOW)).toBe(20_000);
    expect(limits.take('alice', '10.0.0.1', NOW + 19_999)).toBe(1);
    // Another account from the same address still has its own three, up to the address's five.
    expect(limits.take('bob', '10.0.0.1', NOW)).toBe(0);
    expect(limits.take('bob', '10.0.0.1', NOW)).toBe(0);
    expect(limits.take('bob', '10.0.0.1', NOW)).toBe(12_000);
    // The refusals were not counted: alice may go on once her wait is over.
    expect(limits.take('alice', '10.0.0.1', NOW + 20_000)).toBe(0);
    // An address alone (a PUT before its signature is checked), then the account alone.
    expect(limits.take(null, '10.0.0.2', NOW)).toBe(0);
    expect(limits.takeAccount('bob', NOW + 12_000)).toBe(0);
  });

  it('has no limit at 0 and forgets keys whose bucket is full again', () => {
    const open = new RequestLimits({ perAccount: 0, perAddress: 0, windowMs: 60_000 });
    for (let i = 0; i < 1000; i++) expect(open.take('alice', '10.0.0.1', NOW)).toBe(0);
    const keyed = new KeyedLimit(2, 1000);
    for (let i = 0; i < 5000; i++) keyed.spend(`k${i}`, NOW + i);
    // Each sweep dropped the keys refilled by then: far fewer than 5000 are held.
    expect(keyed.size).toBeLessThan(4096);
    keyed.sweep(NOW + 10_000);
    expect(keyed.size).toBe(0);
  });

  it('refuses a slot request over the limit with resource-constraint, type wait and <retry stamp/>', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-upload-rate-'));
    try {
      const settings = limitedSettings(dir, { perAccount: 2, perAddress: 10, windowMs: 60_000 });
      const request = parseElement("<request xmlns='urn:xmpp:http:upload:0' filename='x.png' size='5'/>");
      expect(requestSlot(settings, 'alice@localhost', request, NOW, '10.0.0.1')).toContain('<slot');
      expect(requestSlot(settings, 'alice@localhost', request, NOW, '10.0.0.1')).toContain('<slot');
      let err: StanzaError | null = null;
      try {
        requestSlot(settings, 'alice@localhost', request, NOW + 500, '10.0.0.1');
      } catch (e) {
        err = e as StanzaError;
      }
      expect(err?.condition).toBe('resource-constraint');
      expect(err?.type).toBe('wait');
      // 30 s after the first request, rounded up to the second (XEP-0082 date-time, UTC).
      expect(err?.appCondition).toBe(`<retry xmlns='urn:xmpp:http:upload:0' stamp='${new Date(NOW + 30_000).toISOString().replace('.000Z', 'Z')}'/>`);
      expect(retryStamp(NOW + 1)).toBe(new Date(NOW + 1000).toISOString().replace('.000Z', 'Z'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Upload settings with slot limits (no quota), files under `dir`. */
function limitedSettings(dir: string, limits: ConstructorParameters<typeof RequestLimits>[0]): UploadSettings {
  return {
    domain: 'upload.localhost',
    publicUrl: 'https://f.example',
    maxFileSize: 1000,
    quota: 0,
    slotLifetime: 300_000,
    signer,
    files: new UploadFiles(dir),
    slotLimits: new RequestLimits(limits),
  };
}

describe('upload slot limits behind a reverse proxy on the host', () => {
  it('does not put every account reaching it through the loopback address (a WebSocket proxy) in one address budget; each keeps its own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-upload-proxy-'));
    try {
      const settings = limitedSettings(dir, { perAccount: 2, perAddress: 3, windowMs: 60_000 });
      const request = parseElement("<request xmlns='urn:xmpp:http:upload:0' filename='x.png' size='5'/>");
      const outcome = (owner: string, address: string) => {
        try {
          return requestSlot(settings, owner, request, NOW, address).includes('<slot') ? 'slot' : 'other';
        } catch (e) {
          return (e as StanzaError).condition;
        }
      };
      // Three accounts through the proxy: two slots each, as for accounts on addresses of their own.
      for (const address of ['127.0.0.1', '::1']) {
        for (const user of ['a', 'b', 'c']) {
          expect(outcome(`${user}${address}@localhost`, address)).toBe('slot');
          expect(outcome(`${user}${address}@localhost`, address)).toBe('slot');
          expect(outcome(`${user}${address}@localhost`, address)).toBe('resource-constraint');
        }
      }
      // Any other address is one budget for all its accounts.
      expect(outcome('d@localhost', '10.0.0.1')).toBe('slot');
      expect(outcome('d@localhost', '10.0.0.1')).toBe('slot');
      expect(outcome('e@localhost', '10.0.0.1')).toBe('slot');
      expect(outcome('e@localhost', '10.0.0.1')).toBe('resource-constraint');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('expiry sweep', () => {
  it('deletes files older than the limit, stale claims and orphans, and keeps the rest', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-sweep-'));
    try {
      const files = new UploadFiles(dir);
      const key = signer.ownerKey('alice@localhost');
      files.ensureOwnerDir(key);
      const put = (id: string, created: number, finished: boolean) => {
        const p = files.paths(key, id);
        writeFileSync(p.claim(1), '');
        writeFileSync(p.meta, JSON.stringify({ name: 'f', type: '', size: 1, created }));
        if (finished) writeFileSync(p.data, 'x');
      };
      const DAY = 86_400_000;
      put('O'.repeat(22), NOW - 31 * DAY, true); // expired
      put('N'.repeat(22), NOW - DAY, true); // kept
      put('S'.repeat(22), NOW - 2 * 3_600_000, false); // claim never finished
      put('F'.repeat(22), NOW - 60_000, false); // upload in progress
      // A body left without its claim and metadata (a crash between deletions), old enough.
      const orphan = files.paths(key, 'P'.repeat(22)).data;
      writeFileSync(orphan, 'x');
      utimesSync(orphan, new Date(NOW - 2 * 3_600_000), new Date(NOW - 2 * 3_600_000));
      expect(files.sweep(NOW, 30 * DAY)).toBe(3);
      expect(readdirSync(join(dir, key)).sort()).toEqual(
        [`${'F'.repeat(22)}.1.claim`, `${'F'.repeat(22)}.json`, `${'N'.repeat(22)}.1.claim`, `${'N'.repeat(22)}.bin`, `${'N'.repeat(22)}.json`].sort(),
      );
      expect(files.usage(key)).toBe(2);
      // 0 keeps finished files forever.
      expect(files.sweep(NOW + 1000 * DAY, 0)).toBe(1); // only the stale claim F
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts a claim made in the same file-system clock tick as the last sum: no quota race on coarse mtimes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-usage-'));
    try {
      let now = Date.now();
      const files = new UploadFiles(dir, () => now);
      const key = signer.ownerKey('alice@localhost');
      files.ensureOwnerDir(key);
      const folder = join(dir, key);
      // A coarse clock: every change in this "tick" leaves the folder stamped with the same time.
      const tick = new Date(now);
      const claim = (id: string, size: number) => {
        writeFileSync(files.paths(key, id).claim(size), '');
        utimesSync(folder, tick, tick);
      };
      claim('A'.repeat(22), 300);
      expect(files.usage(key)).toBe(300);
      claim('B'.repeat(22), 400);
      expect(files.usage(key)).toBe(700);
      // Once the stamp has settled the sum is remembered, and a later change moves the stamp.
      now += 5_000;
      expect(files.usage(key)).toBe(700);
      writeFileSync(files.paths(key, 'C'.repeat(22)).claim(100), '');
      utimesSync(folder, new Date(now), new Date(now));
      expect(files.usage(key)).toBe(800);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses ids and owner keys that could leave the folder', () => {
    const files = new UploadFiles('/tmp/x');
    expect(() => files.paths('../../etc', 'A'.repeat(22))).toThrow();
    expect(() => files.paths('0'.repeat(32), '../passwd')).toThrow();
  });
});

describe('upload configuration (check-config)', () => {
  it('names a port the upload service would share with another listener', () => {
    const overrides = { upload: { enabled: true }, listen: { websocket: { enabled: true } } } as never;
    expect(() => loadConfig({ overrides, checkFiles: false })).toThrow('upload.http.port: 5280 is already used by listen.websocket.port');
  });

  it('refuses the server domain or a component domain as the service JID', () => {
    expect(() => loadConfig({ overrides: { domain: 'example.org', upload: { enabled: true, domain: 'example.org' } } as never, checkFiles: false })).toThrow(
      'upload.domain: the upload service needs a JID of its own',
    );
    expect(() =>
      loadConfig({ overrides: { upload: { enabled: true }, components: { 'upload.localhost': 'secret' } } as never, checkFiles: false }),
    ).toThrow('upload.domain: upload.localhost is also configured as a component');
  });

  it('accepts the defaults with uploads on', () => {
    const { config } = loadConfig({ overrides: { upload: { enabled: true } } as never, checkFiles: false });
    expect(config.upload).toMatchObject({ enabled: true, domain: '', publicUrl: '', maxFileSize: 10 * 1024 * 1024, dir: null });
  });
});
