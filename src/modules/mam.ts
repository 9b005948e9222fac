/**
 * XEP-0313 Message Archive Management, the user archive (urn:xmpp:mam:2 and #extended), with
 * XEP-0359 stanza ids and the XEP-0441 preferences protocol.
 *
 * Archiving rides on the router's message path in two steps:
 *   'message/stamp'  (before delivery) decide whether the sender's and the recipient's archives
 *                    take the message, give it one server id and add <stanza-id by='account'/>
 *                    for each archive that takes it, so every copy delivered, stored offline or
 *                    carbon-copied carries the id the archive will answer to;
 *   'message/routed' (after delivery succeeded) append it to those archives. The store batches
 *                    appends per event-loop turn (storage/archive-sqlite.ts).
 * Both archives share the id: one id per message, and a client seeing the same message as sent
 * (carbon) and in its archive can match them.
 *
 * Queries, preferences and metadata are IQs to the account itself; results go to the asking
 * resource only.
 */
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { IqEvent, MessageStampEvent, Module, RouterContext, RoutedMessageEvent } from '../router/context.js';
import {
  ARCHIVE_DEFAULTS,
  archiveIds,
  archiveIdTime,
  UnknownArchiveId,
  type ArchiveDefault,
  type ArchivedMessage,
  type ArchiveEntry,
  type ArchivePage,
  type ArchivePrefs,
  type ArchiveQuery,
  type ArchiveStore,
} from '../storage/archive.js';
import type { Storage } from '../storage/types.js';
import { attr, escapeText } from '../xml/escape.js';
import { childElements, parseElement, type Element } from '../xml/element.js';
import { forwardedXml } from './carbons.js';

export const MAM_NS = 'urn:xmpp:mam:2';
export const MAM_EXTENDED = 'urn:xmpp:mam:2#extended';
export const SID_NS = 'urn:xmpp:sid:0';
const RSM_NS = 'http://jabber.org/protocol/rsm';
const DATA_NS = 'jabber:x:data';
const FORWARD_NS = 'urn:xmpp:forward:0';
const DELAY_NS = 'urn:xmpp:delay';
const HINTS_NS = 'urn:xmpp:hints';

/** Page size when the client gives no <max/>, and the most one page holds (XEP-0059 §2.1 lets us return fewer). */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 250;
/** Entries per always/never list (XEP-0441); more is refused rather than stored. */
const MAX_PREF_JIDS = 1000;

export interface MamSettings {
  /** Policy of accounts that never set preferences (config `mam.default`). */
  default: ArchiveDefault;
  /** Messages older than this are purged (ms); 0 keeps them. */
  maxAge: number;
  /** Newest messages kept per account; 0 = no cap. */
  maxPerUser: number;
  /** How often retention runs (ms); 0 = never (tests call purgeArchives). */
  purgeInterval: number;
}

/**
 * A router built without settings (library use, unit tests) archives only for accounts that ask
 * through preferences; the server passes the configured ones (default 'always').
 */
const UNCONFIGURED: MamSettings = { default: 'never', maxAge: 0, maxPerUser: 0, purgeInterval: 0 };

/** Retention (config mam.max_age, mam.max_per_user): returns how many messages were removed. */
export function purgeArchives(storage: Storage, settings: Pick<MamSettings, 'maxAge' | 'maxPerUser'>, now: Date): number {
  if (settings.maxAge <= 0 && settings.maxPerUser <= 0) return 0;
  return storage.mam.purge({
    before: settings.maxAge > 0 ? new Date(now.getTime() - settings.maxAge) : undefined,
    maxPerUser: settings.maxPerUser,
  });
}

// ---------------------------------------------------------------------------- the message path

const BODY = Buffer.from('<body');
const HINTS = Buffer.from(HINTS_NS);
const MAM = Buffer.from(MAM_NS);

/**
 * A query result from another archive (XEP-0313 'Query results': a room's, reaching the account
 * through a shard with --workers N): it forwards an archived message, and is none itself. Parsed
 * only when the namespace appears at all (by expanded name, as for forged stanza-ids).
 */
function isArchiveResult(b: Buffer): boolean {
  if (b.indexOf(MAM) < 0) return false;
  return parseElement(b).children.some((c) => typeof c !== 'string' && c.getName() === 'result' && c.getNS() === MAM_NS);
}
const SID = Buffer.from(SID_NS);
const CLOSE_TAG = Buffer.from('</');

