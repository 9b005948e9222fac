/**
 * The server certificate: the operator's PEM files when configured, otherwise a self-signed one
 * generated on first start and kept in the data directory so clients that pinned it on first
 * use keep trusting it across restarts.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    return { cert: readPem(certFile, '--data'), key: readPem(keyFile, '--data'), source: 'generated-earlier', certFile, keyFile };
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
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, source: 'generated', certFile, keyFile };
}

export function secureContextOf(certificate: Certificate): SecureContext {
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
