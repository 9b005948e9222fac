/**
 * XEP-0363 HTTP File Upload, the XMPP side: the upload service is its own JID (upload.<domain>
 * by default), listed in the server's disco#items (§2), answering disco#info with identity
 * store/file, the feature and the max-file-size form, and handing out slots (§4).
 *
 * Stanzas for that JID leave the router as stanzas for another domain ('stanza/remote'); this
 * module takes them before components (priority above theirs). Slots are signed, not stored
 * (slot.ts), so every shard can issue them; quotas are read from the upload folder (files.ts).
 */
import { StanzaError } from '../errors.js';
import type { Module, RemoteEvent } from '../router/context.js';
import { StanzaKind, StanzaType } from '../core/api.js';
import { parseElement, iqResult, type Element } from '../xml/element.js';
import { attr, escapeText } from '../xml/escape.js';
import type { UploadFiles } from './files.js';
import { isLoopback, retryStamp, type RequestLimits } from './limits.js';
import { normalizeContentType, sanitizeFilename, slotPath, UPLOAD_NS, type SlotSigner } from './slot.js';

const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const DATA_FORMS = 'jabber:x:data';

export interface UploadSettings {
  /** The service's JID (a bare domain). */
  domain: string;
  /** Base URL of the HTTP service as clients reach it, without trailing slash. */
  publicUrl: string;
  maxFileSize: number;
  /** Bytes per account; 0 = none. */
  quota: number;
  /** How long a slot may wait for its PUT (ms). */
  slotLifetime: number;
  signer: SlotSigner;
  files: UploadFiles;
  /** Slot requests per account and per address (limits.ts); absent = no limit. */
  slotLimits?: RequestLimits;
}

/** Five minutes: a phone on a slow link starts the PUT well within it; a leaked slot soon dies. */
export const SLOT_LIFETIME_MS = 5 * 60_000;

/** XEP-0363 §2 (and XEP-0128): the service's limit, announced in an extended disco#info form. */
function infoXml(s: UploadSettings): string {
  return (
    `<query xmlns='${DISCO_INFO}'><identity category='store' type='file' name='HTTP File Upload'/>` +
    `<feature var='${DISCO_INFO}'/><feature var='${DISCO_ITEMS}'/><feature var='${UPLOAD_NS}'/>` +
    `<x xmlns='${DATA_FORMS}' type='result'><field var='FORM_TYPE' type='hidden'><value>${UPLOAD_NS}</value></field>` +
    `<field var='max-file-size'><value>${s.maxFileSize}</value></field></x></query>`
  );
}

/** XEP-0363 §5: too large, with the limit so that clients can say it in the user's language. */
function fileTooLarge(max: number): StanzaError {
  return new StanzaError(
    'not-acceptable',
    `file too large: at most ${max} bytes`,
    'modify',
    `<file-too-large xmlns='${UPLOAD_NS}'><max-file-size>${max}</max-file-size></file-too-large>`,
  );
}

/**
 * XEP-0363 §5: a temporary refusal says when to try again (<retry stamp=…/>, XEP-0082 UTC).
 * The XEP names a quota as the example; a rate limit is the same kind of condition.
 */
function tooManyRequests(waitMs: number, now: number): StanzaError {
  return new StanzaError(
    'resource-constraint',
    'too many upload slot requests: try again later',
    'wait',
    `<retry xmlns='${UPLOAD_NS}'${attr('stamp', retryStamp(now + waitMs))}/>`,
  );
}

/**
 * §4: the slot for one request, or the §5 error for it. `owner` is the requester's bare JID, or
 * null when it is not an account of this server; `address` the client's IP address (rate limit).
 */
