/**
 * The floor: the least an XMPP server can do for the bench's scenarios on one Node thread. It
 * accepts any PLAIN login, binds the requested resource, and forwards each first-level
 * <message> to the socket of its 'to' full or bare JID by indexOf framing — no validation, no
 * 'from' stamping, no rosters. Running the swarm against it measures the load tool's own ceiling
 * (if the tool cannot outrun this, it cannot judge a real server) and Node's socket I/O floor.
 *
 *   node dist/bench/load/floor-server.js [port]     (prints the port it listens on)
 */
import net from 'node:net';
import { StanzaFramer, childText, rootAttr } from './framing.js';

export function startFloorServer(port = 0): Promise<net.Server> {
  const byJid = new Map<string, net.Socket>();
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    let bare = '';
    let full = '';
    const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='f' version='1.0'>`;
    const framer: StanzaFramer = new StanzaFramer({
      streamOpen: () => {
        if (!bare) {
          sock.write(`${header}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`);
        } else {
          sock.write(`${header}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`);
        }
      },
      element: (xml) => {
        if (xml.startsWith('<message')) {
          const to = rootAttr(xml, 'to');
          const peer = to && byJid.get(to);
          if (peer) peer.write(xml);
          return;
        }
        if (xml.startsWith('<auth')) {
          // RFC 4616: authzid NUL authcid NUL password; any password is accepted here.
          const b64 = xml.slice(xml.indexOf('>') + 1, xml.lastIndexOf('</'));
          bare = `${Buffer.from(b64, 'base64').toString().split('\0')[1] ?? ''}@localhost`;
          sock.write(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`);
          framer.reset();
          return;
        }
        if (xml.startsWith('<iq')) {
          const id = rootAttr(xml, 'id');
          const res = childText(xml, 'resource') ?? 'r';
          if (xml.includes('xmpp-bind')) {
            full = `${bare}/${res}`;
            byJid.set(full, sock);
            byJid.set(bare, sock);
            sock.write(`<iq type='result' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${full}</jid></bind></iq>`);
          } else {
            sock.write(`<iq type='result' id='${id}'/>`);
          }
        }
      },
      streamClose: () => sock.end('</stream:stream>'),
    });
    sock.on('data', (d: string) => framer.push(d));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (byJid.get(full) === sock) byJid.delete(full);
      if (byJid.get(bare) === sock) byJid.delete(bare);
    });
  });
  return new Promise((resolve) => server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => resolve(server)));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  void startFloorServer(Number(process.argv[2] ?? 0)).then((s) => {
    process.stdout.write(`${(s.address() as net.AddressInfo).port} ${process.pid}\n`);
    // Bounded like every bench process: it never outlives an hour.
    setTimeout(() => process.exit(0), 3600_000).unref();
  });
}
