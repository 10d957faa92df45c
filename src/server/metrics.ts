// GET /metrics (Prometheus text format) on every ipvisor HTTP server, and the request-duration
// hook. Access is the route's `config.access: 'metrics'`, decided in the one access hook
// (api/access.ts): no token on a loopback listener, an admin or auditor token elsewhere.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { clearStoreGauges, collectFromStore, enableMetrics, httpRequestDuration, metricsText } from '../core/metrics.js';
import type { Store } from '../core/store/store.js';
import { errorResponses } from './api/schemas.js';

/** Observes every answered request by its route template (/api/v1/vms/:vm), never the raw URL:
 * URLs would make one series per object (and carry names into the metrics). */
export function installRequestMetrics(app: FastifyInstance): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    httpRequestDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}

export const registerMetrics: FastifyPluginAsync<{ store?: Store }> = async (app, opts) => {
  // this process serves /metrics: from now on it counts
  await enableMetrics();
  app.get('/metrics', {
    config: { access: 'metrics' },
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics (no token on a loopback listener; elsewhere an admin or auditor token)',
      response: { 200: { description: 'the Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(401, 403) },
    },
  }, async (_req, reply) => {
    // a store that cannot be read (counted in ipvisor_store_errors_total) still leaves the
    // process' own series worth scraping; the pool and agent gauges are then absent, not stale
    if (opts.store) await collectFromStore(opts.store).catch(() => clearStoreGauges());
    const { text, contentType } = await metricsText();
    reply.type(contentType);
    return text;
  });
};
