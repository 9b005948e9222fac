import { describe, expect, it } from 'vitest';
import { xmlDiff } from './canonical.js';
import { Scenario, jsFeederFactory, parseSteps } from './runner.js';

describe('scenario runner', () => {
  it('compares XML canonically: attribute order and quotes do not matter, * is a wildcard', () => {
    expect(xmlDiff(`<a x='1' y="2"/>`, `<a y='2' x="1"/>`)).toBeNull();
    expect(xmlDiff(`<a id='*'/>`, `<a id='abc'/>`)).toBeNull();
    expect(xmlDiff(`<a to='bob@x/*'/>`, `<a to='bob@x/9f'/>`)).toBeNull();
    expect(xmlDiff(`<a><b/></a>`, `<a>\n  <b/>\n</a>`)).toBeNull();
    expect(xmlDiff(`<a>*</a>`, `<a><b/><c/></a>`)).toBeNull();
  });

  it('reports missing, extra and different attributes, and different children', () => {
    expect(xmlDiff(`<a x='1'/>`, `<a/>`)).toMatch(/attribute x missing/);
    expect(xmlDiff(`<a/>`, `<a x='1'/>`)).toMatch(/unexpected attribute x/);
    expect(xmlDiff(`<a x='1'/>`, `<a x='2'/>`)).toMatch(/does not match/);
    expect(xmlDiff(`<a><b/></a>`, `<a><c/></a>`)).toMatch(/<c>/);
    expect(xmlDiff(`<a>hi</a>`, `<a>ho</a>`)).toMatch(/text/);
  });

  it('joins continuation lines and skips comments', () => {
    expect(parseSteps('# t\nalice sends: <a>\n  <b/>\n  </a>\nbob receives nothing\n')).toEqual([
      { line: 2, text: 'alice sends: <a><b/></a>' },
      { line: 5, text: 'bob receives nothing' },
    ]);
  });

  it('fails a scenario whose expectation is wrong', async () => {
    const s = new Scenario({ feeder: jsFeederFactory });
    await expect(
      s.run(`account alice\nalice connects\nalice sends: <iq type='get' id='1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>\nalice receives: <iq type='error' id='1'/>`),
    ).rejects.toThrow(/line 4/);
  });

  it('fails a scenario that leaves stanzas unconsumed', async () => {
    const s = new Scenario({ feeder: jsFeederFactory });
    await expect(
      s.run(`account alice\nalice connects\nalice sends: <iq type='get' id='1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`),
    ).rejects.toThrow(/unconsumed/);
  });
});

describe('scenario files', () => {
  it('all live in scripts/, where the suite picks them up', async () => {
    const { readdirSync } = await import('node:fs');
    const stray = readdirSync(new URL('./', import.meta.url)).filter((f) => f.endsWith('.scenario'));
    expect(stray).toEqual([]);
    expect(readdirSync(new URL('./scripts/', import.meta.url)).filter((f) => f.endsWith('.scenario')).length).toBeGreaterThan(50);
  });
});
