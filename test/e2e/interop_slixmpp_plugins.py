"""slixmpp with the XEP plugins a typical client loads, against a running Hermod over STARTTLS:
service discovery (XEP-0030) and entity capabilities (XEP-0115), keepalive pings (XEP-0199),
carbons (XEP-0280), client state indication (XEP-0352), blocking (XEP-0191), password change
(XEP-0077 §3.3), and stream management (XEP-0198) with resumption after the TCP connection drops
without a closing handshake. Prints one JSON object;
interop-slixmpp.test.ts asserts on it.

Usage: /usr/bin/python3 interop_slixmpp_plugins.py HOST PORT ALICE_PW BOB_PW
"""
import asyncio
import json
import sys

from interop_client import TIMEOUT, InteropClient

HOST, PORT, ALICE_PW, BOB_PW = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PLUGINS = ['xep_0030', 'xep_0115', 'xep_0199', 'xep_0280', 'xep_0352', 'xep_0198', 'xep_0191', 'xep_0077']


class Client(InteropClient):
    def __init__(self, jid, password):
        super().__init__(jid, password, PLUGINS)
        # What a mobile-minded client configures: a ping every second, given up after 5 s.
        self['xep_0199'].enable_keepalive(interval=1, timeout=5)
        self.messages = asyncio.Queue()
        self.carbons = asyncio.Queue()
        self.disconnects = 0
        self.add_event_handler('message', self.messages.put_nowait)
        self.add_event_handler('carbon_received', lambda m: self.carbons.put_nowait(('received', m)))
        self.add_event_handler('carbon_sent', lambda m: self.carbons.put_nowait(('sent', m)))
        self.add_event_handler('disconnected', self.on_disconnected)

    def on_disconnected(self, _event):
        self.disconnects += 1


async def next_body(queue):
    return (await asyncio.wait_for(queue.get(), TIMEOUT))['body']


