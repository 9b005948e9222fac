/**
 * What happens to the stanzas a stream-managed session never had acknowledged when it finally
 * ends. The stream layer only hands them over (C2SDeps.onUnacked, no storage there); the rule
 * for what is kept is the offline-storage rule, which the router owns — so it lives here and
 * both the single-thread server and every shard (src/shard/worker.ts) use this one function.
 */
import type { Storage } from '../storage/index.js';
import { readStartTag } from '../xml/start-tag.js';

/**
 * XEP-0198 §4: a session ended with stanzas its client never acknowledged. The messages among
 * them go to offline storage (delivered at next login with XEP-0203 <delay/>), so nothing the
 * server accepted is lost because a mobile link died; presence and IQs are stale by then.
 */
export function keepUnacked(storage: Storage, account: string, stanzas: (string | Uint8Array)[]): void {
  for (const stanza of stanzas) {
    const xml = typeof stanza === 'string' ? stanza : Buffer.from(stanza).toString('utf8');
    if (!xml.startsWith('<message')) continue;
    const type = readStartTag(xml).attrs.get('type') ?? 'normal';
    // RFC 6121 §8.5.2.2.1: only chat and normal messages are stored offline.
    if ((type !== 'chat' && type !== 'normal') || !xml.includes('<body')) continue;
    storage.offline.push(account, xml);
  }
}
