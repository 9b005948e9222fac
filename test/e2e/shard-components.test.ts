/**
 * XEP-0114 components with `hermod serve --workers 2`: the component connections stay on the
 * main thread, the shards route their stanzas. Users on both shards reach a component and hear
 * back with 'from' kept both ways; a component reaches a user on either shard, offline storage
 * and the error for a user that does not exist; a configured component that is not connected
 * answers service-unavailable; disco#items lists the components (XEP-0030 §4).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xml } from '@xmpp/component';
import type { Element } from '@xmpp/xml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { attachComponent, sendToOfflineAndToNobody } from './component-helpers.js';
import { PASSWORDS, RawClient } from './harness.js';
import { shardedConfig } from './shard-helpers.js';

const SECRET = 'echo-secret';
let server: ShardedServer;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'hermod-shard-components-'));
  const storage = openStorage({ dataDir, offlineLimit: 100 });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  const config = shardedConfig(dataDir, 2);
  config.listen.component.port = 0;
  config.components = { 'echo.localhost': SECRET, 'bot.localhost': 'bot-secret' };
  server = await startShardedServer(config, { adminChannel: false });
});

afterAll(async () => {
  await server?.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
});

async function user(name: string, resource: string): Promise<{ c: RawClient; jid: string }> {
  const c = await RawClient.connect(server.c2s.port);
  const jid = await c.login(name, { tls: false, resource });
  return { c, jid };
}

describe('XEP-0114 components with shard workers', () => {
  it('users on both shards message a component and get its answers, from kept both ways', async () => {
    const echo = await attachComponent(server.components!.port, 'echo.localhost', SECRET);
    echo.xmpp.on('stanza', (el: Element) => {
      if (!el.is('message')) return;
      void echo.xmpp.send(
        xml('message', { from: el.attrs.to, to: el.attrs.from, type: 'chat', id: `re-${el.attrs.id}` }, xml('body', {}, `echo: ${el.getChildText('body')}`)),
      );
    });
    const alice = await user('alice', 'pc');
    const bob = await user('bob', 'phone');
    try {
      // Spread over the shards (fewest connections first): both shards forward to the component.
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      for (const [who, id] of [[alice, 'a1'], [bob, 'b1']] as const) {
        who.c.send(`<message to='bot@echo.localhost' id='${id}' type='chat'><body>hello ${id}</body></message>`);
        const got = await echo.next((el) => el.is('message') && el.attrs.id === id);
        expect(got.attrs.from).toBe(who.jid);
        const text = await who.c.waitFor(new RegExp(`<message[^>]*id=["']re-${id}["'][\\s\\S]*?</message>`));
        expect(text).toMatch(/from='bot@echo\.localhost'/);
        expect(text).toContain(`<body>echo: hello ${id}</body>`);
      }
      // An IQ to the component's domain goes there, its result comes back to the asker.
      bob.c.send("<iq to='echo.localhost' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>");
      const iq = await echo.next((el) => el.is('iq') && el.attrs.id === 'v1');
      expect(iq.attrs.from).toBe(bob.jid);
      await echo.xmpp.send(xml('iq', { type: 'result', id: 'v1', from: 'echo.localhost', to: bob.jid }, xml('query', { xmlns: 'jabber:iq:version' }, xml('name', {}, 'Echo'))));
      expect(await bob.c.waitFor('<name>Echo</name>')).toMatch(/<iq[^>]*from='echo\.localhost'/);
    } finally {
      alice.c.close();
      bob.c.close();
      await echo.xmpp.stop();
    }
  });

  it('a component reaches users on either shard, stores for an offline one, and hears service-unavailable for nobody', async () => {
    const alice = await user('alice', 'pc');
    const bob = await user('bob', 'phone');
    const bot = await attachComponent(server.components!.port, 'bot.localhost', 'bot-secret');
    try {
      for (const who of [alice, bob]) {
        const id = `n-${who.jid.split('@')[0]}`;
        await bot.xmpp.send(xml('message', { from: 'news@bot.localhost', to: who.jid, id, type: 'chat' }, xml('body', {}, 'breaking')));
        const text = await who.c.waitFor(new RegExp(`id=["']${id}["'][\\s\\S]*?</message>`));
        expect(text).toMatch(/<message[^>]*from='news@bot\.localhost'/);
      }
      // carol is offline (stored), nobody does not exist (the error goes back to the component).
      await sendToOfflineAndToNobody(bot);
      // The shards' rings are drained in order: n2 was stored before n3 was refused.
      const storage = openStorage({ dataDir, offlineLimit: 100 });
      try {
        expect(storage.offline.count('carol@localhost')).toBe(1);
      } finally {
        storage.close();
      }
    } finally {
      alice.c.close();
      bob.c.close();
      await bot.xmpp.stop();
    }
  });

  it('answers service-unavailable for a configured component that is not connected, and lists both in disco#items', async () => {
    const alice = await user('alice', 'pc');
    const bob = await user('bob', 'phone');
    try {
      for (const who of [alice, bob]) {
        who.c.send("<message to='someone@echo.localhost' id='down' type='chat'><body>anyone?</body></message>");
        const text = await who.c.waitFor(/<message[^>]*id='down'[\s\S]*?<\/message>/);
        expect(text).toMatch(/type='error'/);
        expect(text).toContain("<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
      }
      alice.c.send("<iq to='localhost' type='get' id='items'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
      const items = await alice.c.waitFor(/<iq[^>]*id='items'[\s\S]*?<\/iq>/);
      expect(items).toContain("jid='echo.localhost'");
      expect(items).toContain("jid='bot.localhost'");
    } finally {
      alice.c.close();
      bob.c.close();
    }
  });
});
