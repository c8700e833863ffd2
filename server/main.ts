// The service entry point behind `agp serve` and `npm start`: configuration, the context
// store, the audit log, the policy holder (hot reload on file change and SIGHUP), the app,
// and graceful shutdown on SIGTERM/SIGINT (stop accepting, finish in-flight requests,
// flush the audit log, close the store).

import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppExtension } from './app.js';
import { createAuditLog, type AuditEntry, type AuditLog } from './audit.js';
import type { Json } from '../engine/ir.js';
import { CONFIG_ENV, DEFAULT_HOST, DEFAULT_PORT, isLoopback, loadConfig, type ServeFlags, type ServerConfig } from './config.js';
import { contextConfigFromEnv, createContextStore } from './context/index.js';
import type { ContextStore } from './context/types.js';
import type { Decider } from './decider.js';
import { auditFloodKey, createIdentity, identityConfigFromEnv, identityRoutes, loadScopeConfig, scopeAllows, SCOPE_CONFIG_FILE, type DecideScope, type Identity, type IdentityAuditEvent, type IdentityEnvConfig, type ScopeConfig } from './identity/index.js';
import { createMetrics } from './metrics.js';
import { PolicyHolder } from './policy-holder.js';
import { lookupResource } from './routes/resources.js';
import { startTracing } from './tracing.js';

export const SERVE_HELP = `usage: agp serve [--policies <dir>] [--port <n>] [--host <addr>] [options]

Runs the policy decision point: POST /v1/decide (+ /batch), the Connect service
agp.v1.DecisionService, OpenID AuthZEN, the admin API, /healthz /readyz /metrics.

options (each also an environment variable; flags win):
  --policies <dir>     policy directory                        ${CONFIG_ENV.policies} (default: policies)
  --port <n>           TCP port                                ${CONFIG_ENV.port} (default: ${DEFAULT_PORT})
  --host <addr>        listen address                          ${CONFIG_ENV.host} (default: ${DEFAULT_HOST})
  --redis-url <url>    shared context store (else embedded)    ${CONFIG_ENV.redisUrl}
  --log-level <level>  fatal|error|warn|info|debug|trace|silent ${CONFIG_ENV.logLevel} (default: info)
  --audit-file <path>  hash-chained decision log               ${CONFIG_ENV.auditFile} (default: .agp-data/audit.jsonl)
  --no-watch           do not watch the policy directory       ${CONFIG_ENV.watch}=false
environment only:
  ${CONFIG_ENV.apiKeys} (comma list), ${CONFIG_ENV.adminKey}: credentials; with none the server binds to loopback only
  ${CONFIG_ENV.redisPrefix}, ${CONFIG_ENV.requireRegisteredAgents}, ${CONFIG_ENV.audit} (file|stdout|none), ${CONFIG_ENV.auditHmacKey},
  ${CONFIG_ENV.auditBuffer}, ${CONFIG_ENV.bodyLimit}, ${CONFIG_ENV.maxBatch}, ${CONFIG_ENV.shutdownTimeoutMs}
  identity: AGP_ISSUER, AGP_KEY_ENCRYPTION_KEY, AGP_TOKEN_TTL, AGP_KEY_ROTATE_EVERY, AGP_TRUSTED_ISSUERS
  anomalies: AGP_ANOMALY_RATE_Z, AGP_ANOMALY_DENY_RATIO, AGP_ANOMALY_NEW_RESOURCES
See docs/ops.md for every setting. Reload policies with SIGHUP or POST /v1/admin/policies/reload.`;

export interface RunningServer {
  app: FastifyInstance;
  policies: PolicyHolder;
  store: ContextStore;
  audit: AuditLog | undefined;
  /** Agent credentials and tokens (docs/identity.md). */
  identity: Identity;
  /** `http://host:port` actually bound (port 0 resolves to the chosen port). */
  url: string;
  /** Graceful stop: stop accepting, finish in-flight requests, flush audit, close the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** Route groups of other areas (identity), registered inside the app. */
  extensions?: readonly AppExtension[];
  clock?: () => number;
  /** Use this store instead of building one from the configuration (embedding, tests); closed on shutdown. */
  store?: ContextStore;
}

/** Why the configuration cannot be served, or undefined. */
export function refuseReason(config: ServerConfig): string | undefined {
  const keyed = config.apiKeys.length > 0 || config.adminKey !== undefined;
  if (!keyed && !isLoopback(config.host)) {
    return `refusing to listen on \`${config.host}\` without credentials: set ${CONFIG_ENV.apiKeys} and ${CONFIG_ENV.adminKey}, or listen on 127.0.0.1`;
  }
  // PEP keys without an admin key is allowed: the admin API then answers 403.
  return undefined;
}

