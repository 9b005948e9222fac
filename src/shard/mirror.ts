/**
 * Cross-shard sessions: every shard's router sees every bound session of the process.
 *
 * A shard's own sessions are real C2S streams. Every session bound on another shard appears in
 * this shard's SessionRegistry as a mirror: a SessionState whose ClientSession is a MirrorSession
 * and whose one output filter forwards each delivery, with its kind, to the owning shard through
 * the peer ring. The owning shard delivers it through the real SessionState (so that session's own
 * filters, e.g. XEP-0352 client state indication, still apply).
 *
 * Why mirrors and not "forward the stanza to the recipient's shard and route it there": the
 * router decides a delivery from the recipient account's sessions (RFC 6121 §8.5: available
 * resources, priorities) and a presence broadcast from the sender's roster and its contacts'
 * sessions (§4.2–4.5). With mirrors each stanza is routed exactly once, on its sender's shard,
 * by the unchanged router; only the bytes for remote recipients cross a ring. What must be kept
 * in step is small and changes rarely: bind, unbind, and the presence state of a session
 * (available, priority, last presence, roster interest), sent after the stanza that changed it.
 *
 * Consistency is per-event, not global: a stanza routed in the microseconds between a bind and
 * the arrival of its mirror does not see the new session, exactly as if it had been sent a moment
 * before the bind.
 */
import { StreamError, type StreamErrorCondition } from '../errors.js';
import { Jid } from '../jid.js';
import type { OfflineStoredEvent } from '../router/context.js';
import type { HookBus } from '../router/hooks.js';
import type { DeliveryKind, SessionRegistry, SessionState } from '../router/session.js';
import { receivesPresence, sendsPresence } from '../router/subscription.js';
import type { ClientSession, Router } from '../router/types.js';
import { StanzaKind, StanzaType } from '../core/api.js';
import type { Storage } from '../storage/types.js';
import {
  DELIVERY_KINDS,
  HEADER_BYTES,
  Op,
  readHeader,
  type RecordHeader,
  type RingSender,
  STATE_AVAILABLE,
  STATE_INTERESTED,
} from './protocol.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** What the router needs to see of a session bound on another shard. */
export class MirrorSession implements ClientSession {
  readonly id: number;
  readonly account: Jid;

  constructor(
    readonly peer: number,
    /** The session's id on its own shard. */
    readonly remoteId: number,
    readonly jid: Jid,
    private readonly mesh: ShardMesh,
  ) {
    // Local C2S ids are positive; mirrors take negative ids, distinct per (shard, id).
    this.id = -(remoteId * 256 + peer + 1);
    this.account = jid.toBare();
  }

  send(data: Uint8Array | string): void {
    this.mesh.forward(this.peer, this.remoteId, data, 'other');
  }

  close(error?: StreamError): void {
    this.mesh.closeRemote(this.peer, this.remoteId, error);
  }
}

interface LocalEntry {
  session: ClientSession;
  /** What the peers were last told. */
  last: Snapshot;
  /** Per peer: the number of the record that announced this session available (Infinity: not). */
  availableAt: number[];
}

/** State body: i8 priority, u32 ack (records consumed from the receiver), u16 length of the
 *  module flags (JSON), the flags, then the presence. */
const STATE_FIXED = 7;

interface Snapshot {
  /** Modules' plain per-session values (XEP-0280 carbons enabled, …) as JSON; object values
   *  (XEP-0352's held queue) matter only where the session lives and are not copied. */
  flags: string;
  available: boolean;
  priority: number;
  interested: boolean;
  presence: Buffer | null;
}

/** The router surface the mesh needs: the Router contract plus its session registry. */
export interface MeshRouter extends Router {
  readonly sessions: SessionRegistry;
  readonly storage: Storage;
  /** Deliver the account's stored offline messages to this available session. */
  deliverOffline?(st: SessionState): void;
  readonly hooks?: HookBus;
}

