// Authentication, the admin API (policies, agent inventory, grants) and health/metrics,
// through app.inject.

import { describe, it, expect, afterEach } from 'vitest';
import type { AuditEntry } from '../../server/audit.js';
import { createAuth, keyLabel } from '../../server/auth.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import { StoreUnavailableError } from '../../server/context/errors.js';
import type { ContextStore } from '../../server/context/types.js';
import { PolicyHolder } from '../../server/policy-holder.js';
import { fakePolicySet, fakeRequest } from './fake-policy-set.js';
import { makeApp, type TestApp } from './helpers.js';

const PEP = 'pep-key-0123456789abcdef';
const PEP2 = 'pep-key-2-0123456789abcdef';
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
  t = await makeApp({ holder: PolicyHolder.of(fakePolicySet()), apiKeys: [PEP, PEP2], adminKey: ADMIN, ...extra });
  return t.app;
}

describe('authentication', () => {
  it('answers 401 with WWW-Authenticate without a valid key', async () => {
    const app = await keyedApp();
    for (const headers of [{}, bearer('nope-0123456789abcdef'), { authorization: `Basic ${PEP}` }]) {
      const r = await app.inject({ method: 'POST', url: '/v1/decide', headers, payload: fakeRequest('read') });
      expect(r.statusCode).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="agp"');
      expect(r.json().error.code).toBe('unauthenticated');
    }
  });

  it('admits PEP keys to decisions and only the admin key to the admin api', async () => {
    const app = await keyedApp();
    for (const k of [PEP, PEP2, ADMIN]) {
      const r = await app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(k), payload: fakeRequest('read') });
      expect(r.statusCode).toBe(200);
    }
    const pepAdmin = await app.inject({ method: 'GET', url: '/v1/admin/agents', headers: bearer(PEP) });
    expect(pepAdmin.statusCode).toBe(403);
    expect(pepAdmin.json()).toEqual({ error: { code: 'forbidden', message: 'this credential may not call the admin api' } });
    const admin = await app.inject({ method: 'GET', url: '/v1/admin/agents', headers: bearer(ADMIN) });
    expect(admin.statusCode).toBe(200);
  });

  it('disables the admin api when no admin key is configured', async () => {
    t = await makeApp({ holder: PolicyHolder.of(fakePolicySet()), apiKeys: [PEP] });
    const r = await t.app.inject({ method: 'GET', url: '/v1/admin/agents', headers: bearer(PEP) });
    expect(r.statusCode).toBe(403);
    expect(r.json().error.message).toMatch(/no admin key is configured/);
  });

  it('lets everything through with no key configured (loopback mode)', async () => {
    t = await makeApp({ holder: PolicyHolder.of(fakePolicySet()) });
    expect((await t.app.inject({ method: 'GET', url: '/v1/admin/agents' })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') })).statusCode).toBe(200);
  });

  it('names callers by a digest, never by the key', () => {
    const auth = createAuth({ apiKeys: [PEP], adminKey: ADMIN });
    const r = auth.check(`Bearer ${PEP}`, 'pep');
    expect(r).toEqual({ ok: true, caller: keyLabel(PEP), admin: false });
    expect(keyLabel(PEP)).not.toContain(PEP.slice(0, 6));
    expect(auth.check(`bearer   ${ADMIN}`, 'admin')).toMatchObject({ ok: true, caller: 'admin' });
  });

  it('records the caller, not the key, in the audit log', async () => {
    const audit = captureAudit();
    const app = await keyedApp({ audit });
    await app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(PEP), payload: fakeRequest('read') });
    await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-9', headers: bearer(ADMIN), payload: { attributes: {} } });
    const text = JSON.stringify(audit.entries);
    expect(text).not.toContain(PEP);
    expect(text).not.toContain(ADMIN);
    expect(audit.entries.find((e) => e.kind === 'admin')).toMatchObject({ operation: 'agent.create', actor: 'admin', target: 'bot-9' });
  });
});

