/**
 * The accept queue a listener reports is the one the kernel grants: Linux caps listen(2)'s
 * backlog at net.core.somaxconn without saying so, and a reconnect storm beyond the granted
 * queue waits for SYN retransmissions (src/transport/listen.ts, docs/operations.md).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kernelBacklogCap, listenTcp } from '../../src/transport/listen.js';

const somaxconn = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  } catch {
    return null;
  }
})();

describe('listen backlog', () => {
  it('reads the kernel cap from net.core.somaxconn (Linux)', () => {
    expect(kernelBacklogCap()).toBe(somaxconn);
  });

  it('reports a backlog below the cap as asked, and one above it as the cap', async () => {
    const small = await listenTcp({ host: '127.0.0.1', port: 0, backlog: 16 }, null, (t) => t.destroy());
    const huge = await listenTcp({ host: '127.0.0.1', port: 0, backlog: 1_000_000 }, null, (t) => t.destroy());
    try {
      expect(small.backlog).toBe(16);
      expect(huge.backlog).toBe(somaxconn ?? 1_000_000);
    } finally {
      await Promise.all([small.close(), huge.close()]);
    }
  });
});
