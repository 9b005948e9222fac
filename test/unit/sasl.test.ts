import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
// The SCRAM-SHA-1 client of xmpp.js (@xmpp/sasl-scram-sha-1 uses it): an independent implementation.
import XmppJsScramSha1 from 'sasl-scram-sha-1';
import { beforeEach, describe, expect, it } from 'vitest';
import { SaslFailure } from '../../src/errors.js';
import {
  decodeSaslPayload,
  encodeSaslPayload,
  offeredMechanisms,
  SaslProvider,
  startExchange,
  type SaslContext,
  type SaslExchange,
  type SaslStep,
} from '../../src/stream/sasl/index.js';
import { decodeSaslname } from '../../src/stream/sasl/scram.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { credentialsFromSaltedPassword, saltedPasswordSync } from '../../src/storage/password.js';
import type { ScramHash, Storage, StoredPassword } from '../../src/storage/types.js';

const DOMAIN = 'example.org';
const b = (text: string) => Buffer.from(text, 'utf8');

async function failure(p: Promise<unknown> | (() => unknown)): Promise<SaslFailure> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(SaslFailure);
    return err as SaslFailure;
  }
  throw new Error('expected a SaslFailure');
}

function challenge(step: SaslStep): string {
  expect(step.done).toBe(false);
  return (step as { challenge: Buffer }).challenge.toString('utf8');
}

function success(step: SaslStep): { username: string; data: string | null } {
  expect(step.done).toBe(true);
  const s = step as { username: string; additionalData: Buffer | null };
  return { username: s.username, data: s.additionalData === null ? null : s.additionalData.toString('utf8') };
}

/** Credentials with a fixed salt, as the RFC examples use. */
function fixedCredentials(password: string, salts: Record<ScramHash, string>, iterations = 4096): StoredPassword {
  const out = {} as StoredPassword;
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    const salt = Buffer.from(salts[hash], 'base64');
    out[hash] = credentialsFromSaltedPassword(hash, saltedPasswordSync(hash, password, salt, iterations), salt, iterations);
  }
  return out;
}

