// The AGP service as a Fastify app: request ids, logging with secrets redacted, JSON errors
// that never leak internals, authentication, and every route group (native decisions,
// Connect, AuthZEN, admin, health, identity). `buildApp` wires given components and owns
// none of them: the caller (server/main.ts or a test) creates and closes store and policies.

import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { randomBytes } from 'node:crypto';
import { createAuth, type Auth } from './auth.js';
import type { ContextStore } from './context/types.js';
import { createDecider, type AuditSink, type Decider } from './decider.js';
import { createMetrics, type AppMetrics } from './metrics.js';
import type { PolicyHolder } from './policy-holder.js';
import { adminRoutes } from './routes/admin.js';
import { agentRoutes } from './routes/agents.js';
import { authzenRoutes, storeCatalog } from './routes/authzen.js';
import { connectRoutes } from './routes/connect.js';
import { decideRoutes } from './routes/decide.js';
import { echoRequestId, errorBody } from './routes/errors.js';
import { healthRoutes } from './routes/health.js';
import { lazyChildLogger } from './lazy-logger.js';
import { resourceEntities, resourceRoutes } from './routes/resources.js';
import { DEFAULT_BODY_LIMIT, DEFAULT_MAX_BATCH } from './config.js';

import type { ScopeCheck } from './decider.js';

/** What /v1/decide needs of identity: an AGP-issued token's agent id, or why not. */
export type AgentTokenVerifier = (token: string) => Promise<
  | { ok: true; claims: { agp_agent: string }; covers?: ScopeCheck }
  | { ok: false; error: string; message: string }
>;

/** An audit log as the app uses it: the decider's sink plus optional figures for /metrics. */
export type AppAudit = AuditSink & { stats?: () => { written: number; dropped: number; buffered: number; suppressed?: number } };

/** Everything the routes share; also `app.agp` for plugins registered later. */
export interface AgpServices {
  decider: Decider;
  policies: PolicyHolder;
  store: ContextStore;
  auth: Auth;
  metrics: AppMetrics;
  audit: AppAudit | undefined;
  clock: () => number;
  maxBatch: number;
  bodyLimit: number;
}

/** A route group added by another area (identity): registered inside the app with the services. */
export type AppExtension = (app: FastifyInstance, services: AgpServices) => Promise<void>;

export interface BuildAppOptions {
  policies: PolicyHolder;
  store: ContextStore;
  audit?: AppAudit;
  metrics?: AppMetrics;
  /** Epoch milliseconds (grant expiry, decision time); injectable for tests. */
  clock?: () => number;
  apiKeys?: readonly string[];
  adminKey?: string | undefined;
  /** Deny agents the registry does not hold. Default: true with Redis, false embedded. */
  requireRegisteredAgents?: boolean;
  /** Largest accepted request body in bytes (default 1 MiB); larger → 413. */
  bodyLimit?: number;
  /** Most requests per batch call (default 1000). */
  maxBatch?: number;
  /** Fastify/pino logger options; `false` for none (tests). */
  logger?: false | { level: string };
  /** Route groups from other areas, e.g. the identity endpoints. */
  extensions?: readonly AppExtension[];
  /** Serve the OpenID AuthZEN endpoints (default true). */
  authzen?: boolean;
  /** Verifies `AGP-Agent-Token` on /v1/decide (AGP-issued agent tokens; see docs/identity.md). */
  agentTokens?: AgentTokenVerifier;
}

