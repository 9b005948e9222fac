import { describe, expect, it } from 'vitest';
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
