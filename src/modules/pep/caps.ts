/**
 * XEP-0115 Entity Capabilities, the server's side: what a client's <c/> in its presence means.
 * PEP needs it for XEP-0163 §4.2 filtered notifications: a resource gets events of node N only
 * when its features include 'N+notify' (XEP-0060 §9.2).
 *
 * The hash names a feature set; the server asks one client that announced it (disco#info to
 * node#ver), checks the answer against the hash (§5.1 verification string, §5.4 processing) and
 * remembers the features under the hash, so that the next thousand clients of the same software
 * cost nothing. A wrong answer is not remembered under the hash (it would poison it for every
 * other client announcing it) but still serves the one client that gave it: that client told the
 * truth about itself, whatever its hash says.
 */
import { createHash } from 'node:crypto';
import { childElements, type Element } from '../../xml/element.js';
import { attr } from '../../xml/escape.js';

export const CAPS_NS = 'http://jabber.org/protocol/caps';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';

/** XEP-0115 §5.1 step 1: the hash functions of the IANA registry that Node offers. */
const HASHES: Record<string, string> = { 'sha-1': 'sha1', 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512', md5: 'md5' };

export interface Caps {
  node: string;
  ver: string;
  /** Null for legacy caps (before XEP-0115 1.5) whose ver is no hash: nothing to verify. */
  hash: string | null;
}

/** The <c/> of a presence stanza, or null when it carries none usable. */
export function capsOf(presence: Element): Caps | null {
  const c = presence.getChild('c', CAPS_NS);
  if (!c) return null;
  const { node, ver, hash } = c.attrs as Record<string, string | undefined>;
  if (!node || !ver) return null;
  return { node, ver, hash: hash ?? null };
}

/** Cache key: the hash function and value (the node is informational, §6.2.1). */
export function capsKey(caps: Caps): string {
  return caps.hash === null ? `legacy ${caps.node}#${caps.ver}` : `${caps.hash} ${caps.ver}`;
}

/** XEP-0115 §5.1 octet-wise ordering ('i;octet' collation, RFC 4790 §9.3). */
const octets = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** XEP-0115 §5.1: the verification string of a disco#info <query/>. */
export function verificationString(query: Element): string {
  const children = childElements(query);
  const identities = children
    .filter((c) => c.getName() === 'identity')
    .map((i) => `${i.attrs.category ?? ''}/${i.attrs.type ?? ''}/${i.attrs['xml:lang'] ?? ''}/${i.attrs.name ?? ''}`)
    .sort(octets);
  const features = children
    .filter((c) => c.getName() === 'feature')
    .map((f) => String(f.attrs.var ?? ''))
    .sort(octets);
  // XEP-0128 extended information: forms sorted by FORM_TYPE, fields by var, values sorted.
  const forms = children
    .filter((c) => c.getName() === 'x' && c.attrs.xmlns === 'jabber:x:data')
    .map((x) => {
      let formType = '';
      const fields: string[] = [];
      for (const f of childElements(x)) {
        if (f.getName() !== 'field') continue;
        const values = f.getChildren('value').map((v) => v.getText()).sort(octets);
        if (f.attrs.var === 'FORM_TYPE') formType = values[0] ?? '';
        else fields.push(`${f.attrs.var ?? ''}<${values.map((v) => `${v}<`).join('')}`);
      }
      return { formType, text: `${formType}<${fields.sort(octets).join('')}` };
    })
    // XEP-0115 §5.4 step 3.5: a form without FORM_TYPE is not part of the string.
    .filter((f) => f.formType !== '')
    .sort((a, b) => octets(a.formType, b.formType));
  return identities.map((i) => `${i}<`).join('') + features.map((f) => `${f}<`).join('') + forms.map((f) => f.text).join('');
}

/**
 * XEP-0115 §5.4 step 3: whether the answer matches the announced hash. Legacy caps and hash
 * functions we do not have cannot be checked: false (the caller trusts legacy caps by node#ver,
 * as pre-1.5 servers did, and anything else for the one client that answered).
 */
export function verifies(caps: Caps, query: Element): boolean {
  const algo = caps.hash === null ? undefined : HASHES[caps.hash.toLowerCase()];
  if (!algo) return false;
  const children = childElements(query);
  // §5.4 step 3.3–3.4: duplicate identities, features or form types fail verification.
  const seen = new Set<string>();
  for (const c of children) {
    const name = c.getName();
    let key: string;
    if (name === 'identity' || name === 'feature') key = `${name} ${JSON.stringify(c.attrs)}`;
    else if (name === 'x' && c.attrs.xmlns === 'jabber:x:data') {
      const type = c.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE');
      if (!type) continue;
      key = `form ${type.getChildText('value') ?? ''}`;
    } else continue;
    if (seen.has(key)) return false;
    seen.add(key);
  }
  return createHash(algo).update(verificationString(query), 'utf8').digest('base64') === caps.ver;
}

/** The features of a disco#info <query/>. */
export function featuresOf(query: Element): string[] {
  return childElements(query)
    .filter((c) => c.getName() === 'feature' && typeof c.attrs.var === 'string')
    .map((f) => f.attrs.var as string);
}

/** The nodes a feature list asks notifications for (XEP-0060 §9.2 'NODE+notify'). */
export function notifyNodes(features: readonly string[]): string[] {
  return features.filter((f) => f.endsWith('+notify') && f.length > 7).map((f) => f.slice(0, -7));
}

export function discoQuery(id: string, from: string, to: string, caps: Caps): string {
  return `<iq type='get'${attr('id', id)}${attr('from', from)}${attr('to', to)}><query xmlns='${DISCO_INFO}'${attr('node', `${caps.node}#${caps.ver}`)}/></iq>`;
}

/**
 * Resolved feature sets by caps key, bounded: a client may announce a fresh random hash with
 * every presence, and each would otherwise stay forever. When full, the oldest half goes.
 */
export class CapsCache {
  private readonly map = new Map<string, string[]>();
  constructor(private readonly max = 2000) {}

  get(key: string): string[] | undefined {
    return this.map.get(key);
  }

  set(key: string, notify: string[]): void {
    if (this.map.size >= this.max) {
      let drop = this.map.size >> 1;
      for (const k of this.map.keys()) {
        if (drop-- <= 0) break;
        this.map.delete(k);
      }
    }
    this.map.set(key, notify);
  }

  get size(): number {
    return this.map.size;
  }
}
