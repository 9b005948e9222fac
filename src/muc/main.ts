/**
 * XEP-0045 with --workers N > 0: the rooms live on the main thread, reached like an XEP-0114
 * component (src/shard/components.ts). Every shard forwards stanzas for the service domain here
 * with the sender's 'from' stamped (the domain's connected flag is always set), and tells this
 * side when one of its sessions ends or goes unavailable (an unavailable presence to the service
 * domain itself); what the rooms send goes back to one shard, which routes it with
 * HermodRouter.routeFrom() to the occupants wherever they are (the shards' mirrors).
 */
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { Logger } from '../router/context.js';
import type { ArchiveStore } from '../storage/archive.js';
import { blocklistCovers } from '../modules/blocking.js';
import type { BlocklistStore, MucStore } from '../storage/types.js';
import { errorReply, type Element } from '../xml/element.js';
import { parseExact } from '../xml/exact.js';
import { RoomArchives } from './archive.js';
import { senderOf } from './room.js';
import { MucService, type MucSettings } from './service.js';

export class MucOnMain {
  readonly service: MucService;

  constructor(
    readonly settings: MucSettings,
    store: MucStore | null,
    /** Hand a stanza from `from` (a room or occupant JID) to a shard for routing. */
    private readonly send: (from: Jid, xml: string) => void,
    private readonly log: Logger | null = null,
    /** XEP-0313 room archives: this thread's own connection to the archive (its writer thread batches). */
    archive: ArchiveStore | null = null,
    /** XEP-0191 blocklists, read for invitations (the shards' routers check the room's JID). */
    blocklist: BlocklistStore | null = null,
  ) {
    const out = (_to: string, xml: string) => {
      const from = senderOf(xml);
      if (from) this.send(from, xml);
    };
    const now = () => new Date();
    const archives = settings.archive && archive ? new RoomArchives(archive, now) : null;
    const blocks = blocklist ? (owner: string, bare: string) => blocklistCovers(blocklist, owner, bare) : null;
    this.service = new MucService(settings, out, now, store, log, archives, blocks);
  }

  /** A stanza a shard forwarded for the service domain ('from' stamped by the shard). */
  deliver(bytes: Uint8Array | string): void {
    let el: Element;
    try {
      el = parseExact(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
    } catch (err) {
      this.log?.error({ err }, 'MUC stanza from a shard did not parse');
      return;
    }
    const from = Jid.tryParse(String(el.attrs.from ?? ''));
    if (from === null || el.attrs.to === undefined) return;
    const reply = (xml: string) => this.send(Jid.parse(String(el.attrs.to)), xml);
    try {
      this.service.handle(from, el, reply);
    } catch (err) {
      // The answers the router gives with --workers 0 (RFC 6120 §8.3.1: never to an error or a result).
      const type = el.attrs.type as string | undefined;
      if (type === 'error' || (el.name === 'iq' && type === 'result')) return;
      const e = err instanceof StanzaError ? err : new StanzaError('internal-server-error');
      if (!(err instanceof StanzaError)) this.log?.error({ err }, 'MUC failed on a stanza');
      reply(errorReply({ name: el.name, id: (el.attrs.id as string | undefined) ?? null, from: String(el.attrs.to), to: from.full }, e));
    }
  }
}
