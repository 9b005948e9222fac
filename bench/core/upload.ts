/**
 * What XEP-0363 costs: CPU per slot request (signing, quota lookup; with the account's usage
 * remembered and with it recomputed from N claims), and the HTTP service's PUT and GET over
 * loopback (fetch client in the same process, so the CPU column holds both ends).
 *
 *   npm run build && node dist/bench/core/upload.js [--slots 20000] [--files 1000] [--mib 8] [--rounds 3] [--json]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UploadFiles } from '../../src/upload/files.js';
import { startUploadHttp } from '../../src/upload/http.js';
import { requestSlot, type UploadSettings } from '../../src/upload/module.js';
import { SlotSigner } from '../../src/upload/slot.js';
import { parseElement } from '../../src/xml/element.js';
import { numArg, report, round, type Row } from './shard-common.js';

const slots = numArg('slots', 20_000);
const fileCount = numArg('files', 1000);
const mib = numArg('mib', 8);
const rounds = numArg('rounds', 3);

const cpuUs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return d.user + d.system;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-bench-upload-'));
  const rows: Row[] = [];
  try {
    const signer = new SlotSigner(randomBytes(32));
    const files = new UploadFiles(dir);
    const settings: UploadSettings = {
      domain: 'upload.localhost',
      publicUrl: 'https://files.example',
      maxFileSize: 1024 * 1024 * 1024,
      quota: 1024 * 1024 * 1024 * 1024,
      slotLifetime: 300_000,
      signer,
      files,
    };
    const owner = 'alice@localhost';
    const key = signer.ownerKey(owner);
    files.ensureOwnerDir(key);
    for (let i = 0; i < fileCount; i++) {
      const id = randomBytes(16).toString('base64url');
      writeFileSync(join(dir, key, `${id}.100000.claim`), '');
      writeFileSync(join(dir, key, `${id}.json`), JSON.stringify({ name: 'p.jpg', type: 'image/jpeg', size: 100_000, created: Date.now() }));
    }
    const request = parseElement(`<request xmlns='urn:xmpp:http:upload:0' filename='photo.jpg' size='123456' content-type='image/jpeg'/>`);
    for (let r = 0; r < rounds; r++) {
      // Remembered usage (nothing changed in the folder since the last request).
      let t0 = process.cpuUsage();
      for (let i = 0; i < slots; i++) requestSlot(settings, owner, request, Date.now());
      rows.push({ case: `slot request, usage remembered (${fileCount} files)`, round: r + 1, 'CPU µs/op': round(cpuUs(t0) / slots) });
      // Recomputed: a fresh UploadFiles per request has nothing remembered (as after an upload).
      const n = Math.max(10, Math.floor(slots / Math.max(1, fileCount)));
      t0 = process.cpuUsage();
      for (let i = 0; i < n; i++) requestSlot({ ...settings, files: new UploadFiles(dir) }, owner, request, Date.now());
      rows.push({ case: `slot request, usage recomputed (${fileCount} files)`, round: r + 1, 'CPU µs/op': round(cpuUs(t0) / n) });
    }

    const http = await startUploadHttp({ host: '127.0.0.1', port: 0, signer, files, quota: 0, maxFileSize: settings.maxFileSize });
    const base = `http://127.0.0.1:${http.port}`;
    const body = randomBytes(mib * 1024 * 1024);
    try {
      for (let r = 0; r < rounds; r++) {
        const slot = signer.issue('bob@localhost', 'big.bin', body.length, 'application/octet-stream', Date.now() + 60_000);
        const url = `${base}/${slot.ownerKey}/${slot.id}/big.bin`;
        let t0 = process.cpuUsage();
        let w0 = performance.now();
        const res = await fetch(url, {
          method: 'PUT',
          body,
          headers: { authorization: signer.authorization(slot), 'content-type': 'application/octet-stream' },
        });
        if (res.status !== 201) throw new Error(`PUT ${res.status}`);
        let wall = performance.now() - w0;
        rows.push({ case: `PUT ${mib} MiB`, round: r + 1, 'CPU µs/op': round(cpuUs(t0)), 'MiB/s': round(mib / (wall / 1000), 0), 'CPU ms/MiB': round(cpuUs(t0) / 1000 / mib) });
        t0 = process.cpuUsage();
        w0 = performance.now();
        const got = Buffer.from(await (await fetch(url)).arrayBuffer());
        wall = performance.now() - w0;
        if (!got.equals(body)) throw new Error('GET returned other bytes');
        rows.push({ case: `GET ${mib} MiB`, round: r + 1, 'CPU µs/op': round(cpuUs(t0)), 'MiB/s': round(mib / (wall / 1000), 0), 'CPU ms/MiB': round(cpuUs(t0) / 1000 / mib) });
      }
    } finally {
      await http.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report('XEP-0363 upload', rows);
}

await main();
