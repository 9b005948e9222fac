/**
 * The stream layer's settings taken from the configuration: one mapping, used by the
 * single-thread server (src/server.ts) and by every shard (src/shard/worker.ts), so both modes
 * negotiate streams under exactly the same limits.
 */
import type { HermodConfig } from '../config/schema.js';
import type { C2SOptions } from './c2s.js';

export function streamOptionsOf(config: HermodConfig): C2SOptions {
  return {
    domain: config.domain,
    tls: config.tls.policy,
    registration: config.registration,
    preAuthMaxStanzaBytes: config.limits.preauthMaxStanzaBytes,
    maxStanzaBytes: config.limits.maxStanzaBytes,
    saslMaxAttempts: config.limits.authAttempts,
    maxDepth: config.limits.maxDepth,
    maxAttributes: config.limits.maxAttributes,
    preauthTimeoutMs: config.limits.preauthTimeout,
    idleTimeoutMs: config.limits.idleTimeout,
    maxOutputBytes: config.limits.outputQueueBytes,
    stanzaRate: config.limits.stanzaRate,
    streamManagement: config.streamManagement.enabled
      ? {
          resumeTimeoutMs: config.streamManagement.resumeTimeout,
          maxUnacked: config.streamManagement.maxUnacked,
          maxUnackedBytes: config.streamManagement.maxUnackedBytes,
        }
      : undefined,
  };
}
