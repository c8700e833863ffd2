// The policy admin API (admin key): reload the policy set now, and read the diagnostics of
// the latest rejected set (`POST /v1/admin/policies/reload`, `GET /v1/admin/policies/diagnostics`).

import type { FastifyInstance } from 'fastify';
import type { Auth } from '../auth.js';
import type { AuditSink } from '../decider.js';
import type { PolicyHolder } from '../policy-holder.js';
import { errorBody, requireCaller } from './errors.js';

export interface AdminRoutesOptions {
  policies: PolicyHolder;
  auth: Auth;
  audit?: AuditSink;
}

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions): Promise<void> {
  const { policies, audit } = opts;
  const onRequest = requireCaller(opts.auth, 'admin');

  app.post('/v1/admin/policies/reload', { onRequest }, async (request, reply) => {
    const result = await policies.reload('admin');
    audit?.write({
      kind: 'admin',
      operation: 'policies.reload',
      actor: request.caller,
      target: policies.directory,
      outcome: result.ok ? 'ok' : 'failed',
      detail: { revision: result.revision ?? null, changed: result.changed, errors: result.diagnostics.filter((d) => d.severity === 'error').length },
      request_id: request.id,
    });
    const body = {
      ok: result.ok,
      revision: result.revision ?? null,
      changed: result.changed,
      duration_ms: result.durationMs,
      diagnostics: result.diagnostics,
    };
    if (result.ok) return reply.send(body);
    const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
    const serving = result.revision === undefined ? 'no policy set is serving' : `revision ${result.revision} keeps serving`;
    return reply.code(422).send({ ...errorBody('policy_set_rejected', `the policy set has ${errors} error(s); ${serving}`), ...body });
  });

  app.get('/v1/admin/policies/diagnostics', { onRequest }, (_request, reply) => {
    const s = policies.status();
    return reply.send({
      directory: s.directory,
      revision: s.revision ?? null,
      loaded_at: s.loadedAt ?? null,
      last_attempt:
        s.lastAttempt === undefined
          ? null
          : { at: s.lastAttempt.at, ok: s.lastAttempt.ok, trigger: s.lastAttempt.trigger, changed: s.lastAttempt.changed, duration_ms: s.lastAttempt.durationMs },
      rejected: s.rejected === undefined ? null : { at: s.rejected.at, diagnostics: s.rejected.diagnostics },
      diagnostics: s.lastAttempt?.diagnostics ?? [],
    });
  });
}
