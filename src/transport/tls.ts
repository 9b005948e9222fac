/**
 * The server certificate: the operator's PEM files when configured, otherwise a self-signed one
 * generated on first start and kept in the data directory so clients that pinned it on first
 * use keep trusting it across restarts.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { generate } from 'selfsigned';
import { ConfigError } from '../errors.js';

export interface Certificate {
  key: string;
  cert: string;
  /** Where it came from, for the startup line and the logs. */
  source: 'configured' | 'generated' | 'generated-earlier';
  certFile: string;
  keyFile: string;
}

function readPem(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, flag);
  }
}

/** Load the configured pair, or the one generated earlier, or generate one for `domain`. */
export async function loadCertificate(options: {
  certFile: string | null;
  keyFile: string | null;
  dataDir: string;
  domain: string;
}): Promise<Certificate> {
  if (options.certFile && options.keyFile) {
    return {
      cert: readPem(options.certFile, '--cert'),
      key: readPem(options.keyFile, '--key'),
      source: 'configured',
      certFile: options.certFile,
      keyFile: options.keyFile,
    };
  }
  const dir = join(options.dataDir, 'tls');
  const certFile = join(dir, `${options.domain}.crt`);
  const keyFile = join(dir, `${options.domain}.key`);
  if (existsSync(certFile) && existsSync(keyFile)) {
    const earlier = { cert: readPem(certFile, '--data'), key: readPem(keyFile, '--data'), source: 'generated-earlier' as const, certFile, keyFile };
    // Ours to replace when a crash (or a power loss before the data reached the disk) left them
    // empty or cut: otherwise the server would listen and fail every TLS handshake.
    if (unusable(earlier) === null) return earlier;
  }
  // EC P-256: generation takes milliseconds (RSA-2048 takes seconds), and handshakes are cheaper.
  const pems = await generate([{ name: 'commonName', value: options.domain }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 825 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: options.domain },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Each file appears whole or not at all (a rename replaces atomically): a crash mid-write
  // leaves no half file for the next start to trust.
  writeWhole(keyFile, pems.private, 0o600);
  writeWhole(certFile, pems.cert, 0o644);
  return { cert: pems.cert, key: pems.private, source: 'generated', certFile, keyFile };
}

function writeWhole(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/** Why `pair` cannot serve TLS (not PEM, empty, key of another certificate), or null. */
function unusable(pair: Pick<Certificate, 'cert' | 'key'>): string | null {
  try {
    return new X509Certificate(pair.cert).checkPrivateKey(createPrivateKey(pair.key)) ? null : 'the key does not belong to the certificate';
  } catch (err) {
    return (err as Error).message;
  }
}

export function secureContextOf(certificate: Certificate): SecureContext {
  // createSecureContext accepts an empty certificate; every handshake would then fail.
  const reason = unusable(certificate);
  if (reason !== null) throw new ConfigError(`unusable certificate or key (${certificate.certFile}): ${reason}`, '--cert');
  try {
    return createSecureContext({ key: certificate.key, cert: certificate.cert, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new ConfigError(`unusable certificate or key (${certificate.certFile}): ${(err as Error).message}`, '--cert');
  }
}

/** The configuration's certificate (tls.cert/tls.key, or the generated one) and its context. */
export async function loadServerTls(config: {
  domain: string;
  dataDir: string;
  tls: { cert: string | null; key: string | null };
}): Promise<{ certificate: Certificate; secureContext: SecureContext }> {
  const certificate = await loadCertificate({
    certFile: config.tls.cert,
    keyFile: config.tls.key,
    dataDir: config.dataDir,
    domain: config.domain,
  });
  return { certificate, secureContext: secureContextOf(certificate) };
}
