// Liveness, readiness and Prometheus metrics: `GET /healthz`, `GET /readyz`, `GET /metrics`.
// Unauthenticated, as probes and scrapers expect; they reveal no request data.

import type { FastifyInstance } from 'fastify';
import type { ContextStore } from '../context/types.js';
import type { AppMetrics } from '../metrics.js';
import type { PolicyHolder } from '../policy-holder.js';

export interface HealthRoutesOptions {
  policies: PolicyHolder;
  store: ContextStore;
  metrics: AppMetrics;
}

export async function healthRoutes(app: FastifyInstance, opts: HealthRoutesOptions): Promise<void> {
  const { policies, store, metrics } = opts;

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', (_request, reply) => {
    const health = store.health();
    const revision = policies.current?.revision;
    const problems: string[] = [];
    if (revision === undefined) problems.push('no valid policy set is loaded');
    // Degraded (Redis unreachable, cached context serving) stays ready: it fails closed per agent.
    if (health.state === 'down') problems.push(`the ${health.kind} context store is down`);
    const store_: { kind: string; state: string; detail?: string } = { kind: health.kind, state: health.state };
    if (health.detail !== undefined) store_.detail = health.detail;
    const body = {
      status: problems.length === 0 ? 'ready' : 'not_ready',
      policies: { revision: revision ?? null, directory: policies.directory },
      store: store_,
      ...(problems.length > 0 ? { problems } : {}),
    };
    return reply.code(problems.length === 0 ? 200 : 503).send(body);
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
}