/**
 * One shard's view of its peers. `peers[k]` sends to shard k (null for itself and for a shard
 * that is down). Wrap the shard's router with `router()` so that binds, unbinds and presence
 * changes of local sessions are announced.
 */
export class ShardMesh {
  private readonly local = new Map<number, LocalEntry>();
  private readonly mirrors: Map<number, SessionState>[] = [];
  /** Records sent to / consumed from each peer since its ring was created (causal acks). */
  private readonly sent: number[] = [];
  private readonly consumed: number[] = [];
  private readonly header: RecordHeader = { op: Op.Open, arg: 0, id: 0 };

  constructor(
    readonly shard: number,
    private readonly inner: MeshRouter,
    private readonly peers: (RingSender | null)[],
    private readonly log: (msg: string, err?: unknown) => void = () => {},
  ) {
    // A message stored offline here (RFC 6121 §8.5.2.2.1) because no session of its addressee
    // looked available — one may have become available on another shard, its announcement
    // still on the way: that shard delivers what is stored (Op.OfflineCheck). Cold path: only
    // messages that are stored offline pay for it.
    if (peers.length > 1) inner.hooks?.on('message/offline', (ev: OfflineStoredEvent) => void this.broadcast(Op.OfflineCheck, 0, ev.bare));
    for (let k = 0; k < peers.length; k++) {
      this.mirrors.push(new Map());
      this.sent.push(0);
      this.consumed.push(0);
    }
  }

  get mirrorCount(): number {
    let n = 0;
    for (const m of this.mirrors) n += m.size;
    return n;
  }

  /** The Router the shard's streams use: the real one, plus announcements to the peers. */
  router(): Router {
    const inner = this.inner;
    return {
      bind: (session, requested) => {
        const jid = inner.bind(session, requested);
        this.local.set(session.id, {
          session,
          last: { flags: '', available: false, priority: 0, interested: false, presence: null },
          availableAt: this.peers.map(() => Infinity),
        });
        this.broadcast(Op.Bind, session.id, jid.full);
        return jid;
      },
      route: (session, stanza) => {
        const contact = stanza.kind === StanzaKind.Presence && stanza.type === StanzaType.Subscribe ? this.offlineLookingContact(stanza.to()) : null;
        inner.route(session, stanza);
        if (contact && session.jid) this.checkPending(contact, session.jid.bare);
        this.announceState(session);
      },
      routeUnauthenticated: (stanza, reply) => inner.routeUnauthenticated(stanza, reply),
      // XEP-0352 and other nonzas change only the owning shard's view of the session.
      nonza: inner.nonza ? (session, element) => inner.nonza!(session, element) : undefined,
      // The modules' post-bind stream features (XEP-0352 <csi/>, RFC 6121 roster <ver/> and
      // pre-approval <sub/>) are the same on every shard: offer them as the inline router does.
      streamFeatures: inner.streamFeatures ? () => inner.streamFeatures!() : undefined,
      unbind: (session) => {
        inner.unbind(session);
        if (this.local.delete(session.id)) this.broadcast(Op.Unbind, session.id);
      },
    };
  }

  /** Ask every live peer for its sessions (a shard that has just started). */
  requestSync(): void {
    this.broadcast(Op.SyncRequest, 0);
  }

  /** A peer's ring was (re)created: future records to it go through `sender`. */
  peerUp(peer: number, sender: RingSender): void {
    this.peers[peer] = sender;
    this.resetCounters(peer);
  }

  private resetCounters(peer: number): void {
    this.sent[peer] = 0;
    this.consumed[peer] = 0;
    for (const entry of this.local.values()) entry.availableAt[peer] = Infinity;
  }