/** A <body> child (XEP-0313 'Business rules': messages with a body are archived). */
function hasBody(b: Buffer): boolean {
  for (let i = b.indexOf(BODY); i >= 0; i = b.indexOf(BODY, i + BODY.length)) {
    const c = b[i + BODY.length];
    if (c === 0x3e || c === 0x2f || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) return true;
  }
  return false;
}

/** XEP-0334 hints the sender gave: store (archive even without a body), no-store / no-permanent-store (never). */
function hints(b: Buffer): { store: boolean; forbid: boolean } {
  if (b.indexOf(HINTS) < 0) return { store: false, forbid: false };
  const text = b.toString('utf8');
  const re = /<(no-permanent-store|no-store|store)\s+xmlns\s*=\s*['"]urn:xmpp:hints['"]/g;
  let store = false;
  let forbid = false;
  let found = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    found++;
    if (m[1] === 'store') store = true;
    else forbid = true;
  }
  // Every mention of the namespace was a hint in the shape clients write: done. Otherwise (a
  // prefix, another attribute before xmlns) the one stanza is read by expanded name, as the
  // sender meant it.
  if (found === text.split(HINTS_NS).length - 1) return { store, forbid };
  for (const c of parseElement(text).children) {
    if (typeof c === 'string' || c.getNS() !== HINTS_NS) continue;
    if (c.getName() === 'store') store = true;
    else if (c.getName() === 'no-store' || c.getName() === 'no-permanent-store') forbid = true;
  }
  return { store, forbid };
}

/**
 * XEP-0359 'Security Considerations': a <stanza-id/> claiming to come from this server (by= one of its
 * accounts or the domain) was not written by it and must not reach the recipient, or a client
 * could be made to treat a forged id as its archive's. Rare (clients do not send them), so the
 * one stanza is parsed when the namespace appears at all.
 */
function stripForgedIds(b: Buffer, domain: string): Buffer {
  if (b.indexOf(SID) < 0) return b;
  const el = parseElement(b);
  const before = el.children.length;
  el.children = el.children.filter((c) => {
    // By expanded name: a prefixed <s:stanza-id xmlns:s='urn:xmpp:sid:0'/> is the same element
    // to the recipient's namespace-aware parser.
    if (typeof c === 'string' || c.getName() !== 'stanza-id' || c.getNS() !== SID_NS) return true;
    const by = Jid.tryParse(String(c.attrs.by ?? ''));
    return by !== null && by.domain !== domain;
  });
  return el.children.length === before ? b : Buffer.from(el.toString(), 'utf8');
}

/** What 'message/stamp' decided, for 'message/routed' to store once delivery went through. */
interface Pending {
  bytes: Buffer;
  entries: ArchiveEntry[];
}

// ---------------------------------------------------------------------------- preferences

function prefsXml(p: ArchivePrefs): string {
  const list = (name: string, jids: string[]) =>
    jids.length === 0 ? `<${name}/>` : `<${name}>${jids.map((j) => `<jid>${escapeText(j)}</jid>`).join('')}</${name}>`;
  return `<prefs xmlns='${MAM_NS}'${attr('default', p.default)}>${list('always', p.always)}${list('never', p.never)}</prefs>`;
}

/** XEP-0441 (updating preferences): read a <prefs/> set; bad values are bad-request, a malformed JID jid-malformed. */
function readPrefs(el: Element): ArchivePrefs {
  const policy = el.attrs.default;
  if (!ARCHIVE_DEFAULTS.includes(policy as ArchiveDefault)) throw new StanzaError('bad-request', "default must be 'always', 'never' or 'roster'");
  const jids = (name: string): string[] => {
    const list = childElements(el).find((c) => c.getName() === name && c.getNS() === MAM_NS);
    if (!list) return [];
    const out = childElements(list)
      .filter((c) => c.getName() === 'jid')
      .map((c) => Jid.parse(c.getText().trim()).full);
    if (out.length > MAX_PREF_JIDS) throw new StanzaError('not-acceptable', `at most ${MAX_PREF_JIDS} JIDs per list`);
    return [...new Set(out)];
  };
  return { default: policy as ArchiveDefault, always: jids('always'), never: jids('never') };
}

// ---------------------------------------------------------------------------- queries

/** XEP-0082 DateTime, as XEP-0313 'Filtering by time received' requires for start/end. */
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function readDate(field: string, text: string): Date {
  const ms = DATETIME.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new StanzaError('bad-request', `${field} must be an XEP-0082 DateTime`);
  return new Date(ms);
}

