/**
 * A StreamTransport over a Node socket: plain TCP that may be upgraded by STARTTLS, or a socket
 * that is TLS from its first byte (XEP-0368 Direct TLS).
 *
 * Writes arrive already gathered (one array per event-loop turn from the stream's queue) and are
 * written under cork/uncork so libuv issues a single writev for them.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { ByteSink, StreamTransport } from '../stream/c2s.js';
import { shaperFor, type Shaper } from '../stream/limits.js';

export type { ByteSink } from '../stream/c2s.js';

/** What the server needs of any client transport (TCP/TLS socket, WebSocket). */
export interface ClientTransport extends StreamTransport {
  readonly remoteAddress: string | undefined;
  attach(sink: ByteSink): void;
  limitBytes(rate: number, burst: number): void;
  destroy(): void;
}

/**
 * The transport a socket belongs to is kept on the socket, so that the three listeners are
 * shared functions rather than three closures (and a context) per connection: an idle session's
 * memory is mostly such per-connection objects (docs/benchmarks.md, "Idle sessions").
 */
const OWNER = Symbol('hermod.transport');
type OwnedSocket = Socket & { [OWNER]?: SocketTransport };

function onData(this: OwnedSocket, chunk: Buffer): void {
  this[OWNER]?.received(chunk);
}

function onClose(this: OwnedSocket): void {
  this[OWNER]?.closed();
}

/** Errors (ECONNRESET, TLS alerts) are followed by 'close', where the session is dropped. */
function onError(): void {}

export class SocketTransport implements ClientTransport {
  private socket: Socket;
  private sink: ByteSink | null = null;
  private upgraded = false;
  private gone = false;
  /** Read shaping: the shared rate and this connection's bucket state (see Shaper). */
  private byteShaper: Shaper | null = null;
  private bytesFullAt = 0;
  private resumeTimer: NodeJS.Timeout | null = null;

  constructor(
    socket: Socket,
    private readonly secureContext: SecureContext | null,
    private readonly directTls: boolean,
  ) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.listen(socket);
  }

  /** What the socket read (called by the shared 'data' listener). */
  received(chunk: Buffer): void {
    this.sink?.feed(chunk);
    const shaper = this.byteShaper;
    if (shaper) {
      const now = Date.now();
      this.bytesFullAt = shaper.spend(this.bytesFullAt, now, chunk.length);
      const wait = shaper.wait(this.bytesFullAt, now);
      if (wait > 0) this.pauseFor(wait);
    }
  }

  /** The socket closed (called by the shared 'close' listener of the plain and the TLS socket). */
  closed(): void {
    if (this.gone) return;
    this.gone = true;
    this.sink?.transportClosed();
  }

  /** Start delivering bytes; separate from the constructor so the sink can hold the transport. */
  attach(sink: ByteSink): void {
    this.sink = sink;
  }

  /** Shape reading to `rate` bytes a second (bursts up to `burst`), ejabberd style. */
  limitBytes(rate: number, burst: number): void {
    // A new rate starts from a full bucket, as a new bucket would.
    this.byteShaper = rate > 0 ? shaperFor(rate, burst) : null;
    this.bytesFullAt = 0;
  }

  /** Stop reading for `ms`: the peer's writes back up into its own socket buffer. */
  pauseFor(ms: number): void {
    if (this.gone) return;
    const socket = this.socket;
    socket.pause();
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      if (!this.gone && this.socket === socket) socket.resume();
    }, ms);
    this.resumeTimer.unref();
  }

  get secure(): boolean {
    return this.directTls || this.upgraded;
  }

  get canStartTls(): boolean {
    return !this.secure && this.secureContext !== null;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** Bytes accepted by write() and not yet handed to the kernel (for slow-reader policies). */
  get pendingBytes(): number {
    return this.socket.writableLength;
  }

  write(chunks: (string | Uint8Array)[]): void {
    if (this.gone || this.socket.destroyed) return;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
      return;
    }
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
  }

  startTls(): void {
    if (!this.secureContext || this.gone) return;
    const plain = this.socket;
    if (this.resumeTimer) {
      clearTimeout(this.resumeTimer);
      this.resumeTimer = null;
    }
    // The cleartext socket stops feeding the stream; anything it still reads is discarded.
    plain.off('data', onData);
    const secured = new TLSSocket(plain, { isServer: true, secureContext: this.secureContext });
    this.upgraded = true;
    this.socket = secured;
    this.listen(secured);
  }

  end(): void {
    if (this.gone) return;
    this.socket.end();
    // A peer that never reads must not pin the socket open forever after our close.
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 5000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private listen(socket: OwnedSocket): void {
    socket[OWNER] = this;
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
  }
}
