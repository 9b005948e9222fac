/**
 * Listening sockets for client connections: plain TCP (STARTTLS offered on it) and Direct TLS
 * (XEP-0368). Both hand each accepted connection over as a SocketTransport.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { SocketTransport } from './socket.js';

export interface ListenOptions {
  host: string;
  port: number;
  backlog: number;
}

export interface Listener {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /**
   * The accept queue the kernel grants: the configured backlog, capped on Linux by
   * net.core.somaxconn (see kernelBacklogCap).
   */
  readonly backlog?: number;
  /** Stop accepting; open connections are left alone. */
  close(): Promise<void>;
}

/** Why a listener could not start, in words an operator can act on. */
export class ListenError extends Error {
  readonly code = 'ERR_HERMOD_LISTEN';
  constructor(
    readonly address: string,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    const reason =
      cause.code === 'EADDRINUSE'
        ? 'address already in use (another server is listening there)'
        : cause.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : cause.code === 'EADDRNOTAVAIL'
            ? 'address not available on this host'
            : cause.message;
    super(`cannot listen on ${address}: ${reason}`);
    this.name = 'ListenError';
  }
}

/**
 * Linux caps every listen(2) backlog at net.core.somaxconn, silently (4096 by default since
 * kernel 5.4). In a reconnect storm larger than the granted queue the kernel drops the surplus
 * SYNs and those clients only retry after 1 s, 3 s, 7 s, 15 s … (docs/benchmarks.md, "Reconnect
 * storm"), so an operator who raises listen.c2s.backlog must raise the sysctl too. Null where
 * the value cannot be read (not Linux).
 */
export function kernelBacklogCap(): number | null {
  try {
    const n = Number.parseInt(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'), 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function start(server: Server, options: ListenOptions): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new ListenError(`${options.host}:${options.port}`, err));
    };
    server.once('error', onError);
    server.listen({ host: options.host, port: options.port, backlog: options.backlog }, () => {
      server.off('error', onError);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      const cap = kernelBacklogCap();
      resolve({
        server,
        host: options.host,
        port,
        backlog: cap === null ? options.backlog : Math.min(options.backlog, cap),
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

/** c2s on plain TCP; STARTTLS is offered when a secure context is given. */
export function listenTcp(
  options: ListenOptions,
  secureContext: SecureContext | null,
  onConnection: (transport: SocketTransport) => void,
): Promise<Listener> {
  const server = createServer({ noDelay: true }, (socket: Socket) => {
    onConnection(new SocketTransport(socket, secureContext, false));
  });
  return start(server, options);
}

/** How long a Direct TLS client may take to finish its handshake. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * XEP-0368 Direct TLS: the stream starts only after the TLS handshake. Built on a plain TCP
 * server whose sockets are wrapped here, so it serves the same SecureContext as STARTTLS (and
 * follows it when the certificate is replaced) instead of a second copy of the key.
 */
export function listenDirectTls(
  options: ListenOptions,
  secureContext: SecureContext,
  onConnection: (transport: SocketTransport) => void,
): Promise<Listener> {
  const server = createServer({ noDelay: true }, (socket: Socket) => {
    // XEP-0368 §3: clients announce ALPN 'xmpp-client'; clients without ALPN are accepted too.
    const secured = new TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['xmpp-client'] });
    const timer = setTimeout(() => secured.destroy(), HANDSHAKE_TIMEOUT_MS);
    // A failed handshake concerns this client only; it never reaches a stream.
    const onError = () => {
      clearTimeout(timer);
      secured.destroy();
    };
    secured.once('error', onError);
    secured.once('secure', () => {
      clearTimeout(timer);
      secured.off('error', onError);
      onConnection(new SocketTransport(secured, null, true));
    });
  });
  return start(server, options);
}

export interface ClientListeners {
  c2s: Listener;
  /** null when Direct TLS is disabled. */
  directTls: Listener | null;
  /** Every accepted socket still open (to cut the stragglers at shutdown). */
  sockets: Set<Socket>;
  /** Stop accepting on both; open connections are left alone. */
  close(): Promise<void>;
}

/** Keep `listener`'s accepted sockets in `sockets` while they are open. */
export function trackSockets(listener: Listener, sockets: Set<Socket>): void {
  // One listener function for every socket ('close' fires once anyway): once() with a closure
  // would keep a wrapper, its state and a context alive per idle connection (~200 bytes).
  const forget = function (this: Socket): void {
    sockets.delete(this);
  };
  listener.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', forget);
  });
}

/**
 * Linux caps the accept queue at net.core.somaxconn silently, and a storm beyond it waits for
 * SYN retransmissions: tell the operator (`warn`) when the c2s listener got less than it asked.
 */
export function warnIfBacklogCapped(c2s: Listener, requested: number, warn: (facts: object, msg: string) => void): void {
  if (c2s.backlog !== undefined && c2s.backlog < requested) {
    warn({ requested, granted: c2s.backlog }, 'listen backlog capped by net.core.somaxconn: raise it (sysctl) for larger reconnect storms');
  }
}

/**
 * The client listeners of a configuration: c2s (STARTTLS) and, when enabled, Direct TLS on the
 * same backlog. If the second cannot start, the first is closed again before the error is thrown.
 */
export async function listenClients(
  listen: { c2s: ListenOptions; directTls: { enabled: boolean; host: string; port: number } },
  secureContext: SecureContext,
  onConnection: (transport: SocketTransport) => void,
): Promise<ClientListeners> {
  const c2s = await listenTcp(listen.c2s, secureContext, onConnection);
  let directTls: Listener | null = null;
  if (listen.directTls.enabled) {
    try {
      directTls = await listenDirectTls({ ...listen.directTls, backlog: listen.c2s.backlog }, secureContext, onConnection);
    } catch (err) {
      await c2s.close();
      throw err;
    }
  }
  const sockets = new Set<Socket>();
  for (const listener of [c2s, directTls]) if (listener) trackSockets(listener, sockets);
  return {
    c2s,
    directTls,
    sockets,
    close: async () => {
      await Promise.all([c2s.close(), directTls?.close()]);
    },
  };
}