/** The query form's fields (XEP-0313 'Filtering results', and after-id/before-id/ids of #extended). */
export const FORM_FIELDS = [
  `<field type='hidden' var='FORM_TYPE'><value>${MAM_NS}</value></field>`,
  `<field type='jid-single' var='with'/>`,
  `<field type='text-single' var='start'/>`,
  `<field type='text-single' var='end'/>`,
  `<field type='text-single' var='after-id'/>`,
  `<field type='text-single' var='before-id'/>`,
  `<field type='text-multi' var='ids'/>`,
].join('');

function readForm(x: Element, out: ArchiveQuery): void {
  if (x.attrs.type !== undefined && x.attrs.type !== 'submit') throw new StanzaError('bad-request', "the form must be of type 'submit'");
  for (const field of childElements(x)) {
    if (field.getName() !== 'field') continue;
    const name = String(field.attrs.var ?? '');
    const values = childElements(field)
      .filter((c) => c.getName() === 'value')
      .map((c) => c.getText().trim());
    const value = values[0] ?? '';
    if (name === 'FORM_TYPE') {
      if (value !== MAM_NS) throw new StanzaError('bad-request', `FORM_TYPE must be ${MAM_NS}`);
      continue;
    }
    if (name === 'ids') {
      const list = values.filter((v) => v !== '');
      if (list.length > MAX_PAGE) throw new StanzaError('policy-violation', `at most ${MAX_PAGE} ids`);
      out.ids = list;
      continue;
    }
    // An empty field filters nothing (some clients send every field of the form they were given).
    if (value === '') continue;
    switch (name) {
      case 'with': {
        const jid = Jid.tryParse(value);
        if (!jid) throw new StanzaError('bad-request', "'with' is not a valid JID");
        out.with = jid.full;
        break;
      }
      case 'start':
        out.start = readDate('start', value);
        break;
      case 'end':
        out.end = readDate('end', value);
        break;
      case 'after-id':
        out.afterId = value;
        break;
      case 'before-id':
        out.beforeId = value;
        break;
      default:
        // XEP-0313 'Retrieving form fields': a field the server does not recognise is
        // feature-not-implemented (a filter silently ignored would return the wrong messages).
        throw new StanzaError('feature-not-implemented', `unsupported field '${name}'`);
    }
  }
}

/** XEP-0059 §2: max, after, before (empty = last page); index paging is not offered (§2.6). */
function readSet(set: Element, out: ArchiveQuery): void {
  for (const c of childElements(set)) {
    const text = c.getText().trim();
    switch (c.getName()) {
      case 'max':
        if (!/^\d{1,9}$/.test(text)) throw new StanzaError('bad-request', '<max/> must be a non-negative integer');
        out.max = Math.min(Number(text), MAX_PAGE);
        break;
      case 'after':
        if (text === '') throw new StanzaError('bad-request', '<after/> needs an id');
        out.after = text;
        break;
      case 'before':
        out.before = text;
        break;
      case 'index':
        throw new StanzaError('feature-not-implemented', 'paging by index is not supported');
      default:
        break;
    }
  }
  if (out.after !== undefined && out.before !== undefined) throw new StanzaError('bad-request', 'page either after or before an id, not both');
}

/** A <query/> set → the store query and whether to flip the page (#extended 'flip-page'). */
export function readQuery(query: Element): { query: ArchiveQuery; flip: boolean } {
  const out: ArchiveQuery = { max: DEFAULT_PAGE };
  let flip = false;
  for (const c of childElements(query)) {
    // By expanded name (Namespaces in XML §6): a prefix is the client's choice.
    if (c.getName() === 'x' && c.getNS() === DATA_NS) readForm(c, out);
    else if (c.getName() === 'set' && c.getNS() === RSM_NS) readSet(c, out);
    else if (c.getName() === 'flip-page') flip = true;
  }
  return { query: out, flip };
}

/**
 * XEP-0313 'Query results': one archived message for the asker, from the archive's JID;
 * `stanza` is the message as forwarded (a room archive adds the sender's real JID to it).
 */
export function resultXml(from: string, to: string, queryid: string | undefined, m: ArchivedMessage, stanza = m.stanza): string {
  return (
    `<message${attr('from', from)}${attr('to', to)}>` +
    `<result xmlns='${MAM_NS}'${attr('queryid', queryid)}${attr('id', m.id)}>` +
    `<forwarded xmlns='${FORWARD_NS}'><delay xmlns='${DELAY_NS}'${attr('stamp', m.stamp.toISOString())}/>` +
    `${forwardedXml(stanza)}</forwarded></result></message>`
  );
}

