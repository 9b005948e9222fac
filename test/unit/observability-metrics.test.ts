import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StanzaKind } from '../../src/core/api.js';
import { SaslFailure, StanzaError, StreamError } from '../../src/errors.js';
import { startMetricsServer, type MetricsServer } from '../../src/observability/http.js';
import { BLOCK_SLOTS, HotStats, Metrics, Transport } from '../../src/observability/metrics.js';
import { sample } from './metrics-sample.js';

describe('metrics registry', () => {
  it('exposes stanzas in and out by kind', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.stanzaIn(StanzaKind.Message);
    s.stanzaIn(StanzaKind.Message);
    s.stanzaIn(StanzaKind.Iq);
    s.stanzaOut(StanzaKind.Presence);
    const text = await m.text();
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'message' })).toBe(2);
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'iq' })).toBe(1);
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'presence' })).toBe(0);
    expect(sample(text, 'hermod_stanzas_out_total', { kind: 'presence' })).toBe(1);
    expect(text).toContain('# TYPE hermod_stanzas_in_total counter');
  });

  it('tracks connections by transport and sessions as gauges that go down', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.connectionOpened(Transport.c2s);
    s.connectionOpened(Transport.c2s);
    s.connectionOpened(Transport.websocket);
    s.connectionClosed(Transport.c2s);
    s.sessionBound();
    s.sessionBound();
    s.sessionUnbound();
    const text = await m.text();
    expect(sample(text, 'hermod_connections', { transport: 'c2s' })).toBe(1);
    expect(sample(text, 'hermod_connections', { transport: 'websocket' })).toBe(1);
    expect(sample(text, 'hermod_connections', { transport: 'direct_tls' })).toBe(0);
    expect(sample(text, 'hermod_sessions')).toBe(1);
  });

  it('sums shards for totals and labels per-shard load', async () => {
    const m = new Metrics({ processMetrics: false });
    const a = m.createShard();
    const b = m.createShard();
    a.stanzaIn(StanzaKind.Message);
    b.stanzaIn(StanzaKind.Message);
    b.stanzaIn(StanzaKind.Presence);
    b.connectionOpened(Transport.c2s);
    b.sessionBound();
    const text = await m.text();
    expect(m.shardCount).toBe(2);
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'message' })).toBe(2);
    expect(sample(text, 'hermod_shard_stanzas_in_total', { shard: '0' })).toBe(1);
    expect(sample(text, 'hermod_shard_stanzas_in_total', { shard: '1' })).toBe(2);
    expect(sample(text, 'hermod_shard_connections', { shard: '1' })).toBe(1);
    expect(sample(text, 'hermod_shard_sessions', { shard: '0' })).toBe(0);
  });

  it('a shared block attached elsewhere (a worker) writes into the registry’s view', async () => {
    const m = new Metrics({ processMetrics: false });
    const own = m.createShard();
    expect(own.buffer).toBeInstanceOf(SharedArrayBuffer);
    const inWorker = HotStats.attach(own.buffer);
    inWorker.stanzaIn(StanzaKind.Iq);
    inWorker.authSucceeded('SCRAM-SHA-256');
    const text = await m.text();
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'iq' })).toBe(1);
    expect(sample(text, 'hermod_auth_total', { result: 'success', mechanism: 'SCRAM-SHA-256' })).toBe(1);
    expect(() => HotStats.attach(new SharedArrayBuffer(8))).toThrow(RangeError);
    expect(BLOCK_SLOTS * 8).toBe(own.buffer.byteLength);
  });

  it('resetGauges() clears what a crashed shard held and keeps its counters', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.connectionOpened(Transport.c2s);
    s.connectionOpened(Transport.direct_tls);
    s.sessionBound();
    s.queued(500);
    s.stanzaIn(StanzaKind.Message);
    s.streamError('system-shutdown');
    s.resetGauges();
    const text = await m.text();
    expect(sample(text, 'hermod_connections', { transport: 'c2s' })).toBe(0);
    expect(sample(text, 'hermod_connections', { transport: 'direct_tls' })).toBe(0);
    expect(sample(text, 'hermod_sessions')).toBe(0);
    expect(sample(text, 'hermod_output_queue_bytes')).toBe(0);
    expect(sample(text, 'hermod_stanzas_in_total', { kind: 'message' })).toBe(1);
    expect(sample(text, 'hermod_errors_total', { family: 'stream', condition: 'system-shutdown' })).toBe(1);
  });

  it('builds a cumulative routing-latency histogram with sum and count', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.routed(3e-6); // first bucket (≤ 5 µs)
    s.routed(4e-5); // ≤ 50 µs
    s.routed(5); // beyond the last bound: +Inf only
    const t0 = performance.now();
    s.routedSince(t0);
    const text = await m.text();
    const b = (le: string) => sample(text, 'hermod_routing_duration_seconds_bucket', { le });
    expect(b('0.000005')).toBeGreaterThanOrEqual(1);
    expect(b('0.00005')).toBeGreaterThanOrEqual(2);
    expect(b('1')).toBe(3);
    expect(b('+Inf')).toBe(4);
    expect(sample(text, 'hermod_routing_duration_seconds_count')).toBe(4);
    expect(sample(text, 'hermod_routing_duration_seconds_sum')).toBeGreaterThanOrEqual(5.000043);
    // Buckets never decrease.
    const buckets = [...text.matchAll(/^hermod_routing_duration_seconds_bucket\{le="[^"]+"\} (\d+)$/gm)].map((x) => Number(x[1]));
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y));
  });

  it('tracks queued output bytes and the size of each flush', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.queued(3000);
    s.queued(-1000);
    s.flushed(2000);
    const text = await m.text();
    expect(sample(text, 'hermod_output_queue_bytes')).toBe(2000);
    expect(sample(text, 'hermod_output_queue_flush_bytes_bucket', { le: '1024' })).toBe(0);
    expect(sample(text, 'hermod_output_queue_flush_bytes_bucket', { le: '4096' })).toBe(1);
    expect(sample(text, 'hermod_output_queue_flush_bytes_sum')).toBe(2000);
  });

  it('counts errors by family and RFC condition, every condition present from the start', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    const before = await m.text();
    expect(sample(before, 'hermod_errors_total', { family: 'stream', condition: 'unsupported-version' })).toBe(0);
    expect(sample(before, 'hermod_errors_total', { family: 'stanza', condition: 'unexpected-request' })).toBe(0);
    expect(sample(before, 'hermod_errors_total', { family: 'sasl', condition: 'temporary-auth-failure' })).toBe(0);
    s.error(new StreamError('not-well-formed'));
    s.error(new StanzaError('service-unavailable'));
    s.error(new StanzaError('service-unavailable'));
    s.error(new SaslFailure('not-authorized'));
    s.streamError('conflict');
    const text = await m.text();
    expect(sample(text, 'hermod_errors_total', { family: 'stream', condition: 'not-well-formed' })).toBe(1);
    expect(sample(text, 'hermod_errors_total', { family: 'stream', condition: 'conflict' })).toBe(1);
    expect(sample(text, 'hermod_errors_total', { family: 'stanza', condition: 'service-unavailable' })).toBe(2);
    expect(sample(text, 'hermod_errors_total', { family: 'sasl', condition: 'not-authorized' })).toBe(1);
    expect(sample(text, 'hermod_errors_total', { family: 'stanza', condition: 'not-authorized' })).toBe(0);
  });

  it('counts authentication outcomes by mechanism, unknown mechanisms as "other"', async () => {
    const m = new Metrics({ processMetrics: false });
    const s = m.createShard();
    s.authSucceeded('PLAIN');
    s.authFailed('SCRAM-SHA-1');
    s.authFailed('SCRAM-SHA-1');
    s.authFailed('X-MADE-UP');
    const text = await m.text();
    expect(sample(text, 'hermod_auth_total', { result: 'success', mechanism: 'PLAIN' })).toBe(1);
    expect(sample(text, 'hermod_auth_total', { result: 'failure', mechanism: 'SCRAM-SHA-1' })).toBe(2);
    expect(sample(text, 'hermod_auth_total', { result: 'failure', mechanism: 'other' })).toBe(1);
  });

  it('includes the process metrics by default', async () => {
    const text = await new Metrics().text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });
});

