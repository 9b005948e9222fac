/**
 * The stream layer feeds the metrics (src/observability): connections by listener, bound
 * sessions, stanzas in and out, routing time, output flushes, SASL outcomes, stream errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics, stats } from '../../src/observability/metrics.js';
import { RawClient, STREAM_HEADER, startTestServer, type TestServer } from './harness.js';

let t: TestServer;
const metrics = new Metrics({ processMetrics: false });
metrics.adopt(stats);

beforeAll(async () => {
  t = await startTestServer(['--tls', 'optional']);
});

afterAll(async () => {
  await t?.stop();
});

async function value(name: string, labels = ''): Promise<number> {
  const text = await metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

describe('metrics from the stream layer', () => {
  it('counts connections, sessions, stanzas, SASL outcomes and stream errors', async () => {
    const before = {
      msgIn: await value('hermod_stanzas_in_total', 'kind="message"'),
      msgOut: await value('hermod_stanzas_out_total', 'kind="message"'),
      authOk: await value('hermod_auth_total', 'result="success",mechanism="PLAIN"'),
      hostUnknown: await value('hermod_errors_total', 'family="stream",condition="host-unknown"'),
      routed: await value('hermod_routing_duration_seconds_count'),
    };
    const alice = await RawClient.connect(t.port);
    const bob = await RawClient.connect(t.port);
    await alice.login('alice', { tls: false, resource: 'm' });
    await bob.login('bob', { tls: false, resource: 'm' });
    expect(await value('hermod_connections', 'transport="c2s"')).toBeGreaterThanOrEqual(2);
    expect(await value('hermod_sessions')).toBeGreaterThanOrEqual(2);
    alice.send("<message to='bob@localhost/m' type='chat'><body>count me</body></message>");
    await bob.waitFor('count me');
    expect(await value('hermod_stanzas_in_total', 'kind="message"')).toBe(before.msgIn + 1);
    expect(await value('hermod_stanzas_out_total', 'kind="message"')).toBe(before.msgOut + 1);
    expect(await value('hermod_auth_total', 'result="success",mechanism="PLAIN"')).toBe(before.authOk + 2);
    // Routing time is sampled, 1 stanza in 16: 32 more stanzas give at least 2 samples.
    for (let i = 0; i < 32; i++) alice.send(`<iq type='get' id='ping${i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await alice.waitFor("id='ping31'");
    expect(await value('hermod_routing_duration_seconds_count')).toBeGreaterThanOrEqual(before.routed + 2);
    expect(await value('hermod_output_queue_flush_bytes_count')).toBeGreaterThan(0);

    const stranger = await RawClient.connect(t.port);
    stranger.send(STREAM_HEADER.replace("to='localhost'", "to='elsewhere.example'"));
    await stranger.waitClosed();
    expect(await value('hermod_errors_total', 'family="stream",condition="host-unknown"')).toBe(before.hostUnknown + 1);

    alice.close();
    bob.close();
    for (let i = 0; i < 100 && t.server.streams.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await value('hermod_sessions')).toBe(0);
    expect(await value('hermod_connections', 'transport="c2s"')).toBe(0);
    expect(await value('hermod_output_queue_bytes')).toBe(0);
  });
});
