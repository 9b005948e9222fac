/** The feature modules shipped with Hermod, in installation order. */
import type { Module } from '../router/context.js';
import { blocking } from './blocking.js';
import { carbons } from './carbons.js';
import { csi } from './csi.js';
import { mam, type MamSettings } from './mam.js';
import { disco } from './disco.js';
import { offline } from './offline.js';
import { pep } from './pep.js';
import { ping } from './ping.js';
import { privateStorage } from './private.js';
import { register } from './register.js';
import { roster } from './roster.js';
import { vcard } from './vcard.js';
import { version } from './version.js';

export { packageVersion } from './version.js';

/** `mam`: the configured XEP-0313 settings (without them only accounts that set preferences are archived). */
export function defaultModules(options: { mam?: MamSettings } = {}): Module[] {
  return [disco, roster, ping, version, register, vcard, privateStorage, offline, carbons, csi, blocking, pep, mam(options.mam)];
}
