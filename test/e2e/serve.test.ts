/**
 * `hermod serve` as an operator meets it: the line saying where it listens, refusals with a clear
 * message and exit status (port in use, bad flag, unusable data directory), and SIGTERM ending
 * every stream with <system-shutdown/> before exiting 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EX_CONFIG, EX_USAGE, runServe } from '../../src/server.js';
import { RawClient, STREAM_HEADER } from './harness.js';

let dir: string;
let out = '';
let err = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hermod-serve-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function capture(): void {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

async function waitForOutput(pattern: RegExp): Promise<RegExpExecArray> {
  for (let i = 0; i < 200; i++) {
    const m = pattern.exec(out);
    if (m) return m;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ${pattern} in output: ${out} / ${err}`);
}

describe('hermod serve', () => {
  it('prints where it listens, and on SIGTERM ends every stream with system-shutdown and exits 0', async () => {
    capture();
    const data = join(dir, 'run');
    const exit = runServe(['--port', '0', '--tls-port', '0', '--data', data]);
    const m = await waitForOutput(
      /hermod listening on 127\.0\.0\.1:(\d+) \(c2s, STARTTLS required\), 127\.0\.0\.1:(\d+) \(direct TLS\), domain localhost, data (\S+)/,
    );
    expect(m[3]).toBe(data);
    expect(out).toContain('generated a self-signed certificate for localhost');
    const client = await RawClient.connect(Number(m[1]));
    client.send(STREAM_HEADER);
    await client.waitFor('</stream:features>');
    process.emit('SIGTERM', 'SIGTERM');
    await client.waitClosed();
    expect(client.received).toContain("<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
    expect(await exit).toBe(0);
    expect(out).toMatch(/SIGTERM: closing 1 stream/);
  });

  it('refuses a port in use with exit 1 and says so', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    capture();
    try {
      expect(await runServe(['--port', String(port), '--tls-port', 'off', '--data', join(dir, 'busy')])).toBe(1);
    } finally {
      blocker.close();
    }
    expect(err).toContain(`cannot listen on 127.0.0.1:${port}: address already in use`);
  });

  it('refuses a bad flag value with exit 78, naming the flag and the problem', async () => {
    capture();
    expect(await runServe(['--registration', 'maybe'])).toBe(EX_CONFIG);
    expect(err).toMatch(/--registration: must be one of "open" or "closed", got "maybe"/);
    capture();
    expect(await runServe(['--port', '70000'])).toBe(EX_CONFIG);
    expect(err).toMatch(/--port: .*0-65535/);
  });

  it('refuses an unknown flag or a missing value with exit 64 and the usage', async () => {
    capture();
    expect(await runServe(['--prot', '5222'])).toBe(EX_USAGE);
    expect(err).toContain('--prot: unknown option');
    expect(err).toContain('Usage: hermod serve');
    capture();
    expect(await runServe(['--port'])).toBe(EX_USAGE);
    expect(err).toContain('--port: missing value');
  });

  it('refuses an unusable data directory with exit 78 before taking a port', async () => {
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, 'x');
    capture();
    expect(await runServe(['--port', '0', '--tls-port', 'off', '--data', join(file, 'data')])).toBe(EX_CONFIG);
    expect(err).toMatch(/hermod serve: .*not-a-directory/);
    expect(out).not.toContain('listening');
  });

  it('prints its usage for --help and exits 0', async () => {
    capture();
    expect(await runServe(['--help'])).toBe(0);
    expect(out).toContain('--tls VALUE');
    expect(out).toContain('--registration VALUE');
  });
});
