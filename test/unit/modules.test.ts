import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Jid } from '../../src/jid.js';
import { defaultModules, packageVersion } from '../../src/modules/index.js';
import type { Module } from '../../src/router/context.js';
import { createRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { jsView } from '../scenario/js-view.js';

function session(bare: string): ClientSession & { out: string[] } {
  const out: string[] = [];
  return { id: Math.floor(Math.random() * 1e9), account: Jid.parse(bare), jid: null, out, send: (d) => void out.push(String(d)), close() {} };
}

describe('modules', () => {
  it('reports the version from package.json (XEP-0092)', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(packageVersion()).toBe(pkg.version);
  });

  it('installs every module once with distinct names', () => {
    const names = defaultModules().map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['disco', 'roster', 'ping', 'version', 'register', 'vcard', 'offline']));
  });

  it('takes pre-authentication registration hooks only when registration is open (XEP-0077)', () => {
    const storage = createMemoryStorage({ iterations: 1 });
    const closed = createRouter({ domain: 'localhost', storage });
    const open = createRouter({ domain: 'localhost', storage, registration: 'open' });
    expect(closed.hooks.has('iq-get/unauth/jabber:iq:register')).toBe(false);
    expect(open.hooks.has('iq-get/unauth/jabber:iq:register')).toBe(true);
    expect(open.hooks.has('iq-set/unauth/jabber:iq:register')).toBe(true);
  });

  it('answers disco#info with features a module adds after start-up (XEP-0030 §3.1)', () => {
    const extra: Module = {
      name: 'extra',
      install(ctx) {
        ctx.features.add('urn:xmpp:example:0');
        ctx.features.addIdentity({ category: 'pubsub', type: 'pep' });
      },
    };
    const storage = createMemoryStorage({ iterations: 1 });
    storage.users.create('alice@localhost', 'pw');
    const router = createRouter({ domain: 'localhost', storage, modules: [...defaultModules(), extra] });
    const s = session('alice@localhost');
    router.bind(s, 'r');
    router.route(s, jsView("<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
    expect(s.out[0]).toContain("<feature var='urn:xmpp:example:0'/>");
    expect(s.out[0]).toContain("<identity category='pubsub' type='pep'/>");
    expect(s.out[0]).toContain("<identity category='server' type='im' name='Hermod'/>");
  });

  it('lets a router run with no modules at all: every IQ get/set is then service-unavailable', () => {
    const storage = createMemoryStorage({ iterations: 1 });
    storage.users.create('alice@localhost', 'pw');
    const router = createRouter({ domain: 'localhost', storage, modules: [] });
    const s = session('alice@localhost');
    router.bind(s, 'r');
    router.route(s, jsView("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>"));
    expect(s.out[0]).toContain('<service-unavailable');
  });
});
