"""What an everyday user does with slixmpp that the other interop scripts do not: a vCard avatar
(XEP-0054 + XEP-0153), renaming a roster group seen from a second resource, bookmarks in private
storage (XEP-0048 over XEP-0049), a contact who was offline getting the subscription request and
the message on login, and a MUC visit with a nickname change and a leave (XEP-0045 §7.6, §7.14).
alice and bob share presence; carol starts offline. Prints one JSON object on its last line;
referee-clients.test.ts asserts on it.

Usage: /usr/bin/python3 referee_slixmpp_everyday.py HOST PORT ALICE_PW BOB_PW CAROL_PW
"""
import asyncio
import hashlib
import json
import sys

from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048 import Bookmarks

import interop_client
from interop_client import TIMEOUT, InteropClient

HOST, PORT, ALICE_PW, BOB_PW, CAROL_PW = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
PLUGINS = ['xep_0030', 'xep_0004', 'xep_0054', 'xep_0153', 'xep_0045', 'xep_0049', 'xep_0048', 'xep_0203']
# A 1x1 PNG, and bytes that are not valid UTF-8 on purpose: the avatar travels base64-encoded.
AVATAR = bytes.fromhex('89504e470d0a1a0a0000000d4948445200000001000000010806000000'
                       '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082')
ROOM = 'tea@conference.localhost'


class Client(InteropClient):
    def __init__(self, jid, password):
        super().__init__(jid, password, PLUGINS)
        self.messages = []
        self.subscribes = []
        self.avatar_hashes = []
        self.room_presences = []
        self.roster_pushes = asyncio.Queue()
        self.add_event_handler('message', lambda m: self.messages.append(m))
        self.add_event_handler('presence_subscribe', lambda p: self.subscribes.append(str(p['from'])))
        self.add_event_handler('vcard_avatar_update', lambda p: self.avatar_hashes.append((str(p['from']), p['vcard_temp_update']['photo'])))
        self.add_event_handler('muc::%s::presence' % ROOM, lambda p: self.room_presences.append(p))
        self.add_event_handler('roster_update', lambda iq: self.roster_pushes.put_nowait(iq))


async def start(c):
    await interop_client.start(c, HOST, PORT)


