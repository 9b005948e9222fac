"""Client setup shared by the slixmpp interop scripts (interop_slixmpp_*.py, upload_slixmpp.py):
a ClientXMPP with the script's plugins registered, trusting the test server's self-signed
certificate, that sends its presence and fetches its roster on session start and then sets
`started`; and start(), which connects one and waits for that. Scripts run as
`/usr/bin/python3 test/e2e/SCRIPT.py …`, so this folder is on sys.path and `import interop_client`
finds this file.
"""
import asyncio
import logging
import ssl

from slixmpp import ClientXMPP

TIMEOUT = 10
logging.basicConfig(level=logging.CRITICAL)


class InteropClient(ClientXMPP):
    def __init__(self, jid, password, plugins):
        super().__init__(jid, password)
        for plugin in plugins:
            self.register_plugin(plugin)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.started = asyncio.Event()
        self.add_event_handler('session_start', self.on_start)

    async def on_start(self, _event):
        self.send_presence()
        await self.get_roster()
        self.started.set()


async def start(client, host, port):
    client.connect((host, port))
    await asyncio.wait_for(client.started.wait(), TIMEOUT)
