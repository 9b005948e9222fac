/**
 * Names in start tags are read 16 bytes at a time by a nibble-table classification (assembly/
 * tokenizer.ts nameStops), byte by byte only for long names and at the window's end. Every
 * ASCII NameChar class must pass at every length and position, and every byte next to those
 * classes must stop a name (XML 1.0 §2.3, Namespaces in XML §3).
 */
import { describe, expect, it } from 'vitest';
import { parseBytewise, parseWhole, STREAM_OPEN } from './core-helpers.js';

const NAME_CHARS = 'abcxyzABCXYZ0189-._';

/** A name of length n cycling through the NameChar classes, starting with a letter. */
const nameOf = (n: number, shift = 0) =>
  Array.from({ length: n }, (_, i) => (i === 0 ? 'q' : NAME_CHARS[(i + shift) % NAME_CHARS.length])).join('');

describe('start tag names', () => {
  it('reads element and attribute names of 1 to 40 bytes from every NameChar class, whole and byte by byte', () => {
    for (let n = 1; n <= 40; n++) {
      const el = nameOf(n);
      const at = nameOf(n, 7);
      const stanza = `<message to='a@b/c' id='i${n}'><${el} ${at}='v' xmlns='urn:x'/></message>`;
      const input = Buffer.from(STREAM_OPEN + stanza);
      for (const ev of [parseWhole(input), parseBytewise(input)]) {
        expect(ev.at(-1)).toMatchObject({ ev: 'stanza', id: `i${n}`, to: 'a@b/c', childName: el, childNamespace: 'urn:x', raw: stanza });
      }
    }
  });

  it('reads prefixed names with their one colon at any place', () => {
    for (let n = 3; n <= 24; n++) {
      for (const at of [1, Math.floor(n / 2), n - 2]) {
        const pfx = nameOf(at);
        const local = nameOf(n - at - 1, 3);
        const stanza = `<message xmlns:${pfx}='urn:p' ${pfx}:${local}='1' id='x'><${pfx}:${local}/></message>`;
        expect(parseWhole(STREAM_OPEN + stanza).at(-1)).toMatchObject({ ev: 'stanza', childName: local, childNamespace: 'urn:p' });
      }
    }
  });

  it('stops a name at each byte just outside the NameChar classes', () => {
    // neighbours of the ranges the nibble tables encode: , / ; @ [ \ ] ^ ` { DEL, and non-name ASCII punctuation
    for (const ch of [',', '/', ';', '@', '[', '\\', ']', '^', '`', '{', '\x7f', '!', '#', '$', '%', '(', '*', '+', '|', '~']) {
      for (const n of [1, 5, 15, 16, 20]) {
        const name = nameOf(n);
        for (const stanza of [`<message ${name}${ch}x='1'/>`, `<message><${name}${ch}x/></message>`]) {
          expect(parseWhole(STREAM_OPEN + stanza).at(-1), `${JSON.stringify(ch)} after ${n} bytes in ${stanza}`).toMatchObject({
            ev: 'error',
            condition: 'not-well-formed',
          });
        }
      }
    }
  });

  it('refuses names with two colons or a colon at either end (Namespaces in XML §3)', () => {
    for (const bad of ['a:b:c', ':ab', 'ab:']) {
      for (const stanza of [`<message xmlns:a='urn:a' ${bad}='1'/>`, `<message xmlns:a='urn:a'><${bad}/></message>`]) {
        expect(parseWhole(STREAM_OPEN + stanza).at(-1), stanza).toMatchObject({ ev: 'error', condition: 'not-well-formed' });
      }
    }
  });
});
