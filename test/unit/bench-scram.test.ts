import { describe, expect, it } from 'vitest';
import { ScramClient } from '../../bench/load/scram.js';

describe('bench SCRAM client', () => {
  const VECTORS = [
    {
      name: 'RFC 7677 §3 SCRAM-SHA-256',
      hash: 'sha256' as const,
      nonce: 'rOprNGfwEbeRWgbNEkqO',
      serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
      clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    },
    {
      name: 'RFC 5802 §5 SCRAM-SHA-1',
      hash: 'sha1' as const,
      nonce: 'fyko+d2lbbFgONRv9qkxdawL',
      serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
      clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
      serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
    },
  ];

  it.each(VECTORS)('computes the $name exchange and accepts its server signature', async (v) => {
    const c = new ScramClient(v.hash, 'user', 'pencil', v.nonce);
    expect(c.first()).toBe(`n,,n=user,r=${v.nonce}`);
    expect(await c.final(v.serverFirst)).toBe(v.clientFinal);
    expect(c.verify(v.serverFinal)).toBe(true);
  });

  it.each(VECTORS)('answers a reconnect of $name in the same turn from the kept keys, with the same proof', async (v) => {
    const first = new ScramClient(v.hash, 'user', 'pencil', v.nonce);
    first.first();
    await first.final(v.serverFirst);
    const again = new ScramClient(v.hash, 'user', 'pencil', v.nonce);
    again.first();
    const answer = again.final(v.serverFirst);
    expect(answer).toBe(v.clientFinal);
    expect(again.verify(v.serverFinal)).toBe(true);
  });

  it('draws distinct printable nonces', () => {
    const nonces = new Set(Array.from({ length: 600 }, () => new ScramClient('sha1', 'u', 'p').first()));
    expect(nonces.size).toBe(600);
    for (const n of nonces) expect(n).toMatch(/^n,,n=u,r=[A-Za-z0-9+/]{24}$/);
  });

  it('rejects a forged server signature (mutual authentication, RFC 5802 §3)', async () => {
    const c = new ScramClient('sha1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
    c.first();
    await c.final('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    expect(c.verify('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toBe(false);
    expect(c.verify('e=other-error')).toBe(false);
  });

  it('refuses a server nonce that does not extend the client nonce', () => {
    const c = new ScramClient('sha1', 'user', 'pencil', 'abc');
    c.first();
    expect(() => c.final('r=xyz123,s=QSXCR+Q6sek8bf92,i=4096')).toThrow(/nonce/);
  });

  it('escapes , and = in the username (RFC 5802 §5.1)', () => {
    expect(new ScramClient('sha1', 'a,b=c', 'p', 'n').first()).toBe('n,,n=a=2Cb=3Dc,r=n');
  });
});
