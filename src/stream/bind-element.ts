/**
 * What the stream needs of a resource binding request (RFC 6120 §7.5, §7.6): the text of the
 * <resource/> the client asks for, read straight from the IQ's text.
 *
 * Every login sends one; an ltx tree for it (parser, elements, text nodes) was ~2.8 KB of garbage
 * per login, the largest allocation of Hermod's own code on the login path (docs/benchmarks.md,
 * "Logins, fourth pass"). The core has already checked the stanza is well-formed and that its one
 * child is in the bind namespace, so a plain scan suffices for the shape clients send
 * (`<bind xmlns='…'/>`, or `<bind xmlns='…'><resource>text</resource></bind>`); anything else
 * (attributes or a prefix on <resource/>, other children, references, CDATA) returns undefined
 * and goes through ltx, so both paths give the same answer (test/unit/stream-bind-element.test.ts).
 */

const SLASH = 0x2f;
const GT = 0x3e;
const QUOT = 0x22;
const APOS = 0x27;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

/** Index of the '>' ending the tag that starts at `lt`, skipping quoted values (which may hold '>'). */
function tagEnd(s: string, lt: number): number {
  for (let i = lt + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === GT) return i;
    if (c === QUOT || c === APOS) {
      i = s.indexOf(c === QUOT ? '"' : "'", i + 1);
      if (i < 0) return -1;
    }
  }
  return -1;
}

/**
 * The requested resource of a bind IQ's text: a string, null when none is asked for (the server
 * then picks one, §7.6), or undefined when the request needs a real parser.
 */
export function scanBindResource(raw: string): string | null | undefined {
  const iqEnd = tagEnd(raw, 0);
  if (iqEnd < 0) return undefined;
  let i = skipSpace(raw, iqEnd + 1);
  if (!raw.startsWith('<bind', i)) return undefined;
  const after = raw.charCodeAt(i + 5);
  if (!isSpace(after) && after !== GT && after !== SLASH) return undefined;
  const bindEnd = tagEnd(raw, i);
  if (bindEnd < 0) return undefined;
  if (raw.charCodeAt(bindEnd - 1) === SLASH) return null;
  i = skipSpace(raw, bindEnd + 1);
  // Well-formed and bind the only child: an end tag here is bind's own.
  if (raw.startsWith('</', i)) return null;
  if (!raw.startsWith('<resource>', i)) return undefined;
  const textStart = i + 10;
  const textEnd = raw.indexOf('<', textStart);
  if (textEnd < 0 || !raw.startsWith('</resource>', textEnd)) return undefined;
  const text = raw.slice(textStart, textEnd);
  if (text.includes('&')) return undefined;
  if (!raw.startsWith('</', skipSpace(raw, textEnd + 11))) return undefined;
  return text.length === 0 ? null : text;
}