/** The query's page in the order asked (#extended 'flip-page' reverses it; paging is unchanged). */
export function pageOrder(page: ArchivePage, flip: boolean): ArchivedMessage[] {
  return flip ? [...page.items].reverse() : page.items;
}

/** XEP-0313 'Paging through results': the <fin/> after the results, with the XEP-0059 set of the page. */
export function finXml(page: ArchivePage): string {
  const first = page.items[0];
  const last = page.items[page.items.length - 1];
  const rsm =
    `<set xmlns='${RSM_NS}'>` +
    (first && last ? `<first>${escapeText(first.id)}</first><last>${escapeText(last.id)}</last>` : '') +
    (page.count === undefined ? '' : `<count>${page.count}</count>`) +
    `</set>`;
  return `<fin xmlns='${MAM_NS}'${page.complete ? " complete='true'" : ''}>${rsm}</fin>`;
}

/** XEP-0313 #extended 'Archive metadata': the first and last message of an archive. */
export function metadataXml(b: { first: ArchivedMessage; last: ArchivedMessage } | null): string {
  const edge = (name: string, m: ArchivedMessage) => `<${name}${attr('id', m.id)}${attr('timestamp', m.stamp.toISOString())}/>`;
  return b ? `<metadata xmlns='${MAM_NS}'>${edge('start', b.first)}${edge('end', b.last)}</metadata>` : `<metadata xmlns='${MAM_NS}'/>`;
}

/** Run a store query, turning an id the archive does not hold into the error XEP-0313 asks for. */
export function queryArchive(archive: ArchiveStore, owner: string, query: ArchiveQuery): ArchivePage {
  try {
    return archive.query(owner, query);
  } catch (err) {
    // XEP-0313 'Paging' / XEP-0059 §2: a UID in after/before (or after-id/before-id) that is not in the archive.
    if (err instanceof UnknownArchiveId) throw new StanzaError('item-not-found', err.message);
    throw err;
  }
}

// ---------------------------------------------------------------------------- the module

export function mam(configured?: MamSettings): Module {
  const settings = configured ?? UNCONFIGURED;
  return {
    name: 'mam',
    install(ctx) {
      installMam(ctx, settings);
    },
  };
}

