/**
 * go-sendxmpp (Debian package; a Go client built on go-xmpp) against Hermod: STARTTLS on
 * the c2s port and Direct TLS on the XEP-0368 port, each delivering a message to a raw client.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

let t: TestServer;
let bob: RawClient;

function sendxmpp(args: string[], message: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('go-sendxmpp', args, { timeout: 30_000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
    child.stdin!.end(message);
  });
}

beforeAll(async () => {
  t = await startTestServer();
  bob = await RawClient.connect(t.port);
  await bob.login('bob', { tls: true, resource: 'desk' });
  bob.send('<presence/>');
});

afterAll(async () => {
  bob?.close();
  await t?.stop();
});

const base = () => ['-u', 'alice@localhost', '-p', PASSWORDS.alice!, '-n', '--timeout', '15'];

describe('go-sendxmpp end to end', () => {
  it('logs in over STARTTLS and delivers a message', async () => {
    const result = await sendxmpp([...base(), '-j', `127.0.0.1:${t.port}`, 'bob@localhost'], 'hello from go-sendxmpp\n');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const text = await bob.waitFor('hello from go-sendxmpp');
    expect(text).toMatch(/<message [^>]*from='alice@localhost\/[^']+'/);
    bob.take();
  });

  it('logs in over Direct TLS (XEP-0368) and delivers a message', async () => {
    const result = await sendxmpp([...base(), '-t', '-j', `127.0.0.1:${t.tlsPort}`, 'bob@localhost'], 'over direct TLS\n');
    expect(result.code).toBe(0);
    await bob.waitFor('over direct TLS');
    bob.take();
  });
});
