/**
 * profanity (Debian package, a libstrophe terminal client) driven as a person would drive it:
 * inside tmux, typing with send-keys and reading the screen with capture-pane. It connects over
 * STARTTLS to Hermod's self-signed certificate (accepted with `/tls allow`), adds a contact held
 * by a raw-socket client, sees the contact's presence, and chats both ways; a second profanity
 * logs in over Direct TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

function installed(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = ['profanity', 'tmux'].filter((c) => !installed(c));
if (missing.length > 0) console.warn(`interop-profanity: skipped, ${missing.join(' and ')} not installed (bash test/setup-system.sh)`);

/** One profanity process in a private tmux server, with its own empty home directory. */
class Terminal {
  private readonly socketName: string;
  readonly home = mkdtempSync(join(tmpdir(), 'hermod-prof-'));

  constructor(name = '1') {
    this.socketName = `hermod-prof-${process.pid}-${name}`;
    const env = `HOME=${this.home} XDG_CONFIG_HOME=${this.home}/.config XDG_DATA_HOME=${this.home}/.local/share`;
    this.tmux('new-session', '-d', '-s', 'p', '-x', '200', '-y', '60', `env ${env} TERM=xterm profanity`);
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socketName, ...args], { encoding: 'utf8' });
  }

  /** Type a line and press Enter. */
  type(line: string): void {
    this.tmux('send-keys', '-t', 'p', '-l', line);
    this.tmux('send-keys', '-t', 'p', 'Enter');
  }

  screen(): string {
    return this.tmux('capture-pane', '-p', '-t', 'p', '-S', '-200');
  }

  /** Poll the screen until `pattern` shows up. */
  async waitFor(pattern: RegExp, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const text = this.screen();
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`profanity never showed ${pattern}; screen:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  stop(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
    rmSync(this.home, { recursive: true, force: true });
  }
}

describe.skipIf(missing.length > 0)('profanity in tmux against Hermod', () => {
  let t: TestServer;
  let term: Terminal;
  let bob: RawClient;
  let aliceJid = '';

  beforeAll(async () => {
    t = await startTestServer([]);
    bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: true, resource: 'raw' });
    bob.send("<presence><status>bob is here</status></presence>");
    term = new Terminal();
    await term.waitFor(/\/help/);
  }, 60_000);

  afterAll(async () => {
    term?.stop();
    bob?.close();
    await t?.stop();
  });

  it('logs in over STARTTLS after the user accepts the self-signed certificate with /tls allow', async () => {
    term.type(`/connect alice@localhost server 127.0.0.1 port ${t.port} tls force`);
    await term.waitFor(/[Pp]assword/);
    term.type(PASSWORDS.alice!);
    await term.waitFor(/\/tls allow/);
    term.type('/tls allow');
    const screen = await term.waitFor(/logged in successfully/);
    aliceJid = /(alice@localhost\/\S+) logged in successfully/.exec(screen)![1]!;
    expect(aliceJid).toMatch(/^alice@localhost\/profanity/);
  }, 40_000);

  it('adds a contact, whose approval and presence (with status) profanity shows (RFC 6121 §3.1)', async () => {
    term.type('/roster add bob@localhost');
    term.type('/sub request bob@localhost');
    await bob.waitFor(/<presence[^>]*type=['"]subscribe['"]/);
    expect(bob.received).toMatch(/from=['"]alice@localhost['"]/);
    bob.take();
    bob.send("<presence to='alice@localhost' type='subscribed'/>");
    await term.waitFor(/bob@localhost \(raw\) is online, "bob is here"/);
    // And the other way: bob asks, the person at profanity allows.
    bob.send("<presence to='alice@localhost' type='subscribe'/>");
    await term.waitFor(/Authorization request|Received authorization request from bob@localhost/);
    term.type('/sub allow bob@localhost');
    await bob.waitFor(/<presence[^>]*type=['"]subscribed['"]/);
    // Approving makes bob a subscriber, so alice's presence reaches him (RFC 6121 §3.1.5).
    await bob.waitFor(new RegExp(`<presence[^>]*from=['"]${aliceJid.replace(/\./g, '\\.')}['"]`));
    term.type('/roster');
    await term.waitFor(/bob@localhost - both/);
  }, 40_000);

  it('sends a message that arrives stamped with its full JID, and shows the reply', async () => {
    bob.take();
    term.type('/msg bob@localhost hello from profanity');
    const got = await bob.waitFor(/hello from profanity<\/body>/);
    expect(got).toMatch(new RegExp(`<message[^>]*from=['"]${aliceJid.replace(/\./g, '\\.')}['"]`));
    bob.send(`<message to='${aliceJid}' type='chat'><body>hi alice, bob here</body></message>`);
    await term.waitFor(/bob@localhost\/raw: hi alice, bob here/);
  }, 30_000);

  it('creates a room, accepts it as instant, hears an occupant and talks with it (XEP-0045 §10.1.2, §7.2.3, §7.4)', async () => {
    const room = 'den@conference.localhost';
    term.type(`/join ${room} nick alice`);
    // profanity sees the 201 of a new, locked room and offers /room accept (the instant room).
    await term.waitFor(/room accept/);
    term.type('/room accept');
    await term.waitFor(/[Rr]oom unlocked/);
    bob.take();
    bob.send(`<presence to='${room}/bob' id='j1'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    await bob.waitFor(/<presence[^>]*id=['"]j1['"][^>]*>.*?code=['"]110['"]/s);
    // profanity lists the newcomer among the participants (its occupant pane).
    await term.waitFor(/Participants\s*\n.*\bbob\b/);
    bob.send(`<message to='${room}' type='groupchat' id='g1'><body>hello room</body></message>`);
    await term.waitFor(/bob: hello room/);
    term.type('hi bob, alice here');
    await bob.waitFor(/from=['"]den@conference\.localhost\/alice['"][^>]*>.*?hi bob, alice here/s);
    // §7.6: a nick change reaches the others as 303 with the new nick, then available under it.
    term.type('/nick ally');
    await bob.waitFor(/nick=['"]ally['"].*?code=['"]303['"]/s);
    await bob.waitFor(/from=['"]den@conference\.localhost\/ally['"]/);
    // §7.14: closing the room window leaves the room; bob sees ally gone.
    bob.take();
    term.type('/close');
    await bob.waitFor(/<presence[^>]*type=['"]unavailable['"][^>]*from=['"]den@conference\.localhost\/ally['"]|<presence[^>]*from=['"]den@conference\.localhost\/ally['"][^>]*type=['"]unavailable['"]/);
  }, 60_000);

  it('logs in over Direct TLS (XEP-0368, profanity\'s "tls legacy"); logging out inside a room leaves it (XEP-0045 §7.14)', async () => {
    const second = new Terminal('2');
    try {
      await second.waitFor(/\/help/);
      second.type(`/connect carol@localhost server 127.0.0.1 port ${t.tlsPort} tls legacy`);
      await second.waitFor(/[Pp]assword/);
      second.type(PASSWORDS.carol!);
      await second.waitFor(/\/tls allow/);
      second.type('/tls allow');
      await second.waitFor(/carol@localhost\/\S+ logged in successfully/);
      // XEP-0045 §7.14 for a client that logs out without leaving the room first: the session's
      // end is its leave, so the occupants still there (bob, from the test above) see it go. (A
      // connection that merely drops keeps the session, rooms included, for XEP-0198 resumption.)
      bob.take();
      second.type('/join den@conference.localhost nick carol');
      await bob.waitFor(/from=['"]den@conference\.localhost\/carol['"]/);
      bob.take();
      second.type('/disconnect');
      await bob.waitFor(/<presence[^>]*type=['"]unavailable['"][^>]*from=['"]den@conference\.localhost\/carol['"]/);
    } finally {
      second.stop();
    }
  }, 30_000);
});
