/**
 * The real `hermod check-config` process: exit status, stdout/stderr separation, and the
 * logger's default destination (stdout), in a child process as an operator or systemd sees them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { removeTranspiled, transpile } from './storage-transpile.js';

let built = '';
const dir = mkdtempSync(join(tmpdir(), 'hermod-cli-'));
beforeAll(() => {
  built = transpile(['src/cli.ts', 'src/config', 'src/errors.ts', 'src/jid.ts', 'src/core/api.ts', 'src/observability']);
});
afterAll(() => {
  removeTranspiled(built);
  rmSync(dir, { recursive: true, force: true });
});

function node(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, ...env }, cwd: dir });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

const cli = (argv: string[], env?: NodeJS.ProcessEnv) => node([join(built, 'src/cli.js'), ...argv], env);

describe('hermod check-config as a process', () => {
  it('exits 0 and prints the effective configuration on stdout only', async () => {
    const file = join(dir, 'ok.yml');
    writeFileSync(file, 'domain: example.net\ncomponents:\n  gw.example.net: not-for-your-eyes\n');
    const r = await cli(['check-config', '--config', file]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(parseYaml(r.out).domain).toBe('example.net');
    expect(r.out).not.toContain('not-for-your-eyes');
  });

  it('exits 78 with the problems on stderr, nothing on stdout', async () => {
    const file = join(dir, 'bad.yml');
    writeFileSync(file, 'listen:\n  c2s:\n    port: 99999\n');
    const r = await cli(['check-config', '--quiet'], { HERMOD_CONFIG: file });
    expect(r.code).toBe(78);
    expect(r.out).toBe('');
    expect(r.err).toContain(`${file}:3:11: listen.c2s.port: must be an integer 0-65535 (0 = any free port), got 99999`);
  });

  it('exits 64 for a usage error', async () => {
    expect((await cli(['check-config', '--frobnicate'])).code).toBe(64);
  });
});

describe('the logger in a process', () => {
  it('writes text lines to stdout by default, redacted, and keeps the last line before exit', async () => {
    const script = join(dir, 'log.mjs');
    writeFileSync(
      script,
      `import { createLogger } from ${JSON.stringify(join(built, 'src/observability/log.js'))};
       const log = createLogger({ level: 'info', format: 'text' });
       log.child({ component: 'c2s' }).info({ password: 'hunter2', jid: 'a@b' }, 'login');
       log.fatal('about to exit');
       process.exit(3);`,
    );
    const r = await node([script]);
    expect(r.code).toBe(3);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/ INFO  \[c2s\] login password=\[redacted\] jid=a@b$/);
    expect(lines[1]).toMatch(/ FATAL about to exit$/);
    expect(r.out).not.toContain('hunter2');
  });
});
