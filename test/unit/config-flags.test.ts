import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVE_FLAGS, UsageError, parseServeArgs, serveUsage } from '../../src/config/flags.js';
import { ConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'hermod-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return parseServeArgs(argv, env).loaded!.config;
}

function refusal(argv: string[]): Error {
  try {
    parseServeArgs(argv, {});
  } catch (err) {
    return err as Error;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
}

describe('hermod serve flags', () => {
  it('runs on the embedded defaults without flags', () => {
    const c = config([]);
    expect(c.listen.c2s).toEqual({ host: '127.0.0.1', port: 5222, backlog: 4096 });
    expect(c.listen.directTls).toMatchObject({ enabled: true, port: 5223 });
    expect(c.domain).toBe('localhost');
    expect(c.tls.policy).toBe('required');
    expect(c.registration).toBe('closed');
    expect(c.workers).toBe(0);
  });

  it('maps each flag to its options', () => {
    const c = config([
      '--host', '0.0.0.0', '--port', '5322', '--tls-port', '5323', '--domain', 'Example.ORG', '--data', '/var/lib/hermod',
      '--registration', 'open', '--workers', '2', '--tls', 'optional', '--backlog', '8192',
    ]);
    expect(c.listen.c2s).toEqual({ host: '0.0.0.0', port: 5322, backlog: 8192 });
    expect(c.listen.directTls).toMatchObject({ enabled: true, host: '0.0.0.0', port: 5323 });
    expect(c.domain).toBe('example.org');
    expect(c.dataDir).toBe('/var/lib/hermod');
    expect(c.registration).toBe('open');
    expect(c.workers).toBe(2);
    expect(c.tls.policy).toBe('optional');
  });

  it('accepts --flag=value as well as --flag value', () => {
    expect(config(['--port=5400']).listen.c2s.port).toBe(5400);
  });

  it('turns Direct TLS off with --tls-port off', () => {
    expect(config(['--tls-port', 'off']).listen.directTls.enabled).toBe(false);
  });

  it('takes --cert and --key as a pair of readable files', () => {
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    writeFileSync(cert, 'x');
    writeFileSync(key, 'y');
    expect(config(['--cert', cert, '--key', key]).tls).toMatchObject({ cert, key });
    expect(refusal(['--cert', cert]).message).toMatch(/tls\.key.*pair/);
    expect(refusal(['--cert', join(dir, 'missing.pem'), '--key', key]).message).toMatch(/tls\.cert.*file not found/);
  });

  it('lets flags override the file, and the file override the defaults', () => {
    const file = join(dir, 'hermod.yml');
    writeFileSync(file, 'domain: file.example\nlisten:\n  c2s:\n    port: 6000\n');
    const fromFile = config(['--config', file]);
    expect(fromFile.domain).toBe('file.example');
    expect(fromFile.listen.c2s.port).toBe(6000);
    expect(config(['--config', file, '--port', '6001']).listen.c2s.port).toBe(6001);
    expect(config([], { HERMOD_CONFIG: file }).domain).toBe('file.example');
  });

  it('passes --set to any option', () => {
    expect(config(['--set', 'limits.idle_timeout=5m']).limits.idleTimeout).toBe(300_000);
  });

  it('names the flag and the problem for a bad value', () => {
    const cases: [string[], RegExp][] = [
      [['--port', 'http'], /^--port: must be an integer 0-65535/],
      [['--tls', 'sometimes'], /^--tls: must be one of "required" or "optional", got "sometimes"/],
      [['--registration', 'yes'], /^--registration: must be one of "open" or "closed"/],
      [['--workers', '-1'], /^--workers: /],
      [['--domain', 'a b'], /^--domain: must be a valid XMPP domain/],
      [['--host', 'not a host'], /^--host: must be an IP address or host name/],
    ];
    for (const [argv, message] of cases) {
      const err = refusal(argv);
      expect(err, argv.join(' ')).toBeInstanceOf(ConfigError);
      expect(err).not.toBeInstanceOf(UsageError);
      expect(err.message).toMatch(message);
    }
  });

  it('treats unknown flags, stray arguments and missing values as usage errors', () => {
    for (const argv of [['--colour', 'red'], ['serve'], ['--port'], ['--set', 'novalue']]) {
      expect(refusal(argv), argv.join(' ')).toBeInstanceOf(UsageError);
    }
    expect(refusal(['--port']).message).toBe('--port: missing value');
  });

  it('documents every flag in the usage text', () => {
    const usage = serveUsage();
    for (const flag of Object.keys(SERVE_FLAGS)) expect(usage).toContain(flag);
    expect(usage).toContain('--config FILE');
  });

  it('answers --help without loading anything', () => {
    expect(parseServeArgs(['--port', '1', '--help'], {})).toEqual({ help: true, loaded: null });
  });
});
