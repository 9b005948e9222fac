import { describe, expect, it } from 'vitest';
import { FeatureRegistry, HookBus } from '../../src/router/hooks.js';

describe('hook bus', () => {
  it('runs handlers by descending priority and stops at the first that returns true', () => {
    const bus = new HookBus();
    const calls: string[] = [];
    bus.on('iq-get/host/urn:xmpp:ping', () => void calls.push('low'), -5);
    bus.on('iq-get/host/urn:xmpp:ping', () => {
      calls.push('high');
      return false;
    }, 10);
    bus.on('iq-get/host/urn:xmpp:ping', () => {
      calls.push('mid');
      return true;
    }, 0);
    expect(bus.fire('iq-get/host/urn:xmpp:ping', {})).toBe(true);
    expect(calls).toEqual(['high', 'mid']);
  });

  it('reports false when nobody listens or nobody takes the event', () => {
    const bus = new HookBus();
    expect(bus.fire('nothing', {})).toBe(false);
    bus.on('x', () => undefined);
    expect(bus.fire('x', {})).toBe(false);
    expect(bus.has('x')).toBe(true);
  });

  it('keeps registration order among equal priorities and supports removal', () => {
    const bus = new HookBus();
    const calls: number[] = [];
    const off = bus.on('e', () => void calls.push(1));
    bus.on('e', () => void calls.push(2));
    bus.fire('e', null);
    off();
    bus.fire('e', null);
    expect(calls).toEqual([1, 2, 2]);
  });

  it('finishes a running chain when a handler removes itself, and drops it from the next run', () => {
    const bus = new HookBus();
    const calls: string[] = [];
    const off = bus.on('e', () => {
      calls.push('once');
      off();
    }, 1);
    bus.on('e', () => void calls.push('always'));
    bus.fire('e', null);
    bus.fire('e', null);
    expect(calls).toEqual(['once', 'always', 'always']);
    off();
    expect(bus.has('e')).toBe(true);
  });

  it('passes the event object and propagates handler exceptions', () => {
    const bus = new HookBus();
    bus.on<{ n: number }>('e', (ev) => {
      if (ev.n < 0) throw new Error('negative');
      return ev.n > 1;
    });
    expect(bus.fire('e', { n: 2 })).toBe(true);
    expect(bus.fire('e', { n: 1 })).toBe(false);
    expect(() => bus.fire('e', { n: -1 })).toThrow('negative');
  });
});

describe('feature registry (XEP-0030 disco#info)', () => {
  it('lists features sorted and deduplicated', () => {
    const f = new FeatureRegistry();
    f.add('urn:xmpp:ping');
    f.add('http://jabber.org/protocol/disco#info');
    f.add('urn:xmpp:ping');
    expect(f.list()).toEqual(['http://jabber.org/protocol/disco#info', 'urn:xmpp:ping']);
    f.remove('urn:xmpp:ping');
    expect(f.has('urn:xmpp:ping')).toBe(false);
  });
});
