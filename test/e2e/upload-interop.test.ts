/**
 * XEP-0363 with a real client: slixmpp's xep_0363 plugin (upload_slixmpp.py) discovers the
 * service, requests a slot and PUTs over aiohttp; the file is fetched back and compared. Inline
 * (--workers 0) and sharded (--workers 2: the slot comes from a shard, the PUT reaches the main
 * thread's HTTP service).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';
import { makeDataDir, shardedConfig } from './shard-helpers.js';

const SCRIPT = fileURLToPath(new URL('./upload_slixmpp.py', import.meta.url));

interface Running {
  port: number;
  password: string;
  stop(): Promise<void>;
}

async function inline(): Promise<Running> {
  const t: TestServer = await startTestServer(['--tls', 'optional', '--set', 'upload.enabled=true', '--set', 'upload.http.port=0', '--set', 'upload.max_file_size=2MiB']);
  return { port: t.port, password: PASSWORDS.alice!, stop: () => t.stop() };
}

async function sharded(): Promise<Running> {
  const dataDir = makeDataDir(['alice']);
  const config = shardedConfig(dataDir);
  config.upload = { ...config.upload, enabled: true, http: { host: '127.0.0.1', port: 0 }, maxFileSize: 2 * 1024 * 1024 };
  const server: ShardedServer = await startShardedServer(config, { adminChannel: false });
  return {
    port: server.c2s.port,
    password: 'alice-pw',
    async stop() {
      await server.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describe.each([
  ['--workers 0', inline],
  ['--workers 2', sharded],
])('slixmpp xep_0363 (%s)', (_name, start) => {
  let server: Running;
  let r: Record<string, unknown>;
  const data = randomBytes(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'hermod-upload-'));

  beforeAll(async () => {
    server = await start();
    const file = join(dir, 'report 2026.bin');
    writeFileSync(file, data);
    r = await runPythonClient(SCRIPT, ['127.0.0.1', String(server.port), server.password, file], 60_000);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the service through disco and reads its max-file-size (XEP-0363 §2)', () => {
    expect(r.service).toBe('upload.localhost');
    expect(r.max_file_size).toBe(2 * 1024 * 1024);
    expect(r.too_big).toBe('refused');
  });

  it('uploads a file the GET URL then serves byte for byte (§4, §6)', async () => {
    expect(r.url).toMatch(/\/report%202026\.bin$/);
    const res = await fetch(r.url as string);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    // Not a type that may render: a download.
    expect(res.headers.get('content-disposition')).toMatch(/^attachment;/);
  });
});
