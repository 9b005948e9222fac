"""XEP-0313 room archives with slixmpp's own plugins (xep_0045, xep_0313, xep_0059) against a
running Hermod. Two phases:

  write: alice creates a persistent room (semi-anonymous, the default), bob joins; alice and bob
         post five messages; bob records the stanza-ids by the room on the live copies; carol,
         who never joins, reads the archive two at a time, the newest message alone, and bob's
         messages only (with = occupant JID); alice (the owner, a moderator) reads it with the
         senders' real JIDs; a members-only room refuses carol's query; disco#info of the room.
  read:  (after a server restart) carol reads the room's archive again.

Prints one JSON object on its last line; muc-mam-slixmpp.test.ts asserts on it.

Usage: /usr/bin/python3 muc_mam_slixmpp.py HOST PORT ALICE_PW BOB_PW CAROL_PW write|read
"""
import asyncio
import json
import logging
import ssl
import sys

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError

HOST, PORT, ALICE_PW, BOB_PW, CAROL_PW, PHASE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
TIMEOUT = 15
ROOM = JID('history@conference.localhost')
CLUB = JID('club@conference.localhost')
MUC_USER = '{http://jabber.org/protocol/muc#user}'
logging.basicConfig(level=logging.CRITICAL)


class Client(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        for plugin in ('xep_0004', 'xep_0030', 'xep_0045', 'xep_0059', 'xep_0297', 'xep_0313', 'xep_0359'):
            self.register_plugin(plugin)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.groupchat = asyncio.Queue()
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('groupchat_message', self.on_groupchat)

    async def on_start(self, _event):
        self.send_presence()
        self.started.set()

    def on_groupchat(self, msg):
        # Live messages only (history replayed on join carries a delay).
        if msg['body'] and msg['delay']['stamp'] is None:
            self.groupchat.put_nowait(msg)


async def online(client):
    client.connect((HOST, PORT))
    await asyncio.wait_for(client.started.wait(), TIMEOUT)


async def read(client, **options):
    """The archive of ROOM as [{id, body, from, real}] through slixmpp's xep_0313 iterator."""
    out = []
    async for msg in client['xep_0313'].iterate(jid=options.pop('jid', ROOM), **options):
        forwarded = msg['mam_result']['forwarded']
        item = forwarded['stanza'].xml.find(f'{MUC_USER}x/{MUC_USER}item')
        out.append({
            'id': msg['mam_result']['id'],
            'body': forwarded['stanza']['body'],
            'from': str(forwarded['stanza']['from']),
            'type': forwarded['stanza']['type'],
            'real': item.get('jid') if item is not None else None,
            'stamped': forwarded['delay']['stamp'] is not None,
        })
    return out


async def configure(client, room, **fields):
    form = client['xep_0004'].make_form(ftype='submit')
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    await client['xep_0045'].set_room_config(room, form, timeout=TIMEOUT)


async def write(result):
    alice = Client('alice@localhost/desk', ALICE_PW)
    bob = Client('bob@localhost/phone', BOB_PW)
    carol = Client('carol@localhost/tab', CAROL_PW)
    for c in (alice, bob, carol):
        await online(c)

    await alice['xep_0045'].join_muc_wait(ROOM, 'Alice', timeout=TIMEOUT)
    await configure(alice, ROOM, **{'muc#roomconfig_persistentroom': True})
    info = await carol['xep_0030'].get_info(jid=ROOM, timeout=TIMEOUT)
    result['room_features'] = sorted(f for f in info['disco_info']['features'] if 'mam' in f or 'sid' in f)
    await bob['xep_0045'].join_muc_wait(ROOM, 'Bob', maxstanzas=0, timeout=TIMEOUT)

    live = []
    for i in range(5):
        sender = alice if i % 2 == 0 else bob
        sender.send_message(mto=ROOM, mbody=f'room message {i}', mtype='groupchat')
        # One at a time: bob, an occupant, gets every reflected copy, his own included.
        live.append(await asyncio.wait_for(bob.groupchat.get(), TIMEOUT))
    result['live_bodies'] = [m['body'] for m in live]
    result['live_ids'] = [
        next((e.get('id') for e in m.xml.findall('{urn:xmpp:sid:0}stanza-id') if e.get('by') == str(ROOM)), None) for m in live
    ]

    result['carol_archive'] = await read(carol, rsm={'max': 2})
    result['carol_newest'] = [m['body'] for m in await read(carol, reverse=True, rsm={'max': 1}, total=1)]
    result['carol_bob_only'] = [m['body'] for m in await read(carol, with_jid=JID(f'{ROOM}/Bob'))]
    result['alice_archive'] = await read(alice)
    # The results carol got from the room are no messages of hers: her own archive (the server
    # archives everything, mam.default always) must not have taken them.
    result['carol_own'] = [m['body'] for m in await read(carol, jid=None)]

    await alice['xep_0045'].join_muc_wait(CLUB, 'Alice', timeout=TIMEOUT)
    await configure(alice, CLUB, **{'muc#roomconfig_membersonly': True})
    try:
        # retrieve(), not iterate(): the iterator ends quietly on an error.
        await carol['xep_0313'].retrieve(jid=CLUB, timeout=TIMEOUT)
        result['club'] = 'read'
    except IqError as e:
        result['club'] = e.condition

    for c in (alice, bob, carol):
        c.disconnect()


async def reread(result):
    carol = Client('carol@localhost/tab', CAROL_PW)
    await online(carol)
    result['carol_archive'] = await read(carol, rsm={'max': 10})
    carol.disconnect()


async def main():
    result = {}
    await (write(result) if PHASE == 'write' else reread(result))
    print(json.dumps(result))


asyncio.run(asyncio.wait_for(main(), 60))
