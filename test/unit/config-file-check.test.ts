import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EX_CONFIG, EX_OK, EX_USAGE, runCheckConfig } from '../../src/config/check.js';

const dir = mkdtempSync(join(tmpdir(), 'hermod-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runCheckConfig(argv, { out: (t) => (out += t), err: (t) => (err += t), env });
  return { code, out, err };
}

describe('hermod check-config', () => {
  const good = join(dir, 'good.yml');
  writeFileSync(good, 'domain: chat.example.org\ncomponents:\n  bot.chat.example.org: very-secret-value\n');
  const bad = join(dir, 'bad.yml');
  writeFileSync(bad, 'listen:\n  c2s:\n    port: "abc"\n    hots: x\n');

  it('prints the effective configuration, secrets redacted, and exits 0', async () => {
    const r = await run(['--config', good]);
    expect(r.code).toBe(EX_OK);
    expect(r.err).toBe('');
    expect(r.out).not.toContain('very-secret-value');
    const printed = parseYaml(r.out);
    expect(printed.domain).toBe('chat.example.org');
    expect(printed.components).toEqual({ 'bot.chat.example.org': '<redacted>' });
    expect(printed.listen.c2s.port).toBe(5222);
  });

  it('prints every problem with file:line:col and exits 78 (EX_CONFIG)', async () => {
    const r = await run(['--config', bad]);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.out).toBe('');
    expect(r.err).toContain(`${bad}:3:11: listen.c2s.port: must be an integer 0-65535 (0 = any free port), got "abc"`);
    expect(r.err).toContain(`${bad}:4:5: listen.c2s.hots: unknown option; did you mean "listen.c2s.host"?`);
    expect(r.err).toContain('2 problems in the configuration');
  });

  it('exits 78 for a missing file', async () => {
    const r = await run(['--config', join(dir, 'absent.yml')]);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.err).toContain('file not found');
  });

  it('applies --set over the file, and refuses a bad --set with 78', async () => {
    const r = await run(['--config', good, '--set', 'listen.c2s.port=6222', '--set=log.level=debug']);
    expect(r.code).toBe(EX_OK);
    expect(r.out).toContain('port: 6222 # from command line');
    expect(parseYaml(r.out).log.level).toBe('debug');
    const r2 = await run(['--set', 'log.level=loud']);
    expect(r2.code).toBe(EX_CONFIG);
    expect(r2.err).toContain('log.level: must be one of');
  });

  it('accepts the flags of hermod serve, with the same meaning and errors', async () => {
    const r = await run(['--config', good, '--port', '6000', '--tls-port', 'off', '--domain', 'other.org']);
    expect(r.code).toBe(EX_OK);
    const printed = parseYaml(r.out);
    expect(printed.listen.c2s.port).toBe(6000);
    expect(printed.listen.direct_tls.enabled).toBe(false);
    expect(printed.domain).toBe('other.org');
    const bad = await run(['--port', 'abc']);
    expect(bad.code).toBe(EX_CONFIG);
    expect(bad.err).toContain('--port: must be an integer 0-65535');
  });

  it('reads $HERMOD_CONFIG when --config is absent', async () => {
    const r = await run([], { HERMOD_CONFIG: bad });
    expect(r.code).toBe(EX_CONFIG);
    const r2 = await run([], {});
    expect(r2.code).toBe(EX_OK);
    expect(r2.out).toContain('no file: built-in defaults');
  });

  it('prints warnings on stderr but still succeeds', async () => {
    const r = await run(['--set', 'tls.policy=optional', '--set', 'listen.c2s.host=0.0.0.0']);
    expect(r.code).toBe(EX_OK);
    expect(r.err).toMatch(/^warning: tls.policy is "optional"/);
  });

  it('--quiet prints nothing for a valid file', async () => {
    expect(await run(['-q', '-c', good])).toEqual({ code: EX_OK, out: '', err: '' });
  });

  it('exits 64 (EX_USAGE) for an unknown flag or a missing value', async () => {
    expect((await run(['--bogus'])).code).toBe(EX_USAGE);
    expect((await run(['--config'])).code).toBe(EX_USAGE);
    expect((await run(['--set', 'novalue'])).code).toBe(EX_USAGE);
  });
});
