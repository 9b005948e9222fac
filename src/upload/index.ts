/**
 * XEP-0363 HTTP File Upload wired from the configuration: the router module's settings (every
 * thread that routes builds them) and the HTTP service with its expiry sweep (main thread only).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { HermodConfig } from '../config/schema.js';
import type { Certificate } from '../transport/tls.js';
import { UploadFiles } from './files.js';
import { startUploadHttp, type UploadHttpServer } from './http.js';
import { SLOT_LIFETIME_MS, type UploadSettings } from './module.js';
import { RequestLimits } from './limits.js';
import { loadUploadSecret, SlotSigner } from './slot.js';

export { upload, type UploadSettings } from './module.js';

/** How often expired files are looked for. */
const SWEEP_INTERVAL_MS = 60 * 60_000;

type UploadConfig = Pick<HermodConfig, 'domain' | 'dataDir' | 'upload' | 'components' | 'listen' | 'muc'>;

export function uploadDomain(config: UploadConfig): string {
  return config.upload.domain || `upload.${config.domain}`;
}

export function uploadDir(config: UploadConfig): string {
  return config.upload.dir ?? join(config.dataDir, 'uploads');
}

/** What clients are told; for the default, the address the HTTP service binds (IPv6 bracketed). */
export function publicUrl(config: UploadConfig, boundPort?: number): string {
  if (config.upload.publicUrl) return config.upload.publicUrl;
  const { host } = config.upload.http;
  return `http://${host.includes(':') ? `[${host}]` : host}:${boundPort ?? config.upload.http.port}`;
}

/** Refuse combinations that cannot work, naming the option. */
export function checkUploadConfig(config: UploadConfig): void {
  if (!config.upload.enabled) return;
  const domain = uploadDomain(config);
  if (domain === config.domain) throw new ConfigError(`upload.domain must differ from the server's domain ${config.domain}`, 'upload.domain');
  if (domain in config.components) throw new ConfigError(`upload.domain ${domain} is also configured as a component`, 'upload.domain');
  if (config.muc.enabled && (config.muc.domain ?? `conference.${config.domain}`) === domain) {
    throw new ConfigError(`upload.domain ${domain} is also the multi-user chat service's domain`, 'upload.domain');
  }
  const ws = config.listen.websocket;
  if (ws.enabled && ws.port !== 0 && ws.port === config.upload.http.port) {
    throw new ConfigError(`upload.http.port ${ws.port} is also listen.websocket.port: give one of them another port`, 'upload.http.port');
  }
}

/**
 * The router module's settings, or undefined when uploads are off. `boundPort` is the HTTP
 * service's real port when port 0 was configured (main thread), passed to shards the same way.
 */
export function uploadSettings(config: UploadConfig, boundPort?: number): UploadSettings | undefined {
  if (!config.upload.enabled) return undefined;
  return {
    domain: uploadDomain(config),
    publicUrl: publicUrl(config, boundPort),
    maxFileSize: config.upload.maxFileSize,
    quota: config.upload.quota,
    slotLifetime: SLOT_LIFETIME_MS,
    signer: new SlotSigner(loadUploadSecret(config.dataDir)),
    files: new UploadFiles(uploadDir(config)),
    slotLimits: rateLimits(config, 'slots'),
  };
}

/** The slot-request or PUT limits of the configuration (upload.rate_limit). */
function rateLimits(config: UploadConfig, kind: 'slots' | 'puts'): RequestLimits {
  const r = config.upload.rateLimit;
  return new RequestLimits({
    perAccount: kind === 'slots' ? r.slotsPerAccount : r.putsPerAccount,
    perAddress: kind === 'slots' ? r.slotsPerIp : r.putsPerIp,
    windowMs: r.window,
  });
}

/**
 * Delete every file `bare` uploaded (account removal: `hermod deluser`). Nothing to do when no
 * upload secret was ever created. Returns whether a folder was removed.
 */
export function removeAccountUploads(config: UploadConfig, bare: string): boolean {
  if (!existsSync(join(config.dataDir, 'upload.secret'))) return false;
  const folder = new UploadFiles(uploadDir(config)).ownerDir(new SlotSigner(loadUploadSecret(config.dataDir)).ownerKey(bare));
  if (!existsSync(folder)) return false;
  rmSync(folder, { recursive: true, force: true });
  return true;
}

export interface UploadService {
  readonly http: UploadHttpServer;
  /** The URL clients are told. */
  readonly url: string;
  readonly settings: UploadSettings;
  close(): Promise<void>;
}

interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/**
 * Start the HTTP service (https when public_url is https and tls.cert/tls.key are configured;
 * otherwise plain HTTP, for a TLS-terminating proxy in front) and the expiry sweep.
 */
export async function startUpload(
  config: UploadConfig,
  settings: UploadSettings | undefined,
  certificate: Certificate | null,
  log?: Log,
): Promise<UploadService | null> {
  if (!settings) return null;
  checkUploadConfig(config);
  const base = settings;
  const tls = config.upload.publicUrl.startsWith('https:') && certificate?.source === 'configured' ? { key: certificate.key, cert: certificate.cert } : undefined;
  const http = await startUploadHttp({
    host: config.upload.http.host,
    port: config.upload.http.port,
    signer: base.signer,
    files: base.files,
    quota: config.upload.quota,
    maxFileSize: config.upload.maxFileSize,
    putLimits: rateLimits(config, 'puts'),
    tls,
    onStored: (info) => log?.info(info, 'file uploaded'),
  }).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `upload HTTP service cannot listen on ${config.upload.http.host}:${config.upload.http.port}: ${err.code ?? err.message}`,
      'upload.http.port',
    );
  });
  const sweep = () => {
    try {
      const removed = base.files.sweep(Date.now(), config.upload.expireAfter);
      if (removed > 0) log?.info({ removed }, 'expired uploads deleted');
    } catch (err) {
      log?.warn({ err: (err as Error).message }, 'upload expiry sweep failed');
    }
  };
  sweep();
  const timer = setInterval(sweep, SWEEP_INTERVAL_MS);
  timer.unref();
  // With port 0 (tests) the URL names the port actually bound; the router module reads it per slot.
  settings.publicUrl = publicUrl(config, http.port);
  return {
    http,
    url: settings.publicUrl,
    settings,
    async close() {
      clearInterval(timer);
      await http.close();
    },
  };
}
