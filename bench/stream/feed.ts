/**
 * Stream-layer throughput on the WASM core: one bound C2SStream fed 64 KiB chunks of <message/>
 * stanzas, with a router that only counts (so the figure is core + stream state machine, not
 * delivery). Run: `npm run build && node dist/bench/stream/feed.js [--json]`.
 */
import { loadCore } from '../../src/core/parser.js';
import type { Router } from '../../src/router/types.js';
import { C2SStream, type SaslProvider, type StreamTransport } from '../../src/stream/c2s.js';

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const MESSAGE =
  "<message to='bob@localhost/phone' type='chat' id='abc123'><body>Hello there, this is a benchmark message.</body></message>";

async function main(): Promise<void> {
  let routed = 0;
  const router: Router = {
    bind: (session, requested) => session.account.withResource(requested ?? 'bench'),
    route: () => void routed++,
    routeUnauthenticated: () => false,
    unbind: () => {},
  };
  const sasl: SaslProvider = {
    mechanisms: () => ['PLAIN'],
    start: () => ({ mechanism: 'PLAIN', step: async () => ({ done: true, username: 'alice', additionalData: null }) }),
  };
  const transport: StreamTransport = { secure: true, canStartTls: false, write() {}, startTls() {}, end() {} };
  const stream = new C2SStream(
    transport,
    { domain: 'localhost', tls: 'required', registration: 'closed', preAuthMaxStanzaBytes: 16384, maxStanzaBytes: 262144, saslMaxAttempts: 3 },
    { core: loadCore(), router, sasl },
  );
  stream.feed(Buffer.from(HEADER));
  stream.feed(Buffer.from("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHg=</auth>"));
  await new Promise((r) => setImmediate(r));
  stream.feed(Buffer.from(HEADER));
  stream.feed(Buffer.from("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"));

  const perChunk = Math.floor(65536 / MESSAGE.length);
  const chunk = Buffer.from(MESSAGE.repeat(perChunk));
  for (let i = 0; i < 200; i++) stream.feed(chunk); // warm-up
  const rounds = 3000;
  routed = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) stream.feed(chunk);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const result = {
    stanzas: routed,
    stanzaBytes: MESSAGE.length,
    seconds: Number(seconds.toFixed(3)),
    stanzasPerSecond: Math.round(routed / seconds),
    mibPerSecond: Number(((rounds * chunk.length) / seconds / 1048576).toFixed(1)),
  };
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    process.stdout.write(
      `| stanzas | bytes each | seconds | stanzas/s | MiB/s |\n| --- | --- | --- | --- | --- |\n` +
        `| ${result.stanzas} | ${result.stanzaBytes} | ${result.seconds} | ${result.stanzasPerSecond} | ${result.mibPerSecond} |\n`,
    );
  }
  stream.transportClosed();
}

await main();
