/**
 * The one-line summary a starting server prints (`hermod serve`): every address it listens on
 * and what for, its domain and data directory. The inline and the sharded server share it.
 */
import type { HermodConfig } from './config/schema.js';

interface Bound {
  host: string;
  port: number;
}

export interface ServerAddresses {
  c2s: Bound;
  directTls: Bound | null;
  websocket: Bound | null;
  /** XEP-0114 component listener. */
  components: Bound | null;
  /** XEP-0363 HTTP service and the URL clients are told. */
  upload: { http: Bound; url: string } | null;
}

export function describeServer(config: Pick<HermodConfig, 'tls' | 'listen' | 'domain' | 'dataDir'>, at: ServerAddresses): string {
  const where = [`${at.c2s.host}:${at.c2s.port} (c2s, STARTTLS${config.tls.policy === 'required' ? ' required' : ' optional'})`];
  if (at.directTls) where.push(`${at.directTls.host}:${at.directTls.port} (direct TLS)`);
  if (at.websocket) where.push(`ws://${at.websocket.host}:${at.websocket.port}${config.listen.websocket.path} (WebSocket)`);
  if (at.components) where.push(`${at.components.host}:${at.components.port} (components, XEP-0114)`);
  if (at.upload) where.push(`${at.upload.http.host}:${at.upload.http.port} (file upload, ${at.upload.url})`);
  return `hermod listening on ${where.join(', ')}, domain ${config.domain}, data ${config.dataDir}`;
}
