/** XEP-0199 XMPP Ping: the server answers pings to itself (and, on the account's behalf, to a bare JID). */
import type { IqEvent, Module } from '../router/context.js';

export const PING_NS = 'urn:xmpp:ping';

export const ping: Module = {
  name: 'ping',
  install(ctx) {
    ctx.features.add(PING_NS);
    const pong = (ev: IqEvent) => {
      // XEP-0199 §4.2: an empty result.
      ev.reply();
      return true;
    };
    ctx.hooks.on(`iq-get/host/${PING_NS}`, pong);
    // XEP-0199 §4.4 (client to client) / RFC 6121 §8.5.2.1.3: to a bare JID the server answers for the account.
    ctx.hooks.on(`iq-get/bare/${PING_NS}`, pong);
  },
};
