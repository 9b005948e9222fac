import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { capsOf, verificationString, verifies } from '../../src/modules/pep/caps.js';
import { checkPreconditions, keepCount, MAX_ITEMS_LIMIT } from '../../src/modules/pep/config.js';
import { createRouter } from '../../src/router/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { extractCaps, installPep, PEP_ACCOUNT_BYTES, PEP_ITEM_LIMIT, PEP_NODE_LIMIT } from '../../src/modules/pep.js';
import { MAX_SUBSCRIPTIONS } from '../../src/modules/pep/subscriptions.js';
import { StanzaError } from '../../src/errors.js';
import { parseElement } from '../../src/xml/element.js';
import { Scenario, jsFeederFactory } from '../scenario/runner.js';

const DISCO = 'http://jabber.org/protocol/disco#info';

/** XEP-0115 §5.2 (simple) and §5.3 (complex, with an XEP-0128 form) example queries. */
const SIMPLE = `<query xmlns='${DISCO}'><identity category='client' name='Exodus 0.9.1' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/></query>`;
const COMPLEX =
  `<query xmlns='${DISCO}'><identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/><identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>` +
  `<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>` +
  `<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>` +
  `<field var='ip_version'><value>ipv4</value><value>ipv6</value></field><field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field>` +
  `<field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field></x></query>`;

