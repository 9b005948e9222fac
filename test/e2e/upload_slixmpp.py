"""XEP-0363 with slixmpp's own xep_0363 plugin against a running Hermod: alice logs in, the
plugin finds the upload service through disco (items of the domain, then their info), reads
max-file-size, asks for a slot and PUTs the file with aiohttp; then a file over the limit is
refused by the plugin from the announced size. Prints one JSON object; upload.test.ts asserts.

Usage: /usr/bin/python3 upload_slixmpp.py HOST PORT ALICE_PW FILE
"""
import asyncio
import json
import os
import sys

from slixmpp.plugins.xep_0030.disco import XEP_0030
from slixmpp.plugins.xep_0363.http_upload import FileTooBig

from interop_client import InteropClient, start


async def get_info_from_domain(self, domain=None, timeout=None, cached=True, callback=None):
    """slixmpp 1.8.3's own version hands bare coroutines to asyncio.wait, which Python 3.11
    refuses; the same walk (the domain's info, then each item's) with tasks."""
    domain = domain or self.xmpp.boundjid.domain
    items = (await self.get_items(domain, timeout=timeout))['disco_items']['items']
    tasks = [asyncio.ensure_future(self.get_info(jid, timeout=timeout)) for jid in [domain] + [i[0] for i in items]]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    return [r for r in done if not isinstance(r, Exception)]


XEP_0030.get_info_from_domain = get_info_from_domain

TIMEOUT = 15


async def main(host, port, alice_pw, path):
    result = {}
    alice = InteropClient('alice@localhost/sli', alice_pw, ['xep_0030', 'xep_0128', 'xep_0363'])
    await start(alice, host, port)
    url = await asyncio.wait_for(alice['xep_0363'].upload_file(path, content_type='application/octet-stream', timeout=TIMEOUT), TIMEOUT)
    result['url'] = url
    result['service'] = str(alice['xep_0363'].upload_service)
    result['max_file_size'] = alice['xep_0363'].max_file_size
    big = path + '.big'
    with open(big, 'wb') as f:
        f.truncate(int(alice['xep_0363'].max_file_size) + 1)
    try:
        await alice['xep_0363'].upload_file(big, timeout=TIMEOUT)
        result['too_big'] = 'uploaded'
    except FileTooBig:
        result['too_big'] = 'refused'
    finally:
        os.unlink(big)
    alice.disconnect()
    print(json.dumps(result))


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
