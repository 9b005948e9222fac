"""slixmpp's own PEP plugins against a running Hermod: XEP-0163 with XEP-0084 avatar metadata and
XEP-0172 nicknames. bob loads them (so its XEP-0115 caps list the +notify features), carol does
not. alice publishes; bob must get the events, carol none; a resource bob connects afterwards must
get the last published items (XEP-0163 §4.3.4); bob and carol read the items themselves (XEP-0060
§6.5); carol then subscribes to the nickname node explicitly (XEP-0060 §6.1), gets its events and
unsubscribes (§6.2). Prints one JSON object on its last line; interop-pep.test.ts asserts on it.

Usage: /usr/bin/python3 interop_slixmpp_pep.py HOST PORT ALICE_PW BOB_PW CAROL_PW
"""
import asyncio
import json
import sys

import interop_client
from interop_client import TIMEOUT, InteropClient

HOST, PORT, ALICE_PW, BOB_PW, CAROL_PW = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
PEP = ['xep_0030', 'xep_0115', 'xep_0060', 'xep_0163', 'xep_0084', 'xep_0172']
PLAIN = ['xep_0030', 'xep_0115', 'xep_0060']


class Client(InteropClient):
    def __init__(self, jid, password, plugins):
        super().__init__(jid, password, plugins)
        self.avatars = asyncio.Queue()
        self.nicks = asyncio.Queue()
        self.headlines = []
        self.add_event_handler('avatar_metadata_publish', lambda m: self.avatars.put_nowait(m))
        self.add_event_handler('user_nick_publish', lambda m: self.nicks.put_nowait(m))
        self.add_event_handler('pubsub_publish', lambda m: self.headlines.append(m['pubsub_event']['items']['node']))

    async def on_start(self, _event):
        # The caps hash must cover the +notify features the PEP plugins added at bind.
        await self['xep_0115'].update_caps(broadcast=False)
        await super().on_start(_event)


async def start(c):
    await interop_client.start(c, HOST, PORT)
    # Let the server's caps query (XEP-0115 §6.2) and its answer go by.
    await asyncio.sleep(1)


async def until(condition):
    for _ in range(TIMEOUT * 20):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError('condition not met')


def avatar_id(msg):
    return msg['pubsub_event']['items']['item']['avatar_metadata']['info']['id']


def nick_of(msg):
    return msg['pubsub_event']['items']['item']['nick']['nick']


async def main():
    alice = Client('alice@localhost/phone', ALICE_PW, PEP)
    bob = Client('bob@localhost/desk', BOB_PW, PEP)
    carol = Client('carol@localhost/pc', CAROL_PW, PLAIN)
    out = {}
    # Connections are spread round-robin over shards: with --workers 2 this puts alice and bob on
    # different shards, so the live events cross between them.
    for c in (bob, alice, carol):
        await start(c)

    await alice['xep_0084'].publish_avatar_metadata(items=[{'id': 'a1b2c3', 'type': 'image/png', 'bytes': 1234}])
    await alice['xep_0172'].publish_nick('Alice in Wonderland')
    out['bob_avatar'] = avatar_id(await asyncio.wait_for(bob.avatars.get(), TIMEOUT))
    out['bob_nick'] = nick_of(await asyncio.wait_for(bob.nicks.get(), TIMEOUT))
    # alice's own resource asked for the same events (XEP-0163 §4.1: the owner is subscribed too).
    out['alice_own_avatar'] = avatar_id(await asyncio.wait_for(alice.avatars.get(), TIMEOUT))

    laptop = Client('bob@localhost/laptop', BOB_PW, PEP)
    await start(laptop)
    out['laptop_avatar'] = avatar_id(await asyncio.wait_for(laptop.avatars.get(), TIMEOUT))
    out['laptop_nick'] = nick_of(await asyncio.wait_for(laptop.nicks.get(), TIMEOUT))

    items = await bob['xep_0060'].get_items('alice@localhost', 'urn:xmpp:avatar:metadata')
    out['bob_items'] = [i['id'] for i in items['pubsub']['items']]
    nick = await carol['xep_0060'].get_items('alice@localhost', 'http://jabber.org/protocol/nick')
    out['carol_reads_nick'] = [i['id'] for i in nick['pubsub']['items']]
    info = await bob['xep_0030'].get_info(jid='alice@localhost')
    out['account_identities'] = [list(i[:2]) for i in info['disco_info']['identities']]
    out['account_features'] = sorted(info['disco_info']['features'])

    await asyncio.sleep(1)
    out['carol_events'] = len(carol.headlines)
    out['bob_extra_avatars'] = bob.avatars.qsize()

    # XEP-0060 §6.1 on a PEP node (XEP-0163 §5 requires it): carol, whose client asks for no
    # events, subscribes explicitly; the last item comes at once (§6.1.7), then each new one,
    # until she unsubscribes (§6.2).
    nick_node = 'http://jabber.org/protocol/nick'
    sub = await carol['xep_0060'].subscribe('alice@localhost', nick_node, timeout=TIMEOUT)
    out['carol_subscription'] = sub['pubsub']['subscription']['subscription']
    await until(lambda: len(carol.headlines) >= 1)
    subs = await carol['xep_0060'].get_subscriptions('alice@localhost', timeout=TIMEOUT)
    out['carol_subscriptions'] = [s['node'] for s in subs['pubsub']['subscriptions']]
    await alice['xep_0172'].publish_nick('Alice again')
    await until(lambda: len(carol.headlines) >= 2)
    await carol['xep_0060'].unsubscribe('alice@localhost', nick_node, timeout=TIMEOUT)
    await alice['xep_0172'].publish_nick('Alice, third time')
    await asyncio.sleep(1)
    out['carol_explicit_events'] = carol.headlines[out['carol_events']:]

    for c in (alice, bob, carol, laptop):
        c.disconnect()
    print(json.dumps(out))


asyncio.run(main())
