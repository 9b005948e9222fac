import { describe, it } from 'vitest';
import { PRIVATE_ITEM_LIMIT } from '../../src/modules/private.js';
import { VCARD_LIMIT } from '../../src/modules/vcard.js';
import { Scenario, jsFeederFactory } from '../scenario/runner.js';

// Size bounds need stanzas too long to write into a scenario file; the scripts are generated.
const run = (script: string) => new Scenario({ feeder: jsFeederFactory }).run(script);
const refused = (id: string) =>
  `alice receives: <iq type='error' id='${id}' to='alice@localhost/res'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></iq>`;

describe('per-account XML size bounds', () => {
  it('refuses a private fragment over the per-item limit and keeps the previous one (XEP-0049 §3)', async () => {
    const big = 'x'.repeat(PRIVATE_ITEM_LIMIT);
    await run(
      [
        'account alice',
        'alice connects',
        `alice sends: <iq type='set' id='p1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>small</prefs></query></iq>`,
        `alice receives: <iq type='result' id='p1' to='alice@localhost/res'/>`,
        `alice sends: <iq type='set' id='p2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>${big}</prefs></query></iq>`,
        refused('p2'),
        `alice sends: <iq type='get' id='p3'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`,
        `alice receives: <iq type='result' id='p3' to='alice@localhost/res'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>small</prefs></query></iq>`,
      ].join('\n'),
    );
  });

  it('stores a fragment just under the limit (XEP-0049 §2.1)', async () => {
    const fits = 'y'.repeat(PRIVATE_ITEM_LIMIT - 100);
    await run(
      [
        'account alice',
        'alice connects',
        `alice sends: <iq type='set' id='p1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>${fits}</prefs></query></iq>`,
        `alice receives: <iq type='result' id='p1' to='alice@localhost/res'/>`,
        `alice sends: <iq type='get' id='p2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`,
        `alice receives: <iq type='result' id='p2' to='alice@localhost/res'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>${fits}</prefs></query></iq>`,
      ].join('\n'),
    );
  });

  it('refuses a vCard over the size bound and keeps the stored one (XEP-0054 §3.2)', async () => {
    const photo = 'A'.repeat(VCARD_LIMIT);
    await run(
      [
        'account alice',
        'alice connects',
        `alice sends: <iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>`,
        `alice receives: <iq type='result' id='v1' to='alice@localhost/res'/>`,
        `alice sends: <iq type='set' id='v2'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>${photo}</BINVAL></PHOTO></vCard></iq>`,
        refused('v2'),
        `alice sends: <iq type='get' id='v3'><vCard xmlns='vcard-temp'/></iq>`,
        `alice receives: <iq type='result' id='v3' to='alice@localhost/res'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>`,
      ].join('\n'),
    );
  });
});
