import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digest, hmac } from '../../src/storage/password.js';

const NAMES = { 'SHA-1': 'sha1', 'SHA-256': 'sha256' } as const;

describe('SCRAM HMAC and H()', () => {
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`H() with ${hash} equals createHash`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
          expect(digest(hash, data).equals(createHash(NAMES[hash]).update(data).digest())).toBe(true);
        }),
      );
    });
  }

  it('matches the RFC 4231 test case 2 (HMAC-SHA-256, key "Jefe")', () => {
    expect(hmac('SHA-256', Buffer.from('Jefe'), 'what do ya want for nothing?').toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});