/** A small SCRAM client, written from RFC 5802 §3, for round trips with either hash. */
function scramClient(hash: ScramHash, username: string, password: string, gs2 = 'n,,', cnonce = 'clientNONCE123') {
  const alg = hash === 'SHA-1' ? 'sha1' : 'sha256';
  const size = hash === 'SHA-1' ? 20 : 32;
  const bare = `n=${username.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${cnonce}`;
  return {
    first: gs2 + bare,
    final(serverFirst: string, override: { c?: string; r?: string; proofFor?: string } = {}) {
      const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
      const salted = pbkdf2Sync(override.proofFor ?? password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), size, alg);
      const clientKey = createHmac(alg, salted).update('Client Key').digest();
      const storedKey = createHash(alg).update(clientKey).digest();
      const withoutProof = `c=${override.c ?? Buffer.from(gs2).toString('base64')},r=${override.r ?? attrs.r}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const signature = createHmac(alg, storedKey).update(authMessage).digest();
      const proof = Buffer.alloc(size);
      for (let i = 0; i < size; i++) proof[i] = clientKey[i]! ^ signature[i]!;
      const serverKey = createHmac(alg, salted).update('Server Key').digest();
      const verifier = createHmac(alg, serverKey).update(authMessage).digest().toString('base64');
      return { message: `${withoutProof},p=${proof.toString('base64')}`, verifier: `v=${verifier}` };
    },
  };
}

let storage: Storage;
let context: SaslContext;
beforeEach(() => {
  storage = createMemoryStorage({ iterations: 64 });
  storage.users.create(`alice@${DOMAIN}`, 'correct horse');
  context = { domain: DOMAIN, users: storage.users, iterations: 64 };
});

describe('mechanism offer', () => {
  it('offers SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, best first, on a TLS-protected stream', () => {
    expect(offeredMechanisms({ secure: true, tls: 'required' })).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
    expect(offeredMechanisms({ secure: true, tls: 'optional' })).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  });

  it('offers nothing before STARTTLS when TLS is required (RFC 6120 §5.3.1)', () => {
    expect(offeredMechanisms({ secure: false, tls: 'required' })).toEqual([]);
  });

  it("offers PLAIN in the clear only when the operator chose tls 'optional'", () => {
    expect(offeredMechanisms({ secure: false, tls: 'optional' })).toContain('PLAIN');
    const provider = new SaslProvider(context);
    expect(provider.mechanisms(false)).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1']);
    expect(provider.mechanisms(true)).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  });

  it('refuses an unknown mechanism with invalid-mechanism (RFC 6120 §6.5.7)', async () => {
    expect((await failure(() => startExchange('DIGEST-MD5', context))).condition).toBe('invalid-mechanism');
    expect((await failure(() => new SaslProvider(context).start('SCRAM-SHA-1-PLUS'))).condition).toBe('invalid-mechanism');
    expect(new SaslProvider(context).start('SCRAM-SHA-1').mechanism).toBe('SCRAM-SHA-1');
  });
});

describe('payload encoding (RFC 6120 §6.4.2)', () => {
  it("reads no text as no data and '=' as empty data", () => {
    expect(decodeSaslPayload('')).toBeNull();
    expect(decodeSaslPayload('  \n')).toBeNull();
    expect(decodeSaslPayload('=')).toEqual(Buffer.alloc(0));
  });

  it('decodes base64, tolerating line breaks', () => {
    expect(decodeSaslPayload('AGFsaWNlAHB3')!.toString('latin1')).toBe('\u0000alice\u0000pw');
    expect(decodeSaslPayload('AGFs\r\naWNl AHB3')!.toString('latin1')).toBe('\u0000alice\u0000pw');
    expect(decodeSaslPayload('YQ==')!.toString()).toBe('a');
  });

  it('refuses what is not base64 with incorrect-encoding (RFC 6120 §6.5.5)', async () => {
    for (const bad of ['abc', 'a*bc', 'YQ=', 'YQ==YQ==', '====', 'YQ===']) {
      expect((await failure(() => decodeSaslPayload(bad))).condition).toBe('incorrect-encoding');
    }
  });

  it("writes null as no text and empty data as '=' (RFC 6120 §6.4.6)", () => {
    expect(encodeSaslPayload(null)).toBe('');
    expect(encodeSaslPayload(Buffer.alloc(0))).toBe('=');
    expect(encodeSaslPayload(b('v=abc'))).toBe('dj1hYmM=');
  });
});

describe('SCRAM test vectors', () => {
  it('reproduces the SCRAM-SHA-1 exchange of RFC 5802 §5', async () => {
    storage.users.create(`user@${DOMAIN}`, fixedCredentials('pencil', { 'SHA-1': 'QSXCR+Q6sek8bf92', 'SHA-256': 'W22ZaJ0SNY7soEsUEjb6gQ==' }));
    const x = startExchange('SCRAM-SHA-1', { ...context, nonce: () => '3rfcNHYJY1ZVvWVs7j' });
    expect(challenge(await x.step(b('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL')))).toBe(
      'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    );
    const done = success(
      await x.step(b('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=')),
    );
    expect(done).toEqual({ username: 'user', data: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=' });
  });

  it('reproduces the SCRAM-SHA-256 exchange of RFC 7677 §3', async () => {
    storage.users.create(`user@${DOMAIN}`, fixedCredentials('pencil', { 'SHA-1': 'QSXCR+Q6sek8bf92', 'SHA-256': 'W22ZaJ0SNY7soEsUEjb6gQ==' }));
    const x = startExchange('SCRAM-SHA-256', { ...context, nonce: () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    expect(challenge(await x.step(b('n,,n=user,r=rOprNGfwEbeRWgbNEkqO')))).toBe(
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    const done = success(
      await x.step(
        b('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='),
      ),
    );
    expect(done).toEqual({ username: 'user', data: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=' });
  });
});

describe('SCRAM round trips', () => {
  it("logs in with xmpp.js's SCRAM-SHA-1 client and its server-signature check passes", async () => {
    const client = new XmppJsScramSha1();
    const cred = { username: 'alice', password: 'correct horse' };
    const x = startExchange('SCRAM-SHA-1', context);
    const serverFirst = challenge(await x.step(b(client.response(cred))));
    client.challenge(serverFirst);
    const final = await client.response(cred);
    const done = success(await x.step(b(final)));
    expect(done.username).toBe('alice');
    expect(done.data).toBe(`v=${Buffer.from(client._serverSignature).toString('base64')}`);
  });

  it("refuses xmpp.js's SCRAM-SHA-1 client with a wrong password", async () => {
    const client = new XmppJsScramSha1();
    const cred = { username: 'alice', password: 'Correct horse' };
    const x = startExchange('SCRAM-SHA-1', context);
    client.challenge(challenge(await x.step(b(client.response(cred)))));
    expect((await failure(x.step(b(await client.response(cred))))).condition).toBe('not-authorized');
  });

  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`logs in with SCRAM-${hash} and sends the server signature (RFC 5802 §3)`, async () => {
      const c = scramClient(hash, 'alice', 'correct horse');
      const x = startExchange(`SCRAM-${hash}`, context);
      const serverFirst = challenge(await x.step(b(c.first)));
      expect(serverFirst).toMatch(/^r=clientNONCE123[A-Za-z0-9+/=]{8,},s=[A-Za-z0-9+/=]+,i=64$/);
      const { message, verifier } = c.final(serverFirst);
      expect(success(await x.step(b(message)))).toEqual({ username: 'alice', data: verifier });
    });

    it(`refuses SCRAM-${hash} with a wrong password: not-authorized`, async () => {
      const c = scramClient(hash, 'alice', 'wrong');
      const x = startExchange(`SCRAM-${hash}`, context);
      const { message } = c.final(challenge(await x.step(b(c.first))));
      expect((await failure(x.step(b(message)))).condition).toBe('not-authorized');
    });
  }

  it('gives an unknown user a plausible, stable challenge and the same failure as a wrong password', async () => {
    const run = async (user: string) => {
      const c = scramClient('SHA-256', user, 'whatever');
      const x = startExchange('SCRAM-SHA-256', context);
      const serverFirst = challenge(await x.step(b(c.first)));
      const err = await failure(x.step(b(c.final(serverFirst).message)));
      return { serverFirst, err };
    };
    const a = await run('mallory');
    const again = await run('mallory');
    const known = await run('alice');
    const salt = (s: string) => s.split(',')[1];
    expect(a.serverFirst).toMatch(/,s=[A-Za-z0-9+/]{22}==,i=64$/);
    expect(salt(a.serverFirst)).toBe(salt(again.serverFirst));
    expect(salt(a.serverFirst)).not.toBe(salt(known.serverFirst));
    expect(a.err.condition).toBe('not-authorized');
    expect(a.err.toXml()).toBe(known.err.toXml());
  });

  it('maps the authcid through RFC 7622 case mapping, and accepts our own bare JID as authcid', async () => {
    for (const user of ['ALICE', `alice@${DOMAIN}`, `Alice@${DOMAIN.toUpperCase()}`]) {
      const c = scramClient('SHA-256', user, 'correct horse');
      const x = startExchange('SCRAM-SHA-256', context);
      expect(success(await x.step(b(c.final(challenge(await x.step(b(c.first)))).message))).username).toBe('alice');
    }
    const c = scramClient('SHA-256', 'alice@elsewhere.example', 'correct horse');
    const x = startExchange('SCRAM-SHA-256', context);
    expect((await failure(x.step(b(c.final(challenge(await x.step(b(c.first)))).message)))).condition).toBe('not-authorized');
  });

  it("decodes '=2C' and '=3D' in user names (RFC 5802 §5.1)", async () => {
    storage.users.create(`a,b=c@${DOMAIN}`, 'pw');
    const c = scramClient('SHA-1', 'a,b=c', 'pw');
    expect(c.first).toBe('n,,n=a=2Cb=3Dc,r=clientNONCE123');
    const x = startExchange('SCRAM-SHA-1', context);
    expect(success(await x.step(b(c.final(challenge(await x.step(b(c.first)))).message))).username).toBe('a,b=c');
    expect(decodeSaslname('x=3D=2C=3D')).toBe('x=,=');
  });

  it("accepts the 'y' flag: the client supports channel binding, we offer none (RFC 5802 §6)", async () => {
    const c = scramClient('SHA-256', 'alice', 'correct horse', 'y,,');
    const x = startExchange('SCRAM-SHA-256', context);
    expect(success(await x.step(b(c.final(challenge(await x.step(b(c.first)))).message))).username).toBe('alice');
  });

  it('accepts an authzid equal to the account and refuses any other with invalid-authzid (RFC 6120 §6.3.8)', async () => {
    const own = scramClient('SHA-256', 'alice', 'correct horse', `n,a=alice@${DOMAIN},`);
    const x = startExchange('SCRAM-SHA-256', context);
    expect(success(await x.step(b(own.final(challenge(await x.step(b(own.first)))).message))).username).toBe('alice');

    for (const authzid of [`bob@${DOMAIN}`, `alice@${DOMAIN}/phone`, 'alice@other.example', 'not a jid@@']) {
      const other = scramClient('SHA-256', 'alice', 'correct horse', `n,a=${authzid},`);
      const y = startExchange('SCRAM-SHA-256', context);
      expect((await failure(y.step(b(other.first)))).condition).toBe('invalid-authzid');
    }
  });

  it('asks for the client-first message with an empty challenge when <auth/> carried none', async () => {
    const c = scramClient('SHA-1', 'alice', 'correct horse');
    const x = startExchange('SCRAM-SHA-1', context);
    expect(await x.step(null)).toEqual({ done: false, challenge: Buffer.alloc(0) });
    const serverFirst = challenge(await x.step(b(c.first)));
    expect(success(await x.step(b(c.final(serverFirst).message))).username).toBe('alice');
    const y = startExchange('SCRAM-SHA-1', context);
    await y.step(null);
    expect((await failure(y.step(null))).condition).toBe('malformed-request');
  });
});

describe('SCRAM failures', () => {
  const firstFails = async (message: string | Buffer, condition = 'malformed-request') => {
    const x = startExchange('SCRAM-SHA-256', context);
    const err = await failure(x.step(typeof message === 'string' ? b(message) : message));
    expect(err.condition).toBe(condition);
    // Nothing more can happen on a failed exchange.
    expect((await failure(x.step(b('n,,n=alice,r=abc')))).condition).toBe('malformed-request');
  };

  it("refuses 'p=' (channel binding required) since no -PLUS mechanism is offered", () =>
    firstFails('p=tls-unique,,n=alice,r=abc'));
  it('refuses an unknown GS2 flag', () => firstFails('x,,n=alice,r=abc'));
  it('refuses a message without GS2 header', () => firstFails('n=alice,r=abc'));
  it("refuses a malformed GS2 authzid field", () => firstFails('n,z=alice,n=alice,r=abc'));
  it("refuses the reserved mandatory extension 'm=' (RFC 5802 §5.1)", () => firstFails('n,,m=ext,n=alice,r=abc'));
  it("refuses a first message without 'n='", () => firstFails('n,,r=abc,n=alice'));
  it("refuses a first message without 'r='", () => firstFails('n,,n=alice'));
  it('refuses an empty client nonce', () => firstFails('n,,n=alice,r='));
  it('refuses a non-printable client nonce', () => firstFails('n,,n=alice,r=ab\u0001c'));
  it("refuses a user name with a bare '='", () => firstFails('n,,n=al=ice,r=abc'));
  it("refuses a user name with '=' followed by an unknown code", () => firstFails('n,,n=al=41ice,r=abc'));
  it('refuses an empty user name', () => firstFails('n,,n=,r=abc'));
  it('refuses bytes that are not UTF-8', () => firstFails(Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])));

  const finalFails = async (tamper: (c: ReturnType<typeof scramClient>, serverFirst: string) => string, condition = 'malformed-request') => {
    const c = scramClient('SHA-256', 'alice', 'correct horse');
    const x = startExchange('SCRAM-SHA-256', context);
    const serverFirst = challenge(await x.step(b(c.first)));
    expect((await failure(x.step(b(tamper(c, serverFirst))))).condition).toBe(condition);
    expect((await failure(x.step(b(c.final(serverFirst).message)))).condition).toBe('malformed-request');
  };

  it('refuses a final message whose c= differs from the GS2 header sent first', () =>
    finalFails((c, sf) => c.final(sf, { c: Buffer.from('y,,').toString('base64') }).message));
  it('refuses a final message whose c= is not base64', () => finalFails((c, sf) => c.final(sf, { c: 'b!ws' }).message));
  it('refuses a final message with another nonce', () => finalFails((c, sf) => c.final(sf, { r: 'clientNONCE123xyz' }).message));
  it("refuses a final message without 'p='", () => finalFails((c, sf) => c.final(sf).message.replace(/,p=.*/, '')));
  it("refuses a final message not starting with 'c='", () => finalFails((c, sf) => c.final(sf).message.replace(/^c=/, 'x=')));
  it("refuses a final message without 'r='", () => finalFails((c, sf) => c.final(sf).message.replace(/,r=[^,]*/, '')));
  it('refuses a proof that is not base64', () => finalFails((c, sf) => c.final(sf).message.replace(/p=.*/, 'p=###')));
  it('refuses a proof of the wrong length as not-authorized', () =>
    finalFails((c, sf) => c.final(sf).message.replace(/p=.*/, 'p=AAAA'), 'not-authorized'));
  it('refuses a missing final message', async () => {
    const c = scramClient('SHA-256', 'alice', 'correct horse');
    const x = startExchange('SCRAM-SHA-256', context);
    await x.step(b(c.first));
    expect((await failure(x.step(null))).condition).toBe('malformed-request');
  });
  it('refuses any step after success', async () => {
    const c = scramClient('SHA-256', 'alice', 'correct horse');
    const x = startExchange('SCRAM-SHA-256', context);
    const sf = challenge(await x.step(b(c.first)));
    success(await x.step(b(c.final(sf).message)));
    expect((await failure(x.step(b('')))).condition).toBe('malformed-request');
  });
});

describe('PLAIN (RFC 4616)', () => {
  const plain = (authzid: string, authcid: string, password: string) => b(`${authzid}\u0000${authcid}\u0000${password}`);
  let x: SaslExchange;
  beforeEach(() => {
    x = startExchange('PLAIN', context);
  });

  it('logs in with the initial response and no additional data', async () => {
    expect(success(await x.step(plain('', 'alice', 'correct horse')))).toEqual({ username: 'alice', data: null });
  });

  it('asks with an empty challenge when <auth/> carried no initial response', async () => {
    expect(await x.step(null)).toEqual({ done: false, challenge: Buffer.alloc(0) });
    expect(success(await x.step(plain('', 'alice', 'correct horse'))).username).toBe('alice');
    const y = startExchange('PLAIN', context);
    await y.step(null);
    expect((await failure(y.step(null))).condition).toBe('malformed-request');
  });

  it('answers a wrong password and an unknown user alike: not-authorized', async () => {
    const wrong = await failure(x.step(plain('', 'alice', 'Correct horse')));
    const unknown = await failure(startExchange('PLAIN', context).step(plain('', 'mallory', 'correct horse')));
    const invalid = await failure(startExchange('PLAIN', context).step(plain('', 'a b', 'correct horse')));
    expect(wrong.condition).toBe('not-authorized');
    expect(unknown.toXml()).toBe(wrong.toXml());
    expect(invalid.toXml()).toBe(wrong.toXml());
  });

  it('accepts its own bare JID as authzid and refuses another (invalid-authzid)', async () => {
    expect(success(await x.step(plain(`alice@${DOMAIN}`, 'alice', 'correct horse'))).username).toBe('alice');
    const err = await failure(startExchange('PLAIN', context).step(plain(`bob@${DOMAIN}`, 'alice', 'correct horse')));
    expect(err.condition).toBe('invalid-authzid');
  });

  it('maps the user name case-insensitively and accepts the bare JID as authcid', async () => {
    expect(success(await x.step(plain('', 'ALICE', 'correct horse'))).username).toBe('alice');
    expect(success(await startExchange('PLAIN', context).step(plain('', `alice@${DOMAIN}`, 'correct horse'))).username).toBe('alice');
  });

  it('compares passwords after OpaqueString preparation (RFC 8265 §4.2: non-ASCII space → U+0020)', async () => {
    expect(success(await x.step(plain('', 'alice', 'correct\u00a0horse'))).username).toBe('alice');
  });

  it('refuses malformed messages with malformed-request', async () => {
    for (const bad of [
      b('alice\u0000correct horse'),
      b('\u0000alice\u0000correct horse\u0000'),
      plain('', '', 'correct horse'),
      plain('', 'alice', ''),
      Buffer.alloc(0),
      Buffer.from([0, 0x61, 0, 0xc3, 0x28]),
    ]) {
      expect((await failure(startExchange('PLAIN', context).step(bad))).condition).toBe('malformed-request');
    }
  });

  it('refuses any step after the exchange ended', async () => {
    await x.step(plain('', 'alice', 'correct horse'));
    expect((await failure(x.step(plain('', 'alice', 'correct horse')))).condition).toBe('malformed-request');
  });

  it('checks the password against the stored SCRAM-SHA-256 key, so a changed password takes effect', async () => {
    storage.users.setPassword(`alice@${DOMAIN}`, 'battery staple');
    expect((await failure(x.step(plain('', 'alice', 'correct horse')))).condition).toBe('not-authorized');
    expect(success(await startExchange('PLAIN', context).step(plain('', 'alice', 'battery staple'))).username).toBe('alice');
  });
});
