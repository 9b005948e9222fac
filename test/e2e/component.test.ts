/**
 * XEP-0114 components against a real Hermod over real sockets, with @xmpp/component as the
 * component: handshake, routing both ways with 'from' preserved, and the stream errors of a
 * wrong name, a wrong secret, a second connection under a name in use, and a forged 'from'.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { component, xml } from '@xmpp/component';
import type { Element } from '@xmpp/xml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/config/flags.js';
import { startServer, type HermodServer } from '../../src/server.js';
import { attachComponent, sendToOfflineAndToNobody, type AttachedComponent } from './component-helpers.js';
import { PASSWORDS, RawClient } from './harness.js';

const SECRET = 'echo-secret';
let server: HermodServer;
let dataDir: string;
let componentPort: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'hermod-component-'));
  const args = parseServeArgs(
    ['--port', '0', '--tls-port', 'off', '--component-port', '0', '--tls', 'optional', '--data', dataDir, '--domain', 'localhost'],
    {},
  );
  const config = args.loaded!.config;
  server = await startServer({ ...config, components: { 'echo.localhost': SECRET, 'bot.localhost': 'bot-secret' } });
  for (const [user, password] of Object.entries(PASSWORDS)) server.storage.users.create(`${user}@localhost`, password);
  componentPort = server.components!.port;
});

afterAll(async () => {
  await server?.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
});

const attach = (domain: string, password: string): Promise<AttachedComponent> => attachComponent(componentPort, domain, password);

/** A raw component connection: header, then what the server answers. */
async function rawComponent(to: string): Promise<{ c: RawClient; id: string }> {
  const c = await RawClient.connect(componentPort);
  c.send(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`);
  const text = await c.waitFor(/<stream:stream[^>]*>|<\/stream:stream>/);
  return { c, id: /\sid='([^']+)'/.exec(text)?.[1] ?? '' };
}

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

describe('XEP-0114 components', () => {
  it('a user messages echo.localhost and gets the echo back, from preserved both ways', async () => {
    const echo = await attach('echo.localhost', SECRET);
    echo.xmpp.on('stanza', (el: Element) => {
      if (!el.is('message')) return;
      void echo.xmpp.send(
        xml('message', { from: el.attrs.to, to: el.attrs.from, type: 'chat', id: `re-${el.attrs.id}` }, xml('body', {}, `echo: ${el.getChildText('body')}`)),
      );
    });
    const alice = await RawClient.connect(server.c2s.port);
    const jid = await alice.login('alice', { tls: false, resource: 'pc' });
    alice.send("<message to='bot@echo.localhost' id='m1' type='chat'><body>hello</body></message>");
    const got = await echo.next((el) => el.is('message') && el.attrs.id === 'm1');
    expect(got.attrs.from).toBe(jid);
    expect(got.attrs.to).toBe('bot@echo.localhost');
    const text = await alice.waitFor(/<message[^>]*id=["']re-m1["'][\s\S]*?<\/message>/);
    expect(text).toMatch(/from='bot@echo\.localhost'/);
    expect(text).toContain('<body>echo: hello</body>');
    // An IQ to a JID at the component is routed there too, and its answer comes back.
    alice.send("<iq to='echo.localhost' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>");
    const iq = await echo.next((el) => el.is('iq') && el.attrs.id === 'v1');
    expect(iq.attrs.from).toBe(jid);
    await echo.xmpp.send(xml('iq', { type: 'result', id: 'v1', from: 'echo.localhost', to: jid }, xml('query', { xmlns: 'jabber:iq:version' }, xml('name', {}, 'Echo'))));
    expect(await alice.waitFor("<name>Echo</name>")).toMatch(/<iq[^>]*from='echo\.localhost'/);
    alice.close();
    await echo.xmpp.stop();
  });

  it('a component sends to a user: delivered under the local rules (offline storage when unavailable)', async () => {
    const bot = await attach('bot.localhost', 'bot-secret');
    const bob = await RawClient.connect(server.c2s.port);
    await bob.login('bob', { tls: false, resource: 'phone' });
    bob.send('<presence/>');
    await bob.waitFor("<presence from='bob@localhost/phone'");
    await bot.xmpp.send(xml('message', { from: 'news@bot.localhost', to: 'bob@localhost', id: 'n1', type: 'chat' }, xml('body', {}, 'breaking')));
    const text = await bob.waitFor(/id=["']n1["'][\s\S]*?<\/message>/);
    expect(text).toMatch(/<message[^>]*from='news@bot\.localhost'/);
    // carol is offline: the message waits in offline storage for her; nobody does not exist.
    await sendToOfflineAndToNobody(bot);
    expect(server.storage.offline.count('carol@localhost')).toBe(1);
    bob.close();
    await bot.xmpp.stop();
  });

  it('refuses a wrong secret with not-authorized', async () => {
    const { c, id } = await rawComponent('echo.localhost');
    c.send(`<handshake>${sha1(id + 'wrong')}</handshake>`);
    const text = await c.waitFor('</stream:stream>');
    expect(text).toContain("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    await c.waitClosed();
    // @xmpp/component sees the failure as an error.
    const xmpp = component({ service: `xmpp://127.0.0.1:${componentPort}`, domain: 'echo.localhost', password: 'wrong' });
    xmpp.reconnect.stop();
    const failed = new Promise<Error>((done) => xmpp.on('error', done));
    void xmpp.start().catch(() => {});
    expect((await failed).message).toMatch(/not-authorized/);
    await xmpp.stop().catch(() => {});
  });

  it('refuses an unknown component name with host-unknown', async () => {
    const { c } = await rawComponent('nobody.localhost');
    expect(await c.waitFor('</stream:stream>')).toContain("<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    await c.waitClosed();
  });

  it('refuses a second connection under a name in use with conflict, after its handshake', async () => {
    const echo = await attach('echo.localhost', SECRET);
    const { c, id } = await rawComponent('echo.localhost');
    c.send(`<handshake>${sha1(id + SECRET)}</handshake>`);
    expect(await c.waitFor('</stream:stream>')).toContain("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    await c.waitClosed();
    await echo.xmpp.stop();
  });

  it("closes a component that forges a 'from' outside its domain with invalid-from", async () => {
    const { c, id } = await rawComponent('echo.localhost');
    c.send(`<handshake>${sha1(id + SECRET)}</handshake>`);
    await c.waitFor('<handshake/>');
    c.send("<message from='admin@localhost' to='alice@localhost'><body>forged</body></message>");
    expect(await c.waitFor('</stream:stream>')).toContain("<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    await c.waitClosed();
  });

  it("lists the configured components in the server's disco#items (XEP-0030 §4)", async () => {
    const alice = await RawClient.connect(server.c2s.port);
    await alice.login('alice', { tls: false, resource: 'd' });
    alice.send("<iq to='localhost' type='get' id='it1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    const text = await alice.waitFor(/id='it1'[\s\S]*?<\/iq>/);
    expect(text).toContain("<item jid='bot.localhost'/>");
    expect(text).toContain("<item jid='echo.localhost'/>");
    alice.close();
  });

  it('answers service-unavailable for a configured component that is not connected', async () => {
    const alice = await RawClient.connect(server.c2s.port);
    await alice.login('alice', { tls: false, resource: 'x' });
    alice.send("<message to='bot.localhost' id='m9'><body>anyone?</body></message>");
    expect(await alice.waitFor(/id='m9'[\s\S]*?<\/message>/)).toContain('<service-unavailable');
    alice.close();
  });
});
