import { describe, expect, it } from 'vitest';
import { AuthBan } from '../../src/limits/auth-ban.js';

function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

describe('AuthBan (refusal after repeated failed authentication)', () => {
  it('refuses an address once it reaches the failure count within the window', () => {
    const c = clock();
    const ban = new AuthBan(3, 60_000, c.now);
    ban.failed('192.0.2.1');
    c.t += 1000;
    ban.failed('192.0.2.1');
    expect(ban.bannedUntil('192.0.2.1')).toBe(0);
    c.t += 1000;
    ban.failed('192.0.2.1');
    // Refused until the oldest of the three counted failures leaves the window.
    expect(ban.bannedUntil('192.0.2.1')).toBe(1_000_000 + 60_000);
    expect(ban.bannedUntil('192.0.2.2')).toBe(0);
  });

  it('lets the address back in when its failures age out of the window', () => {
    const c = clock();
    const ban = new AuthBan(2, 10_000, c.now);
    ban.failed('a');
    ban.failed('a');
    expect(ban.bannedUntil('a')).toBeGreaterThan(0);
    c.t += 10_000;
    expect(ban.bannedUntil('a')).toBe(0);
  });

  it('does not count failures spread wider than the window', () => {
    const c = clock();
    const ban = new AuthBan(3, 10_000, c.now);
    for (let i = 0; i < 10; i++) {
      ban.failed('slow');
      c.t += 6000;
    }
    expect(ban.bannedUntil('slow')).toBe(0);
  });

  it('keeps extending the refusal while failures keep coming', () => {
    const c = clock();
    const ban = new AuthBan(2, 10_000, c.now);
    ban.failed('a');
    c.t += 5000;
    ban.failed('a');
    const first = ban.bannedUntil('a');
    c.t += 5000;
    ban.failed('a');
    expect(ban.bannedUntil('a')).toBeGreaterThan(first);
  });

  it('never refuses when the failure count is 0', () => {
    const c = clock();
    const ban = new AuthBan(0, 10_000, c.now);
    for (let i = 0; i < 100; i++) ban.failed('a');
    expect(ban.bannedUntil('a')).toBe(0);
  });

  it('forgets addresses whose failures all expired when swept, so the table stays bounded', () => {
    const c = clock();
    const ban = new AuthBan(5, 10_000, c.now);
    for (let i = 0; i < 1000; i++) ban.failed(`198.51.100.${i}`);
    c.t += 10_001;
    ban.sweep();
    expect((ban as unknown as { failures: Map<string, number[]> }).failures.size).toBe(0);
  });
});
