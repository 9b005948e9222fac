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
import { TokenBucket } from '../stream/limits.js';

export type { ByteSink } from '../stream/c2s.js';

/** What the server needs of any client transport (TCP/TLS socket, WebSocket). */
export interface ClientTransport extends StreamTransport {
  readonly remoteAddress: string | undefined;
  attach(sink: ByteSink): void;
  limitBytes(rate: number, burst: number): void;
  destroy(): void;
}

export class SocketTransport implements ClientTransport {
  private socket: Socket;
  private sink: ByteSink | null = null;
  private upgraded = false;
  private gone = false;
  private byteBucket: TokenBucket | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.sink?.feed(chunk);
    if (this.byteBucket) {
      const wait = this.byteBucket.take(chunk.length);
      if (wait > 0) this.pauseFor(wait);
    }
  };
  private readonly onGone = () => {
    if (this.gone) return;
    this.gone = true;
    this.sink?.transportClosed();
  };
  /** Errors (ECONNRESET, TLS alerts) are followed by 'close', where the session is dropped. */
  private readonly onError = () => {};

  constructor(
    socket: Socket,
    private readonly secureContext: SecureContext | null,
    private readonly directTls: boolean,
  ) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.listen(socket);
  }

  /** Start delivering bytes; separate from the constructor so the sink can hold the transport. */
  attach(sink: ByteSink): void {
    this.sink = sink;
  }

  /** Shape reading to `rate` bytes a second (bursts up to `burst`), ejabberd style. */
  limitBytes(rate: number, burst: number): void {
    this.byteBucket = rate > 0 ? new TokenBucket(rate, burst) : null;
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
    plain.off('data', this.onData);
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

  private listen(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onGone);
    socket.on('error', this.onError);
  }
}