describe('metrics endpoint (real socket, port 0)', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  function get(path: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server!.port, path, method, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('serves /metrics in the Prometheus text format', async () => {
    const m = new Metrics({ processMetrics: false });
    m.createShard().stanzaIn(StanzaKind.Message);
    server = await startMetricsServer(m, { host: '127.0.0.1', port: 0 });
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(sample(r.body, 'hermod_stanzas_in_total', { kind: 'message' })).toBe(1);
    expect(sample(r.body, 'hermod_sessions')).toBe(0);
  });

  it('answers /health, 404 elsewhere, 405 for other methods, and HEAD without a body', async () => {
    server = await startMetricsServer(new Metrics({ processMetrics: false }), { host: '127.0.0.1', port: 0 });
    expect(await get('/health')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
    expect(await get('/metrics', 'HEAD')).toMatchObject({ status: 200, body: '' });
    expect((await get('/metrics?x=1')).status).toBe(200);
  });

  it('rejects with EADDRINUSE when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    await expect(startMetricsServer(new Metrics({ processMetrics: false }), { host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await new Promise((r) => blocker.close(r));
  });

  it('stops listening on close()', async () => {
    server = await startMetricsServer(new Metrics({ processMetrics: false }), { host: '127.0.0.1', port: 0 });
    // An idle keep-alive connection (as Prometheus keeps) must not hold close() open.
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port: server!.port, path: '/metrics', agent }, (res) => res.resume().on('end', resolve)).on('error', reject).end();
    });
    await server.close();
    agent.destroy();
    await expect(get('/metrics')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    server = undefined;
  });
});

