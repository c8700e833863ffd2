// The resource registry's admin API over the example policies' schema: validation that
// names the field, create/update/read/list (paged)/delete, the audit trail, auth, a store
// that is down; and the lookup rule (`type:id`, else `type:*`) the token endpoint uses.

import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../server/audit.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import { StoreUnavailableError } from '../../server/context/errors.js';
import type { ContextStore } from '../../server/context/types.js';
import { listResources, lookupResource, RESOURCE_NS, resourceEntities } from '../../server/routes/resources.js';
import { makeApp, type TestApp } from './helpers.js';

const PEP = 'pep-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

function captureAudit() {
  const entries: AuditEntry[] = [];
  return { entries, write: (e: AuditEntry) => void entries.push(e) };
}

async function keyedApp(extra: Parameters<typeof makeApp>[0] = {}) {
  t = await makeApp({ apiKeys: [PEP], adminKey: ADMIN, ...extra });
  return t.app;
}

describe('resource registry admin API', () => {
  it('registers, reads, updates and deletes a record, auditing each change with the caller', async () => {
    const audit = captureAudit();
    const app = await keyedApp({ audit });
    const h = bearer(ADMIN);
    const created = await app.inject({ method: 'PUT', url: '/v1/admin/resources/account/991', headers: h, payload: { attributes: { owner: 'payments', sensitivity: 'confidential', tags: ['finance'] } } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ type: 'account', id: '991', attributes: { owner: 'payments', sensitivity: 'confidential', tags: ['finance'] } });
    const got = await app.inject({ method: 'GET', url: '/v1/admin/resources/account/991', headers: h });
    expect(got.statusCode).toBe(200);
    expect(got.json().attributes).toEqual({ owner: 'payments', sensitivity: 'confidential', tags: ['finance'] });

    const updated = await app.inject({ method: 'PUT', url: '/v1/admin/resources/account/991', headers: h, payload: { attributes: { sensitivity: 'restricted' } } });
    expect(updated.statusCode).toBe(200);
    // A PUT replaces the record whole.
    expect(updated.json().attributes).toEqual({ sensitivity: 'restricted' });
    expect(updated.json().created_at).toBe(created.json().created_at);

    const def = await app.inject({ method: 'PUT', url: '/v1/admin/resources/transactions/*', headers: h, payload: { attributes: { sensitivity: 'internal' } } });
    expect(def.statusCode).toBe(201);
    expect(def.json()).toMatchObject({ type: 'transactions', id: '*' });

    const del = await app.inject({ method: 'DELETE', url: '/v1/admin/resources/account/991', headers: h });
    expect(del.statusCode).toBe(204);
    const gone = await app.inject({ method: 'GET', url: '/v1/admin/resources/account/991', headers: h });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error).toEqual({ code: 'not_found', message: 'no resource `account:991` is registered' });
    expect((await app.inject({ method: 'DELETE', url: '/v1/admin/resources/account/991', headers: h })).statusCode).toBe(404);

    const admin = audit.entries.filter((e) => e.kind === 'admin');
    expect(admin.map((e) => [(e as { operation: string }).operation, (e as { target?: string }).target, (e as { actor?: string }).actor])).toEqual([
      ['resource.create', 'account:991', 'admin'],
      ['resource.update', 'account:991', 'admin'],
      ['resource.create', 'transactions:*', 'admin'],
      ['resource.delete', 'account:991', 'admin'],
    ]);
    expect(admin[1]).toMatchObject({ detail: { attributes: { sensitivity: 'restricted' } } });
  });

  it('checks attributes against the schema and names the field', async () => {
    const app = await keyedApp();
    const h = bearer(ADMIN);
    const put = (url: string, payload: unknown) => app.inject({ method: 'PUT', url, headers: h, payload: payload as object });

    const level = await put('/v1/admin/resources/account/991', { attributes: { sensitivity: 'secret' } });
    expect(level.statusCode).toBe(400);
    expect(level.json().error.code).toBe('invalid_request');
    expect(level.json().error.message).toBe('attributes.sensitivity: expected one of public|internal|confidential|restricted');

    const typo = await put('/v1/admin/resources/account/991', { attributes: { sensitivty: 'internal' } });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().error.issues[0]).toEqual({ path: 'attributes.sensitivty', message: 'unknown attribute `sensitivty` (did you mean `sensitivity`?)' });

    const nested = await put('/v1/admin/resources/order/1', { attributes: { amount: '12', tags: ['a', 3] } });
    expect(nested.statusCode).toBe(400);
    expect(nested.json().error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['attributes.amount', 'attributes.tags[1]']);

    const typeInBody = await put('/v1/admin/resources/account/991', { attributes: { type: 'account', sensitivity: 'internal' } });
    expect(typeInBody.statusCode).toBe(400);
    expect(typeInBody.json().error.issues[0].path).toBe('attributes.type');

    const noAttrs = await put('/v1/admin/resources/account/991', { sensitivity: 'internal' });
    expect(noAttrs.statusCode).toBe(400);
    expect(noAttrs.json().error.issues[0].path).toBe('attributes');

    const badType = await put('/v1/admin/resources/acc:ount/991', { attributes: {} });
    expect(badType.statusCode).toBe(400);
    expect(badType.json().error.issues[0].path).toBe('type');
    const badId = await put('/v1/admin/resources/account/9%2091', { attributes: {} });
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error.issues[0].path).toBe('id');

    // Nothing invalid was stored; a record with every attribute optional is fine.
    expect((await app.inject({ method: 'GET', url: '/v1/admin/resources', headers: h })).json()).toEqual({ resources: [] });
    expect((await put('/v1/admin/resources/service/api', { attributes: {} })).statusCode).toBe(201);
  });

  it('lists records in key order, paged by an opaque cursor', async () => {
    const app = await keyedApp();
    const h = bearer(ADMIN);
    const ids = ['5', '1', '3', '2', '4'];
    for (const id of ids) await app.inject({ method: 'PUT', url: `/v1/admin/resources/account/${id}`, headers: h, payload: { attributes: { sensitivity: 'internal' } } });
    await app.inject({ method: 'PUT', url: '/v1/admin/resources/account/*', headers: h, payload: { attributes: { sensitivity: 'confidential' } } });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await app.inject({ method: 'GET', url: `/v1/admin/resources?limit=2${cursor !== undefined ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, headers: h });
      expect(r.statusCode).toBe(200);
      const body = r.json() as { resources: { type: string; id: string }[]; next?: string };
      expect(body.resources.length).toBeLessThanOrEqual(2);
      seen.push(...body.resources.map((x) => `${x.type}:${x.id}`));
      cursor = body.next;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(['account:*', 'account:1', 'account:2', 'account:3', 'account:4', 'account:5']);

    const bad = await app.inject({ method: 'GET', url: '/v1/admin/resources?cursor=nonsense', headers: h });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.issues[0].path).toBe('cursor');
    const limit = await app.inject({ method: 'GET', url: '/v1/admin/resources?limit=5000', headers: h });
    expect(limit.statusCode).toBe(400);
    expect(limit.json().error.issues[0].path).toBe('limit');
  });

  it('needs the admin key: 401 without a credential, 403 with a PEP key', async () => {
    const app = await keyedApp();
    for (const [method, url] of [['PUT', '/v1/admin/resources/account/991'], ['GET', '/v1/admin/resources/account/991'], ['GET', '/v1/admin/resources'], ['DELETE', '/v1/admin/resources/account/991']] as const) {
      const payload = method === 'PUT' ? { attributes: { sensitivity: 'public' } } : undefined;
      const none = await app.inject({ method, url, ...(payload ? { payload } : {}) });
      expect(none.statusCode, `${method} ${url}`).toBe(401);
      expect(none.headers['www-authenticate']).toBeDefined();
      const pep = await app.inject({ method, url, headers: bearer(PEP), ...(payload ? { payload } : {}) });
      expect(pep.statusCode, `${method} ${url}`).toBe(403);
    }
    expect(await t!.store.kvList(RESOURCE_NS)).toEqual([]);
  });

  it('answers 503 when the store is down, without leaking its address', async () => {
    const inner = createEmbeddedStore();
    const fail = () => Promise.reject(new StoreUnavailableError('redis: connection refused at 10.0.0.7'));
    const down: ContextStore = Object.assign(Object.create(inner) as ContextStore, { kvGet: fail, kvSet: fail, kvList: fail, kvDelete: fail });
    const app = await keyedApp({ store: down });
    const h = bearer(ADMIN);
    for (const [method, url] of [['PUT', '/v1/admin/resources/account/991'], ['GET', '/v1/admin/resources/account/991'], ['GET', '/v1/admin/resources'], ['DELETE', '/v1/admin/resources/account/991']] as const) {
      const r = await app.inject({ method, url, headers: h, ...(method === 'PUT' ? { payload: { attributes: { sensitivity: 'public' } } } : {}) });
      expect(r.statusCode, `${method} ${url}`).toBe(503);
      expect(r.json()).toEqual({ error: { code: 'store_unavailable', message: 'the context store is unavailable; retry later' } });
      expect(r.body).not.toContain('10.0.0.7');
    }
    await inner.close();
  });
});

describe('resource lookup', () => {
  it('uses the record of type:id, else the type default, else nothing (whole records, never merged)', async () => {
    const store = createEmbeddedStore();
    try {
      await store.kvSet(RESOURCE_NS, 'account:*', JSON.stringify({ attributes: { sensitivity: 'confidential', owner: 'payments' }, createdAt: 1, updatedAt: 1 }));
      await store.kvSet(RESOURCE_NS, 'account:991', JSON.stringify({ attributes: { sensitivity: 'restricted' }, createdAt: 2, updatedAt: 2 }));
      expect((await lookupResource(store, 'account', '991'))?.attributes).toEqual({ sensitivity: 'restricted' });
      expect(await lookupResource(store, 'account', '992')).toMatchObject({ id: '*', attributes: { sensitivity: 'confidential', owner: 'payments' } });
      expect(await lookupResource(store, 'order', '1')).toBeNull();
      // Ids may hold colons: the key splits at the first one.
      await store.kvSet(RESOURCE_NS, 'file:repo:src/a.ts', JSON.stringify({ attributes: { sensitivity: 'internal' }, createdAt: 3, updatedAt: 3 }));
      expect(await lookupResource(store, 'file', 'repo:src/a.ts')).toMatchObject({ type: 'file', id: 'repo:src/a.ts' });
      expect((await listResources(store)).map((r) => `${r.type}:${r.id}`)).toEqual(['account:*', 'account:991', 'file:repo:src/a.ts']);
      // AuthZEN searches see concrete resources only, with their attributes as properties.
      expect(await resourceEntities(store)).toEqual([
        { type: 'account', id: '991', properties: { sensitivity: 'restricted' } },
        { type: 'file', id: 'repo:src/a.ts', properties: { sensitivity: 'internal' } },
      ]);
    } finally {
      await store.close();
    }
  });
});