async def until(predicate, what):
    for _ in range(int(TIMEOUT / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


async def main():
    out = {}
    alice = Client('alice@localhost/laptop', ALICE_PW)
    alice2 = Client('alice@localhost/phone', ALICE_PW)
    bob = Client('bob@localhost/desk', BOB_PW)
    for c in (alice, alice2, bob):
        await start(c)

    # XEP-0153: set_avatar fetches alice's vCard from her bare JID, stores it back with the PHOTO,
    # then sends presence carrying the photo's SHA-1 (vcard-temp:x:update).
    await alice['xep_0153'].set_avatar(avatar=AVATAR, mtype='image/png', timeout=TIMEOUT)
    want_hash = hashlib.sha1(AVATAR).hexdigest()
    await until(lambda: any(h == want_hash for (_f, h) in bob.avatar_hashes), 'avatar hash at bob')
    out['avatar_hash_seen_by_bob'] = [h for (f, h) in bob.avatar_hashes if f.startswith('alice@localhost/')][-1] == want_hash
    v = await bob['xep_0054'].get_vcard('alice@localhost', cached=False, local=False, timeout=TIMEOUT)
    out['avatar_binval_equal'] = v['vcard_temp']['PHOTO']['BINVAL'] == AVATAR
    out['avatar_type'] = v['vcard_temp']['PHOTO']['TYPE']
    # A fresh login of alice computes the same hash from the stored vCard.
    own = await alice2['xep_0054'].get_vcard('alice@localhost', cached=False, local=False, timeout=TIMEOUT)
    out['own_vcard_after_set'] = own['vcard_temp']['PHOTO']['BINVAL'] == AVATAR

    # Roster groups: two contacts in Friends, then the group renamed to Pals item by item
    # (RFC 6121 §2.4: each set is pushed to every interested resource, alice2 included).
    for contact in ('carol@localhost', 'dave@localhost'):
        await alice.update_roster(contact, name=contact.split('@')[0].title(), groups=['Friends'], timeout=TIMEOUT)
    for contact in ('carol@localhost', 'dave@localhost'):
        await alice.update_roster(contact, name=contact.split('@')[0].title(), groups=['Pals', 'Tea'], timeout=TIMEOUT)
    await until(lambda: all(set(alice2.client_roster[c]['groups']) == {'Pals', 'Tea'} for c in ('carol@localhost', 'dave@localhost')),
                'renamed groups at the second resource')
    # Without a version (slixmpp's get_roster sends its cached one, which the server may answer
    # with an empty result, RFC 6121 §2.6.3): the full roster as stored.
    fresh = await alice2.make_iq_get(queryxmlns='jabber:iq:roster').send(timeout=TIMEOUT)
    items = fresh['roster']['items']
    out['roster_groups_after_rename'] = {str(j): sorted(items[j]['groups']) for j in items if str(j) in ('carol@localhost', 'dave@localhost')}

    # XEP-0048 bookmarks in XEP-0049 private storage, read back from the other resource.
    bm = Bookmarks()
    bm.add_conference(ROOM, 'Alice', name='Tea room', autojoin=False)
    await alice['xep_0048'].set_bookmarks(bm, method='xep_0049', timeout=TIMEOUT)
    got = await alice2['xep_0048'].get_bookmarks(method='xep_0049', timeout=TIMEOUT)
    confs = got['private']['bookmarks']['conferences']
    out['bookmarks'] = [(str(c['jid']), c['nick'], c['name']) for c in confs]

    # carol is offline: alice subscribes and writes; carol logs in and gets both, the message
    # stamped with XEP-0203 <delay/>, then approves.
    alice.send_presence_subscription(pto='carol@localhost')
    alice.send_message(mto='carol@localhost', mbody='while you were away', mtype='chat')
    await asyncio.sleep(0.5)
    carol = Client('carol@localhost/pc', CAROL_PW)
    await start(carol)
    await until(lambda: any(m['body'] == 'while you were away' for m in carol.messages), 'offline message at carol')
    m = [m for m in carol.messages if m['body'] == 'while you were away'][0]
    out['offline_from'] = str(m['from'])
    out['offline_delayed'] = m['delay']['stamp'] is not None
    await until(lambda: 'alice@localhost' in carol.subscribes, 'subscription request at carol')
    out['offline_subscribe'] = True
    carol.send_presence(pto='alice@localhost', ptype='subscribed')
    await until(lambda: alice.client_roster['carol@localhost']['subscription'] in ('to', 'both'), 'subscription at alice')
    out['subscription_after_approval'] = alice.client_roster['carol@localhost']['subscription']

    # MUC: alice creates the room, bob joins, bob changes nick, talks, leaves.
    await alice['xep_0045'].join_muc_wait(ROOM, 'Alice', timeout=TIMEOUT, maxstanzas=0)
    try:
        form = await alice['xep_0045'].get_room_config(ROOM)
        await alice['xep_0045'].set_room_config(ROOM, form)
    except IqError:
        pass
    await bob['xep_0045'].join_muc_wait(ROOM, 'Bob', timeout=TIMEOUT, maxstanzas=0)
    await until(lambda: any(str(p['from']) == ROOM + '/Bob' for p in alice.room_presences), 'bob joining, at alice')
    # §7.6: the change is a presence to the new occupant JID.
    bob.send_presence(pto=ROOM + '/Robert')
    await until(lambda: any(str(p['from']) == ROOM + '/Robert' and p['type'] != 'unavailable' for p in alice.room_presences), 'new nick at alice')
    gone = [p for p in alice.room_presences if str(p['from']) == ROOM + '/Bob' and p['type'] == 'unavailable']
    item = gone[-1].xml.find('{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item') if gone else None
    out['nick_change_303'] = bool(gone) and 303 in gone[-1]['muc']['status_codes'] and item is not None and item.get('nick') == 'Robert'
    bob.send_message(mto=ROOM, mbody='call me Robert', mtype='groupchat')
    await until(lambda: any(m['type'] == 'groupchat' and m['body'] == 'call me Robert' for m in alice.messages), 'groupchat at alice')
    out['groupchat_from'] = [str(m['from']) for m in alice.messages if m['body'] == 'call me Robert'][0]
    bob['xep_0045'].leave_muc(ROOM, 'Robert', 'bye')
    await until(lambda: any(str(p['from']) == ROOM + '/Robert' and p['type'] == 'unavailable' for p in alice.room_presences), 'leave at alice')
    out['leave_seen'] = True

    for c in (alice, alice2, bob, carol):
        c.disconnect()
    print(json.dumps(out))


asyncio.run(main())
