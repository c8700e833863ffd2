// The native decision API through app.inject: shapes, errors, limits, batch, merge rule.

import { describe, it, expect, afterEach } from 'vitest';
import type { InjectOptions } from 'fastify';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { AgentContext, ContextStore } from '../../server/context/types.js';
import { decisionId } from '../../server/decider.js';
import { PolicyHolder } from '../../server/policy-holder.js';
import { fakePolicySet, fakeRequest } from './fake-policy-set.js';
import { makeApp, type TestApp } from './helpers.js';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function fakeApp(options: Parameters<typeof makeApp>[0] = {}) {
  const set = fakePolicySet();
  t = await makeApp({ holder: PolicyHolder.of(set), ...options });
  return { app: t.app, set, store: t.store };
}

describe('POST /v1/decide', () => {
  it('answers a permit with the documented shape', async () => {
    const { app } = await fakeApp();
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read', { level: 2 }) });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    const body = r.json();
    expect(body).toMatchObject({ decision: 'permit', allowed: true, risk: 20, factors: { level: 20 }, policies: ['reads'], reasons: [], obligations: {}, revision: 'sha256:fake-1' });
    expect(body.decision_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(Object.keys(body).sort()).toEqual(['allowed', 'decision', 'decision_id', 'factors', 'obligations', 'policies', 'reasons', 'revision', 'risk']);
  });

  it('answers a deny as 200, not an error', async () => {
    const { app } = await fakeApp();
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('drop') });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ decision: 'deny', allowed: false, reasons: ['no policy applies'] });
  });

  it('rejects an invalid request with 400 naming the attribute', async () => {
    const { app } = await fakeApp();
    const req = fakeRequest('read');
    delete (req['resource'] as Record<string, unknown>)['level'];
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: req });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({
      error: { code: 'invalid_request', message: 'resource.level: expected a number', issues: [{ path: 'resource.level', message: 'expected a number' }] },
    });
  });

  it('requires agent.id and a JSON object', async () => {
    const { app } = await fakeApp();
    const noId = await app.inject({ method: 'POST', url: '/v1/decide', payload: { agent: {}, action: 'read' } });
    expect(noId.statusCode).toBe(400);
    expect(noId.json().error.issues[0].path).toBe('agent.id');
    const arr = await app.inject({ method: 'POST', url: '/v1/decide', payload: [1, 2] });
    expect(arr.statusCode).toBe(400);
    const broken = await app.inject({ method: 'POST', url: '/v1/decide', headers: { 'content-type': 'application/json' }, payload: '{"agent":' });
    expect(broken.statusCode).toBe(400);
    expect(broken.json()).toEqual({ error: { code: 'invalid_request', message: 'the request body is not valid JSON' } });
    const text = await app.inject({ method: 'POST', url: '/v1/decide', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('unsupported_media_type');
  });

  it('refuses prototype-polluting keys', async () => {
    const { app } = await fakeApp();
    const r = await app.inject({
      method: 'POST',
      url: '/v1/decide',
      headers: { 'content-type': 'application/json' },
      payload: '{"agent":{"id":"a","__proto__":{"admin":true}},"action":"read","resource":{"type":"doc","id":"1","level":1}}',
    });
    expect(r.statusCode).toBe(400);
    expect(({} as Record<string, unknown>)['admin']).toBeUndefined();
  });

  it('answers 413 past the body limit (1 MiB by default)', async () => {
    const { app } = await fakeApp();
    const req = fakeRequest('read');
    (req['task'] as Record<string, unknown>)['note'] = 'x'.repeat(1024 * 1024);
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: req });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({ error: { code: 'payload_too_large', message: 'the request body is larger than 1048576 bytes' } });
  });

  it('answers 503 when no valid policy set is loaded', async () => {
    t = await makeApp({ holder: PolicyHolder.of(undefined) });
    const r = await t.app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: { code: 'policies_unavailable', message: 'no valid policy set is loaded' } });
    const b = await t.app.inject({ method: 'POST', url: '/v1/decide/batch', payload: { requests: [fakeRequest('read')] } });
    expect(b.statusCode).toBe(503);
  });

  it('never leaks a stack trace or internal message on a 5xx', async () => {
    const set = fakePolicySet();
    set.decide = () => {
      throw new Error('secret internal detail at /srv/agp/engine.js:42');
    };
    t = await makeApp({ holder: PolicyHolder.of(set) });
    const r = await t.app.inject({ method: 'POST', url: '/v1/decide', headers: { 'x-request-id': 'req-500' }, payload: fakeRequest('read') });
    expect(r.statusCode).toBe(500);
    expect(r.json()).toEqual({ error: { code: 'internal', message: 'internal error', request_id: 'req-500' } });
    expect(r.body).not.toMatch(/secret|engine\.js|at /);
  });

  it('echoes X-Request-ID and generates one otherwise', async () => {
    const { app } = await fakeApp();
    const given = await app.inject({ method: 'POST', url: '/v1/decide', headers: { 'x-request-id': 'abc-123' }, payload: fakeRequest('read') });
    expect(given.headers['x-request-id']).toBe('abc-123');
    const made = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await app.inject({ method: 'POST', url: '/v1/decide', headers: { 'x-request-id': 'a\tb{}' }, payload: fakeRequest('read') });
    expect(hostile.headers['x-request-id']).not.toBe('a\tb{}');
  });

  it('makes a new, distinct id for every request that brings none', async () => {
    const { app } = await fakeApp();
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
      ids.add(String(r.headers['x-request-id']));
    }
    expect(ids.size).toBe(50);
  });

  it('echoes X-Request-ID on every kind of answer, refusals included', async () => {
    t = await makeApp({ holder: PolicyHolder.of(fakePolicySet()), apiKeys: ['pep-key-0123456789abcdef'], bodyLimit: 4096 });
    const pep = { authorization: 'Bearer pep-key-0123456789abcdef' };
    const cases: [string, InjectOptions, number][] = [
      ['a decision', { method: 'POST', url: '/v1/decide', headers: pep, payload: fakeRequest('read') }, 200],
      ['a batch', { method: 'POST', url: '/v1/decide/batch', headers: pep, payload: { requests: [fakeRequest('read')] } }, 200],
      ['no API key', { method: 'POST', url: '/v1/decide', payload: fakeRequest('read') }, 401],
      ['broken JSON', { method: 'POST', url: '/v1/decide', headers: { ...pep, 'content-type': 'application/json' }, payload: '{"agent":' }, 400],
      ['a body over the limit', { method: 'POST', url: '/v1/decide', headers: { ...pep, 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(5000) }) }, 413],
      ['a text body', { method: 'POST', url: '/v1/decide', headers: { ...pep, 'content-type': 'text/plain' }, payload: 'hello' }, 415],
      ['an unknown route', { method: 'GET', url: '/v1/nothing-here' }, 404],
      ['a health check', { method: 'GET', url: '/healthz' }, 200],
      ['an admin call without the admin key', { method: 'GET', url: '/v1/admin/agents', headers: pep }, 403],
    ];
    for (const [what, req, status] of cases) {
      const r = await t.app.inject({ ...req, headers: { ...req.headers, 'x-request-id': `id-${status}` } });
      expect([what, r.statusCode]).toEqual([what, status]);
      expect([what, r.headers['x-request-id']]).toEqual([what, `id-${status}`]);
    }
  });

  it('attaches an explanation only when asked', async () => {
    const { app } = await fakeApp();
    const plain = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(plain.json().explanation).toBeUndefined();
    const explained = await app.inject({ method: 'POST', url: '/v1/decide', payload: { ...fakeRequest('read'), explain: true } });
    expect(explained.json().explanation).toEqual([]);
    const bad = await app.inject({ method: 'POST', url: '/v1/decide', payload: { ...fakeRequest('read'), explain: 'yes' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.issues[0].path).toBe('explain');
  });

  it('gives time-sortable unique decision ids', async () => {
    const ids = new Set<string>();
    let prev = '';
    for (let i = 0; i < 2000; i++) {
      const id = decisionId(1_700_000_000_000 + i);
      expect(id > prev).toBe(true);
      prev = id;
      ids.add(decisionId(1_700_000_000_000));
    }
    expect(ids.size).toBe(2000);
    expect(decisionId(0).slice(0, 10)).toBe('0000000000');
  });
});

