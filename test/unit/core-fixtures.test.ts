import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CODES } from '../../src/core/codes.js';
import { parseBytewise, parseChunks, parseWhole, STREAM_OPEN_NO_DECL, type EventRecord } from './core-helpers.js';

const dir = fileURLToPath(new URL('../fixtures/xml/', import.meta.url));
const files = (sub: string) => readdirSync(dir + sub).filter((f) => f.endsWith('.xml')).sort();

/** Fixture bytes, wrapped in a stream header when the file holds stanzas only (see README). */
export function fixture(sub: string, name: string): Buffer {
  const data = readFileSync(`${dir}${sub}/${name}`);
  const text = data.toString('latin1');
  const raw =
    /^\d+-raw-/.test(name) || text.includes('<stream') || /^(<\?xml|\xef\xbb\xbf|\s)/.test(text);
  if (raw) return data;
  return Buffer.concat([Buffer.from(STREAM_OPEN_NO_DECL), data, Buffer.from('</stream:stream>')]);
}

/** The error text names the offending token as far as it had arrived: compare without it. */
const stable = (events: EventRecord[]) => events.map((e) => (e.ev === 'error' ? { ...e, message: '' } : e));

function splitsAgree(input: Buffer, whole: EventRecord[]): void {
  whole = stable(whole);
  expect(stable(parseBytewise(input))).toEqual(whole);
  for (let i = 1; i < input.length; i++) {
    const split = stable(parseChunks(input, [i]));
    if (JSON.stringify(split) !== JSON.stringify(whole)) expect({ splitAt: i, events: split }).toEqual({ splitAt: i, events: whole });
  }
}

describe('pass fixtures: well-formed restricted XML streams', () => {
  for (const name of files('pass')) {
    it(`${name} parses without error, identically in every chunking`, () => {
      const input = fixture('pass', name);
      const whole = parseWhole(input);
      expect(whole.filter((e) => e.ev === 'error')).toEqual([]);
      expect(whole[0].ev).toBe('open');
      expect(whole.at(-1)!.ev).toBe('close');
      splitsAgree(input, whole);
    });
  }
});

describe('fail fixtures: each gives its specific core error code', () => {
  for (const name of files('fail')) {
    const code = Number(name.split('-')[0]);
    it(`${name} → ${CODES.get(code)?.condition} (code ${code}), identically in every chunking`, () => {
      const input = fixture('fail', name);
      const whole = parseWhole(input);
      const last = whole.at(-1)!;
      expect(last.ev).toBe('error');
      if (last.ev !== 'error') return;
      expect(last.code).toBe(code);
      expect(last.condition).toBe(CODES.get(code)!.condition);
      expect(last.offset).toBeGreaterThanOrEqual(0);
      expect(last.offset).toBeLessThan(input.length);
      // nothing reported after a fatal error; stanzas before it were all delivered
      expect(whole.filter((e) => e.ev === 'error')).toHaveLength(1);
      splitsAgree(input, whole);
    });
  }
});