/** The identity settings for this configuration, or the lines that say why they are unusable. */
export function identitySettings(config: ServerConfig, env: NodeJS.ProcessEnv): { value?: IdentityEnvConfig & { ephemeral: boolean }; errors: string[] } {
  const host = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  // Off loopback, or with a shared store whose sealed keys must outlive this process, the
  // key encryption key is required; a lone local node gets a throwaway one.
  const ephemeral = (env['AGP_KEY_ENCRYPTION_KEY'] ?? '') === '' && isLoopback(config.host) && config.redisUrl === undefined;
  const r = identityConfigFromEnv(ephemeral ? { ...env, AGP_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') } : env, `http://${host}:${config.port}`);
  if (r.value === undefined) return { errors: r.errors.map((e) => `${e.variable}: ${e.message} (${e.hint})`) };
  return { value: { ...r.value, ephemeral }, errors: [] };
}

function identityAuditEntry(e: IdentityAuditEvent): AuditEntry {
  const { kind, at, ...rest } = e;
  const detail = JSON.parse(JSON.stringify(rest)) as { [k: string]: Json };
  const entry: AuditEntry = { kind: 'admin', operation: `identity.${kind}`, outcome: kind.endsWith('_refused') || kind.endsWith('_rejected') ? 'failed' : 'ok', detail, time: new Date(at).toISOString() };
  if ('agent' in e && e.agent !== undefined) entry.target = e.agent;
  return entry;
}

/** Identity's events into the audit log; rejected credentials under flood control per client address. */
function writeIdentityAudit(audit: AuditLog | undefined, e: IdentityAuditEvent): void {
  const key = auditFloodKey(e);
  audit?.write(identityAuditEntry(e), key !== undefined ? { flood: { key } } : undefined);
}

/**
 * Token exchange's policy question for one scope, built only from what AGP knows or the
 * caller legitimately owns:
 * - agent: `{id}` plus `scopes.json` `defaults.agent`; the decider's merge rule then puts
 *   every registered attribute over them (the registry wins);
 * - resource: the resource registry's record for `type:id`, else `type:*`, with `type` and
 *   `id` from the scope — never from the caller, who could understate sensitivity;
 * - task: `defaults.task`, overridden by the caller's `task` parameter; `on_behalf_of` and
 *   `delegation` are AGP's (from the tokens), whatever the caller sent.
 * A request the schema rejects is `invalid` (the scope cannot be decided as asked) with
 * the attribute named and where to supply it; no policy set or no store throws (503).
 */
export function tokenDecideScope(deps: { decider: Pick<Decider, 'decide'>; store: Pick<ContextStore, 'kvGet'>; scopes: () => ScopeConfig }): DecideScope {
  return async (q) => {
    const cfg = deps.scopes();
    const record = await lookupResource(deps.store, q.resource.type, q.resource.id);
    const resource = { ...(record?.attributes ?? {}), type: q.resource.type, id: q.resource.id };
    const task: Record<string, unknown> = { ...cfg.defaults.task, ...(q.task ?? {}) };
    delete task['on_behalf_of'];
    delete task['delegation'];
    if (q.onBehalfOf !== undefined) task['on_behalf_of'] = q.onBehalfOf;
    if (q.delegation !== undefined) task['delegation'] = q.delegation;
    const agent = { ...cfg.defaults.agent, id: q.agentId };
    const o = await deps.decider.decide({ agent, action: q.action, resource, task }, { requestId: `token-${q.agentId}`, api: 'token' });
    if (!o.ok) {
      if (o.status >= 500) throw new Error(o.error.message);
      const path = o.error.issues?.[0]?.path ?? '';
      const where = path.startsWith('resource.')
        ? record === null
          ? `; register the resource: PUT /v1/admin/resources/${q.resource.type}/${q.resource.id === '*' ? '*' : `${q.resource.id} (or ${q.resource.type}/*)`}`
          : `; fix the resource's record ${record.type}:${record.id} (PUT /v1/admin/resources/${record.type}/${record.id})`
        : path.startsWith('task.')
          ? '; send it in the `task` parameter (a JSON object) or set it in defaults.task of scopes.json'
          : path.startsWith('agent.')
            ? `; register it on the agent (PUT /v1/admin/agents/${q.agentId}) or set it in defaults.agent of scopes.json`
            : '';
      return { effect: 'deny', obligations: {}, reasons: [o.error.message], invalid: `${o.error.message}${where}` };
    }
    return { effect: o.decision.effect, obligations: o.decision.obligations, reasons: o.decision.reasons, decision_id: o.decision.decision_id };
  };
}

/** Starts the service with a validated configuration and returns once it is listening. */
export async function start(config: ServerConfig, options: StartOptions = {}): Promise<RunningServer> {
  const env = options.env ?? process.env;
  const refuse = refuseReason(config);
  if (refuse !== undefined) throw new Error(refuse);

  const storeLog: { fn: (level: 'info' | 'warn', message: string) => void } = { fn: () => {} };
  const store = options.store ?? await createContextStore({
    ...contextConfigFromEnv(env),
    ...(config.redisUrl !== undefined ? { redisUrl: config.redisUrl } : {}),
    prefix: config.redisPrefix,
    log: (level, message) => storeLog.fn(level, message),
  });

  // A no-op unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const stopTracing = await startTracing({ env });
  const metrics = createMetrics();
  let audit: AuditLog | undefined;
  if (config.audit !== 'none') {
    if (config.audit === 'file') mkdirSync(dirname(config.auditFile), { recursive: true });
    audit = createAuditLog({
      sink: config.audit,
      bufferSize: config.auditBuffer,
      ...(config.audit === 'file' ? { file: config.auditFile } : {}),
      ...(config.auditHmacKey !== undefined ? { hmacKey: config.auditHmacKey } : {}),
    });
  }

  const ids = identitySettings(config, env);
  if (ids.value === undefined) {
    await audit?.close();
    await store.close();
    await stopTracing();
    throw new Error(ids.errors.join('; '));
  }
  const idv = ids.value;
  let identity: Identity;
  try {
    identity = await createIdentity({
      store,
      issuer: idv.issuer,
      encryptionKey: idv.encryptionKey,
      tokenTtlS: idv.tokenTtlS,
      rotateEveryMs: idv.rotateEveryMs,
      audit: (e) => writeIdentityAudit(audit, e),
    });
  } catch (err) {
    await audit?.close();
    await store.close();
    await stopTracing();
    throw err;
  }
  // scopes.json beside the policies: a broken file stops the start; on a reload it is
  // re-read, and a broken one keeps the last good configuration (logged).
  const firstScopes = await loadScopeConfig(config.policies);
  if (firstScopes.value === undefined) {
    identity.close();
    await audit?.close();
    await store.close();
    await stopTracing();
    throw new Error(firstScopes.errors.join('; '));
  }
  let scopeConfig: ScopeConfig = firstScopes.value;
  const identityExtension: AppExtension = async (scope, services) => {
    const decideScope = tokenDecideScope({ decider: services.decider, store, scopes: () => scopeConfig });
    await scope.register(identityRoutes, {
      store,
      keys: identity.keys,
      tokens: identity.tokens,
      credentials: identity.credentials,
      issuer: idv.issuer,
      decideScope,
      scopeMap: () => scopeConfig.map,
      trustedIssuers: idv.trustedIssuers,
      audit: (e) => writeIdentityAudit(audit, e),
      dpop: identity.dpop,
      // A PEP key is a resource server to identity: it may introspect (docs/identity.md).
      callerRole: (request) => {
        const r = services.auth.check(request.headers.authorization, 'pep');
        return !r.ok ? null : r.admin ? 'admin' : 'resource_server';
      },
    });
  };

  const policies = new PolicyHolder({ directory: config.policies });
  const app = await buildApp({
    // A token's scope narrows what the agent may do: /v1/decide denies anything outside it,
    // read with the live scope map (scopes.json follows policy reloads).
    agentTokens: async (token) => {
      const v = await identity.verifyAgentToken(token);
      if (!v.ok) return v;
      const scope = v.claims.scope;
      return { ok: true, claims: v.claims, covers: (action, resource) => scopeAllows(scope, action, resource, scopeConfig.map) };
    },
    policies,
    store,
    metrics,
    apiKeys: config.apiKeys,
    adminKey: config.adminKey,
    requireRegisteredAgents: config.requireRegisteredAgents,
    bodyLimit: config.bodyLimit,
    maxBatch: config.maxBatch,
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    ...(audit !== undefined ? { audit } : {}),
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    extensions: [identityExtension, ...(options.extensions ?? [])],
  });
  const log = app.log;
  if (idv.ephemeral) log.warn('identity: no AGP_KEY_ENCRYPTION_KEY; signing keys are sealed with a throwaway key and tokens do not survive a restart');
  storeLog.fn = (level, message) => log[level]({ component: 'store' }, message);
  policies.onReload((result) => {
    if (result.trigger === 'start') return;
    void loadScopeConfig(config.policies).then((r) => {
      if (r.value !== undefined) scopeConfig = r.value;
      else log.error({ errors: r.errors }, `${SCOPE_CONFIG_FILE} rejected; the last good scope map stays in use`);
    });
  });
  store.onAnomaly((event) => {
    metrics.anomaly(event.kind);
    audit?.write({ kind: 'anomaly', agent: event.agent, anomaly: event.kind, value: event.value, threshold: event.threshold, time: new Date(event.at).toISOString() });
  });

  // The first load happens before listening; a broken set still starts (503 until fixed).
  await policies.reload('start');
  if (config.watch) policies.watch();

  const onHup = (): void => void policies.reload('signal');
  process.on('SIGHUP', onHup);

  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    process.off('SIGHUP', onHup);
    identity.close();
    await policies.close();
    await audit?.close();
    await store.close();
    await stopTracing();
    throw err;
  }
  const keyed = config.apiKeys.length > 0 || config.adminKey !== undefined;
  log.info(
    { address, policies: config.policies, revision: policies.current?.revision ?? null, store: store.kind, audit: config.audit === 'file' ? config.auditFile : config.audit },
    keyed ? 'agp listening' : `agp listening on loopback only: no API keys configured (set ${CONFIG_ENV.apiKeys} and ${CONFIG_ENV.adminKey} to listen elsewhere)`,
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      process.off('SIGHUP', onHup);
      await policies.close();
      // Fastify stops accepting, answers 503 to new requests on kept-alive sockets, and
      // waits for in-flight ones; past the timeout, remaining connections are cut.
      const timer = setTimeout(() => {
        log.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: closing remaining connections');
        app.server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      timer.unref();
      // Keep-alive sockets of requests that were in flight become idle only after their
      // answer; close them as soon as they do rather than at the keep-alive timeout.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      sweep.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(timer);
        clearInterval(sweep);
      }
      identity.close();
      await audit?.close();
      await store.close();
      await stopTracing();
    })();
    return closing;
  };
  return { app, policies, store, audit, identity, url: address, close };
}

export interface ServeIO {
  err: (text: string) => void;
}

const FLAG_OPTIONS = {
  policies: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'redis-url': { type: 'string' },
  'log-level': { type: 'string' },
  'audit-file': { type: 'string' },
  'no-watch': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `agp serve`: runs until SIGTERM or SIGINT, then shuts down gracefully. Resolves the exit
 * code: 0 after a clean stop, 2 for a bad configuration, 1 when it cannot listen.
 */
export async function serve(argv: readonly string[], io: ServeIO = { err: (t) => void process.stderr.write(t) }, options: StartOptions = {}): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAG_OPTIONS, allowPositionals: false, strict: true });
  } catch (err) {
    io.err(`agp serve: ${err instanceof Error ? err.message.split('\n')[0]!.toLowerCase().replace(/\.$/, '') : String(err)}\n${SERVE_HELP.split('\n')[0]}\n`);
    return 2;
  }
  const v = parsed.values;
  if (v.help === true) {
    io.err(`${SERVE_HELP}\n`);
    return 0;
  }
  const flags: ServeFlags = {};
  if (v.policies !== undefined) flags.policies = v.policies;
  if (v.port !== undefined) flags.port = v.port;
  if (v.host !== undefined) flags.host = v.host;
  if (v['redis-url'] !== undefined) flags.redisUrl = v['redis-url'];
  if (v['log-level'] !== undefined) flags.logLevel = v['log-level'];
  if (v['audit-file'] !== undefined) flags.auditFile = v['audit-file'];
  if (v['no-watch'] === true) flags.watch = false;

  const loaded = loadConfig(flags, options.env ?? process.env);
  if (!loaded.ok) {
    for (const e of loaded.errors) io.err(`agp serve: ${e}\n`);
    return 2;
  }
  const refuse = refuseReason(loaded.config);
  if (refuse !== undefined) {
    io.err(`agp serve: ${refuse}\n`);
    return 2;
  }
  const ids = identitySettings(loaded.config, options.env ?? process.env);
  if (ids.errors.length > 0) {
    for (const e of ids.errors) io.err(`agp serve: ${e}\n`);
    return 2;
  }
  try {
    contextConfigFromEnv(options.env ?? process.env);
  } catch (err) {
    io.err(`agp serve: ${(err as Error).message}\n`);
    return 2;
  }

  let server: RunningServer;
  try {
    server = await start(loaded.config, options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const what = e.code === 'EADDRINUSE' ? `port ${loaded.config.port} on ${loaded.config.host} is already in use` : e.code === 'EACCES' ? `no permission to listen on port ${loaded.config.port}` : e.message;
    io.err(`agp serve: cannot start: ${what}\n`);
    return 1;
  }

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      server.app.log.info({ signal }, 'shutting down');
      server.close().then(
        () => resolve(0),
        (err: unknown) => {
          io.err(`agp serve: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
