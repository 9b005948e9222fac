"""slixmpp's xep_0045 plugin against a running Hermod with muc.enabled: alice finds the service in
the server's disco#items, creates a room (join_muc_wait, then an instant room via the owner form),
sets the subject; bob joins (history and subject on join), both see each other, groupchat is
reflected to both; a nickname in use is refused with <conflict/>; a private message goes through
the room (XEP-0045 §7.5); alice kicks bob (307) and then bans him (301), so his next join is
refused with <forbidden/>; alice destroys the room (§10.9). Prints one JSON object on its last
line; interop-muc.test.ts asserts on it.

Usage: /usr/bin/python3 interop_slixmpp_muc.py HOST PORT ALICE_PW BOB_PW
"""
import asyncio
import json
import sys

from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError

import interop_client
from interop_client import TIMEOUT, InteropClient

HOST, PORT, ALICE_PW, BOB_PW = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ROOM = JID('lobby@conference.localhost')


class Client(InteropClient):
    def __init__(self, jid, password):
        super().__init__(jid, password, ['xep_0030', 'xep_0045', 'xep_0004'])
        self.groupchat = asyncio.Queue()
        self.private = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.add_event_handler('groupchat_message', lambda m: self.groupchat.put_nowait(m) if m['body'] else None)
        self.add_event_handler('muc::%s::presence' % ROOM, lambda p: self.presences.put_nowait(p))
        self.add_event_handler('message', lambda m: self.private.put_nowait(m) if m['type'] == 'chat' else None)


async def start(c):
    await interop_client.start(c, HOST, PORT)


async def presence_with_code(c, code):
    while True:
        p = await asyncio.wait_for(c.presences.get(), TIMEOUT)
        if p['type'] == 'unavailable' and code in p['muc']['status_codes']:
            return p


async def main():
    out = {}
    alice = Client('alice@localhost/desk', ALICE_PW)
    bob = Client('bob@localhost/phone', BOB_PW)
    await start(alice)
    await start(bob)
    muc_a, muc_b = alice['xep_0045'], bob['xep_0045']

    items = await alice['xep_0030'].get_items(jid='localhost', timeout=TIMEOUT)
    out['server_items'] = [i[0] for i in items['disco_items']['items']]
    info = await alice['xep_0030'].get_info(jid='conference.localhost', timeout=TIMEOUT)
    out['service_identities'] = [[i[0], i[1]] for i in info['disco_info']['identities']]
    out['service_features'] = sorted(info['disco_info']['features'])

    own, _subject, _occupants, _history = await muc_a.join_muc_wait(ROOM, 'Alice', timeout=TIMEOUT)
    out['created_codes'] = sorted(own['muc']['status_codes'])
    out['alice_role'] = [own['muc']['affiliation'], own['muc']['role']]
    form = await muc_a.get_room_config(ROOM, timeout=TIMEOUT)
    out['config_fields'] = sorted(form.get_fields().keys())
    # An instant room: the empty submit form (XEP-0045 §10.1.2).
    await muc_a.set_room_config(ROOM, alice['xep_0004'].make_form(ftype='submit'), timeout=TIMEOUT)
    muc_a.set_subject(ROOM, 'Launch plans')
    alice.send_message(mto=ROOM, mbody='before bob', mtype='groupchat')
    await asyncio.wait_for(alice.groupchat.get(), TIMEOUT)

    own_b, subject, occupants, history = await muc_b.join_muc_wait(ROOM, 'Bob', maxstanzas=5, timeout=TIMEOUT)
    out['bob_codes'] = sorted(own_b['muc']['status_codes'])
    out['bob_subject'] = subject['subject']
    out['bob_sees'] = sorted(p['muc']['nick'] for p in occupants)
    out['bob_history'] = [m['body'] for m in history]
    out['bob_history_delayed'] = all(m['delay']['stamp'] is not None for m in history)
    await asyncio.sleep(0.3)
    out['alice_roster'] = sorted(muc_a.get_roster(ROOM))
    out['alice_sees_bob_jid'] = str(muc_a.get_jid_property(ROOM, 'Bob', 'jid'))

    bob.send_message(mto=ROOM, mbody='hello room', mtype='groupchat')
    got_a = await asyncio.wait_for(alice.groupchat.get(), TIMEOUT)
    got_b = await asyncio.wait_for(bob.groupchat.get(), TIMEOUT)
    while got_b['delay']['stamp'] is not None:  # the history replayed on join came first
        got_b = await asyncio.wait_for(bob.groupchat.get(), TIMEOUT)
    out['reflected'] = [str(got_a['from']), got_a['body'], str(got_b['from']), got_b['body']]

    try:
        bob2 = Client('bob@localhost/laptop', BOB_PW)
        await start(bob2)
        await bob2['xep_0045'].join_muc_wait(ROOM, 'Alice', timeout=TIMEOUT)
        out['conflict'] = 'joined'
    except PresenceError as e:
        out['conflict'] = e.condition
    bob2.disconnect()

    bob.send_message(mto=JID('%s/Alice' % ROOM), mbody='just for you', mtype='chat')
    pm = await asyncio.wait_for(alice.private.get(), TIMEOUT)
    out['private'] = [str(pm['from']), pm['body']]

    await muc_a.set_role(ROOM, 'Bob', 'none', reason='calm down', timeout=TIMEOUT)
    kicked = await presence_with_code(bob, 307)
    out['kick_codes'] = sorted(kicked['muc']['status_codes'])

    await muc_a.set_affiliation(ROOM, 'outcast', jid=JID('bob@localhost'), reason='enough', timeout=TIMEOUT)
    bans = await muc_a.get_affiliation_list(ROOM, 'outcast', timeout=TIMEOUT)
    out['outcasts'] = [str(j) for j in bans]
    try:
        await muc_b.join_muc_wait(ROOM, 'Bob', timeout=TIMEOUT)
        out['banned_join'] = 'joined'
    except PresenceError as e:
        out['banned_join'] = e.condition

    await muc_a.destroy(ROOM, reason='done', timeout=TIMEOUT)
    destroyed = await asyncio.wait_for(alice.presences.get(), TIMEOUT)
    while destroyed['type'] != 'unavailable' or destroyed['from'].resource != 'Alice':
        destroyed = await asyncio.wait_for(alice.presences.get(), TIMEOUT)
    reason = destroyed.xml.find('.//{http://jabber.org/protocol/muc#user}destroy/{http://jabber.org/protocol/muc#user}reason')
    out['destroyed'] = reason.text if reason is not None else None
    try:
        await alice['xep_0030'].get_info(jid=ROOM, timeout=TIMEOUT)
        out['after_destroy'] = 'exists'
    except IqError as e:
        out['after_destroy'] = e.condition

    alice.disconnect()
    bob.disconnect()
    print(json.dumps(out))


asyncio.run(main())
