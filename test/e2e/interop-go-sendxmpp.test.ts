/**
 * go-sendxmpp (Debian package) beyond one-shot sending (go-sendxmpp.test.ts covers that): its
 * listen mode (-l) as a receiving client, which gets offline messages on login and live ones
 * after, and its raw mode (--raw) that writes the user's XML as is (a forged 'from' included).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

let t: TestServer;
let bob: RawClient;
let listener: ChildProcess | undefined;
let heard = '';

function sendxmpp(args: string[], input: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('go-sendxmpp', args, { timeout: 30_000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
    child.stdin!.end(input);
  });
}

async function heardLine(text: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!heard.includes(text)) {
    if (Date.now() > deadline) throw new Error(`go-sendxmpp -l never printed "${text}"; it printed: ${heard}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const as = (user: string) => ['-u', `${user}@localhost`, '-p', PASSWORDS[user]!, '-n', '--timeout', '15', '-j', `127.0.0.1:${t.port}`];

beforeAll(async () => {
  t = await startTestServer();
  bob = await RawClient.connect(t.port);
  await bob.login('bob', { tls: true, resource: 'desk' });
  bob.send('<presence/>');
});

afterAll(async () => {
  listener?.kill();
  bob?.close();
  await t?.stop();
});

describe('go-sendxmpp listen and raw modes', () => {
  it('gets, on login in listen mode, a message stored while it was offline (RFC 6121 §8.5.2.2)', async () => {
    bob.send("<message to='alice@localhost' type='chat'><body>stored for later</body></message>");
    // Wait until the server has taken it (the stream answers a ping after the message).
    bob.send("<iq type='get' id='sync1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    await bob.waitFor("id='sync1'");
    listener = spawn('go-sendxmpp', [...as('alice'), '-l'], { stdio: ['ignore', 'pipe', 'pipe'] });
    listener.stdout!.setEncoding('utf8').on('data', (d: string) => (heard += d));
    listener.stderr!.setEncoding('utf8').on('data', (d: string) => (heard += d));
    await heardLine('bob@localhost: stored for later');
  }, 30_000);

  it('prints live messages sent to it by another go-sendxmpp, and raw XML sent as is', async () => {
    const plain = await sendxmpp([...as('carol'), 'alice@localhost'], 'live one\n');
    expect(plain.code).toBe(0);
    await heardLine('carol@localhost: live one');
    const raw = await sendxmpp(
      [...as('carol'), '--raw', 'alice@localhost'],
      "<message to='alice@localhost' from='bob@localhost/desk' type='chat'><body>raw xml body</body></message>",
    );
    expect(raw.code).toBe(0);
    await heardLine('carol@localhost: raw xml body');
    // The forged from='bob@…' was replaced by carol's own JID (RFC 6120 §8.1.2.1).
    expect(heard).not.toMatch(/bob@localhost: raw xml body/);
  }, 30_000);
});