  /**
   * A peer died with its sessions. Exactly one surviving shard passes `announce` and has the
   * router unbind the mirrors (RFC 6121 §4.5.2 unavailable presence to their contacts, sent
   * once); the others forget them silently.
   */
  peerDown(peer: number, announce: boolean): void {
    this.peers[peer]?.close();
    this.peers[peer] = null;
    this.resetCounters(peer);
    const gone = [...this.mirrors[peer]!.values()];
    this.mirrors[peer]!.clear();
    for (const st of gone) {
      if (announce) this.inner.unbind(st.session);
      else this.inner.sessions.remove(st);
    }
  }

  /** Forward bytes for a session that lives on `peer`. */
  forward(peer: number, remoteId: number, data: Uint8Array | string, kind: DeliveryKind): void {
    this.sendTo(peer, Op.Deliver, remoteId, data, DELIVERY_KINDS.indexOf(kind));
  }

  closeRemote(peer: number, remoteId: number, error?: StreamError): void {
    const body = error ? `${error.condition}\n${error.text ?? ''}` : '';
    this.sendTo(peer, Op.Close, remoteId, body);
    // The owner will announce the unbind; until then nothing more should reach the mirror.
    const st = this.mirrors[peer]!.get(remoteId);
    if (st) {
      this.mirrors[peer]!.delete(remoteId);
      this.inner.sessions.remove(st);
    }
  }

  /** Apply one record from `peer`'s ring. The record is shared memory: copy what is kept. */
  onPeerRecord(peer: number, record: Uint8Array): void {
    const h = readHeader(record, this.header);
    const body = record.subarray(HEADER_BYTES);
    this.consumed[peer]!++;
    switch (h.op) {
      case Op.Bind:
        this.addMirror(peer, h.id, decoder.decode(body));
        return;
      case Op.State: {
        const st = this.mirrors[peer]!.get(h.id);
        if (!st) return;
        const was = st.available;
        st.available = (h.arg & STATE_AVAILABLE) !== 0;
        st.interested = (h.arg & STATE_INTERESTED) !== 0;
        st.priority = (body[0]! << 24) >> 24;
        const ack = (body[1]! | (body[2]! << 8) | (body[3]! << 16) | (body[4]! << 24)) >>> 0;
        const flagsEnd = STATE_FIXED + (body[5]! | (body[6]! << 8));
        if (flagsEnd > STATE_FIXED) {
          for (const [k, v] of JSON.parse(decoder.decode(body.subarray(STATE_FIXED, flagsEnd))) as [string, unknown][]) st.data.set(k, v);
        }
        st.presence = body.length > flagsEnd ? Buffer.from(body.subarray(flagsEnd)) : null;
        if (!was && st.available) this.crossProbe(peer, st, ack);
        return;
      }
      case Op.Unbind: {
        const st = this.mirrors[peer]!.get(h.id);
        if (!st) return;
        this.mirrors[peer]!.delete(h.id);
        // The owning shard already told the contacts (§4.5.2); only forget here.
        this.inner.sessions.remove(st);
        return;
      }
      case Op.Deliver: {
        const target = this.local.get(h.id);
        if (!target) return; // gone meanwhile: like a delivery to a session that just closed
        const bytes = Buffer.from(body);
        const st = this.inner.sessions.get(target.session);
        if (st) st.deliver(bytes, DELIVERY_KINDS[h.arg] ?? 'other');
        else target.session.send(bytes);
        return;
      }
      case Op.Close: {
        const target = this.local.get(h.id);
        if (!target) return;
        const text = decoder.decode(body);
        const nl = text.indexOf('\n');
        const error = nl < 0 ? undefined : new StreamError(text.slice(0, nl) as StreamErrorCondition, text.slice(nl + 1) || undefined);
        if (error?.condition === 'conflict') {
          // RFC 6120 §7.7.2.2 across shards: the peer bound this full JID anew and its router has
          // already withdrawn this session's presence (RFC 6121 §4.5.2), in order before the new
          // session's. Withdrawing it here as well would send every contact a second unavailable,
          // which can land after the new session's available presence. Forget it silently —
          // unless it sent directed presence (§4.6), whose recipients only this shard knows.
          const st = this.inner.sessions.get(target.session);
          if (st && st.directed.size === 0) this.inner.sessions.remove(st);
        }
        target.session.close(error);
        return;
      }
      case Op.SyncRequest:
        for (const { session } of this.local.values()) {
          const jid = session.jid;
          if (!jid) continue;
          this.sendTo(peer, Op.Bind, session.id, jid.full);
          const st = this.inner.sessions.get(session);
          const entry = this.local.get(session.id);
          if (st && entry) this.sendState(peer, entry, snapshotOf(st));
        }
        return;
      case Op.PendingCheck: {
        const [contact, requester] = decoder.decode(body).split('\n');
        const pending = contact && requester ? this.inner.storage.rosters.getPending(contact, requester) : null;
        if (pending) for (const s of this.localAvailable(contact!)) s.deliver(pending.stanza, 'presence');
        return;
      }
      case Op.OfflineCheck: {
        // The peer stored a message for this account while its sessions here were unknown to
        // it: deliver what is stored to the session that would have taken it (highest priority,
        // not negative). takeAll() empties the shared store, so only one shard delivers.
        let best: SessionState | null = null;
        for (const s of this.localAvailable(decoder.decode(body))) if (s.priority >= 0 && (!best || s.priority > best.priority)) best = s;
        if (best) this.inner.deliverOffline?.(best);
        return;
      }
      default:
        this.log(`shard ${this.shard}: unknown record op ${h.op} from shard ${peer}`);
    }
  }

