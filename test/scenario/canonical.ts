/**
 * Canonical XML comparison for scenario expectations: attribute order and quote style do not
 * matter, whitespace-only text between elements is ignored, and `*` in an expected attribute
 * value or text is a wildcard (generated ids, resources, timestamps).
 */
import { type Element, parseElement } from '../../src/xml/element.js';

function glob(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
  return re.test(value);
}

type Node = Element | string;

function significant(children: Node[]): Node[] {
  return children.filter((c) => typeof c !== 'string' || c.trim() !== '');
}

/** Returns null when `actual` matches `expected`, else a description of the first difference. */
export function xmlDiff(expected: string, actual: string): string | null {
  let e: Element;
  let a: Element;
  try {
    e = parseElement(expected);
  } catch (err) {
    return `expected XML does not parse: ${(err as Error).message}`;
  }
  try {
    a = parseElement(actual);
  } catch (err) {
    return `received XML does not parse: ${(err as Error).message}`;
  }
  return diffElement(e, a, e.name);
}

function diffElement(e: Element, a: Element, path: string): string | null {
  if (e.name !== a.name) return `${path}: element <${a.name}> where <${e.name}> was expected`;
  const ek = Object.keys(e.attrs).sort();
  const ak = Object.keys(a.attrs).sort();
  for (const k of ek) {
    if (!(k in a.attrs)) return `${path}: attribute ${k} missing`;
    if (!glob(String(e.attrs[k]), String(a.attrs[k]))) return `${path}/@${k}: '${a.attrs[k]}' does not match '${e.attrs[k]}'`;
  }
  for (const k of ak) if (!(k in e.attrs)) return `${path}: unexpected attribute ${k}='${a.attrs[k]}'`;
  const ec = significant(e.children as Node[]);
  const ac = significant(a.children as Node[]);
  if (ec.length === 1 && typeof ec[0] === 'string' && ec[0].trim() === '*') return null; // any content
  if (ec.length !== ac.length) return `${path}: ${ac.length} children where ${ec.length} were expected`;
  for (let i = 0; i < ec.length; i++) {
    const x = ec[i]!;
    const y = ac[i]!;
    if (typeof x === 'string' || typeof y === 'string') {
      if (typeof x !== 'string' || typeof y !== 'string') return `${path}[${i}]: text and element differ`;
      if (!glob(x.trim(), y.trim())) return `${path}: text '${y}' does not match '${x}'`;
      continue;
    }
    const d = diffElement(x, y, `${path}/${x.name}`);
    if (d) return d;
  }
  return null;
}