function installMam(ctx: RouterContext, settings: MamSettings): void {
  const archive = ctx.storage.mam;
  // XEP-0313 'Determining support' / XEP-0359 'Discovering support': on the account's bare JID, where the archive lives.
  for (const f of [MAM_NS, MAM_EXTENDED, SID_NS]) ctx.features.addAccountFeature(f);

  // The SQLite store answers prefs() from an exact in-memory copy (storage/archive-prefs-cache.ts):
  // a change made on any shard applies to the next message.
  const prefsOf = (owner: string): ArchivePrefs | null => archive.prefs(owner);
  const effective = (owner: string): ArchivePrefs => prefsOf(owner) ?? { default: settings.default, always: [], never: [] };

  /** XEP-0441: a JID in 'never' is not archived even if also in 'always'; then the default ('roster': the contact is in the roster). */
  const archives = (owner: string, contact: Jid): boolean => {
    const p = prefsOf(owner);
    if (p === null) {
      if (settings.default === 'roster') return ctx.storage.rosters.get(owner, contact.bare) !== null;
      return settings.default === 'always';
    }
    const listed = (list: string[]) => list.includes(contact.bare) || (contact.resource !== null && list.includes(contact.full));
    if (listed(p.never)) return false;
    if (listed(p.always)) return true;
    if (p.default === 'roster') return ctx.storage.rosters.get(owner, contact.bare) !== null;
    return p.default === 'always';
  };

  let pending: Pending | null = null;
  const nextId = archiveIds();

  ctx.hooks.on('message/stamp', (ev: MessageStampEvent) => {
    pending = null;
    // XEP-0359 'Security Considerations': forged ids go from every message type, not only the
    // archived ones (a headline or error carrying by='account' would pass for an archive id).
    const clean = stripForgedIds(ev.bytes, ctx.domain);
    ev.bytes = clean;
    // XEP-0313 'Business rules': chat and normal messages; never errors, headlines, or groupchat
    // (a user archive does not hold MUC traffic).
    if (ev.type !== 'chat' && ev.type !== 'normal') return;
    const h = hints(clean);
    if (h.forbid || (!h.store && !hasBody(clean)) || isArchiveResult(clean)) return;
    const sender = ev.sender.jid;
    const recipient = ev.to.bare;
    const owners: { owner: string; with: string }[] = [];
    // Outgoing: the sender is an account here (not a component entering through routeFrom).
    if (sender.local !== null && sender.domain === ctx.domain && sender.bare !== recipient && archives(sender.bare, ev.to)) {
      owners.push({ owner: sender.bare, with: ev.to.full });
    }
    if (archives(recipient, sender)) owners.push({ owner: recipient, with: sender.full });
    if (owners.length === 0) return;
    const close = clean.lastIndexOf(CLOSE_TAG);
    if (close < 0) return;
    // XEP-0313 'Business rules': an id unique in the archive and unpredictable (storage/archive.ts).
    const id = nextId(ctx.now());
    const ids = owners.map((o) => `<stanza-id xmlns='${SID_NS}'${attr('by', o.owner)}${attr('id', id)}/>`).join('');
    ev.bytes = Buffer.concat([clean.subarray(0, close), Buffer.from(ids, 'utf8'), clean.subarray(close)]);
    const stamp = new Date(archiveIdTime(id));
    const stanza = clean.toString('utf8');
    pending = { bytes: ev.bytes, entries: owners.map((o) => ({ owner: o.owner, id, stamp, with: o.with, stanza })) };
  });

  ctx.hooks.on('message/routed', (ev: RoutedMessageEvent) => {
    const p = pending;
    pending = null;
    if (p === null || p.bytes !== ev.bytes) return;
    for (const e of p.entries) archive.append(e);
  });

  // XEP-0313 'Retrieving form fields', XEP-0441 preferences, #extended metadata.
  ctx.hooks.on(`iq-get/self/${MAM_NS}`, (ev: IqEvent) => {
    switch (ev.payload.getName()) {
      case 'query':
        ev.reply(`<query xmlns='${MAM_NS}'><x xmlns='${DATA_NS}' type='form'>${FORM_FIELDS}</x></query>`);
        return true;
      case 'prefs':
        // XEP-0441 (retrieving preferences): the stored ones, or the server's default for an account without any.
        ev.reply(prefsXml(effective(ev.session!.bare)));
        return true;
      case 'metadata':
        // XEP-0313 'Retrieving message archive metadata' (#extended): the first and last message.
        ev.reply(metadataXml(archive.bounds(ev.session!.bare)));
        return true;
      default:
        throw new StanzaError('bad-request', `unexpected <${ev.payload.name}/>`);
    }
  });

  ctx.hooks.on(`iq-set/self/${MAM_NS}`, (ev: IqEvent) => {
    const session = ev.session!;
    if (ev.payload.getName() === 'prefs') {
      // XEP-0441 (updating preferences): replace them; the reply carries them as stored.
      const prefs = readPrefs(ev.payload);
      archive.setPrefs(session.bare, prefs);
      ev.reply(prefsXml(archive.prefs(session.bare) ?? prefs));
      return true;
    }
    if (ev.payload.getName() !== 'query') throw new StanzaError('bad-request', `unexpected <${ev.payload.name}/>`);
    // A node names a pubsub archive (XEP-0313 'Querying an archive'); a personal archive has none.
    if (ev.payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
    const { query, flip } = readQuery(ev.payload);
    const page = queryArchive(archive, session.bare, query);
    const queryid = ev.payload.attrs.queryid as string | undefined;
    // XEP-0313 'Querying an archive': every result message first, to the asking resource only, then the <fin/>.
    for (const m of pageOrder(page, flip)) session.deliver(resultXml(session.bare, session.jid.full, queryid, m), 'message');
    ev.reply(finXml(page));
    return true;
  });

  // Another account's archive (an IQ to its bare JID) is not ours to read or configure.
  const refuse = (): boolean => {
    throw new StanzaError('forbidden', "only the account's own archive can be queried");
  };
  ctx.hooks.on(`iq-get/bare/${MAM_NS}`, refuse);
  ctx.hooks.on(`iq-set/bare/${MAM_NS}`, refuse);

  if (settings.purgeInterval > 0 && (settings.maxAge > 0 || settings.maxPerUser > 0)) {
    const timer = setInterval(() => {
      try {
        const removed = purgeArchives(ctx.storage, settings, ctx.now());
        if (removed > 0) ctx.log?.info({ removed }, 'message archive retention');
      } catch (err) {
        // A closed store (server stopped) ends the timer; anything else is reported and retried.
        if (/closed/.test((err as Error).message)) clearInterval(timer);
        else ctx.log?.error({ err }, 'message archive retention failed');
      }
    }, settings.purgeInterval);
    timer.unref();
  }
}
