// The agent inventory and elevation grants over the context store (admin key):
// register/update, read, list, (de)activate agents; create, list and revoke time-bound
// grants. Attributes are checked against the serving policy schema; every change is audited.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Json } from '../../engine/ir.js';
import type { Auth } from '../auth.js';
import type { AgentRecord, ContextStore, GrantRecord } from '../context/types.js';
import type { AuditSink, PolicySource } from '../decider.js';
import type { AppMetrics } from '../metrics.js';
import { adminRecorder, adminStoreErrorHandler, errorBody, invalidRequest, requireCaller, zodIssues } from './errors.js';

export interface AgentRoutesOptions {
  store: ContextStore;
  policies: PolicySource;
  auth: Auth;
  audit?: AuditSink;
  metrics?: AppMetrics;
  clock?: () => number;
}

const AGENT_ID = /^[A-Za-z0-9._:@-]{1,256}$/;
/** The longest grant an admin can give in one call: 30 days. */
export const MAX_GRANT_SECONDS = 30 * 24 * 3600;

const grantBody = z
  .object({
    actions: z.array(z.string().min(1).max(256)).min(1).max(100),
    resource: z.string().min(1).max(512),
    expires_in_s: z.number().int().min(1).max(MAX_GRANT_SECONDS).optional(),
    expires_at: z.iso.datetime({ offset: true }).optional(),
    reason: z.string().min(1).max(1000),
    approved_by: z.string().min(1).max(256),
  })
  .refine((g) => (g.expires_in_s === undefined) !== (g.expires_at === undefined), {
    message: 'give exactly one of `expires_in_s` and `expires_at`',
    path: ['expires_in_s'],
  });

