/** The feature modules shipped with Hermod, in installation order. */
import type { Module } from '../router/context.js';
import { blocking } from './blocking.js';
import { carbons } from './carbons.js';
import { contact, type ContactAddresses } from './contact.js';
import { csi } from './csi.js';
import { mam, type MamSettings } from './mam.js';
import { disco } from './disco.js';
import { last } from './last.js';
import { offline } from './offline.js';
import { pep } from './pep.js';
import { ping } from './ping.js';
import { privateStorage } from './private.js';
import { register } from './register.js';
import { roster } from './roster.js';
import { time } from './time.js';
import { vcard } from './vcard.js';
import { version } from './version.js';

export { packageVersion } from './version.js';

/**
 * `mam`: the configured XEP-0313 settings (without them only accounts that set preferences are
 * archived); `contact`: the XEP-0157 addresses of the server's disco#info.
 */
export function defaultModules(options: { mam?: MamSettings; contact?: Partial<ContactAddresses> } = {}): Module[] {
  return [
    disco, roster, ping, version, time, last, contact(options.contact), register, vcard, privateStorage, offline, carbons, csi,
    blocking, pep, mam(options.mam),
  ];
}
