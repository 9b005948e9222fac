/**
 * Logs and metrics wired from the configuration in one call, for `hermod serve`:
 *
 *   const obs = await startObservability(config);
 *   obs.logger.info({ port }, 'listening');
 *   stats.stanzaIn(kind);            // anywhere: import { stats } from './observability/metrics.js'
 *   await obs.close();               // at shutdown
 *
 * The metrics endpoint starts only with `metrics.enabled: true`; when its port cannot be bound
 * the start fails with an error that names the option, before any XMPP listener is opened.
 */
import type { DestinationStream } from 'pino';
import type { HermodConfig } from '../config/schema.js';
import { startMetricsServer, type MetricsServer } from './http.js';
import { createLogger, type Logger } from './log.js';
import { Metrics, stats, type HotStats } from './metrics.js';

export { createLogger, type Logger } from './log.js';
export { HotStats, Metrics, stats, Transport, useStats } from './metrics.js';
export { startMetricsServer, type MetricsServer } from './http.js';

export interface Observability {
  logger: Logger;
  metrics: Metrics;
  /** This thread's counters (the same object as the `stats` export). */
  stats: HotStats;
  /** The /metrics endpoint, or null when metrics are disabled. */
  endpoint: MetricsServer | null;
  close(): Promise<void>;
}

export class MetricsListenError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    super(`metrics.port: cannot listen on ${host}:${port} (${cause.code === 'EADDRINUSE' ? 'address already in use' : cause.code ?? cause.message})`);
    this.name = 'MetricsListenError';
  }
}

export async function startObservability(
  config: Pick<HermodConfig, 'log' | 'metrics'>,
  options: { logDestination?: DestinationStream; processMetrics?: boolean } = {},
): Promise<Observability> {
  const logger = createLogger(config.log, options.logDestination);
  const metrics = new Metrics({ processMetrics: options.processMetrics });
  metrics.adopt(stats);
  let endpoint: MetricsServer | null = null;
  if (config.metrics.enabled) {
    try {
      endpoint = await startMetricsServer(metrics, config.metrics);
    } catch (err) {
      throw new MetricsListenError(config.metrics.host, config.metrics.port, err as NodeJS.ErrnoException);
    }
    logger.info({ url: endpoint.url }, 'metrics endpoint listening');
  }
  return {
    logger,
    metrics,
    stats,
    endpoint,
    async close() {
      await endpoint?.close();
      logger.flush();
    },
  };
}