  private addMirror(peer: number, remoteId: number, full: string): void {
    let jid: Jid;
    try {
      jid = Jid.parse(full);
    } catch (err) {
      this.log(`shard ${this.shard}: unusable JID from shard ${peer}`, err);
      return;
    }
    const old = this.mirrors[peer]!.get(remoteId);
    if (old) this.inner.sessions.remove(old);
    const proxy = new MirrorSession(peer, remoteId, jid, this);
    let prepared: { jid: Jid; replaced: SessionState | null };
    try {
      prepared = this.inner.sessions.prepare(proxy, jid.resource);
    } catch (err) {
      // resource-constraint on a race with a local bind: the owner's limit check already passed.
      this.log(`shard ${this.shard}: cannot mirror ${full}`, err);
      return;
    }
    const { replaced } = prepared;
    if (replaced) {
      this.inner.sessions.remove(replaced);
      if (replaced.session instanceof MirrorSession) {
        this.mirrors[replaced.session.peer]!.delete(replaced.session.remoteId);
      } else {
        // RFC 6120 §7.7.2.2: the same full JID bound on two shards at once; the newer wins.
        replaced.session.close(new StreamError('conflict', 'replaced by a new session with the same resource'));
      }
    }
    const state = this.inner.sessions.add(proxy, prepared.jid);
    state.filters.push((bytes, kind) => {
      this.forward(peer, remoteId, bytes, kind);
      return true;
    });
    this.mirrors[peer]!.set(remoteId, state);
  }

  /** Sessions of an account on this shard (not mirrors) that have sent available presence. */
  private localAvailable(bare: string): SessionState[] {
    return this.inner.sessions.bare(bare).filter((s) => s.available && !(s.session instanceof MirrorSession));
  }

  /**
   * The contact of a subscription request when none of its sessions looks available here. The
   * router will store the request (RFC 6121 §3.1.3) for delivery at the contact's next initial
   * presence — which may already have happened on another shard, unseen here so far.
   */
  private offlineLookingContact(to: string | null): string | null {
    const jid = to === null ? null : Jid.tryParse(to);
    if (!jid || jid.local === null) return null;
    return this.inner.sessions.bare(jid.bare).some((s) => s.available) ? null : jid.bare;
  }

  /** Ask the other shards to deliver the stored request to the contact if it is online there. */
  private checkPending(contact: string, requester: string): void {
    this.broadcast(Op.PendingCheck, 0, `${contact}\n${requester}`);
  }