describe('agent inventory', () => {
  it('registers, reads, updates, lists and (de)activates agents, auditing each change', async () => {
    const audit = captureAudit();
    const app = await keyedApp({ audit });
    const h = bearer(ADMIN);
    const created = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: { tier: 'gold' } } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ id: 'bot-1', active: true, attributes: { tier: 'gold' } });
    const updated = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: { tier: 'silver' } } });
    expect(updated.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/agents/bot-1', headers: h })).json().attributes).toEqual({ tier: 'silver' });
    expect((await app.inject({ method: 'GET', url: '/v1/admin/agents/none', headers: h })).statusCode).toBe(404);

    for (let i = 0; i < 5; i++) await app.inject({ method: 'PUT', url: `/v1/admin/agents/p-${i}`, headers: h, payload: { attributes: {} } });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await app.inject({ method: 'GET', url: `/v1/admin/agents?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: h });
      expect(page.statusCode).toBe(200);
      const body = page.json();
      expect(body.agents.length).toBeLessThanOrEqual(2);
      seen.push(...body.agents.map((a: any) => a.id));
      cursor = body.next;
    } while (cursor !== undefined);
    expect(seen.sort()).toEqual(['bot-1', 'p-0', 'p-1', 'p-2', 'p-3', 'p-4']);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/agents?limit=0', headers: h })).statusCode).toBe(400);

    const off = await app.inject({ method: 'POST', url: '/v1/admin/agents/bot-1/deactivate', headers: h });
    expect(off.json().active).toBe(false);
    const denied = await app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(PEP), payload: fakeRequest('read') });
    expect(denied.json()).toMatchObject({ decision: 'deny', reasons: ['agent deactivated'] });
    const on = await app.inject({ method: 'POST', url: '/v1/admin/agents/bot-1/activate', headers: h });
    expect(on.json().active).toBe(true);
    expect((await app.inject({ method: 'POST', url: '/v1/admin/agents/ghost/activate', headers: h })).statusCode).toBe(404);

    expect(audit.entries.filter((e) => e.kind === 'admin').map((e) => (e as { operation: string }).operation)).toEqual([
      'agent.create',
      'agent.update',
      'agent.create',
      'agent.create',
      'agent.create',
      'agent.create',
      'agent.create',
      'agent.deactivate',
      'agent.activate',
    ]);
  });

  it('validates attributes against the policy schema, naming the field', async () => {
    const app = await keyedApp();
    const h = bearer(ADMIN);
    const bad = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: { tier: 3 } } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_request', issues: [{ path: 'attributes.tier', message: 'expected a string' }] });
    const shape = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { tier: 'x' } });
    expect(shape.statusCode).toBe(400);
    expect(shape.json().error.issues[0].path).toBe('attributes');
    const id = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: { id: 'other' } } });
    expect(id.json().error.issues[0].path).toBe('attributes.id');
    const badId = await app.inject({ method: 'PUT', url: '/v1/admin/agents/bad%20id', headers: h, payload: { attributes: {} } });
    expect(badId.statusCode).toBe(400);
  });

  it('answers 503 when the store is down', async () => {
    const inner = createEmbeddedStore();
    const down: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
      getAgent: () => Promise.reject(new StoreUnavailableError('redis: connection refused at 10.0.0.7')),
      listAgents: () => Promise.reject(new Error('ECONNREFUSED 10.0.0.7:6379')),
    });
    const app = await keyedApp({ store: down });
    const r = await app.inject({ method: 'GET', url: '/v1/admin/agents/bot-1', headers: bearer(ADMIN) });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: { code: 'store_unavailable', message: 'the context store is unavailable; retry later' } });
    const l = await app.inject({ method: 'GET', url: '/v1/admin/agents', headers: bearer(ADMIN) });
    expect(l.statusCode).toBe(503);
    expect(l.body).not.toContain('10.0.0.7');
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/agp_store_errors_total\{operation="admin"\} 2/);
    await inner.close();
  });
});

describe('grants', () => {
  it('creates, lists and revokes time-bound grants that decisions honour', async () => {
    let now = Date.parse('2026-03-01T12:00:00Z');
    const audit = captureAudit();
    const app = await keyedApp({ clock: () => now, audit });
    const h = bearer(ADMIN);
    const del = () => app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(PEP), payload: fakeRequest('delete', { id: '991' }) });

    const noAgent = await app.inject({ method: 'POST', url: '/v1/admin/agents/bot-1/grants', headers: h, payload: { actions: ['delete'], resource: 'doc:991', expires_in_s: 600, reason: 'r', approved_by: 'alice' } });
    expect(noAgent.statusCode).toBe(404);
    await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: {} } });
    expect((await del()).json().decision).toBe('escalate');

    const g = await app.inject({
      method: 'POST',
      url: '/v1/admin/agents/bot-1/grants',
      headers: h,
      payload: { actions: ['delete'], resource: 'doc:991', expires_in_s: 600, reason: 'case 17', approved_by: 'alice' },
    });
    expect(g.statusCode).toBe(201);
    const grant = g.json();
    expect(grant).toMatchObject({ agent: 'bot-1', actions: ['delete'], resource: 'doc:991', expires_at: '2026-03-01T12:10:00.000Z', expires_in_s: 600, reason: 'case 17', approved_by: 'alice' });
    expect((await del()).json().decision).toBe('permit');

    const list = await app.inject({ method: 'GET', url: '/v1/admin/agents/bot-1/grants', headers: h });
    expect(list.json().grants.map((x: any) => x.id)).toEqual([grant.id]);

    now += 601_000;
    expect((await del()).json().decision).toBe('escalate');
    expect((await app.inject({ method: 'GET', url: '/v1/admin/agents/bot-1/grants', headers: h })).json().grants).toEqual([]);

    const g2 = (
      await app.inject({ method: 'POST', url: '/v1/admin/agents/bot-1/grants', headers: h, payload: { actions: ['*'], resource: 'doc:*', expires_at: '2026-03-01T13:00:00Z', reason: 'r', approved_by: 'bob' } })
    ).json();
    expect((await del()).json().decision).toBe('permit');
    const revoked = await app.inject({ method: 'DELETE', url: `/v1/admin/agents/bot-1/grants/${g2.id}`, headers: h });
    expect(revoked.statusCode).toBe(204);
    expect((await del()).json().decision).toBe('escalate');
    expect((await app.inject({ method: 'DELETE', url: `/v1/admin/agents/bot-1/grants/${g2.id}`, headers: h })).statusCode).toBe(404);
    expect(audit.entries.filter((e) => e.kind === 'admin').map((e) => (e as { operation: string }).operation)).toEqual(['agent.create', 'grant.create', 'grant.create', 'grant.revoke']);
  });

  it('validates grant bodies, naming the field', async () => {
    const app = await keyedApp();
    const h = bearer(ADMIN);
    await app.inject({ method: 'PUT', url: '/v1/admin/agents/bot-1', headers: h, payload: { attributes: {} } });
    const base = { actions: ['delete'], resource: 'doc:1', expires_in_s: 60, reason: 'r', approved_by: 'a' };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base, actions: [] }, 'actions'],
      [{ ...base, resource: '' }, 'resource'],
      [{ ...base, expires_in_s: undefined }, 'expires_in_s'],
      [{ ...base, expires_at: '2020-01-01T00:00:00Z', expires_in_s: undefined }, 'expires_at'],
      [{ ...base, expires_in_s: 10 ** 9 }, 'expires_in_s'],
      [{ ...base, approved_by: undefined }, 'approved_by'],
    ];
    for (const [payload, path] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/admin/agents/bot-1/grants', headers: h, payload });
      expect(r.statusCode, path).toBe(400);
      expect(r.json().error.issues[0].path).toBe(path);
    }
  });
});

describe('health, readiness and metrics', () => {
  it('reports live, ready and the decision metrics', async () => {
    const app = await keyedApp();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready', policies: { revision: 'sha256:fake-1' }, store: { kind: 'embedded', state: 'ok' } });
    for (const a of ['read', 'read', 'drop', 'delete']) await app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(PEP), payload: fakeRequest(a) });
    await app.inject({ method: 'POST', url: '/v1/decide', headers: bearer(PEP), payload: { agent: {} } });
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    expect(m.statusCode).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain/);
    expect(m.body).toMatch(/agp_decisions_total\{effect="permit"\} 2/);
    expect(m.body).toMatch(/agp_decisions_total\{effect="deny"\} 1/);
    expect(m.body).toMatch(/agp_decisions_total\{effect="escalate"\} 1/);
    expect(m.body).toMatch(/agp_requests_rejected_total\{code="invalid_request"\} 1/);
    expect(m.body).toMatch(/agp_decision_duration_seconds_count 4/);
    expect(m.body).toMatch(/agp_store_up\{kind="embedded"\} 1/);
    expect(m.body).toMatch(/agp_policy_set_info\{revision="sha256:fake-1"\} 1/);
    expect(m.body).toMatch(/agp_policy_reloads_total\{result="failed"\} 0/);
  });

  it('is not ready without a policy set', async () => {
    t = await makeApp({ holder: PolicyHolder.of(undefined) });
    const r = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ status: 'not_ready', problems: ['no valid policy set is loaded'] });
    expect((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
