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
import type { DeliveryKind, SessionRegistry, SessionState } from '../router/session.js';
import type { ClientSession, Router } from '../router/types.js';
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

interface Snapshot {
  available: boolean;
  priority: number;
  interested: boolean;
  presence: Buffer | null;
}

/** The router surface the mesh needs: the Router contract plus its session registry. */
export interface MeshRouter extends Router {
  readonly sessions: SessionRegistry;
}

/**
 * One shard's view of its peers. `peers[k]` sends to shard k (null for itself and for a shard
 * that is down). Wrap the shard's router with `router()` so that binds, unbinds and presence
 * changes of local sessions are announced.
 */
export class ShardMesh {
  private readonly local = new Map<number, { session: ClientSession; last: Snapshot }>();
  private readonly mirrors: Map<number, SessionState>[] = [];
  private readonly header: RecordHeader = { op: Op.Open, arg: 0, id: 0 };

  constructor(
    readonly shard: number,
    private readonly inner: MeshRouter,
    private readonly peers: (RingSender | null)[],
    private readonly log: (msg: string, err?: unknown) => void = () => {},
  ) {
    for (let k = 0; k < peers.length; k++) this.mirrors.push(new Map());
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
        this.local.set(session.id, { session, last: { available: false, priority: 0, interested: false, presence: null } });
        this.broadcast(Op.Bind, session.id, jid.full);
        return jid;
      },
      route: (session, stanza) => {
        inner.route(session, stanza);
        this.announceState(session);
      },
      routeUnauthenticated: (stanza, reply) => inner.routeUnauthenticated(stanza, reply),
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
  }

  /**
   * A peer died with its sessions. Exactly one surviving shard passes `announce` and has the
   * router unbind the mirrors (RFC 6121 §4.5.2 unavailable presence to their contacts, sent
   * once); the others forget them silently.
   */
  peerDown(peer: number, announce: boolean): void {
    this.peers[peer]?.close();
    this.peers[peer] = null;
    const gone = [...this.mirrors[peer]!.values()];
    this.mirrors[peer]!.clear();
    for (const st of gone) {
      if (announce) this.inner.unbind(st.session);
      else this.inner.sessions.remove(st);
    }
  }

  /** Forward bytes for a session that lives on `peer`. */
  forward(peer: number, remoteId: number, data: Uint8Array | string, kind: DeliveryKind): void {
    this.peers[peer]?.send(Op.Deliver, remoteId, data, DELIVERY_KINDS.indexOf(kind));
  }

  closeRemote(peer: number, remoteId: number, error?: StreamError): void {
    const body = error ? `${error.condition}\n${error.text ?? ''}` : '';
    this.peers[peer]?.send(Op.Close, remoteId, body);
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
    switch (h.op) {
      case Op.Bind:
        this.addMirror(peer, h.id, decoder.decode(body));
        return;
      case Op.State: {
        const st = this.mirrors[peer]!.get(h.id);
        if (!st) return;
        st.available = (h.arg & STATE_AVAILABLE) !== 0;
        st.interested = (h.arg & STATE_INTERESTED) !== 0;
        st.priority = (body[0]! << 24) >> 24;
        st.presence = body.length > 1 ? Buffer.from(body.subarray(1)) : null;
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
        target.session.close(error);
        return;
      }
      case Op.SyncRequest:
        for (const { session } of this.local.values()) {
          const jid = session.jid;
          if (!jid) continue;
          this.peers[peer]?.send(Op.Bind, session.id, jid.full);
          const st = this.inner.sessions.get(session);
          if (st) this.sendState(this.peers[peer] ?? null, session.id, snapshotOf(st));
        }
        return;
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

  private announceState(session: ClientSession): void {
    const entry = this.local.get(session.id);
    if (!entry) return;
    const st = this.inner.sessions.get(session);
    if (!st) return;
    const last = entry.last;
    if (st.available === last.available && st.priority === last.priority && st.interested === last.interested && st.presence === last.presence) {
      return;
    }
    entry.last = snapshotOf(st);
    for (const peer of this.peers) this.sendState(peer, session.id, entry.last);
  }

  private sendState(peer: RingSender | null, id: number, s: Snapshot): void {
    if (!peer) return;
    const presence = s.presence ?? EMPTY;
    const body = new Uint8Array(1 + presence.length);
    body[0] = s.priority & 0xff;
    body.set(presence, 1);
    peer.send(Op.State, id, body, (s.available ? STATE_AVAILABLE : 0) | (s.interested ? STATE_INTERESTED : 0));
  }

  private broadcast(op: Op, id: number, body?: string): void {
    for (const peer of this.peers) peer?.send(op, id, body);
  }
}

const EMPTY = new Uint8Array(0);

function snapshotOf(st: SessionState): Snapshot {
  return { available: st.available, priority: st.priority, interested: st.interested, presence: st.presence };
}
