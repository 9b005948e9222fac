"""slixmpp's XEP-0202 (entity time), XEP-0012 (last activity) and XEP-0128 (extended disco, for
the XEP-0157 contact addresses) plugins against a running Hermod. alice and bob share presence,
carol does not. Prints one JSON object on its last line; interop-small-modules.test.ts asserts on it.

Usage: /usr/bin/python3 interop_slixmpp_small.py HOST PORT ALICE_PW BOB_PW CAROL_PW
"""
import asyncio
import json
import sys

from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

import interop_client
from interop_client import TIMEOUT, InteropClient

HOST, PORT, ALICE_PW, BOB_PW, CAROL_PW = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
PLUGINS = ['xep_0030', 'xep_0004', 'xep_0128', 'xep_0012', 'xep_0202']


class Client(InteropClient):
    def __init__(self, jid, password):
        super().__init__(jid, password, PLUGINS)
        self.gone = asyncio.Event()
        self.add_event_handler('disconnected', lambda _e: self.gone.set())


async def start(c):
    await interop_client.start(c, HOST, PORT)


async def condition(coro):
    try:
        await coro
        return 'result'
    except IqError as e:
        return e.iq['error']['condition']


async def answered_by(coro):
    """Who answered: for a full JID, the client itself. slixmpp 1.8.3's own time and last-activity
    handlers fail with undefined-condition, so an error answer counts too: its sender is what shows
    the server routed the query instead of answering it."""
    try:
        return str((await coro)['from'])
    except IqError as e:
        return str(e.iq['from'])


async def main():
    alice = Client('alice@localhost/phone', ALICE_PW)
    bob = Client('bob@localhost/desk', BOB_PW)
    carol = Client('carol@localhost/pc', CAROL_PW)
    out = {}
    for c in (alice, bob, carol):
        await start(c)

    # XEP-0202 to the server, and to bob's full JID (answered by bob's own plugin).
    t = await alice['xep_0202'].get_entity_time('localhost', timeout=TIMEOUT)
    # Read as text: slixmpp 1.8.3's get_utc() appends a second 'Z' to a conforming value and fails.
    out['server_utc'] = t['entity_time'].xml.find('{urn:xmpp:time}utc').text
    out['server_tzo'] = t['entity_time'].xml.find('{urn:xmpp:time}tzo').text
    out['bob_time_from'] = await answered_by(alice['xep_0202'].get_entity_time('bob@localhost/desk', timeout=TIMEOUT))

    # XEP-0012: uptime, a contact online (0), a contact's client (its idle time), then offline.
    r = await alice['xep_0012'].get_last_activity('localhost', timeout=TIMEOUT)
    out['uptime'] = r['last_activity']['seconds']
    r = await alice['xep_0012'].get_last_activity('bob@localhost', timeout=TIMEOUT)
    out['bob_online_seconds'] = r['last_activity']['seconds']
    out['bob_client_from'] = await answered_by(alice['xep_0012'].get_last_activity('bob@localhost/desk', timeout=TIMEOUT))

    bob.send_presence(ptype='unavailable', pstatus='Gone fishing')
    bob.disconnect()
    await asyncio.wait_for(bob.gone.wait(), TIMEOUT)
    await asyncio.sleep(2.2)
    r = await alice['xep_0012'].get_last_activity('bob@localhost', timeout=TIMEOUT)
    out['bob_last_seconds'] = r['last_activity']['seconds']
    out['bob_last_status'] = r['last_activity']['status']
    out['carol_asks_bob'] = await condition(carol['xep_0012'].get_last_activity('bob@localhost', timeout=TIMEOUT))

    # XEP-0157 through XEP-0128: the serverinfo form in the server's disco#info.
    info = await alice['xep_0030'].get_info('localhost', timeout=TIMEOUT)
    out['features'] = sorted(info['disco_info']['features'])
    forms = [f for f in info['disco_info'].iterables if isinstance(f, Form)]
    out['forms'] = [{var: field.get_value() for var, field in f.get_fields().items()} for f in forms]

    for c in (alice, carol):
        c.disconnect()
    print(json.dumps(out, default=str))


asyncio.run(main())
