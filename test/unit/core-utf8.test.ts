/**
 * UTF-8 in character data (RFC 3629 §4, XML 1.0 §2.2): text made of 2- and 3-byte sequences is
 * validated 16 bytes at a time by lead/continuation masks, other blocks by a per-sequence loop.
 * These tests put valid sequences across every block boundary and every kind of bad sequence at
 * every alignment, and check that both paths agree with the byte-exact expectation.
 */
import { describe, expect, it } from 'vitest';
import { STREAM_OPEN, parseBytewise, parseChunks, parseWhole } from './core-helpers.js';

const OPEN = Buffer.from(STREAM_OPEN + "<message to='romeo@example.net' type='chat'><body>");
const CLOSE = Buffer.from('</body></message>');

function stream(text: Buffer): Buffer {
  return Buffer.concat([OPEN, text, CLOSE]);
}

const TEXTS = {
  cyrillic: 'привет как дела, всё хорошо? ',
  japanese: 'こんにちは、元気ですか。今日は',
  latin: 'très café naïve Grüße aus München ',
  mixed: 'ok привет 元気 🙂 ça va? 👍 done ',
};

describe('UTF-8 text validated by block masks', () => {
  for (const [name, unit] of Object.entries(TEXTS)) {
    it(`accepts ${name} text at every alignment, whole and byte by byte`, () => {
      for (let shift = 0; shift < 16; shift++) {
        const text = Buffer.from('x'.repeat(shift) + unit.repeat(6));
        const input = stream(text);
        const whole = parseWhole(input);
        expect(whole.map((e) => e.ev)).toEqual(['open', 'stanza']);
        const raw = (whole[1] as { raw: string }).raw;
        expect(raw.endsWith(text.toString() + '</body></message>')).toBe(true);
        if (shift % 5 === 0) expect(parseBytewise(input)).toEqual(whole);
        // a chunk boundary inside every sequence of the first 40 bytes of text
        for (let cut = 1; cut < 40; cut += 3) expect(parseChunks(input, [OPEN.length + cut])).toEqual(whole);
      }
    });
  }
});

/** Bad bytes, the error code the core gives (assembly/layout.ts Err) and where it points. */
const BAD: { what: string; bytes: number[]; code: number; at: number }[] = [
  { what: 'a stray continuation byte', bytes: [0x80], code: 1, at: 0 },
  { what: 'a 2-byte lead followed by ASCII', bytes: [0xd0, 0x61], code: 5, at: 0 },
  { what: 'a 3-byte lead with one continuation', bytes: [0xe3, 0x81, 0x61], code: 5, at: 0 },
  { what: 'an overlong 2-byte form (C0)', bytes: [0xc0, 0x80], code: 2, at: 0 },
  { what: 'an overlong 3-byte form (E0 80..9F)', bytes: [0xe0, 0x80, 0x80], code: 2, at: 0 },
  { what: 'a UTF-16 surrogate (ED A0..BF)', bytes: [0xed, 0xa0, 0x80], code: 3, at: 0 },
  { what: 'U+FFFE', bytes: [0xef, 0xbf, 0xbe], code: 6, at: 0 },
  { what: 'a lead above U+10FFFF (F5)', bytes: [0xf5, 0x80, 0x80, 0x80], code: 4, at: 0 },
  { what: 'two leads in a row', bytes: [0xd0, 0xd0, 0xbf], code: 5, at: 0 },
];

describe('UTF-8 errors inside dense non-ASCII text', () => {
  for (const bad of BAD) {
    it(`reports ${bad.what} at its byte, at every alignment`, () => {
      for (let chars = 0; chars < 24; chars++) {
        const before = Buffer.from('д'.repeat(chars));
        const text = Buffer.concat([before, Buffer.from(bad.bytes), Buffer.from('ещё немного текста здесь')]);
        const input = stream(text);
        const offset = OPEN.length + before.length + bad.at;
        const whole = parseWhole(input);
        const last = whole[whole.length - 1];
        expect(last, `${chars} characters before`).toMatchObject({ ev: 'error', code: bad.code, condition: 'not-well-formed', offset });
        if (chars % 7 === 0) expect(parseBytewise(input)).toEqual(whole);
      }
    });
  }

  it('reports a sequence cut by markup at its lead', () => {
    for (let chars = 0; chars < 20; chars++) {
      const text = Buffer.concat([Buffer.from('д'.repeat(chars)), Buffer.from([0xd0])]);
      const input = Buffer.concat([OPEN, text, CLOSE]);
      const last = parseWhole(input).at(-1);
      expect(last).toMatchObject({ ev: 'error', code: 5, offset: OPEN.length + chars * 2 });
    }
  });
});
