// The resource registry: attributes AGP holds about resources (sensitivity, owner, tags...)
// so that callers who must not be trusted with them — an agent asking for a token, a
// search over "what may this agent touch" — never supply them. Records live in the context
// store's kv namespace `resource`, keyed `type:id`; `type:*` is the type's default, used
// when no `type:id` record exists (whole records, never merged). Admin API (admin key,
// audited): PUT/GET/DELETE /v1/admin/resources/:type/:id and the paged list.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ValidationIssue } from '../../engine/decision.js';
import type { Json } from '../../engine/ir.js';
import { validateRootAttributes } from '../../engine/validate.js';
import type { Auth } from '../auth.js';
import type { ContextStore } from '../context/types.js';
import type { AuditSink, PolicySource } from '../decider.js';
import type { AppMetrics } from '../metrics.js';
import type { AuthzenEntity } from './authzen.js';
import { adminRecorder, adminStoreErrorHandler, errorBody, invalidRequest, requireCaller, zodIssues } from './errors.js';

/** The kv namespace of the registry. */
export const RESOURCE_NS = 'resource';
/** The id of a type's default record. */
export const ANY_ID = '*';

/** A resource type: no colon (the key is `type:id`, split at the first colon). */
const RESOURCE_TYPE = /^[A-Za-z0-9._@-]{1,128}$/;
/** A resource id: what a scope id may hold (visible ASCII, colons included), or `*`. */
const RESOURCE_ID = /^[\x21-\x7E]{1,256}$/;
/** Records in one list page at most. */
export const MAX_RESOURCE_PAGE = 1000;

export interface ResourceRecord {
  type: string;
  id: string;
  attributes: { [k: string]: Json };
  createdAt: number;
  updatedAt: number;
}

interface Stored {
  attributes: { [k: string]: Json };
  createdAt: number;
  updatedAt: number;
}

export function resourceKey(type: string, id: string): string {
  return `${type}:${id}`;
}

function decode(key: string, value: string): ResourceRecord | null {
  const colon = key.indexOf(':');
  if (colon <= 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const s = parsed as Partial<Stored>;
  if (typeof s.attributes !== 'object' || s.attributes === null || Array.isArray(s.attributes)) return null;
  return {
    type: key.slice(0, colon),
    id: key.slice(colon + 1),
    attributes: s.attributes,
    createdAt: typeof s.createdAt === 'number' ? s.createdAt : 0,
    updatedAt: typeof s.updatedAt === 'number' ? s.updatedAt : 0,
  };
}

/** The record stored under exactly `type:id` (`id` may be `*`). */
export async function getResource(store: Pick<ContextStore, 'kvGet'>, type: string, id: string): Promise<ResourceRecord | null> {
  const key = resourceKey(type, id);
  const value = await store.kvGet(RESOURCE_NS, key);
  return value === null ? null : decode(key, value);
}

/** The record that describes `type:id`: its own, else the type's default `type:*`, else null. */
export async function lookupResource(store: Pick<ContextStore, 'kvGet'>, type: string, id: string): Promise<ResourceRecord | null> {
  const own = await getResource(store, type, id);
  if (own !== null || id === ANY_ID) return own;
  return getResource(store, type, ANY_ID);
}

/** Every record, sorted by `type:id`. */
export async function listResources(store: Pick<ContextStore, 'kvList'>): Promise<ResourceRecord[]> {
  const out: ResourceRecord[] = [];
  for (const { key, value } of await store.kvList(RESOURCE_NS)) {
    const r = decode(key, value);
    if (r !== null) out.push(r);
  }
  return out.sort((a, b) => (resourceKey(a.type, a.id) < resourceKey(b.type, b.id) ? -1 : 1));
}

/**
 * The registered resources as AuthZEN entities (for the resource search): every `type:id`
 * record except the `type:*` defaults, with its attributes as the known properties.
 */
export async function resourceEntities(store: Pick<ContextStore, 'kvList'>): Promise<AuthzenEntity[]> {
  return (await listResources(store)).filter((r) => r.id !== ANY_ID).map((r) => ({ type: r.type, id: r.id, properties: { ...r.attributes } }));
}

export function resourceJson(r: ResourceRecord): { [k: string]: Json } {
  return {
    type: r.type,
    id: r.id,
    attributes: r.attributes,
    created_at: new Date(r.createdAt).toISOString(),
    updated_at: new Date(r.updatedAt).toISOString(),
  };
}

export interface ResourceRoutesOptions {
  store: ContextStore;
  policies: PolicySource;
  auth: Auth;
  audit?: AuditSink;
  metrics?: AppMetrics;
  clock?: () => number;
}

const resourceBody = z.object({ attributes: z.record(z.string(), z.unknown()) });
const listQuery = z.object({
  cursor: z.string().max(1024).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_RESOURCE_PAGE).optional(),
});


