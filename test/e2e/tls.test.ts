/**
 * Certificates: a configured PEM pair is what clients see; without one, a self-signed
 * certificate is generated on first start and reused on the next, for STARTTLS and Direct TLS.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { generate } from 'selfsigned';
import { afterAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/config/flags.js';
import { startServer } from '../../src/server.js';
import { RawClient, STREAM_HEADER } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'hermod-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function start(flags: string[]) {
  return startServer(parseServeArgs(['--port', '0', '--tls-port', '0', ...flags], {}).loaded!.config);
}

/** The certificate the server presents after STARTTLS on `port`. */
async function starttlsCertificate(port: number, domain = 'localhost'): Promise<string> {
  const client = await RawClient.connect(port);
  try {
    client.send(STREAM_HEADER.replace("to='localhost'", `to='${domain}'`));
    await client.waitFor('</stream:features>');
    await client.startTls();
    return (client.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!.fingerprint256;
  } finally {
    client.close();
  }
}

/** The certificate the server presents on its Direct TLS port. */
function directTlsCertificate(port: number): Promise<{ fingerprint: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['xmpp-client'] }, () => {
      resolve({ fingerprint: socket.getPeerX509Certificate()!.fingerprint256, alpn: socket.alpnProtocol });
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('TLS certificates', () => {
  it('generates a self-signed certificate for the domain on first start and reuses it after a restart', async () => {
    const data = join(dir, 'generated');
    const first = await start(['--data', data, '--domain', 'chat.example']);
    try {
      expect(first.certificate.source).toBe('generated');
      const cert = new X509Certificate(readFileSync(first.certificate.certFile));
      expect(cert.subjectAltName).toContain('DNS:chat.example');
      expect(await starttlsCertificate(first.c2s.port, 'chat.example')).toBe(cert.fingerprint256);
      const direct = await directTlsCertificate(first.directTls!.port);
      expect(direct.fingerprint).toBe(cert.fingerprint256);
      expect(direct.alpn).toBe('xmpp-client');
    } finally {
      await first.shutdown();
    }
    const second = await start(['--data', data, '--domain', 'chat.example']);
    try {
      expect(second.certificate.source).toBe('generated-earlier');
      expect(second.certificate.cert).toBe(first.certificate.cert);
    } finally {
      await second.shutdown();
    }
  });

  it('serves the configured certificate and key', async () => {
    const pems = await generate([{ name: 'commonName', value: 'configured.example' }], { keyType: 'ec', curve: 'P-256' });
    const certFile = join(dir, 'c.pem');
    const keyFile = join(dir, 'k.pem');
    writeFileSync(certFile, pems.cert);
    writeFileSync(keyFile, pems.private);
    const server = await start(['--data', join(dir, 'configured'), '--cert', certFile, '--key', keyFile]);
    try {
      expect(server.certificate.source).toBe('configured');
      const expected = new X509Certificate(pems.cert).fingerprint256;
      expect(await starttlsCertificate(server.c2s.port)).toBe(expected);
      expect((await directTlsCertificate(server.directTls!.port)).fingerprint).toBe(expected);
    } finally {
      await server.shutdown();
    }
  });

  it('refuses a key that does not match the certificate, naming the option', async () => {
    const a = await generate([{ name: 'commonName', value: 'a' }], { keyType: 'ec', curve: 'P-256' });
    const b = await generate([{ name: 'commonName', value: 'b' }], { keyType: 'ec', curve: 'P-256' });
    writeFileSync(join(dir, 'a.pem'), a.cert);
    writeFileSync(join(dir, 'b.key'), b.private);
    await expect(start(['--data', join(dir, 'mismatch'), '--cert', join(dir, 'a.pem'), '--key', join(dir, 'b.key')])).rejects.toThrow(
      /--cert: unusable certificate or key/,
    );
  });
});
