/**
 * Behaviour of the per-session structures that were slimmed for idle memory
 * (docs/benchmarks.md, "Idle sessions"): they must still behave exactly like what they replaced.
 */
import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Jid } from '../../src/jid.js';
import { SessionRegistry } from '../../src/router/session.js';
import type { ClientSession } from '../../src/router/types.js';
import { Shaper, TokenBucket, shaperFor } from '../../src/stream/limits.js';
import { SocketTransport } from '../../src/transport/socket.js';

function fakeSession(id: number, account: Jid): ClientSession {
  const sent: (string | Uint8Array)[] = [];
  return { id, account, jid: null, send: (b: string | Uint8Array) => void sent.push(b), close: () => {}, sent } as unknown as ClientSession;
}

function boundState() {
  const registry = new SessionRegistry({ maxResources: 10 });
  const account = Jid.of('juliet', 'example.com');
  const session = fakeSession(1, account);
  const { jid } = registry.prepare(session, 'balcony');
  return { state: registry.add(session, jid), session, account, jid };
}

describe('session state made on first use', () => {
  it('keeps module data like a Map: set, get, has, delete, size and iteration in insertion order', () => {
    const { state } = boundState();
    expect(state.data.size).toBe(0);
    expect(state.data.get('carbons')).toBeUndefined();
    expect([...state.data]).toEqual([]);
    state.data.set('carbons', true).set('csi', { held: 1 });
    expect(state.data.has('carbons')).toBe(true);
    expect(state.data.get('csi')).toEqual({ held: 1 });
    expect([...state.data.keys()]).toEqual(['carbons', 'csi']);
    const seen: string[] = [];
    state.data.forEach((_v, k, map) => {
      seen.push(k);
      expect(map).toBe(state.data);
    });
    expect(seen).toEqual(['carbons', 'csi']);
    expect(state.data.delete('carbons')).toBe(true);
    expect(state.data.delete('carbons')).toBe(false);
    expect([...state.data.entries()]).toEqual([['csi', { held: 1 }]]);
    state.data.clear();
    expect(state.data.size).toBe(0);
    expect(Object.prototype.toString.call(state.data)).toBe('[object Map]');
  });

  it('keeps RFC 6121 §4.6 directed-presence targets like a Set', () => {
    const { state } = boundState();
    expect(state.directed.size).toBe(0);
    expect(state.directed.has('romeo@example.net/orchard')).toBe(false);
    state.directed.add('romeo@example.net/orchard').add('romeo@example.net/orchard').add('nurse@example.com');
    expect(state.directed.size).toBe(2);
    expect([...state.directed]).toEqual(['romeo@example.net/orchard', 'nurse@example.com']);
    expect(state.directed.delete('nurse@example.com')).toBe(true);
    expect([...state.directed.values()]).toEqual(['romeo@example.net/orchard']);
    state.directed.clear();
    expect([...state.directed]).toEqual([]);
  });

  it("stamps from= with the session's full JID, and output filters still take deliveries", () => {
    const { state, session, jid } = boundState();
    expect(state.fromStamp.toString()).toBe(` from='${jid.full}'`);
    expect(state.fromStamp).toBe(state.fromStamp);
    state.deliver('<message/>', 'message');
    state.filters.push((_bytes, kind) => kind === 'presence');
    state.deliver('<presence/>', 'presence');
    state.deliver('<iq/>', 'iq');
    expect((session as unknown as { sent: string[] }).sent).toEqual(['<message/>', '<iq/>']);
  });

  it('gives the bound JID the same bare string as the account it was bound from', () => {
    const { account, jid, state } = boundState();
    expect(jid.bare).toBe(account.bare);
    expect(state.bare).toBe('juliet@example.com');
    expect(jid.full).toBe('juliet@example.com/balcony');
  });
});

describe('shared shaper, one number per connection', () => {
  it('shares one Shaper per rate and burst', () => {
    expect(shaperFor(1000, 4000)).toBe(shaperFor(1000, 4000));
    expect(shaperFor(1000, 4000)).not.toBe(shaperFor(1000, 2000));
  });

  it('answers like a token bucket: the burst passes, then the deficit is waited out', () => {
    const shaper = new Shaper(100, 10);
    let fullAt = 0;
    const waits: number[] = [];
    for (let i = 0; i < 12; i++) {
      fullAt = shaper.spend(fullAt, 1000, 1);
      waits.push(shaper.wait(fullAt, 1000));
    }
    // 10 at once, then 10 ms per stanza at 100/s.
    expect(waits).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 20]);
    // 20 ms later the debt is repaid; a long pause refills to the burst and no further.
    expect(shaper.wait(fullAt, 1020)).toBe(0);
    fullAt = shaper.spend(fullAt, 60_000, 10);
    expect(shaper.wait(fullAt, 60_000)).toBe(0);
    fullAt = shaper.spend(fullAt, 60_000, 1);
    expect(shaper.wait(fullAt, 60_000)).toBe(10);
  });

  it('keeps the TokenBucket interface for callers with their own clock', () => {
    let now = 0;
    const bucket = new TokenBucket(2048, 2048, () => now);
    expect(bucket.take(6 * 1024)).toBe(2000);
    now = 2000;
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(5, 2000)).toBe(3);
  });
});

/** Just enough of net.Socket for SocketTransport. */
class FakeSocket extends EventEmitter {
  setNoDelay(): void {}
  pause(): void {}
  resume(): void {}
  destroy(): void {
    this.emit('close');
  }
}

describe('socket listeners shared by every transport', () => {
  it("hands each socket's bytes and close to its own transport's sink, once", () => {
    const sockets = [new FakeSocket(), new FakeSocket()];
    const log: string[] = [];
    sockets.forEach((socket, i) => {
      const transport = new SocketTransport(socket as unknown as Socket, null, false);
      transport.attach({
        feed: (chunk) => void log.push(`${i}:${Buffer.from(chunk).toString()}`),
        transportClosed: () => void log.push(`${i}:closed`),
      });
    });
    sockets[1]!.emit('data', Buffer.from('<b/>'));
    sockets[0]!.emit('data', Buffer.from('<a/>'));
    sockets[0]!.emit('error', new Error('ECONNRESET'));
    sockets[0]!.emit('close');
    sockets[0]!.emit('close');
    expect(log).toEqual(['1:<b/>', '0:<a/>', '0:closed']);
    // The listeners are the same function objects on every socket, not closures per connection.
    expect(sockets[0]!.listeners('data')).toEqual(sockets[1]!.listeners('data'));
  });
});
