"""Two slixmpp clients against a running Hermod: alice over STARTTLS, bob over Direct TLS
(XEP-0368). They subscribe to each other, see each other's presence, exchange a message, fetch
the roster and ping the server. Prints one JSON object with what happened; the vitest test
(slixmpp.test.ts) asserts on it.

Usage: /usr/bin/python3 slixmpp_pair.py HOST STARTTLS_PORT DIRECT_TLS_PORT ALICE_PW BOB_PW
"""
import asyncio
import json
import logging
import os
import ssl
import sys

from slixmpp import ClientXMPP

TIMEOUT = 15


class Peer(ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.register_plugin('xep_0199')
        # XEP-0198: slixmpp enables it (with resumption) after binding when offered.
        self.register_plugin('xep_0198')
        self.sm_enabled = False
        self.add_event_handler('sm_enabled', self.on_sm_enabled)
        # Hermod generated a self-signed certificate on first start.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.failed = None
        self.messages = asyncio.Queue()
        self.available = {}
        self.presence_seen = asyncio.Event()
        self.encrypted = False
        # Accept subscription requests and subscribe back (RFC 6121 §3.1.4 approval).
        self.auto_authorize = True
        self.auto_subscribe = True
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_auth', self.on_failed)
        self.add_event_handler('message', self.messages.put_nowait)
        self.add_event_handler('presence_available', self.on_available)

    async def on_start(self, _event):
        self.encrypted = self.is_secure if hasattr(self, 'is_secure') else True
        self.send_presence()
        await self.get_roster()
        self.started.set()

    def on_sm_enabled(self, _stanza):
        self.sm_enabled = True

    def on_failed(self, event):
        self.failed = 'authentication failed'
        self.started.set()

    def on_available(self, presence):
        sender = str(presence['from'])
        if sender != str(self.boundjid.full):
            self.available[sender] = presence['status']
            self.presence_seen.set()

    def mechanism(self):
        mech = getattr(self['feature_mechanisms'], 'mech', None)
        return getattr(mech, 'name', None)


async def wait_until(predicate, what):
    for _ in range(TIMEOUT * 20):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


async def main(host, port, tls_port, alice_pw, bob_pw):
    result = {}
    alice = Peer('alice@localhost/sli', alice_pw)
    bob = Peer('bob@localhost/sli', bob_pw)
    alice.connect((host, port))
    bob.connect((host, tls_port), use_ssl=True)
    await asyncio.wait_for(asyncio.gather(alice.started.wait(), bob.started.wait()), TIMEOUT)
    if alice.failed or bob.failed:
        raise RuntimeError(alice.failed or bob.failed)
    result['jids'] = [alice.boundjid.full, bob.boundjid.full]
    result['mechanisms'] = [alice.mechanism(), bob.mechanism()]

    # Mutual subscription: alice asks, bob's client approves and asks back, alice's approves.
    alice.send_presence_subscription(pto='bob@localhost')
    await wait_until(lambda: 'bob@localhost/sli' in alice.available and 'alice@localhost/sli' in bob.available,
                     'presence after mutual subscription')
    result['alice_sees'] = sorted(alice.available)
    result['bob_sees'] = sorted(bob.available)

    bob.send_presence(pstatus='reading RFC 6121')
    await wait_until(lambda: alice.available.get('bob@localhost/sli') == 'reading RFC 6121', 'status update')
    result['status_update'] = alice.available['bob@localhost/sli']

    alice.send_message(mto='bob@localhost/sli', mbody='hello from slixmpp', mtype='chat')
    msg = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
    result['bob_got'] = {'from': str(msg['from']), 'body': msg['body']}
    bob.send_message(mto='alice@localhost', mbody='hello back', mtype='chat')
    msg = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
    result['alice_got'] = {'from': str(msg['from']), 'body': msg['body']}

    # A fresh roster get (RFC 6121 §2.1.3); slixmpp stores the result in client_roster.
    await alice.get_roster()
    result['roster'] = {str(jid): alice.client_roster[jid]['subscription'] for jid in alice.client_roster
                        if str(jid) != 'alice@localhost'}

    rtt = await alice['xep_0199'].ping(jid='localhost', timeout=TIMEOUT)
    result['ping'] = rtt is not None

    # Stream management ran under all of the above; acknowledgements must have kept up.
    await wait_until(lambda: alice.sm_enabled and bob.sm_enabled, 'XEP-0198 enabled')
    alice['xep_0198'].request_ack()
    await asyncio.sleep(0.3)
    result['sm'] = [alice.sm_enabled, bob.sm_enabled]
    result['sm_unacked'] = len(alice['xep_0198'].unacked_queue)

    for peer in (alice, bob):
        peer.disconnect()
    await asyncio.sleep(0.2)
    return result


if __name__ == '__main__':
    logging.basicConfig(level=logging.DEBUG if os.environ.get('SLIX_DEBUG') else logging.ERROR)
    host, port, tls_port, alice_pw, bob_pw = sys.argv[1:6]
    outcome = asyncio.run(asyncio.wait_for(main(host, int(port), int(tls_port), alice_pw, bob_pw), TIMEOUT * 4))
    print(json.dumps(outcome))
