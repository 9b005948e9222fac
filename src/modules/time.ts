/**
 * XEP-0202 Entity Time: the server tells its current time (UTC) and its offset from UTC.
 * A query to a user's full JID is an IQ like any other and reaches that client (RFC 6121
 * §8.5.3.1); a query to a bare JID is answered by nobody here (no handler → service-unavailable,
 * RFC 6121 §8.5.2.1.3), as the XEP describes entities, not accounts.
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module } from '../router/context.js';

export const TIME_NS = 'urn:xmpp:time';

/** XEP-0082 §3.2 DateTime in UTC, whole seconds: CCYY-MM-DDThh:mm:ssZ. */
export function utcStamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * XEP-0082 §2 TZD of the host's local zone at `date` as ±hh:mm (the sign says which side of
 * UTC local time is; getTimezoneOffset() counts the other way). UTC is '+00:00' rather than the
 * equally valid 'Z': it is the form XEP-0202's examples show (§3), so every client parser reads it.
 */
export function zoneOffset(date: Date): string {
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${hh}:${mm}`;
}

export const time: Module = {
  name: 'time',
  install(ctx) {
    // XEP-0202 §4: advertised so that clients know to ask.
    ctx.features.add(TIME_NS);
    ctx.hooks.on(`iq-get/host/${TIME_NS}`, (ev: IqEvent) => {
      if (ev.payload.getName() !== 'time') throw new StanzaError('bad-request', 'expected <time/>');
      const now = ctx.now();
      // XEP-0202 §2: <tzo/> the offset from UTC, <utc/> the time in UTC.
      ev.reply(`<time xmlns='${TIME_NS}'><tzo>${zoneOffset(now)}</tzo><utc>${utcStamp(now)}</utc></time>`);
      return true;
    });
  },
};