declare module 'fastify' {
  interface FastifyInstance {
    agp: AgpServices;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/**
 * Request ids for requests that bring none: UUID-shaped (8-4-4-4-12 hex), a random prefix
 * per process (re-drawn every 2^32 ids) and a counter. Unique, not secret: a request id
 * only correlates log and audit lines, and a counter costs a tenth of `randomUUID`.
 */
export function requestIdGenerator(): () => string {
  let prefix = '';
  let n = 0;
  return () => {
    if (n === 0) {
      const r = randomBytes(10).toString('hex');
      prefix = `${r.slice(0, 8)}-${r.slice(8, 12)}-${r.slice(12, 16)}-${r.slice(16, 20)}-`;
    }
    const id = prefix + n.toString(16).padStart(12, '0');
    n = (n + 1) >>> 0;
    return id;
  };
}

/** Where pino must never print a credential, whatever a route logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  '*.authorization',
  '*.token',
  '*.access_token',
  '*.subject_token',
  '*.actor_token',
  '*.client_secret',
  '*.client_assertion',
  '*.password',
  '*.apiKey',
  '*.adminKey',
];

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? { level: 'info' };
  const newRequestId = requestIdGenerator();
  const fastifyOptions: FastifyServerOptions = {
    bodyLimit,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
    },
    // Per-request access lines would double the cost of a decision; the audit log records
    // every decision, and errors are logged. Turn them on with AGP_LOG_LEVEL=debug.
    logController: new LogController({ disableRequestLogging: logger === false || !(logger.level === 'debug' || logger.level === 'trace') }),
    logger: logger === false ? false : { level: logger.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    ...(logger === false ? {} : { childLoggerFactory: lazyChildLogger }),
    return503OnClosing: true,
  };
  const app = Fastify(fastifyOptions);

  const auth = createAuth({ apiKeys: options.apiKeys ?? [], adminKey: options.adminKey });
  const metrics = options.metrics ?? createMetrics();
  const { policies, store, audit } = options;
  const decider = createDecider({
    policies,
    store,
    metrics,
    clock,
    requireRegisteredAgents: options.requireRegisteredAgents ?? store.kind === 'redis',
    ...(audit !== undefined ? { audit } : {}),
  });
  const services: AgpServices = { decider, policies, store, auth, metrics, audit, clock, maxBatch, bodyLimit };
  app.decorate('agp', services);
  app.decorateRequest('caller', 'anonymous');

  // The Redis store keeps cache and error figures (`stats()`); the embedded one has none.
  const storeStats = (store as { stats?: () => { cacheHits?: number; cacheMisses?: number; redisErrors?: number; flushErrors?: number } }).stats;
  const stats = typeof storeStats === 'function' ? () => storeStats.call(store) : undefined;
  metrics.setSources({
    storeHealth: () => store.health(),
    policyRevision: () => policies.current?.revision,
    ...(stats !== undefined
      ? {
          cacheStats: () => {
            const s = stats();
            return s.cacheHits === undefined || s.cacheMisses === undefined ? undefined : { hits: s.cacheHits, misses: s.cacheMisses };
          },
          storeBackendErrors: () => {
            const s = stats();
            return (s.redisErrors ?? 0) + (s.flushErrors ?? 0);
          },
        }
      : {}),
    ...(audit?.stats !== undefined ? { auditStats: () => audit.stats!() } : {}),
  });

  policies.setLog(app.log.child({ component: 'policies' }));
  const unsubscribe = policies.onReload((result) => {
    metrics.policyReload(result.ok, result.durationMs / 1000);
    // Admin-triggered reloads are audited by their route, with the caller.
    if (result.trigger !== 'admin' && audit !== undefined) {
      audit.write({
        kind: 'admin',
        operation: 'policies.reload',
        actor: 'system',
        target: policies.directory,
        outcome: result.ok ? 'ok' : 'failed',
        detail: { trigger: result.trigger, revision: result.revision ?? null, changed: result.changed },
      });
    }
  });
  app.addHook('onClose', async () => unsubscribe());

  // Errors before a handler ran (body parsing, limits) and unknown routes echo the id here;
  // the routes do below.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    echoRequestId(request, reply);
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      if (status === 503 && error.code === 'store_unavailable') {
        metrics.storeError('request');
        return reply.code(503).send(errorBody('store_unavailable', 'the context store is unavailable; retry later'));
      }
      request.log.error({ err: error }, 'request failed');
      const body = errorBody('internal', 'internal error');
      body.error.request_id = request.id;
      return reply.code(500).send(body);
    }
    switch (status) {
      case 413:
        return reply.code(413).send(errorBody('payload_too_large', `the request body is larger than ${bodyLimit} bytes`));
      case 415:
        return reply.code(415).send(errorBody('unsupported_media_type', 'expected `Content-Type: application/json`'));
      case 400:
        if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return reply.code(400).send(errorBody('invalid_request', 'the request body is empty'));
        if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
          return reply.code(400).send(errorBody('invalid_request', 'the request body is not valid JSON'));
        }
        return reply.code(400).send(errorBody('invalid_request', error.message));
      default:
        return reply.code(status).send(errorBody('invalid_request', error.message));
    }
  });

  app.setNotFoundHandler((request, reply) => {
    echoRequestId(request, reply);
    return reply.code(404).send(errorBody('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`));
  });

  // /v1/decide echoes the request id in its handler: a hook costs about a microsecond per
  // decision. Every other route group gets the id from one hook in its own scope.
  await app.register(decideRoutes, { decider, auth, maxBatch, ...(options.agentTokens !== undefined ? { agentTokens: options.agentTokens } : {}) });
  await app.register(async (scoped) => {
    scoped.addHook('onRequest', (request, reply, done) => {
      echoRequestId(request, reply);
      done();
    });
    await scoped.register(healthRoutes, { policies, store, metrics });
    await scoped.register(connectRoutes, { decider, auth, maxBatch });
    await scoped.register(adminRoutes, { policies, auth, ...(audit !== undefined ? { audit } : {}) });
    await scoped.register(agentRoutes, { store, policies, auth, metrics, clock, ...(audit !== undefined ? { audit } : {}) });
    await scoped.register(resourceRoutes, { store, policies, auth, metrics, clock, ...(audit !== undefined ? { audit } : {}) });
    if (options.authzen !== false) {
      await scoped.register(authzenRoutes, { decider, catalog: storeCatalog(store, policies, () => resourceEntities(store)), auth, maxBatch });
    }
    // Other areas' route groups (identity) register here, with the shared services.
    for (const extension of options.extensions ?? []) {
      await scoped.register(async (scope) => extension(scope, services));
    }
  });
  return app;
}