async def main():
    a1 = Client('alice@localhost/phone', ALICE_PW)
    a2 = Client('alice@localhost/laptop', ALICE_PW)
    bob = Client('bob@localhost/desk', BOB_PW)
    for c in (a1, a2, bob):
        c.connect((HOST, PORT))
    await asyncio.wait_for(asyncio.gather(a1.started.wait(), a2.started.wait(), bob.started.wait()), 20)
    r = {'jids': [str(c.boundjid) for c in (a1, a2, bob)]}

    # XEP-0030 against the server, and against a client's full JID with its caps node (XEP-0115).
    info = await a1['xep_0030'].get_info(jid='localhost', timeout=TIMEOUT)
    r['server_features'] = sorted(info['disco_info']['features'])
    peer_info = await bob['xep_0030'].get_info(jid=a1.boundjid.full, timeout=TIMEOUT)
    r['peer_features_have_caps'] = 'http://jabber.org/protocol/caps' in peer_info['disco_info']['features']

    # XEP-0199: the server and a peer's full JID answer pings.
    r['ping_server'] = (await a1['xep_0199'].ping(jid='localhost', timeout=TIMEOUT)) is not None
    r['ping_peer'] = (await bob['xep_0199'].ping(jid=a1.boundjid.full, timeout=TIMEOUT)) is not None

    # XEP-0280: both of alice's resources enable carbons; bob writes to one of them.
    await a1['xep_0280'].enable(timeout=TIMEOUT)
    await a2['xep_0280'].enable(timeout=TIMEOUT)
    bob.send_message(mto=a1.boundjid.full, mbody='to the phone', mtype='chat')
    r['a1_got'] = await next_body(a1.messages)
    kind, carbon = await asyncio.wait_for(a2.carbons.get(), TIMEOUT)
    r['a2_carbon'] = [kind, str(carbon['carbon_received']['body'])]
    a1.send_message(mto='bob@localhost', mbody='from the phone', mtype='chat')
    r['bob_got'] = await next_body(bob.messages)
    kind, carbon = await asyncio.wait_for(a2.carbons.get(), TIMEOUT)
    r['a2_sent_carbon'] = [kind, str(carbon['carbon_sent']['body'])]

    # XEP-0352: an inactive client still gets its chat messages at once; then active again.
    r['csi_offered'] = a1['xep_0352'].enabled
    a1['xep_0352'].send_inactive()
    bob.send_message(mto=a1.boundjid.full, mbody='while inactive', mtype='chat')
    r['inactive_got'] = await next_body(a1.messages)
    a1['xep_0352'].send_active()

    # XEP-0191: alice blocks bob (a chat from him is not delivered), then unblocks him.
    await a1['xep_0191'].block(['bob@localhost'], timeout=TIMEOUT)
    r['blocklist'] = [str(j) for j in (await a1['xep_0191'].get_blocked(timeout=TIMEOUT))['blocklist']['items']]
    bob.send_message(mto=a1.boundjid.full, mbody='while blocked', mtype='chat')
    await bob['xep_0199'].ping(jid='localhost', timeout=TIMEOUT)  # the server has routed it by now
    await a1['xep_0199'].ping(jid='localhost', timeout=TIMEOUT)
    r['blocked_delivered'] = a1.messages.qsize()
    await a1['xep_0191'].unblock(['bob@localhost'], timeout=TIMEOUT)
    bob.send_message(mto=a1.boundjid.full, mbody='after unblock', mtype='chat')
    r['after_unblock'] = await next_body(a1.messages)

    # XEP-0077 §3.3: change the password in band, log in with the new one, change it back.
    await bob['xep_0077'].change_password('changed-' + BOB_PW, timeout=TIMEOUT)
    check = Client('bob@localhost/check', 'changed-' + BOB_PW)
    check.connect((HOST, PORT))
    await asyncio.wait_for(check.started.wait(), TIMEOUT)
    r['new_password_works'] = True
    check.disconnect()
    await bob['xep_0077'].change_password(BOB_PW, timeout=TIMEOUT)

    # Keepalive pings run for a while without dropping anyone.
    await asyncio.sleep(2.5)
    r['disconnects_before_drop'] = [c.disconnects for c in (a1, a2, bob)]

    # XEP-0198: alice's phone loses its TCP connection (no </stream:stream>), a message for it
    # arrives meanwhile, and the client reconnects and resumes (§5).
    sm = a1['xep_0198']
    r['sm_id'] = sm.sm_id is not None
    resumed = asyncio.Future()
    a1.add_event_handler('session_resumed', lambda stanza: resumed.done() or resumed.set_result(int(stanza['h'])))
    gone = asyncio.Event()
    a1.add_event_handler('disconnected', lambda _e: gone.set())
    await asyncio.sleep(0.5)
    sent_before, acked_before = sm.seq, sm.last_ack
    a1.transport.abort()
    await asyncio.wait_for(gone.wait(), TIMEOUT)
    bob.send_message(mto=a1.boundjid.full, mbody='while the phone was away', mtype='chat')
    await asyncio.sleep(0.3)
    a1.connect((HOST, PORT))
    h = await asyncio.wait_for(resumed, 20)
    # The server's count of alice's stanzas it handled lies between what it had acknowledged
    # and what alice had sent (§4): neither lost nor invented.
    r['resume_h_in_range'] = acked_before <= h <= sent_before
    r['resumed_jid'] = str(a1.boundjid)
    r['after_resume'] = await next_body(a1.messages)
    bob.send_message(mto=a1.boundjid.full, mbody='after the resume', mtype='chat')
    r['after_resume_2'] = await next_body(a1.messages)
    r['duplicates'] = a1.messages.qsize()

    print(json.dumps(r), flush=True)
    for c in (a1, a2, bob):
        c.disconnect()
    await asyncio.sleep(0.5)


asyncio.get_event_loop().run_until_complete(main())