describe('startObservability (config → logger, metrics, endpoint)', () => {
  it('serves this thread’s stats on the configured endpoint and logs where', async () => {
    const { startObservability } = await import('../../src/observability/index.js');
    const { stats } = await import('../../src/observability/metrics.js');
    const lines: string[] = [];
    const obs = await startObservability(
      { log: { level: 'info', format: 'json' }, metrics: { enabled: true, host: '127.0.0.1', port: 0 } },
      { logDestination: { write: (s: string) => void lines.push(s) }, processMetrics: false },
    );
    try {
      expect(obs.stats).toBe(stats);
      stats.authFailed('PLAIN');
      const body = await fetch(obs.endpoint!.url).then((r) => r.text());
      expect(sample(body, 'hermod_auth_total', { result: 'failure', mechanism: 'PLAIN' })).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'metrics endpoint listening', url: obs.endpoint!.url });
    } finally {
      await obs.close();
    }
  });

  it('starts no endpoint when metrics are disabled, and names the option when the port is taken', async () => {
    const { startObservability, MetricsListenError } = await import('../../src/observability/index.js');
    const quiet = { logDestination: { write: () => undefined }, processMetrics: false };
    const off = await startObservability({ log: { level: 'info', format: 'json' }, metrics: { enabled: false, host: '127.0.0.1', port: 0 } }, quiet);
    expect(off.endpoint).toBeNull();
    await off.close();

    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const failing = startObservability({ log: { level: 'info', format: 'json' }, metrics: { enabled: true, host: '127.0.0.1', port } }, quiet);
    await expect(failing).rejects.toBeInstanceOf(MetricsListenError);
    await expect(failing).rejects.toThrow(`metrics.port: cannot listen on 127.0.0.1:${port} (address already in use)`);
    await new Promise((r) => blocker.close(r));
  });
});