  /**
   * A session on another shard just became available (RFC 6121 §4.2). Its shard broadcast its
   * presence and answered its probes with what it knew of this shard's sessions; `ack` says how
   * many of our records it had consumed by then. A local session whose availability we announced
   * after that point was invisible to it: exchange presence between the two here, from fresh
   * state. Without this, two contacts logging in at once on different shards miss each other.
   */
  private crossProbe(peer: number, remote: SessionState, ack: number): void {
    const unseen = (local: SessionState): boolean => (this.local.get(local.session.id)?.availableAt[peer] ?? 0) > ack;
    const exchange = (local: SessionState, toRemote: boolean, toLocal: boolean): void => {
      if (!unseen(local)) return;
      if (toRemote && local.presence) remote.deliver(local.presence, 'presence');
      if (toLocal && remote.presence) local.deliver(remote.presence, 'presence');
    };
    for (const item of this.inner.storage.rosters.list(remote.bare)) {
      const receives = receivesPresence(item.subscription);
      const sends = sendsPresence(item.subscription);
      if (!receives && !sends) continue;
      for (const local of this.localAvailable(item.jid)) exchange(local, receives, sends);
    }
    for (const own of this.localAvailable(remote.bare)) exchange(own, true, true);
  }

  private announceState(session: ClientSession): void {
    const entry = this.local.get(session.id);
    if (!entry) return;
    const st = this.inner.sessions.get(session);
    if (!st) return;
    const last = entry.last;
    const now = snapshotOf(st);
    if (now.available === last.available && now.priority === last.priority && now.interested === last.interested && now.presence === last.presence && now.flags === last.flags) {
      return;
    }
    entry.last = now;
    for (let k = 0; k < this.peers.length; k++) this.sendState(k, entry, entry.last);
  }

  private sendState(peer: number, entry: LocalEntry, s: Snapshot): void {
    if (!this.peers[peer]) return;
    const presence = s.presence ?? EMPTY;
    let flags = encoder.encode(s.flags);
    if (flags.length > 0xffff) flags = EMPTY; // absurd module state: not worth a protocol
    const body = new Uint8Array(STATE_FIXED + flags.length + presence.length);
    body[0] = s.priority & 0xff;
    body[5] = flags.length & 0xff;
    body[6] = (flags.length >>> 8) & 0xff;
    body.set(flags, STATE_FIXED);
    const ack = this.consumed[peer]!;
    body[1] = ack & 0xff;
    body[2] = (ack >>> 8) & 0xff;
    body[3] = (ack >>> 16) & 0xff;
    body[4] = (ack >>> 24) & 0xff;
    body.set(presence, STATE_FIXED + flags.length);
    // Remember which record told this peer we are available (see crossProbe).
    entry.availableAt[peer] = s.available ? Math.min(entry.availableAt[peer]!, this.sent[peer]! + 1) : Infinity;
    this.sendTo(peer, Op.State, entry.session.id, body, (s.available ? STATE_AVAILABLE : 0) | (s.interested ? STATE_INTERESTED : 0));
  }

  private sendTo(peer: number, op: Op, id: number, body?: Uint8Array | string, arg?: number): void {
    const sender = this.peers[peer];
    if (!sender) return;
    this.sent[peer]!++;
    sender.send(op, id, body, arg);
  }

  private broadcast(op: Op, id: number, body?: string): void {
    for (let k = 0; k < this.peers.length; k++) this.sendTo(k, op, id, body);
  }
}

const EMPTY = new Uint8Array(0);

function snapshotOf(st: SessionState): Snapshot {
  return { flags: flagsOf(st), available: st.available, priority: st.priority, interested: st.interested, presence: st.presence };
}

function flagsOf(st: SessionState): string {
  if (st.data.size === 0) return '';
  const plain: [string, unknown][] = [];
  for (const [k, v] of st.data) if (v === null || typeof v !== 'object') plain.push([k, v]);
  return plain.length === 0 ? '' : JSON.stringify(plain);
}
