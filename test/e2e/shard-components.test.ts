/**
 * XEP-0114 components with `--workers N`: the component connection is not routed to shard
 * threads, so the configuration is refused up front with the option named (exit 78), instead of
 * a server that starts and silently leaves the components out. (The admin socket does work with
 * shards: test/e2e/admin-live.test.ts runs against --workers 0 and --workers 2.)
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { EX_CONFIG, runServe } from '../../src/server.js';
import { startShardedServer } from '../../src/shard/serve.js';
import { shardedConfig } from './shard-helpers.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hermod-shard-components-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('components with shard workers', () => {
  it('hermod serve --workers 2 with a component exits 78 naming `components`, before taking a port or the data directory', async () => {
    const file = join(dir, 'hermod.yml');
    const data = join(dir, 'data');
    writeFileSync(file, `data_dir: ${data}\nworkers: 2\nlisten:\n  c2s: {port: 0}\n  direct_tls: {enabled: false}\ncomponents:\n  bot.localhost: s3cret\n`);
    let err = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await runServe(['--config', file])).toBe(EX_CONFIG);
    } finally {
      vi.restoreAllMocks();
    }
    expect(err).toMatch(/components: XEP-0114 components run with workers: 0 only/);
    expect(err).not.toContain('s3cret');
    expect(existsSync(data)).toBe(false);
  });

  it('startShardedServer refuses a configuration built in code the same way', async () => {
    const data = join(dir, 'code');
    const config = shardedConfig(data, 2);
    config.components = { 'bot.localhost': 's3cret' };
    const started = startShardedServer(config);
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/^components: XEP-0114 components run with workers: 0 only/);
    expect(existsSync(data)).toBe(false);
  });
});
