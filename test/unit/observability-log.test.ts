import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/file.js';
import { blankXmlText, createLogger, formatTextLine, type LogOptions } from '../../src/observability/log.js';

/** A logger writing into an array; returns [logger, lines]. */
function capture(options: Partial<LogOptions> = {}) {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json', ...options }, { write: (s: string) => void lines.push(s) });
  return { logger, lines, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('structured logs', () => {
  it('writes one JSON object per line with a level name, an ISO time and the message', () => {
    const { logger, entries, lines } = capture();
    logger.info({ jid: 'a@b/c' }, 'session bound');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const [e] = entries();
    expect(e).toMatchObject({ level: 'info', msg: 'session bound', jid: 'a@b/c', pid: process.pid });
    expect(new Date(String(e!.time)).toISOString()).toBe(e!.time);
  });

  it('drops entries below the configured level', () => {
    const { logger, entries } = capture({ level: 'warn' });
    logger.info('not shown');
    logger.debug('not shown');
    logger.warn('shown');
    logger.error('shown too');
    expect(entries().map((e) => e.level)).toEqual(['warn', 'error']);
    const silent = capture({ level: 'silent' });
    silent.logger.fatal('nothing');
    expect(silent.lines).toEqual([]);
  });

  it('never writes a password or SASL payload, at any level and any nesting', () => {
    const { logger, lines } = capture({ level: 'trace' });
    for (const method of ['trace', 'debug', 'info', 'warn', 'error'] as const) {
      logger[method]({ password: 'pw-top-1', user: { password: 'pw-nested-2' }, a: { b: { c: { password: 'pw-deep-3' } } } }, 'x');
      logger[method]({ sasl: 'AGFsaWNlAHNlY3JldA==', saslPayload: 'cD1zZWNyZXQ=' }, 'auth');
      logger.child({ component: 'c2s' })[method]({ credentials: { storedKey: 'k' }, secret: 's3cr3t-value' }, 'y');
    }
    const all = lines.join('');
    for (const leaked of ['pw-top-1', 'pw-nested-2', 'pw-deep-3', 'AGFsaWNlAHNlY3JldA', 'cD1zZWNyZXQ', 's3cr3t-value']) {
      expect(all).not.toContain(leaked);
    }
    expect(all).toContain('[redacted]');
  });

  it('scrubs credential elements from XML even at debug and trace, where stanzas are logged', () => {
    const { logger, lines, entries } = capture({ level: 'trace' });
    const plain = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>";
    const scram = "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdzLHI9ZnlrbyxwPXYwWD0=</response>";
    const register = "<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>bob</username><password>tr0ub4dor</password></query></iq>";
    const component = '<handshake>aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d</handshake>';
    logger.debug({ stanza: plain }, 'in');
    logger.trace({ xml: scram, stanza: Buffer.from(register) }, 'in');
    logger.debug(`received ${component}`);
    const all = lines.join('');
    for (const secret of ['AGFsaWNlAHNlY3JldA', 'Yz1iaXdzLHI9ZnlrbyxwPXYwWD0', 'tr0ub4dor', 'aaf4c61ddcc5e8a2']) expect(all).not.toContain(secret);
    const [first, second] = entries();
    expect(first!.stanza).toBe("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>[redacted]</auth>");
    // The rest of a debug stanza stays readable.
    expect(second!.stanza).toBe("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>bob</username><password>[redacted]</password></query></iq>");
  });

  it('never leaks a component secret when the whole configuration is logged', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const path = join(mkdtempSync(join(tmpdir(), 'hermod-log-')), 'h.yml');
    writeFileSync(path, 'components:\n  bot.localhost: component-secret-xyz\n');
    const { config } = loadConfig({ file: path });
    const { logger, lines } = capture({ level: 'debug' });
    logger.info({ config }, 'starting');
    logger.debug(config, 'effective configuration');
    expect(lines.join('')).not.toContain('component-secret-xyz');
  });

  it('redacts any generated password, whatever its characters (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 40 }).filter((s) => /^[\w!#%&*+-]+$/.test(s) && !/redacted|info|level|pid|time|msg/.test(s)), (pw) => {
        const { logger, lines } = capture({ level: 'trace' });
        logger.info({ password: pw }, 'login');
        logger.warn({ session: { password: pw } }, 'login');
        return !lines.join('').includes(pw);
      }),
    );
  });

  it('omits message bodies and stanzas at info and above, keeps them at debug', () => {
    const { logger, entries } = capture({ level: 'debug' });
    const stanza = "<message to='b@x'><body>meet at noon</body></message>";
    logger.debug({ stanza, body: 'meet at noon' }, 'routing');
    logger.info({ stanza, body: 'meet at noon', subject: 'plans' }, 'routing');
    logger.warn({ xml: stanza }, 'odd stanza');
    const [debug, info, warn] = entries();
    expect(debug).toMatchObject({ stanza, body: 'meet at noon' });
    expect(info).toMatchObject({ stanza: '[omitted]', body: '[omitted]', subject: '[omitted]' });
    expect(warn).toMatchObject({ xml: '[omitted]' });
  });

  it('blanks the text inside XML written into an info message string, keeping the tags', () => {
    const { logger, entries } = capture();
    logger.info("dropped <message><body>meet at noon</body></message> from %s", 'a@x');
    logger.info("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>");
    const [a, b] = entries();
    expect(a!.msg).toBe('dropped <message><body>[omitted]</body></message> from a@x');
    expect(String(b!.msg)).not.toContain('AGFsaWNlAHB3');
    expect(blankXmlText('no xml here')).toBe('no xml here');
    expect(blankXmlText('<a>\n  <b/>\n</a>')).toBe('<a>\n  <b/>\n</a>');
  });

  it('serialises errors with their type and message', () => {
    const { logger, entries } = capture();
    logger.error({ err: new RangeError('boom') }, 'failed');
    expect(entries()[0]).toMatchObject({ msg: 'failed', err: { type: 'RangeError', message: 'boom' } });
  });
});

describe('text format', () => {
  it('writes one human-readable line per entry: time, level, component, message, fields', () => {
    const { logger, lines } = capture({ format: 'text' });
    logger.child({ component: 'c2s' }).info({ jid: 'a@b/c', port: 5222, reason: 'two words' }, 'session bound');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  \[c2s\] session bound jid=a@b\/c port=5222 reason="two words"\n$/);
  });

  it('keeps every entry on one line and still redacts', () => {
    const { logger, lines } = capture({ format: 'text' });
    logger.error({ err: new Error('line one\nline two'), password: 'pw-in-text' }, 'multi\nline');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\n')).toHaveLength(2); // the text and the final newline
    expect(lines[0]).toContain('ERROR multi\\nline');
    expect(lines[0]).toContain('err="Error: line one\\nline two"');
    expect(lines[0]).not.toContain('pw-in-text');
  });

  it('passes through a line that is not JSON', () => {
    expect(formatTextLine('plain')).toBe('plain\n');
  });
});