const agentBody = z.object({ attributes: z.record(z.string(), z.unknown()) });
const listQuery = z.object({
  cursor: z.string().max(1024).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export function agentJson(a: AgentRecord): { [k: string]: Json } {
  return {
    id: a.id,
    active: a.active,
    attributes: a.attributes,
    created_at: new Date(a.createdAt).toISOString(),
    updated_at: new Date(a.updatedAt).toISOString(),
  };
}

export function grantJson(g: GrantRecord, now: number): { [k: string]: Json } {
  return {
    id: g.id,
    agent: g.agent,
    actions: g.actions,
    resource: g.resource,
    expires_at: new Date(g.expiresAt).toISOString(),
    expires_in_s: Math.max(0, Math.round((g.expiresAt - now) / 1000)),
    reason: g.reason,
    approved_by: g.approvedBy,
    created_at: new Date(g.createdAt).toISOString(),
  };
}



export async function agentRoutes(app: FastifyInstance, opts: AgentRoutesOptions): Promise<void> {
  const { store, policies, audit, metrics } = opts;
  const clock = opts.clock ?? Date.now;
  const onRequest = requireCaller(opts.auth, 'admin');

  const record = adminRecorder(audit);

  app.setErrorHandler(adminStoreErrorHandler(metrics, 'admin store'));

  function agentId(request: FastifyRequest, reply: FastifyReply): string | undefined {
    const id = (request.params as { id: string }).id;
    if (AGENT_ID.test(id)) return id;
    void invalidRequest(reply, [{ path: 'id', message: 'expected 1-256 characters of letters, digits and `._:@-`' }]);
    return undefined;
  }

  app.put('/v1/admin/agents/:id', { onRequest }, async (request, reply) => {
    const id = agentId(request, reply);
    if (id === undefined) return reply;
    const body = agentBody.safeParse(request.body);
    if (!body.success) return invalidRequest(reply, zodIssues(body.error).map((i) => ({ ...i, path: i.path === '(body)' ? 'attributes' : i.path })));
    const set = policies.current;
    if (set === undefined) return reply.code(503).send(errorBody('policies_unavailable', 'no valid policy set is loaded to check the attributes against'));
    const attributes = body.data.attributes as { [k: string]: Json };
    if ('id' in attributes && attributes['id'] !== id) {
      return invalidRequest(reply, [{ path: 'attributes.id', message: 'must equal the agent id in the path (or be left out)' }]);
    }
    // Issues name the attribute by its path in this request body: `attributes.model.version`.
    const issues = set.validateAgentAttributes(attributes).map((i) => ({ ...i, path: `attributes.${i.path.replace(/^agent\.?/, '')}`.replace(/\.$/, '') }));
    if (issues.length > 0) return invalidRequest(reply, issues);
    const before = await store.getAgent(id);
    const saved = await store.putAgent(id, attributes, clock());
    record(request, before === null ? 'agent.create' : 'agent.update', id, { attributes });
    return reply.code(before === null ? 201 : 200).send(agentJson(saved));
  });

  app.get('/v1/admin/agents/:id', { onRequest }, async (request, reply) => {
    const id = agentId(request, reply);
    if (id === undefined) return reply;
    const agent = await store.getAgent(id);
    if (agent === null) return reply.code(404).send(errorBody('not_found', `no agent \`${id}\` is registered`));
    return reply.send(agentJson(agent));
  });

  app.get('/v1/admin/agents', { onRequest }, async (request, reply) => {
    const q = listQuery.safeParse(request.query);
    if (!q.success) return invalidRequest(reply, zodIssues(q.error));
    const page = await store.listAgents(q.data.cursor, q.data.limit ?? 100);
    const body: { agents: { [k: string]: Json }[]; next?: string } = { agents: page.items.map(agentJson) };
    if (page.next !== undefined) body.next = page.next;
    return reply.send(body);
  });

  for (const [verb, active] of [['deactivate', false], ['activate', true]] as const) {
    app.post(`/v1/admin/agents/:id/${verb}`, { onRequest }, async (request, reply) => {
      const id = agentId(request, reply);
      if (id === undefined) return reply;
      const agent = await store.setAgentActive(id, active, clock());
      if (agent === null) return reply.code(404).send(errorBody('not_found', `no agent \`${id}\` is registered`));
      record(request, `agent.${verb}`, id);
      return reply.send(agentJson(agent));
    });
  }

  app.post('/v1/admin/agents/:id/grants', { onRequest }, async (request, reply) => {
    const id = agentId(request, reply);
    if (id === undefined) return reply;
    const body = grantBody.safeParse(request.body ?? {});
    if (!body.success) return invalidRequest(reply, zodIssues(body.error));
    const g = body.data;
    const now = clock();
    const expiresAt = g.expires_in_s !== undefined ? now + g.expires_in_s * 1000 : Date.parse(g.expires_at!);
    if (!(expiresAt > now)) return invalidRequest(reply, [{ path: 'expires_at', message: 'must be in the future' }]);
    if (expiresAt - now > MAX_GRANT_SECONDS * 1000) return invalidRequest(reply, [{ path: 'expires_at', message: 'at most 30 days ahead' }]);
    // Grants reach decisions only through the registry: an unregistered agent gets none.
    const agent = await store.getAgent(id);
    if (agent === null) return reply.code(404).send(errorBody('not_found', `no agent \`${id}\` is registered`, { hint: 'register it with PUT /v1/admin/agents/:id first' }));
    const grant = await store.createGrant({ agent: id, actions: g.actions, resource: g.resource, expiresAt, reason: g.reason, approvedBy: g.approved_by }, now);
    record(request, 'grant.create', id, {
      grant: grant.id,
      actions: grant.actions,
      resource: grant.resource,
      expires_at: new Date(grant.expiresAt).toISOString(),
      reason: grant.reason,
      approved_by: grant.approvedBy,
    });
    return reply.code(201).send(grantJson(grant, now));
  });

  app.get('/v1/admin/agents/:id/grants', { onRequest }, async (request, reply) => {
    const id = agentId(request, reply);
    if (id === undefined) return reply;
    const now = clock();
    const grants = await store.listGrants(id, now);
    return reply.send({ grants: grants.map((g) => grantJson(g, now)) });
  });

  app.delete('/v1/admin/agents/:id/grants/:grantId', { onRequest }, async (request, reply) => {
    const id = agentId(request, reply);
    if (id === undefined) return reply;
    const grantId = (request.params as { grantId: string }).grantId;
    const removed = await store.revokeGrant(id, grantId);
    if (!removed) return reply.code(404).send(errorBody('not_found', `agent \`${id}\` has no grant \`${grantId}\``));
    record(request, 'grant.revoke', id, { grant: grantId });
    return reply.code(204).send();
  });
}
