/**
 * XEP-0352 Client State Indication: while a client says it is <inactive/>, presence updates are
 * held (only the latest per sender: an older one is stale anyway) and sent when it becomes
 * <active/> again, or just before anything urgent (a message, an IQ, a subscription request) so
 * that the client never sees them out of order. Saves mobile radios most of the presence churn.
 */
import type { Module, NonzaEvent } from '../router/context.js';
import type { DeliveryKind, OutputFilter, SessionState } from '../router/session.js';
import { readStartTag } from '../xml/start-tag.js';

export const CSI_NS = 'urn:xmpp:csi:0';
const KEY = 'csi';
/** Held presences per session before a flush anyway (bounded memory per session). */
const MAX_HELD = 512;

/** `<presence from='…'` as the router stamps it; subscription types are urgent. */
const HEAD = /^<presence\s+from=(?:'([^']*)'|"([^"]*)")/;
const SUBSCRIPTION = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);

interface Held {
  presences: Map<string, Uint8Array | string>;
  filter: OutputFilter;
}

function text(bytes: Uint8Array | string, max: number): string {
  return typeof bytes === 'string' ? bytes.slice(0, max) : Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(max, bytes.byteLength)).toString('utf8');
}

function flush(st: SessionState, held: Held): void {
  const pending = [...held.presences.values()];
  held.presences.clear();
  for (const p of pending) st.session.send(p);
}

function inactive(st: SessionState): void {
  if (st.data.has(KEY)) return;
  const held: Held = {
    presences: new Map(),
    filter: (bytes: Uint8Array | string, kind: DeliveryKind) => {
      if (kind === 'presence') {
        const start = text(bytes, 1024);
        const m = HEAD.exec(start);
        if (m && !SUBSCRIPTION.has(readStartTag(start).attrs.get('type') ?? '')) {
          const from = m[1] ?? m[2]!;
          held.presences.delete(from); // re-insert: the latest goes last, keeping arrival order
          held.presences.set(from, bytes);
          if (held.presences.size > MAX_HELD) flush(st, held);
          return true;
        }
      }
      // Urgent: what was held goes first, then this, in order.
      if (held.presences.size > 0) flush(st, held);
      return false;
    },
  };
  st.data.set(KEY, held);
  st.filters.push(held.filter);
}

function active(st: SessionState): void {
  const held = st.data.get(KEY) as Held | undefined;
  if (!held) return;
  st.data.delete(KEY);
  const i = st.filters.indexOf(held.filter);
  if (i >= 0) st.filters.splice(i, 1);
  flush(st, held);
}

export const csi: Module = {
  name: 'csi',
  install(ctx) {
    ctx.addStreamFeature(`<csi xmlns='${CSI_NS}'/>`);
    ctx.hooks.on(`nonza/${CSI_NS}`, (ev: NonzaEvent) => {
      if (ev.name === 'inactive') inactive(ev.session);
      else if (ev.name === 'active') active(ev.session);
      else return false;
      return true;
    });
  },
};
