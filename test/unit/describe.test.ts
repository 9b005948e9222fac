import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/schema.js';
import { describeServer } from '../../src/describe.js';

describe('the startup summary (hermod serve)', () => {
  const config = { ...defaultConfig(), domain: 'example.org', dataDir: '/var/lib/hermod' };

  it('names the client listener, the domain and the data directory', () => {
    expect(describeServer(config, { c2s: { host: '0.0.0.0', port: 5222 }, directTls: null, websocket: null, components: null, upload: null })).toBe(
      'hermod listening on 0.0.0.0:5222 (c2s, STARTTLS required), domain example.org, data /var/lib/hermod',
    );
  });

  it('adds each optional listener that is on, in a fixed order', () => {
    const line = describeServer(
      { ...config, tls: { ...config.tls, policy: 'optional' } },
      {
        c2s: { host: '127.0.0.1', port: 1 },
        directTls: { host: '127.0.0.1', port: 2 },
        websocket: { host: '127.0.0.1', port: 3 },
        components: { host: '127.0.0.1', port: 4 },
        upload: { http: { host: '127.0.0.1', port: 5 }, url: 'https://files.example.org' },
      },
    );
    expect(line).toBe(
      'hermod listening on 127.0.0.1:1 (c2s, STARTTLS optional), 127.0.0.1:2 (direct TLS), ws://127.0.0.1:3/xmpp-websocket (WebSocket), ' +
        '127.0.0.1:4 (components, XEP-0114), 127.0.0.1:5 (file upload, https://files.example.org), domain example.org, data /var/lib/hermod',
    );
  });
});