describe('XEP-0115 caps verification (server side of XEP-0163 §4.2)', () => {
  it('computes the verification string and hash of the simple example (XEP-0115 §5.2)', () => {
    const q = parseElement(SIMPLE);
    expect(verificationString(q)).toBe(
      'client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<',
    );
    expect(verifies({ node: 'http://code.google.com/p/exodus', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=', hash: 'sha-1' }, q)).toBe(true);
  });

  it('orders identities, features and extended forms octet-wise in the complex example (XEP-0115 §5.3)', () => {
    const q = parseElement(COMPLEX);
    expect(verifies({ node: 'http://psi-im.org', ver: 'q07IKJEyjvHSyhy//CH0CxmKi8w=', hash: 'sha-1' }, q)).toBe(true);
    // §5.4 step 3.5: a form without FORM_TYPE is left out; step 3.4: a repeated FORM_TYPE fails.
    const extra = parseElement(COMPLEX.replace('</query>', `<x xmlns='jabber:x:data' type='result'><field var='x'><value>y</value></field></x></query>`));
    expect(verifies({ node: 'http://psi-im.org', ver: 'q07IKJEyjvHSyhy//CH0CxmKi8w=', hash: 'sha-1' }, extra)).toBe(true);
    const form = COMPLEX.slice(COMPLEX.indexOf(`<x xmlns='jabber:x:data'`), COMPLEX.indexOf('</query>'));
    const twice = parseElement(COMPLEX.replace('</query>', `${form}</query>`));
    expect(verifies({ node: 'http://psi-im.org', ver: createHash('sha1').update(verificationString(twice)).digest('base64'), hash: 'sha-1' }, twice)).toBe(false);
  });

  it('rejects a wrong hash, duplicate features, an unknown hash function and legacy caps (XEP-0115 §5.4)', () => {
    const q = parseElement(SIMPLE);
    expect(verifies({ node: 'n', ver: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=', hash: 'sha-1' }, q)).toBe(false);
    expect(verifies({ node: 'n', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=', hash: 'x-unknown' }, q)).toBe(false);
    expect(verifies({ node: 'n', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=', hash: null }, q)).toBe(false);
    const dup = parseElement(SIMPLE.replace('</query>', `<feature var='http://jabber.org/protocol/muc'/></query>`));
    const ver = createHash('sha1').update(verificationString(dup)).digest('base64');
    expect(verifies({ node: 'n', ver, hash: 'sha-1' }, dup)).toBe(false);
  });

  it('finds <c/> in presence text without parsing the presence, whatever its quotes and position', () => {
    expect(extractCaps(`<presence><show>away</show><c hash="sha-1" node="n" ver="v=" xmlns="http://jabber.org/protocol/caps"/></presence>`)).toEqual({ node: 'n', ver: 'v=', hash: 'sha-1' });
    expect(extractCaps(`<presence><c xmlns='http://jabber.org/protocol/caps' node='n' ver='1.0'></c></presence>`)).toEqual({ node: 'n', ver: '1.0', hash: null });
    expect(extractCaps(`<presence><status>no caps</status></presence>`)).toBeNull();
    // The bytes as broadcast, with multi-byte text before the tag.
    expect(extractCaps(Buffer.from(`<presence from='a@b/c'><status>Grüße ✓</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='é='/></presence>`))).toEqual({ node: 'n', ver: 'é=', hash: 'sha-1' });
    expect(capsOf(parseElement(`<presence><c xmlns='http://jabber.org/protocol/caps' node='n'/></presence>`))).toBeNull();
  });
});

describe('PEP node configuration', () => {
  const form = (entries: [string, string][]) => new Map(entries);

  it('applies publish-options to a new node and refuses a mismatch on an existing one (XEP-0060 §7.1.5)', () => {
    const created = checkPreconditions(null, form([['pubsub#access_model', 'whitelist'], ['pubsub#max_items', 'max'], ['pubsub#persist_items', 'true']]));
    expect(created['pubsub#access_model']).toBe('whitelist');
    expect(created['pubsub#persist_items']).toBe('1');
    expect(keepCount(created)).toBe(MAX_ITEMS_LIMIT);
    expect(checkPreconditions(created, form([['pubsub#persist_items', '1'], ['pubsub#max_items', 'max']]))).toEqual(created);
    const err = (() => {
      try {
        checkPreconditions(created, form([['pubsub#access_model', 'open']]));
      } catch (e) {
        return e as StanzaError;
      }
      return null;
    })();
    expect(err?.condition).toBe('conflict');
    expect(err?.appCondition).toContain('precondition-not-met');
  });

  it('ignores publish-options fields it does not implement instead of refusing the publish', () => {
    expect(checkPreconditions(null, form([['pubsub#notify_sub', '1']]))['pubsub#access_model']).toBe('presence');
  });
});

const run = (script: string) => new Scenario({ feeder: jsFeederFactory }).run(script);
const PS = "<pubsub xmlns='http://jabber.org/protocol/pubsub'>";
const publish = (id: string, node: string, payload: string) =>
  `alice sends: <iq type='set' id='${id}'>${PS}<publish node='${node}'><item>${payload}</item></publish></pubsub></iq>`;
const published = (id: string, node: string) =>
  `alice receives: <iq type='result' id='${id}' to='alice@localhost/res'>${PS}<publish node='${node}'><item id='*'/></publish></pubsub></iq>`;

describe('PEP bounds', () => {
  it('refuses an item over the size limit with not-acceptable + payload-too-big and keeps the previous item (XEP-0060 §7.1.3, Payload Too Big)', async () => {
    await run(
      [
        'account alice',
        'alice connects',
        publish('p1', 'urn:xmpp:avatar:data', `<data xmlns='urn:xmpp:avatar:data'>small</data>`),
        published('p1', 'urn:xmpp:avatar:data'),
        publish('p2', 'urn:xmpp:avatar:data', `<data xmlns='urn:xmpp:avatar:data'>${'A'.repeat(PEP_ITEM_LIMIT)}</data>`),
        `alice receives: <iq type='error' id='p2' to='alice@localhost/res'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text><payload-too-big xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`,
        `alice sends: <iq type='get' id='g1'>${PS}<items node='urn:xmpp:avatar:data'/></pubsub></iq>`,
        `alice receives: <iq type='result' id='g1' to='alice@localhost/res'>${PS}<items node='urn:xmpp:avatar:data'><item id='*'><data xmlns='urn:xmpp:avatar:data'>small</data></item></items></pubsub></iq>`,
      ].join('\n'),
    );
  });

  it('refuses a node beyond the per-account limit with policy-violation + max-nodes-exceeded; existing nodes still take items', async () => {
    const lines = ['account alice', 'alice connects'];
    for (let i = 0; i < PEP_NODE_LIMIT; i++) {
      lines.push(publish(`p${i}`, `urn:example:n${i}`, `<x xmlns='urn:example'/>`), published(`p${i}`, `urn:example:n${i}`));
    }
    lines.push(
      publish('over', 'urn:example:one-too-many', `<x xmlns='urn:example'/>`),
      `alice receives: <iq type='error' id='over' to='alice@localhost/res'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text><max-nodes-exceeded xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`,
      publish('again', 'urn:example:n0', `<x xmlns='urn:example'/>`),
      published('again', 'urn:example:n0'),
    );
    await run(lines.join('\n'));
  });

  it('keeps an account under its byte quota (policy-violation) yet lets it replace items when full', async () => {
    const chunk = 250 * 1024;
    const fit = Math.floor((PEP_ACCOUNT_BYTES - 60 * 1024) / (chunk + 64));
    const item = (node: string, id: string, size: number) =>
      `alice sends: <iq type='set' id='${id}'>${PS}<publish node='${node}'><item id='${id}'><d xmlns='urn:example'>${'A'.repeat(size)}</d></item></publish>` +
      `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#max_items'><value>${node === 'urn:example:big' ? 'max' : '1'}</value></field></x></publish-options></pubsub></iq>`;
    const ok = (node: string, id: string) => `alice receives: <iq type='result' id='${id}' to='alice@localhost/res'>${PS}<publish node='${node}'><item id='${id}'/></publish></pubsub></iq>`;
    const refused = (id: string) =>
      `alice receives: <iq type='error' id='${id}' to='alice@localhost/res'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></iq>`;
    const lines = ['account alice', 'alice connects', item('urn:example:avatar', 'av1', 50 * 1024), ok('urn:example:avatar', 'av1')];
    for (let i = 0; i < fit; i++) lines.push(item('urn:example:big', `b${i}`, chunk), ok('urn:example:big', `b${i}`));
    lines.push(
      item('urn:example:big', 'one-more', chunk),
      refused('one-more'),
      // Replacing an item by id, or pushing out a node's only item, does not grow the account.
      item('urn:example:big', 'b0', chunk),
      ok('urn:example:big', 'b0'),
      item('urn:example:avatar', 'av2', 50 * 1024),
      ok('urn:example:avatar', 'av2'),
    );
    await run(lines.join('\n'));
  });

  it("counts too-many-subscriptions per subscriber (type wait): one account's full JIDs cannot use up the subscriptions another account's open node offers others (XEP-0060 §6.1.3.9)", async () => {
    const subscribe = (who: string, id: string, jid: string) =>
      `${who} sends: <iq type='set' id='${id}' to='alice@localhost'>${PS}<subscribe node='urn:example:open' jid='${jid}'/></pubsub></iq>`;
    const subscribed = (who: string, id: string, jid: string) =>
      `${who} receives: <iq type='result' id='${id}' from='alice@localhost' to='${who}@localhost/res'>${PS}<subscription node='urn:example:open' jid='${jid}' subid='*' subscription='subscribed'/></pubsub></iq>`;
    const lines = [
      'account alice',
      'account eve',
      'account bob',
      'alice connects',
      `alice sends: <iq type='set' id='p1'>${PS}<publish node='urn:example:open'><item id='i1'><s xmlns='urn:example'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>open</value></field><field var='pubsub#send_last_published_item'><value>never</value></field></x></publish-options></pubsub></iq>`,
      published('p1', 'urn:example:open'),
      'eve connects',
    ];
    let refused = false;
    for (let i = 0; i < MAX_SUBSCRIPTIONS && !refused; i++) {
      lines.push(subscribe('eve', `s${i}`, `eve@localhost/r${i}`));
      lines.push(`eve receives: <iq type='*' id='s${i}' from='alice@localhost' to='eve@localhost/res'>*</iq>`);
    }
    lines.push(
      subscribe('eve', 'over', 'eve@localhost/one-too-many'),
      // §6.1.3.9's example: type wait (the subscriber may try again once it has fewer).
      `eve receives: <iq type='error' id='over' from='alice@localhost' to='eve@localhost/res'><error type='wait'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text><too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`,
      'bob connects',
      subscribe('bob', 'b1', 'bob@localhost'),
      subscribed('bob', 'b1', 'bob@localhost'),
    );
    await run(lines.join('\n'));
  });

  it("ends an account's subscriptions to others' nodes with the account (XEP-0077 removal): whoever registers the name next is subscribed to nothing and hears no event", async () => {
    await run(
      [
        'account alice',
        'account eve',
        'alice connects',
        `alice sends: <iq type='set' id='p1'>${PS}<publish node='urn:example:open'><item id='i1'><s xmlns='urn:example'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>open</value></field><field var='pubsub#send_last_published_item'><value>never</value></field></x></publish-options></pubsub></iq>`,
        published('p1', 'urn:example:open'),
        'eve connects',
        `eve sends: <iq type='set' id='s1' to='alice@localhost'>${PS}<subscribe node='urn:example:open' jid='eve@localhost'/></pubsub></iq>`,
        `eve receives: <iq type='result' id='s1' from='alice@localhost' to='eve@localhost/res'>${PS}<subscription node='urn:example:open' jid='eve@localhost' subid='*' subscription='subscribed'/></pubsub></iq>`,
        "eve sends: <iq type='set' id='r1'><query xmlns='jabber:iq:register'><remove/></query></iq>",
        "eve receives: <iq type='result' id='r1' to='eve@localhost/res'/>",
        'eve is closed: not-authorized',
        // Someone else registers the name.
        'account eve',
        'eve/new connects',
        `eve/new sends: <iq type='get' id='s2' to='alice@localhost'>${PS}<subscriptions node='urn:example:open'/></pubsub></iq>`,
        `eve/new receives: <iq type='result' id='s2' from='alice@localhost' to='eve@localhost/new'>${PS}<subscriptions node='urn:example:open'/></pubsub></iq>`,
        `alice sends: <iq type='set' id='p2'>${PS}<publish node='urn:example:open'><item id='i2'><s xmlns='urn:example'/></item></publish></pubsub></iq>`,
        published('p2', 'urn:example:open'),
        'eve/new receives nothing',
      ].join('\n'),
    );
  });

  it('declares on the stored payload the namespaces it inherited from the request, so events stay well-formed', async () => {
    await run(
      [
        'account alice',
        'alice connects',
        `alice sends: <iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub' xmlns:x='urn:x'><publish node='urn:x'><item id='i'><x:data x:a='1'><x:inner/><plain/></x:data></item></publish></pubsub></iq>`,
        `alice receives: <iq type='result' id='p1' to='alice@localhost/res'>${PS}<publish node='urn:x'><item id='i'/></publish></pubsub></iq>`,
        `alice sends: <iq type='get' id='g1'>${PS}<items node='urn:x'/></pubsub></iq>`,
        `alice receives: <iq type='result' id='g1' to='alice@localhost/res'>${PS}<items node='urn:x'><item id='i'><x:data xmlns:x='urn:x' xmlns='http://jabber.org/protocol/pubsub' x:a='1'><x:inner/><plain/></x:data></item></items></pubsub></iq>`,
      ].join('\n'),
    );
  });

  it('refuses malformed publishes: no node, no item, two payloads (XEP-0060 §7.1.3)', async () => {
    const err = (id: string, cond: string, app: string) =>
      `alice receives: <iq type='error' id='${id}' to='alice@localhost/res'><error type='modify'><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>${cond === 'bad-request' && app === 'invalid-payload' ? "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text>" : ''}<${app} xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`;
    await run(
      [
        'account alice',
        'alice connects',
        `alice sends: <iq type='set' id='e1'>${PS}<publish><item><x xmlns='urn:example'/></item></publish></pubsub></iq>`,
        `alice receives: <iq type='error' id='e1' to='alice@localhost/res'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text><nodeid-required xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`,
        `alice sends: <iq type='set' id='e2'>${PS}<publish node='urn:example'/></pubsub></iq>`,
        err('e2', 'bad-request', 'item-required'),
        `alice sends: <iq type='set' id='e3'>${PS}<publish node='urn:example'><item><a xmlns='urn:example'/><b xmlns='urn:example'/></item></publish></pubsub></iq>`,
        err('e3', 'bad-request', 'invalid-payload'),
        `alice sends: <iq type='get' id='e4'>${PS}<items node='urn:example'/></pubsub></iq>`,
        `alice receives: <iq type='error' id='e4' to='alice@localhost/res'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></iq>`,
      ].join('\n'),
    );
  });
});

describe('PEP notifications', () => {
  const C = `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/alice' ver='yiOCQxodEtR+lCsJUA6EGCitGU8='/>`;
  const EVENT = (inner: string) =>
    `alice/desk receives: <message from='alice@localhost' to='alice@localhost/desk' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>${inner}</event></message>`;

  it('leaves payloads out of events when deliver_payloads is off, but not out of retrieval (XEP-0060 §16.4.4)', async () => {
    await run(
      [
        'account alice',
        'alice/desk connects',
        `alice/desk sends: <presence>${C}</presence>`,
        `alice/desk receives: <presence from='alice@localhost/desk'>${C}</presence>`,
        `alice/desk receives: <iq type='get' id='pep-caps-1' from='localhost' to='alice@localhost/desk'><query xmlns='${DISCO}' node='https://example.org/alice#yiOCQxodEtR+lCsJUA6EGCitGU8='/></iq>`,
        `alice/desk sends: <iq type='result' id='pep-caps-1' to='localhost'><query xmlns='${DISCO}'><identity category='client' type='pc' name='Alice'/><feature var='${DISCO}'/><feature var='urn:xmpp:bookmarks:1+notify'/><feature var='urn:example:list+notify'/></query></iq>`,
        `alice/desk sends: <iq type='set' id='c1'>${PS}<create node='urn:example:list'/><configure><x xmlns='jabber:x:data' type='submit'><field var='pubsub#deliver_payloads'><value>0</value></field></x></configure></pubsub></iq>`,
        `alice/desk receives: <iq type='result' id='c1' to='alice@localhost/desk'/>`,
        `alice/desk sends: <iq type='set' id='p1'>${PS}<publish node='urn:example:list'><item id='x'><e xmlns='urn:example'>secret</e></item></publish></pubsub></iq>`,
        `alice/desk receives: <iq type='result' id='p1' to='alice@localhost/desk'>${PS}<publish node='urn:example:list'><item id='x'/></publish></pubsub></iq>`,
        EVENT(`<items node='urn:example:list'><item id='x'/></items>`),
        `alice/desk sends: <iq type='get' id='g1'>${PS}<items node='urn:example:list'/></pubsub></iq>`,
        `alice/desk receives: <iq type='result' id='g1' to='alice@localhost/desk'>${PS}<items node='urn:example:list'><item id='x'><e xmlns='urn:example'>secret</e></item></items></pubsub></iq>`,
        // A node that does not notify at all (deliver_notifications off) stays silent.
        `alice/desk sends: <iq type='set' id='p2'>${PS}<publish node='urn:xmpp:bookmarks:1'><item id='b'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#deliver_notifications'><value>false</value></field></x></publish-options></pubsub></iq>`,
        `alice/desk receives: <iq type='result' id='p2' to='alice@localhost/desk'>${PS}<publish node='urn:xmpp:bookmarks:1'><item id='b'/></publish></pubsub></iq>`,
        'alice/desk receives nothing',
      ].join('\n'),
    );
  });
});

describe('PEP caps resolution', () => {
  it('keeps at most 256 +notify nodes of a resource, and no node name over 1024 bytes', () => {
    const service = installPep(createRouter({ domain: 'localhost', storage: createMemoryStorage({ iterations: 1 }), modules: [] }) as never);
    const st = { bare: 'a@localhost', available: false, data: new Map<string, unknown>() } as never;
    service.interest(st, ['x'.repeat(2000), ...Array.from({ length: 400 }, (_, i) => `urn:n${i}`)]);
    const kept = String((st as { data: Map<string, unknown> }).data.get('pep')).split('\n');
    expect(kept.length).toBe(256);
    expect(kept[0]).toBe('urn:n0');
  });

  const C = (ver: string) => `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/c' ver='${ver}'/>`;
  const answer = (alias: string, id: string, ver: string) =>
    `${alias} sends: <iq type='result' id='${id}' to='localhost'><query xmlns='${DISCO}' node='https://example.org/c#${ver}'><identity category='client' type='pc'/><feature var='urn:example:n+notify'/></query></iq>`;

  it('uses an answer that does not match its hash for the resource that gave it only, and asks the next one (XEP-0115 §5.4)', async () => {
    const bogus = 'bogusbogusbogusbogusbogus00=';
    await run(
      [
        'account alice',
        'alice/a connects',
        'alice/b connects',
        `alice/a sends: <presence>${C(bogus)}</presence>`,
        `alice/a receives: <presence from='alice@localhost/a'>${C(bogus)}</presence>`,
        `alice/a receives: <iq type='get' id='pep-caps-1' from='localhost' to='alice@localhost/a'><query xmlns='${DISCO}' node='https://example.org/c#${bogus}'/></iq>`,
        // Another resource with the same caps waits for the answer to the question already asked.
        `alice/b sends: <presence>${C(bogus)}</presence>`,
        `alice/b receives: <presence from='alice@localhost/b'>${C(bogus)}</presence>`,
        `alice/a receives: <presence from='alice@localhost/b'>${C(bogus)}</presence>`,
        `alice/b receives: <presence from='alice@localhost/a'>${C(bogus)}</presence>`,
        `alice/b receives nothing`,
        // An answer from a resource that was not asked changes nothing.
        answer('alice/b', 'pep-caps-1', bogus),
        `alice/b receives nothing`,
        answer('alice/a', 'pep-caps-1', bogus),
        // The hash does not verify: alice/b is asked itself rather than trusted on alice/a's word.
        `alice/b receives: <iq type='get' id='pep-caps-2' from='localhost' to='alice@localhost/b'><query xmlns='${DISCO}' node='https://example.org/c#${bogus}'/></iq>`,
        answer('alice/b', 'pep-caps-2', bogus),
        `alice/a sends: <iq type='set' id='p1'>${PS}<publish node='urn:example:n'><item id='i'><x xmlns='urn:example'/></item></publish></pubsub></iq>`,
        `alice/a receives: <iq type='result' id='p1' to='alice@localhost/a'>${PS}<publish node='urn:example:n'><item id='i'/></publish></pubsub></iq>`,
        `alice/a receives: <message from='alice@localhost' to='alice@localhost/a' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:n'><item id='i'><x xmlns='urn:example'/></item></items></event></message>`,
        `alice/b receives: <message from='alice@localhost' to='alice@localhost/b' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:n'><item id='i'><x xmlns='urn:example'/></item></items></event></message>`,
      ].join('\n'),
    );
  });
});
