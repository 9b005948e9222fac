#!/usr/bin/env node
/**
 * `hermod <command>`: one entry point for the server and its tools. Each command lives in its
 * own module and is loaded on demand, so `hermod adduser` never starts the WASM core or a socket.
 */
type Command = { summary: string; run: (argv: string[]) => Promise<number> };

const commands: Record<string, Command> = {
  serve: {
    summary: 'run the XMPP server (c2s on 5222 with STARTTLS, direct TLS on 5223)',
    run: async (argv) => (await import('./server.js')).runServe(argv),
  },
  'check-config': {
    summary: 'validate the configuration and print it (exit 78 when invalid)',
    run: async (argv) => (await import('./config/check.js')).runCheckConfig(argv),
  },
  adduser: {
    summary: 'create an account: adduser USER@DOMAIN [PASSWORD] (asks when not given)',
    run: async (argv) => (await import('./admin/users.js')).runAddUser(argv),
  },
  deluser: {
    summary: 'delete an account with its roster and offline messages',
    run: async (argv) => (await import('./admin/users.js')).runDelUser(argv),
  },
  passwd: {
    summary: "change an account's password: passwd USER@DOMAIN [PASSWORD]",
    run: async (argv) => (await import('./admin/users.js')).runPasswd(argv),
  },
  users: {
    summary: 'list accounts [--domain D]',
    run: async (argv) => (await import('./admin/users.js')).runUsers(argv),
  },
  sessions: {
    summary: 'list the running server\'s live sessions (JID, IP, since, TLS/SM/shard)',
    run: async (argv) => (await import('./admin/users.js')).runSessions(argv),
  },
  kick: {
    summary: 'close live sessions: kick USER@DOMAIN[/RESOURCE] [--reason TEXT]',
    run: async (argv) => (await import('./admin/users.js')).runKick(argv),
  },
  bench: {
    summary: 'load-test any XMPP server on loopback (login, messages, presence, idle)',
    run: (argv) => import('../bench/load/cli.js').then((m) => m.main(argv)),
  },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`);
  return ['Usage: hermod <command> [options]', '', 'Commands:', ...rows, '', 'hermod <command> --help for its options.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 64;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`hermod: unknown command '${name}'\n\n${usage()}\n`);
    return 64; // EX_USAGE
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hermod: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