describe('the registry merge rule', () => {
  it('lets registered attributes win and computes behavior itself', async () => {
    const { app, set, store } = await fakeApp();
    await store.putAgent('bot-1', { tier: 'gold', model: { version: '1.0.0' } }, Date.now());
    const r = await app.inject({
      method: 'POST',
      url: '/v1/decide',
      payload: fakeRequest('read', { agent: { tier: 'platinum', model: { version: '9.9.9' }, confidence: 0.5, behavior: { rate_z: -100 } } }),
    });
    expect(r.statusCode).toBe(200);
    const seen = set.calls.at(-1)!.agent as Record<string, unknown>;
    expect(seen['tier']).toBe('gold');
    expect(seen['model']).toEqual({ version: '1.0.0' });
    expect(seen['confidence']).toBe(0.5);
    expect((seen['behavior'] as Record<string, unknown>)['rate_z']).not.toBe(-100);
    expect(Object.keys(seen['behavior'] as object)).toEqual(expect.arrayContaining(['rate_z', 'deny_ratio', 'new_resource']));
  });

  it('uses the request attributes of an unregistered agent unless registration is required', async () => {
    const open = await fakeApp();
    const r = await open.app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read', { agent: { tier: 'x' } }) });
    expect(r.json().decision).toBe('permit');
    await t!.close();
    const strict = await fakeApp({ requireRegisteredAgents: true });
    const d = await strict.app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(d.statusCode).toBe(200);
    expect(d.json()).toMatchObject({ decision: 'deny', allowed: false, reasons: ['unknown agent'], revision: 'sha256:fake-1' });
  });

  it('denies a deactivated agent', async () => {
    const { app, store } = await fakeApp();
    await store.putAgent('bot-1', {}, Date.now());
    await store.setAgentActive('bot-1', false, Date.now());
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(r.json()).toMatchObject({ decision: 'deny', reasons: ['agent deactivated'] });
  });

  it('fails closed with a 200 deny when the store cannot answer', async () => {
    const inner = createEmbeddedStore();
    const down: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
      agentContext: (): Promise<AgentContext> => Promise.resolve({ status: 'unavailable', reason: 'redis down' }),
    });
    const { app } = await fakeApp({ store: down });
    const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ decision: 'deny', allowed: false, reasons: ['context store unavailable'] });
    const thrown: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
      agentContext: (): Promise<AgentContext> => Promise.reject(new Error('boom')),
    });
    await t!.close();
    const again = await fakeApp({ store: thrown });
    const r2 = await again.app.inject({ method: 'POST', url: '/v1/decide', payload: fakeRequest('read') });
    expect(r2.json().reasons).toEqual(['context store unavailable']);
    const m = await again.app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/agp_context_denies_total\{status="unavailable"\} 1/);
    await inner.close();
  });
});