function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string | null {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  return key.includes(':') && encodeCursor(key) === cursor ? key : null;
}

export async function resourceRoutes(app: FastifyInstance, opts: ResourceRoutesOptions): Promise<void> {
  const { store, policies, audit, metrics } = opts;
  const clock = opts.clock ?? Date.now;
  const onRequest = requireCaller(opts.auth, 'admin');

  const record = adminRecorder(audit);

  app.setErrorHandler(adminStoreErrorHandler(metrics, 'resource registry'));

  function target(request: FastifyRequest, reply: FastifyReply): { type: string; id: string } | undefined {
    const { type, id } = request.params as { type: string; id: string };
    const issues: ValidationIssue[] = [];
    if (!RESOURCE_TYPE.test(type)) issues.push({ path: 'type', message: 'expected 1-128 characters of letters, digits and `._@-`' });
    if (!RESOURCE_ID.test(id)) issues.push({ path: 'id', message: 'expected 1-256 visible ASCII characters, or `*` for the type\'s default' });
    if (issues.length === 0) return { type, id };
    void invalidRequest(reply, issues);
    return undefined;
  }

  app.put('/v1/admin/resources/:type/:id', { onRequest }, async (request, reply) => {
    const t = target(request, reply);
    if (t === undefined) return reply;
    const body = resourceBody.safeParse(request.body);
    if (!body.success) return invalidRequest(reply, [{ path: 'attributes', message: 'expected an object of attributes' }]);
    const set = policies.current;
    if (set === undefined) return reply.code(503).send(errorBody('policies_unavailable', 'no valid policy set is loaded to check the attributes against'));
    const attributes = body.data.attributes as { [k: string]: Json };
    // `type` and `id` come from the path (and, at decision time, from the request or scope).
    for (const key of ['type', 'id'] as const) {
      if (key in attributes) return invalidRequest(reply, [{ path: `attributes.${key}`, message: `set by the path; leave \`${key}\` out of the attributes` }]);
    }
    const issues = validateRootAttributes(set.ir.schema, 'resource', attributes).map((i) => ({ ...i, path: i.path === '' ? 'attributes' : `attributes.${i.path}` }));
    if (issues.length > 0) return invalidRequest(reply, issues);
    const now = clock();
    const key = resourceKey(t.type, t.id);
    const before = await getResource(store, t.type, t.id);
    const saved: Stored = { attributes, createdAt: before?.createdAt ?? now, updatedAt: now };
    await store.kvSet(RESOURCE_NS, key, JSON.stringify(saved));
    record(request, before === null ? 'resource.create' : 'resource.update', key, { attributes });
    return reply.code(before === null ? 201 : 200).send(resourceJson({ type: t.type, id: t.id, ...saved }));
  });

  app.get('/v1/admin/resources/:type/:id', { onRequest }, async (request, reply) => {
    const t = target(request, reply);
    if (t === undefined) return reply;
    const r = await getResource(store, t.type, t.id);
    if (r === null) return reply.code(404).send(errorBody('not_found', `no resource \`${resourceKey(t.type, t.id)}\` is registered`));
    return reply.send(resourceJson(r));
  });

  app.get('/v1/admin/resources', { onRequest }, async (request, reply) => {
    const q = listQuery.safeParse(request.query);
    if (!q.success) return invalidRequest(reply, zodIssues(q.error, '(query)'));
    let after: string | null = null;
    if (q.data.cursor !== undefined) {
      after = decodeCursor(q.data.cursor);
      if (after === null) return invalidRequest(reply, [{ path: 'cursor', message: 'not a cursor this API returned' }]);
    }
    const limit = q.data.limit ?? 100;
    const all = await listResources(store);
    const rest = after === null ? all : all.filter((r) => resourceKey(r.type, r.id) > after);
    const page = rest.slice(0, limit);
    const body: { resources: { [k: string]: Json }[]; next?: string } = { resources: page.map(resourceJson) };
    const last = page[page.length - 1];
    if (rest.length > limit && last !== undefined) body.next = encodeCursor(resourceKey(last.type, last.id));
    return reply.send(body);
  });

  app.delete('/v1/admin/resources/:type/:id', { onRequest }, async (request, reply) => {
    const t = target(request, reply);
    if (t === undefined) return reply;
    const key = resourceKey(t.type, t.id);
    if ((await getResource(store, t.type, t.id)) === null) return reply.code(404).send(errorBody('not_found', `no resource \`${key}\` is registered`));
    await store.kvDelete(RESOURCE_NS, key);
    record(request, 'resource.delete', key);
    return reply.code(204).send();
  });
}
