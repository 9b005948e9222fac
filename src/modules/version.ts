/** XEP-0092 Software Version: name and version of the server (no OS: it tells attackers too much). */
import { readFileSync } from 'node:fs';
import type { IqEvent, Module } from '../router/context.js';
import { escapeText } from '../xml/escape.js';

export const VERSION_NS = 'jabber:iq:version';

/** package.json's version, found from src/ (tests) or dist/src/ (built). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'hermod' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

export const version: Module = {
  name: 'version',
  install(ctx) {
    ctx.features.add(VERSION_NS);
    ctx.hooks.on(`iq-get/host/${VERSION_NS}`, (ev: IqEvent) => {
      ev.reply(`<query xmlns='${VERSION_NS}'><name>Hermod</name><version>${escapeText(ctx.version)}</version></query>`);
      return true;
    });
  },
};