export function requestSlot(s: UploadSettings, owner: string | null, request: Element, now: number, address = ''): string {
  // §5: uploading is for the server's own accounts; others (remote users, components) are not allowed.
  if (owner === null) throw new StanzaError('not-allowed', 'only accounts of this server may upload', 'cancel');
  const { filename, size: sizeText } = request.attrs as Record<string, string | undefined>;
  if (filename === undefined || sizeText === undefined) throw new StanzaError('bad-request', 'filename and size are required');
  const name = sanitizeFilename(filename);
  if (name === null) throw new StanzaError('bad-request', 'unusable file name');
  if (!/^\d{1,15}$/.test(sizeText) || Number(sizeText) === 0) throw new StanzaError('bad-request', 'size must be a positive integer');
  const size = Number(sizeText);
  const rawType = (request.attrs as Record<string, string | undefined>)['content-type'];
  const contentType = rawType === undefined || rawType === '' ? '' : normalizeContentType(rawType);
  if (contentType === null) throw new StanzaError('bad-request', 'malformed content-type');
  if (size > s.maxFileSize) throw fileTooLarge(s.maxFileSize);
  // Per address only where the address tells clients apart: through a proxy on this host every
  // account would share one budget (the account's own still applies).
  const wait = (isLoopback(address) ? s.slotLimits?.takeAccount(owner, now) : s.slotLimits?.take(owner, address, now)) ?? 0;
  if (wait > 0) throw tooManyRequests(wait, now);
  const slot = s.signer.issue(owner, name, size, contentType, now + s.slotLifetime);
  if (s.quota > 0 && s.files.usage(slot.ownerKey) + size > s.quota) {
    // §5: a quota reached is a temporary condition.
    throw new StanzaError('resource-constraint', 'upload quota reached: wait for older files to expire', 'wait');
  }
  const url = `${s.publicUrl}/${slotPath(slot)}`;
  return (
    `<slot xmlns='${UPLOAD_NS}'><put${attr('url', url)}>` +
    `<header name='Authorization'>${escapeText(s.signer.authorization(slot))}</header></put>` +
    `<get${attr('url', url)}/></slot>`
  );
}

export function upload(settings: UploadSettings, now: () => number = Date.now): Module {
  return {
    name: 'upload',
    install(ctx) {
      // XEP-0363 §2 / XEP-0030 §4: clients find the service among the server's items.
      ctx.features.addItem(settings.domain, 'HTTP File Upload');
      // An account removed in-band (XEP-0077 §3.2) takes its files with it.
      ctx.hooks.on('account/removed', (ev: { account: string }) => {
        settings.files.removeOwner(settings.signer.ownerKey(ev.account));
      });
      ctx.hooks.on(
        'stanza/remote',
        (ev: RemoteEvent) => {
          if (ev.to.domain !== settings.domain) return false;
          answer(ev);
          return true;
        },
        20,
      );
      const answer = (ev: RemoteEvent) => {
        const { view } = ev;
        // Only IQ get/set are questions; anything else to the service is not for anyone.
        if (view.kind !== StanzaKind.Iq) {
          if (view.kind === StanzaKind.Message && view.type !== StanzaType.Error) throw new StanzaError('service-unavailable');
          return;
        }
        if (view.type !== StanzaType.Get && view.type !== StanzaType.Set) return;
        const stanza = parseElement(view.toString());
        const payload = stanza.children.find((c): c is Element => typeof c !== 'string');
        const ns = payload?.attrs.xmlns as string | undefined;
        const address = { id: view.id(), from: view.to(), to: ev.session.jid.full };
        // RFC 6120 §8.2.3: a resource of the service is nobody.
        if (ev.to.local !== null || ev.to.resource !== null) throw new StanzaError('service-unavailable');
        if (view.type === StanzaType.Get && payload?.name === 'query' && ns === DISCO_INFO) {
          if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
          ev.session.deliver(iqResult(address, infoXml(settings)), 'iq');
          return;
        }
        if (view.type === StanzaType.Get && payload?.name === 'query' && ns === DISCO_ITEMS) {
          if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
          ev.session.deliver(iqResult(address, `<query xmlns='${DISCO_ITEMS}'/>`), 'iq');
          return;
        }
        if (view.type === StanzaType.Get && payload?.name === 'request' && ns === UPLOAD_NS) {
          // A session bound on this server is a local account; a component's 'from' is at its own
          // domain (the component stream checks it), never at the server's.
          const from = ev.session.jid;
          const owner = from.local !== null && from.domain === ctx.domain ? from.bare : null;
          const slot = requestSlot(settings, owner, payload, now(), ev.session.session.remoteAddress ?? '');
          ev.session.deliver(iqResult(address, slot), 'iq');
          return;
        }
        // RFC 6120 §8.2.3: an IQ nobody handles.
        throw new StanzaError('service-unavailable');
      };
    },
  };
}
