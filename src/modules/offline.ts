/**
 * XEP-0160 offline messages: the storage and delivery rules live in the router (RFC 6121
 * §8.5.2.2.1); this module advertises them ('msgoffline', XEP-0160 §6) so clients know
 * messages to offline contacts are kept.
 */
import type { Module } from '../router/context.js';

export const offline: Module = {
  name: 'offline',
  install(ctx) {
    ctx.features.add('msgoffline');
  },
};
