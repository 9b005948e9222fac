import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { AuthFailureTracker, ConnectionCounter, TokenBucket } from '../../src/stream/limits.js';
import { SocketTransport } from '../../src/transport/socket.js';

describe('authentication back-off per address', () => {
  it('doubles the delay per consecutive failure up to the ceiling', () => {
    const tracker = new AuthFailureTracker(1000, 5000, () => 0);
    const throttle = tracker.for('192.0.2.1');
    expect([throttle.failed(), throttle.failed(), throttle.failed(), throttle.failed()]).toEqual([1000, 2000, 4000, 5000]);
  });

  it('keeps addresses apart and resets on success', () => {
    const tracker = new AuthFailureTracker(100, 10_000, () => 0);
    tracker.for('192.0.2.1').failed();
    tracker.for('192.0.2.1').failed();
    expect(tracker.for('192.0.2.2').failed()).toBe(100);
    tracker.for('192.0.2.1').succeeded();
    expect(tracker.count('192.0.2.1')).toBe(0);
    expect(tracker.for('192.0.2.1').failed()).toBe(100);
  });

  it('forgets an address ten minutes after its last failure', () => {
    let now = 0;
    const tracker = new AuthFailureTracker(100, 10_000, () => now);
    tracker.failed('192.0.2.1');
    tracker.failed('192.0.2.1');
    now = 10 * 60_000;
    expect(tracker.count('192.0.2.1')).toBe(0);
    tracker.sweep();
    expect(tracker.failed('192.0.2.1')).toBe(100);
  });

  it('delays nothing when the base delay is 0', () => {
    expect(new AuthFailureTracker(0, 1000).failed('a')).toBe(0);
  });
});

describe('connection limits', () => {
  it('refuses past the per-address cap and counts nothing for the refused', () => {
    const counter = new ConnectionCounter(0, 2);
    expect(counter.admit('a')).toBeNull();
    expect(counter.admit('a')).toBeNull();
    expect(counter.admit('a')).toMatch(/too many connections from your address/);
    expect(counter.admit('b')).toBeNull();
    expect(counter.of('a')).toBe(2);
    counter.release('a');
    expect(counter.admit('a')).toBeNull();
  });

  it('refuses past the total cap', () => {
    const counter = new ConnectionCounter(2, 0);
    counter.admit('a');
    counter.admit('b');
    expect(counter.admit('c')).toMatch(/connection limit/);
    counter.release('a');
    expect(counter.total).toBe(1);
    expect(counter.admit('c')).toBeNull();
  });
});

describe('token bucket shaper', () => {
  it('lets a burst through, then asks for the time the deficit takes to refill', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 4000, () => now);
    expect(bucket.take(4000)).toBe(0);
    expect(bucket.take(500)).toBe(500);
    now = 1000;
    expect(bucket.take(400)).toBe(0);
    now = 100_000;
    expect(bucket.take(4000)).toBe(0);
    expect(bucket.take(1)).toBe(1);
  });

  it('asks a pre-authentication reader 6 KiB into a 2 KiB/s bucket of 2 KiB to wait 2 s', () => {
    // The figures of the e2e shaping test (test/e2e/security-limits.test.ts): 4 KiB over.
    let now = 5000;
    const bucket = new TokenBucket(2048, 2048, () => now);
    expect(bucket.take(6 * 1024)).toBe(2000);
    // Half of the debt repaid: half of the wait left, and nothing more is let through meanwhile.
    now += 1000;
    expect(bucket.take(0)).toBe(1000);
    now += 1000;
    expect(bucket.take(0)).toBe(0);
    // Repaid, not refilled: the bucket starts from empty, so the next byte waits again.
    expect(bucket.take(1)).toBe(1);
  });

  it('asks 200 stanzas into a 100/s bucket of 100 to wait 1 s', () => {
    let now = 0;
    const bucket = new TokenBucket(100, 100, () => now);
    const waits = Array.from({ length: 200 }, () => bucket.take(1));
    expect(waits.slice(0, 100).every((w) => w === 0)).toBe(true);
    expect(waits[100]).toBe(10);
    expect(waits[199]).toBe(1000);
    now = 1000;
    expect(bucket.take(0)).toBe(0);
  });
});

/** Just enough of net.Socket for SocketTransport, with pause state a test can read. */
class FakeSocket extends EventEmitter {
  paused = false;
  setNoDelay(): void {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  destroy(): void {
    this.emit('close');
  }
}

describe('byte-rate pause on a fake clock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stops reading exactly as long as the bucket needs to repay the excess', () => {
    // Date and setTimeout faked together: TokenBucket reads Date.now, the resume is a timer.
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const socket = new FakeSocket();
    const transport = new SocketTransport(socket as unknown as Socket, null, false);
    transport.limitBytes(2048, 2048);
    const fed: number[] = [];
    transport.attach({ feed: (chunk) => void fed.push(chunk.length), transportClosed: () => {} });
    socket.emit('data', Buffer.alloc(2048, 0x20));
    expect(socket.paused).toBe(false);
    socket.emit('data', Buffer.alloc(4096, 0x20));
    // What was read is handed on whole; only the next read waits.
    expect(fed).toEqual([2048, 4096]);
    expect(socket.paused).toBe(true);
    vi.advanceTimersByTime(1999);
    expect(socket.paused).toBe(true);
    vi.advanceTimersByTime(1);
    expect(socket.paused).toBe(false);
  });

  it('reads at the full rate once limitBytes raises the rate (after authentication)', () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const socket = new FakeSocket();
    const transport = new SocketTransport(socket as unknown as Socket, null, false);
    transport.limitBytes(2048, 2048);
    transport.attach({ feed: () => {}, transportClosed: () => {} });
    socket.emit('data', Buffer.alloc(2048, 0x20));
    transport.limitBytes(1 << 20, 1 << 20);
    socket.emit('data', Buffer.alloc(64 * 1024, 0x71));
    expect(socket.paused).toBe(false);
  });
});

describe('byte-rate shaping on a socket', () => {
  it('pauses reading once a connection exceeds its byte burst, and resumes', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer((socket) => {
        server.close();
        resolve(socket);
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        const client = createConnection({ port, host: '127.0.0.1' }, () => {
          client.write(Buffer.alloc(3000, 0x20));
          client.end();
        });
      });
    });
    const socket = await accepted;
    const transport = new SocketTransport(socket, null, false);
    transport.limitBytes(1000, 1000);
    let received = 0;
    let pausedSeen = false;
    await new Promise<void>((resolve) => {
      transport.attach({
        feed: (chunk) => {
          received += chunk.length;
          setImmediate(() => {
            if (socket.isPaused()) pausedSeen = true;
          });
        },
        transportClosed: resolve,
      });
    });
    expect(received).toBe(3000);
    expect(pausedSeen).toBe(true);
  });
});