describe('POST /v1/decide/batch', () => {
  it('answers in request order, with an error entry for an invalid item', async () => {
    const { app } = await fakeApp();
    const bad = fakeRequest('read');
    (bad['resource'] as Record<string, unknown>)['level'] = 'high';
    const r = await app.inject({
      method: 'POST',
      url: '/v1/decide/batch',
      payload: { requests: [fakeRequest('read'), fakeRequest('drop'), bad, fakeRequest('delete')] },
    });
    expect(r.statusCode).toBe(200);
    const { decisions } = r.json();
    expect(decisions.map((d: any) => d.decision ?? d.error.code)).toEqual(['permit', 'deny', 'invalid_request', 'escalate']);
    expect(decisions[2].error.issues[0].path).toBe('resource.level');
    const ids = decisions.filter((d: any) => d.decision_id).map((d: any) => d.decision_id);
    expect(new Set(ids).size).toBe(3);
  });

  it('bounds the batch size and checks its shape', async () => {
    const { app } = await fakeApp({ maxBatch: 3 });
    const over = await app.inject({ method: 'POST', url: '/v1/decide/batch', payload: { requests: Array.from({ length: 4 }, () => fakeRequest('read')) } });
    expect(over.statusCode).toBe(413);
    expect(over.json().error).toMatchObject({ code: 'batch_too_large', message: 'a batch holds at most 3 requests, got 4' });
    const shape = await app.inject({ method: 'POST', url: '/v1/decide/batch', payload: { request: [] } });
    expect(shape.statusCode).toBe(400);
    expect(shape.json().error.issues[0].path).toBe('requests');
    const empty = await app.inject({ method: 'POST', url: '/v1/decide/batch', payload: { requests: [] } });
    expect(empty.json()).toEqual({ decisions: [] });
  });

  it('decides the items that need the store asynchronously in order too', async () => {
    const inner = createEmbeddedStore();
    let n = 0;
    const slow: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
      agentContext: (id: string, now: number) => {
        n++;
        // Every other lookup is a "cache miss" answered later, out of order.
        return n % 2 === 0 ? new Promise<AgentContext>((res) => setTimeout(() => res(inner.agentContext(id, now) as AgentContext), 30 - n)) : inner.agentContext(id, now);
      },
    });
    const { app } = await fakeApp({ store: slow });
    const requests = Array.from({ length: 10 }, (_, i) => fakeRequest(i % 3 === 0 ? 'read' : 'drop', { id: `d${i}` }));
    const r = await app.inject({ method: 'POST', url: '/v1/decide/batch', payload: { requests } });
    expect(r.json().decisions.map((d: any) => d.decision)).toEqual(requests.map((q) => (q['action'] === 'read' ? 'permit' : 'deny')));
    await inner.close();
  });
});

describe('unknown routes', () => {
  it('answers 404 as JSON', async () => {
    const { app } = await fakeApp();
    const r = await app.inject({ method: 'GET', url: '/v2/nothing?x=1' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: { code: 'not_found', message: 'no route for GET /v2/nothing' } });
  });
});

describe('the AuthZEN endpoints in the app', () => {
  it('serves metadata and evaluations through the same decider and credentials', async () => {
    const set = fakePolicySet();
    t = await makeApp({ holder: PolicyHolder.of(set), apiKeys: ['pep-key-0123456789abcdef'] });
    const meta = await t.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration', headers: { host: 'pdp.example' } });
    expect(meta.statusCode).toBe(200);
    expect(meta.json().access_evaluation_endpoint).toMatch(/\/access\/v1\/evaluation$/);
    const body = { subject: { type: 'agent', id: 'bot-1' }, action: { name: 'read' }, resource: { type: 'doc', id: 'd1', properties: { level: 1 } }, context: { kind: 'test' } };
    const denied = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', payload: body });
    expect(denied.statusCode).toBe(401);
    const ok = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: { authorization: 'Bearer pep-key-0123456789abcdef', 'x-request-id': 'az-1' }, payload: body });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ decision: true });
    expect(ok.headers['x-request-id']).toBe('az-1');
    expect(set.calls.at(-1)!.action).toBe('read');
  });
});
