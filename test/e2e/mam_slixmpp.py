"""XEP-0313 with slixmpp's own plugins against a running Hermod: alice sends bob five chat
messages while bob's first resource is online; bob's second resource then reads the
conversation from its archive with the xep_0313 plugin (paging two at a time through XEP-0059)
and checks disco for the archive feature. Prints one JSON object; mam-slixmpp.test.ts asserts.

Usage: /usr/bin/python3 mam_slixmpp.py HOST PORT ALICE_PW BOB_PW
"""
import asyncio
import json
import logging
import ssl
import sys

from slixmpp import JID, ClientXMPP

TIMEOUT = 15


class Client(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ('xep_0030', 'xep_0059', 'xep_0297', 'xep_0313', 'xep_0359'):
            self.register_plugin(plugin)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.messages = asyncio.Queue()
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('message', self.on_message)

    async def on_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        # MAM results arrive as messages too; only live chat goes to the queue.
        if msg['type'] == 'chat' and msg['body']:
            self.messages.put_nowait(msg)


async def online(client, host, port):
    client.connect((host, port))
    await asyncio.wait_for(client.started.wait(), TIMEOUT)


async def main(host, port, alice_pw, bob_pw):
    result = {}
    alice = Client('alice@localhost/sli', alice_pw)
    bob = Client('bob@localhost/one', bob_pw)
    await online(alice, host, port)
    await online(bob, host, port)

    for i in range(5):
        alice.send_message(mto='bob@localhost/one', mbody=f'message {i}', mtype='chat')
    live = [await asyncio.wait_for(bob.messages.get(), TIMEOUT) for _ in range(5)]
    result['live_bodies'] = [m['body'] for m in live]
    # XEP-0359: the ids the archives gave each message, by the account that archived it.
    ids = [{e.get('by'): e.get('id') for e in m.xml.findall('{urn:xmpp:sid:0}stanza-id')} for m in live]
    result['live_by'] = sorted({by for i in ids for by in i})
    result['live_ids'] = [i.get('bob@localhost') for i in ids]
    result['plugin_id'] = [m['stanza_id']['id'] for m in live]

    bob2 = Client('bob@localhost/two', bob_pw)
    await online(bob2, host, port)
    info = await bob2['xep_0030'].get_info(jid='bob@localhost', timeout=TIMEOUT)
    result['features'] = sorted(f for f in info['disco_info']['features'] if 'mam' in f or 'sid' in f)

    archived = []
    async for msg in bob2['xep_0313'].iterate(with_jid=JID('alice@localhost'), rsm={'max': 2}):
        forwarded = msg['mam_result']['forwarded']
        archived.append({
            'id': msg['mam_result']['id'],
            'body': forwarded['stanza']['body'],
            'from': str(forwarded['stanza']['from']),
            'stamp': forwarded['delay']['stamp'].isoformat() if forwarded['delay']['stamp'] else None,
        })
    result['archived'] = archived

    # The newest message only, paging backwards (reverse=True asks for <before/>).
    newest = []
    async for msg in bob2['xep_0313'].iterate(reverse=True, rsm={'max': 1}, total=1):
        newest.append(msg['mam_result']['forwarded']['stanza']['body'])
    result['newest'] = newest

    for c in (alice, bob, bob2):
        c.disconnect()
    print(json.dumps(result))


if __name__ == '__main__':
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]), 60))
