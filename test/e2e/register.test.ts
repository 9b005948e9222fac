/**
 * In-band registration (XEP-0077) through the stream layer: advertised as a stream feature and
 * allowed before authentication only when `--registration open`, and only on a TLS-protected
 * stream under `tls: required`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, STREAM_HEADER, startTestServer, type TestServer } from './harness.js';

let open: TestServer;
let closed: TestServer;

beforeAll(async () => {
  open = await startTestServer(['--registration', 'open']);
  closed = await startTestServer();
});

afterAll(async () => {
  await open?.stop();
  await closed?.stop();
});

const REGISTER = "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>dave</username><password>dave-secret-4</password></query></iq>";

describe('in-band registration (XEP-0077) before authentication', () => {
  it('creates an account over STARTTLS when open, and the account can log in', async () => {
    const c = await RawClient.connect(open.port);
    c.send(STREAM_HEADER);
    const plainFeatures = await c.waitFor('</stream:features>');
    // Not before TLS under tls: required.
    expect(plainFeatures).not.toContain('iq-register');
    c.take();
    await c.startTls();
    c.send(STREAM_HEADER);
    expect(await c.waitFor('</stream:features>')).toContain("<register xmlns='http://jabber.org/features/iq-register'/>");
    c.take();
    c.send(REGISTER);
    expect(await c.waitFor("id='reg1'")).toMatch(/type=["']result["']/);
    c.close();
    expect(open.server.storage.users.exists('dave@localhost')).toBe(true);
    const dave = await RawClient.connect(open.port);
    expect(await dave.login('dave', { tls: true, password: 'dave-secret-4', resource: 'new' })).toBe('dave@localhost/new');
    dave.close();
  });

  it('refuses the registration iq with not-authorized when registration is closed', async () => {
    const c = await RawClient.connect(closed.port);
    c.send(STREAM_HEADER);
    await c.waitFor('</stream:features>');
    c.take();
    await c.startTls();
    c.send(STREAM_HEADER);
    expect(await c.waitFor('</stream:features>')).not.toContain('iq-register');
    c.send(REGISTER);
    await c.waitClosed();
    expect(c.received).toContain("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    expect(closed.server.storage.users.exists('dave@localhost')).toBe(false);
  });
});
