/**
 * An @xmpp/component connection for the XEP-0114 end-to-end tests (inline and sharded servers):
 * every stanza recorded, and a wait for the first one that passes a test.
 */
import { component, xml, type Component } from '@xmpp/component';
import type { Element } from '@xmpp/xml';
import { expect } from 'vitest';

export interface AttachedComponent {
  xmpp: Component;
  stanzas: Element[];
  next(test: (el: Element) => boolean): Promise<Element>;
}

export async function attachComponent(port: number, domain: string, password: string): Promise<AttachedComponent> {
  const xmpp = component({ service: `xmpp://127.0.0.1:${port}`, domain, password });
  xmpp.reconnect.stop();
  const stanzas: Element[] = [];
  const waiters: { test: (el: Element) => boolean; done: (el: Element) => void }[] = [];
  xmpp.on('stanza', (el: Element) => {
    stanzas.push(el);
    for (const w of [...waiters]) if (w.test(el)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.done(el);
    }
  });
  xmpp.on('error', () => {});
  await xmpp.start();
  return {
    xmpp,
    stanzas,
    next: (test) => {
      const found = stanzas.find(test);
      if (found) return Promise.resolve(found);
      return new Promise((done) => waiters.push({ test, done }));
    },
  };
}

/**
 * From news@bot.localhost: a chat message to carol (offline: the caller checks it was stored),
 * then one to a user that does not exist, which comes back as service-unavailable (RFC 6121
 * §8.5.1).
 */
export async function sendToOfflineAndToNobody(bot: AttachedComponent): Promise<void> {
  await bot.xmpp.send(xml('message', { from: 'news@bot.localhost', to: 'carol@localhost', id: 'n2', type: 'chat' }, xml('body', {}, 'later')));
  await bot.xmpp.send(xml('message', { from: 'news@bot.localhost', to: 'nobody@localhost', id: 'n3' }, xml('body', {}, 'x')));
  const err = await bot.next((el) => el.attrs.id === 'n3');
  expect(err.attrs.type).toBe('error');
  expect(err.getChild('error')?.getChild('service-unavailable')).toBeTruthy();
}
