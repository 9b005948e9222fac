/**
 * The login path with the real mechanisms (src/stream/sasl) and the WASM core: SCRAM answered
 * against stored keys, PLAIN first through PBKDF2 and then remembered, input pipelined behind
 * <auth/>, and the log line of a failed attempt.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScramClient } from '../../bench/load/scram.js';
import { loadCore } from '../../src/core/parser.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { C2SStream, StreamPhase, type C2SDeps } from '../../src/stream/c2s.js';
import { SaslProvider, decodeSaslPayload } from '../../src/stream/sasl/index.js';
import { randomBase64, randomHex } from '../../src/stream/random.js';
import { BIND, HEADER, RecordingTransport, SASL, STREAM_OPTIONS, plainAuth, recordingRouter } from './stream-helpers.js';

const core = loadCore();

class AddressedTransport extends RecordingTransport {
  readonly remoteAddress = '192.0.2.7';
}

function world() {
  const storage = createMemoryStorage({ iterations: 64 });
  storage.users.create('alice@localhost', 'secret');
  const sasl = new SaslProvider({ users: storage.users, domain: 'localhost', iterations: 64 });
  const logged: { fields: Record<string, unknown>; message: string }[] = [];
  const deps: C2SDeps = {
    core,
    router: recordingRouter(),
    sasl,
    log: { info: (fields, message) => logged.push({ fields: fields as Record<string, unknown>, message }) },
  };
  const open = () => {
    const transport = new AddressedTransport({ secure: true });
    const stream = new C2SStream(transport, STREAM_OPTIONS, deps);
    /** Feed, wait until something is written (PBKDF2 may take a few ms), return it. */
    const feed = async (text: string): Promise<string> => {
      stream.feed(Buffer.from(text));
      for (let i = 0; i < 200 && transport.writes.length === 0; i++) await sleep(i < 5 ? 0 : 5);
      return transport.take();
    };
    return { transport, stream, feed };
  };
  return { open, logged };
}

function inner(xml: string): string {
  return xml.slice(xml.indexOf('>') + 1, xml.lastIndexOf('</'));
}

describe('login path', () => {
  it('logs in with SCRAM-SHA-256 against stored keys and proves the server knows them (RFC 7677)', async () => {
    const { open } = world();
    const s = open();
    expect(await s.feed(HEADER)).toContain('<mechanism>SCRAM-SHA-256</mechanism>');
    const client = new ScramClient('sha256', 'alice', 'secret');
    const challenge = await s.feed(`<auth ${SASL} mechanism='SCRAM-SHA-256'>${Buffer.from(client.first()).toString('base64')}</auth>`);
    expect(challenge).toMatch(/^<challenge /);
    const final = await client.final(Buffer.from(inner(challenge), 'base64').toString());
    const success = await s.feed(`<response ${SASL}>${Buffer.from(final).toString('base64')}</response>`);
    expect(success).toMatch(/^<success [^>]*>[^<]+<\/success>$/);
    expect(client.verify(Buffer.from(inner(success), 'base64').toString())).toBe(true);
    await s.feed(HEADER);
    expect(await s.feed(BIND)).toContain('<jid>alice@localhost/phone</jid>');
  });

  it('takes a restart and bind pipelined behind PLAIN, through PBKDF2 and again once remembered', async () => {
    const { open } = world();
    for (const round of ['first login (PBKDF2)', 'remembered login'] as const) {
      const s = open();
      await s.feed(HEADER);
      s.stream.feed(Buffer.from(`<auth ${SASL} mechanism='PLAIN'>${plainAuth('alice', 'secret')}</auth>` + HEADER + BIND));
      for (let i = 0; i < 200 && s.stream.phase !== StreamPhase.Bound; i++) await sleep(i < 5 ? 0 : 5);
      await sleep(0);
      const writes = s.transport.writes.length;
      const out = s.transport.take();
      expect(out, round).toMatch(/^<success [^>]*><\/success><\?xml version='1.0'\?><stream:stream .*<stream:features><bind /);
      expect(out, round).toContain('<jid>alice@localhost/phone</jid>');
      // Remembered: no thread-pool work, so everything is answered in the turn of the read.
      if (round === 'remembered login') expect(writes).toBe(1);
    }
  });

  it('logs a failed authentication at info with the name tried, mechanism and address, never the password', async () => {
    const { open, logged } = world();
    const s = open();
    await s.feed(HEADER);
    expect(await s.feed(`<auth ${SASL} mechanism='PLAIN'>${plainAuth('alice', 'hunter2')}</auth>`)).toContain('<not-authorized/>');
    expect(logged).toEqual([{ fields: { account: 'alice', mechanism: 'PLAIN', address: '192.0.2.7' }, message: 'authentication failed' }]);
    expect(JSON.stringify(logged)).not.toContain('hunter2');
    // A success is counted in the metrics, not logged.
    expect(await s.feed(`<auth ${SASL} mechanism='PLAIN'>${plainAuth('alice', 'secret')}</auth>`)).toContain('<success');
    expect(logged).toHaveLength(1);
  });

  it('decodes SASL payloads exactly as the RFC 4648 §4 rule says (one-pass decoder against the regex rule)', () => {
    // The rule as written before the one-pass decoder: strip whitespace, '=' alone is empty data,
    // otherwise padded base64 or <incorrect-encoding/> (RFC 6120 §6.4.2, §6.5.5).
    const reference = (text: string): Buffer | null | 'incorrect-encoding' => {
      const compact = text.replace(/[ \t\r\n]/g, '');
      if (compact === '') return null;
      if (compact === '=') return Buffer.alloc(0);
      if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return 'incorrect-encoding';
      return Buffer.from(compact, 'base64');
    };
    const actual = (text: string): Buffer | null | 'incorrect-encoding' => {
      try {
        return decodeSaslPayload(text);
      } catch (err) {
        return (err as { condition: string }).condition as 'incorrect-encoding';
      }
    };
    const chars = fc.constantFrom(...'AQYZaz09+/=== \n\r\t*-_é'.split(''));
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 14 }), fc.uint8Array({ maxLength: 12 }), (cs, bytes) => {
        const text = cs.join('');
        expect(actual(text)).toEqual(reference(text));
        const b64 = Buffer.from(bytes).toString('base64');
        expect(actual(b64)).toEqual(reference(b64));
      }),
      { numRuns: 3000, seed: 4616 },
    );
  });

  it('draws stream ids and nonces from the random pool without reuse', () => {
    const seen = new Set<string>();
    // More than one 4 KiB pool's worth, so the refill is crossed.
    for (let i = 0; i < 600; i++) seen.add(randomHex(16));
    expect(seen.size).toBe(600);
    for (const id of seen) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(randomBase64(18)).toMatch(/^[A-Za-z0-9+/]{24}$/);
  });
});
