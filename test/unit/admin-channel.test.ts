import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminRequest, answer, listenAdmin, type AdminTarget } from '../../src/admin/channel.js';
import { ConfigError, type StreamError } from '../../src/errors.js';
import type { Jid } from '../../src/jid.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hermod-chan-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fakeTarget(): AdminTarget & { kicks: [string, StreamError][] } {
  const kicks: [string, StreamError][] = [];
  return {
    kicks,
    sessions: () => [{ jid: 'a@x/r', ip: '127.0.0.1', since: '2026-01-01T00:00:00.000Z', transport: 'c2s', tls: true, sm: false, shard: 'main' }],
    kick(jid: Jid, error: StreamError) {
      kicks.push([jid.full, error]);
      return jid.local === 'a' ? 1 : 0;
    },
  };
}

/** Write `lines` on one connection to the socket and collect `count` answer lines. */
function exchange(path: string, lines: string, count: number): Promise<string> {
  return new Promise<string>((done) => {
    const s = connect(path);
    let text = '';
    s.on('data', (d) => {
      text += d;
      if (text.split('\n').length > count) {
        s.end();
        done(text);
      }
    });
    s.write(lines);
  });
}

describe('admin channel requests', () => {
  it('kicks with policy-violation and a default text unless another offered condition is named', () => {
    const t = fakeTarget();
    expect(answer(t, { cmd: 'kick', jid: 'A@x/r' })).toEqual({ ok: true, kicked: 1 });
    expect(t.kicks[0]![0]).toBe('a@x/r');
    expect(t.kicks[0]![1].condition).toBe('policy-violation');
    expect(t.kicks[0]![1].text).toBe('disconnected by the server administrator');
    expect(answer(t, { cmd: 'kick', jid: 'b@x', condition: 'not-authorized', text: 'bye' })).toEqual({ ok: true, kicked: 0 });
    expect(t.kicks[1]![1].toXml()).toContain('<not-authorized');
  });

  it('refuses unknown commands, JIDs without a localpart and conditions not offered', () => {
    const t = fakeTarget();
    expect(answer(t, { cmd: 'shutdown' })).toMatchObject({ ok: false, error: 'bad-request' });
    expect(answer(t, { cmd: 'kick', jid: 'x' })).toMatchObject({ ok: false, error: 'bad-request' });
    expect(answer(t, { cmd: 'kick', jid: 'a@x', condition: 'see-other-host' })).toMatchObject({ ok: false });
    expect(t.kicks).toEqual([]);
  });
});

describe('admin socket', () => {
  it('answers JSON lines in order and a bad line with bad-request, keeping the connection', async () => {
    const ch = await listenAdmin(dir, fakeTarget());
    try {
      expect(await adminRequest(dir, { cmd: 'sessions' })).toMatchObject({ ok: true, sessions: [{ jid: 'a@x/r' }] });
      const replies = await exchange(ch.path, 'not json\n{"cmd":"kick","jid":"a@x"}\n', 2);
      const [first, second] = replies.trim().split('\n').map((l) => JSON.parse(l) as { ok: boolean });
      expect(first).toMatchObject({ ok: false, error: 'bad-request', message: 'not a JSON line' });
      expect(second).toEqual({ ok: true, kicked: 1 });
    } finally {
      await ch.close();
    }
  });

  it('keeps replies in request order when an earlier answer comes later (shards answer asynchronously)', async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const ch = await listenAdmin(dir, {
      // The session list waits for the shards; the kick after it is answered at once.
      sessions: async () => {
        await slow;
        return [];
      },
      kick: async () => {
        release();
        return 3;
      },
    });
    try {
      const replies = await exchange(ch.path, '{"cmd":"sessions"}\n{"cmd":"kick","jid":"a@x"}\n', 2);
      expect(replies.trim().split('\n').map((l) => JSON.parse(l) as object)).toEqual([
        { ok: true, sessions: [] },
        { ok: true, kicked: 3 },
      ]);
    } finally {
      await ch.close();
    }
  });

  it('answers internal-server-error when the server fails to answer, and keeps serving', async () => {
    const ch = await listenAdmin(dir, {
      sessions: () => Promise.reject(new Error('shard gone')),
      kick: () => 1,
    });
    try {
      expect(await adminRequest(dir, { cmd: 'sessions' })).toEqual({ ok: false, error: 'internal-server-error', message: 'shard gone' });
      expect(await adminRequest(dir, { cmd: 'kick', jid: 'a@x' })).toEqual({ ok: true, kicked: 1 });
    } finally {
      await ch.close();
    }
  });

  it('replaces a stale socket file but refuses to start beside a live server on the same data directory', async () => {
    writeFileSync(join(dir, 'hermod.sock'), '');
    const first = await listenAdmin(dir, fakeTarget());
    try {
      await expect(listenAdmin(dir, fakeTarget())).rejects.toThrow(ConfigError);
      await expect(listenAdmin(dir, fakeTarget())).rejects.toThrow(/another hermod is running/);
    } finally {
      await first.close();
    }
    await expect(adminRequest(dir, { cmd: 'sessions' })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('admin socket path limits', () => {
  it('reports a path too long for a Unix socket as AdminSocketError, which serve survives', async () => {
    const deep = join(dir, 'x'.repeat(120));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(deep);
    const { AdminSocketError } = await import('../../src/admin/channel.js');
    await expect(listenAdmin(deep, fakeTarget())).rejects.toBeInstanceOf(AdminSocketError);
  });
});
