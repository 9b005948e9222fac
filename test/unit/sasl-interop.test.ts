/**
 * Our server mechanisms against slixmpp's client mechanisms (Debian python3-slixmpp), an
 * implementation written independently of ours; slixmpp also checks our server signature.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SaslFailure } from '../../src/errors.js';
import { startExchange, type SaslContext } from '../../src/stream/sasl/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';

const PYTHON = '/usr/bin/python3';
const hasSlixmpp = spawnSync(PYTHON, ['-c', 'import slixmpp.util.sasl'], { stdio: 'ignore' }).status === 0;

// Reads base64 challenges on stdin, writes base64 responses; last line says whether the
// server's final message verified.
const CLIENT = `
import sys, base64, logging
logging.disable(logging.CRITICAL)
from slixmpp.util.sasl import client
mech_name, user, password, authzid = sys.argv[1:5]
def creds(required, optional):
    return {'username': user.encode(), 'password': password.encode(), 'authzid': authzid.encode(), 'channel_binding': None}
def security(values):
    return {'encrypted': True, 'encrypted_plain': True, 'unencrypted_plain': True, 'unencrypted_scram': True}
mech = client.choose([mech_name], creds, security)
def out(b): print(base64.b64encode(b).decode(), flush=True)
out(mech.process())
for line in sys.stdin:
    data = base64.b64decode(line.strip())
    try:
        reply = mech.process(data)
    except Exception as e:
        print('rejected ' + type(e).__name__, flush=True)
        break
    if getattr(mech, '_mutual_auth', False):
        print('verified', flush=True)
        break
    out(reply)
`;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hermod-slix-'));
  writeFileSync(join(dir, 'client.py'), CLIENT);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const storage = createMemoryStorage({ iterations: 4096 });
storage.users.create('juliet@example.com', 'r0m€o, wherefore');
const context: SaslContext = { domain: 'example.com', users: storage.users };

/** Run one exchange between slixmpp (client) and our mechanism (server). */
async function exchange(mechanism: string, user: string, password: string, authzid = '') {
  const child = spawn(PYTHON, [join(dir, 'client.py'), mechanism, user, password, authzid], { stdio: ['pipe', 'pipe', 'ignore'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value as string;
  const server = startExchange(mechanism, context);
  try {
    let payload = Buffer.from(await next(), 'base64');
    for (;;) {
      const step = await server.step(payload);
      if (step.done) {
        if (step.additionalData === null) return { username: step.username, client: 'no data' };
        child.stdin.write(`${step.additionalData.toString('base64')}\n`);
        return { username: step.username, client: await next() };
      }
      child.stdin.write(`${step.challenge.toString('base64')}\n`);
      payload = Buffer.from(await next(), 'base64');
    }
  } catch (err) {
    if (err instanceof SaslFailure) return { failure: err.condition };
    throw err;
  } finally {
    child.kill();
  }
}

describe.skipIf(!hasSlixmpp)('SASL against slixmpp', () => {
  for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-1']) {
    it(`${mechanism}: slixmpp logs in and verifies our server signature`, async () => {
      expect(await exchange(mechanism, 'juliet', 'r0m€o, wherefore')).toEqual({ username: 'juliet', client: 'verified' });
    });

    it(`${mechanism}: slixmpp with its own bare JID as authzid logs in`, async () => {
      expect(await exchange(mechanism, 'juliet', 'r0m€o, wherefore', 'juliet@example.com')).toMatchObject({ username: 'juliet' });
    });

    it(`${mechanism}: a wrong password is not-authorized`, async () => {
      expect(await exchange(mechanism, 'juliet', 'r0m€o')).toEqual({ failure: 'not-authorized' });
    });
  }

  it('PLAIN: slixmpp logs in; another authzid is invalid-authzid', async () => {
    expect(await exchange('PLAIN', 'juliet', 'r0m€o, wherefore')).toEqual({ username: 'juliet', client: 'no data' });
    expect(await exchange('PLAIN', 'juliet', 'r0m€o, wherefore', 'romeo@example.com')).toEqual({ failure: 'invalid-authzid' });
  });
});
