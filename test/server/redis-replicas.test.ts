// Two AGP apps sharing one Redis (127.0.0.1:6379, a unique key prefix per run): a grant, a
// revocation and a new model version made through one are seen by the other within a second,
// even though the other had the agent's context warm in its in-process cache.

import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContextStore } from '../../server/context/index.js';
import type { ContextStore } from '../../server/context/types.js';
import { FRAUDBOT_ATTRIBUTES, makeApp, type TestApp } from './helpers.js';

const PREFIX = `agp-test-${randomUUID().slice(0, 8)}`;
const ADMIN = 'admin-key-0123456789abcdef';
let a: TestApp;
let b: TestApp;
let storeA: ContextStore;
let storeB: ContextStore;

beforeAll(async () => {
  storeA = await createContextStore({ redisUrl: 'redis://127.0.0.1:6379', prefix: PREFIX });
  storeB = await createContextStore({ redisUrl: 'redis://127.0.0.1:6379', prefix: PREFIX });
  expect(storeA.health().state).toBe('ok');
  a = await makeApp({ store: storeA, adminKey: ADMIN });
  b = await makeApp({ store: storeB, adminKey: ADMIN });
});

afterAll(async () => {
  await a.close();
  await b.close();
  await storeA.close();
  await storeB.close();
  const redis = new Redis('redis://127.0.0.1:6379');
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const ACCOUNT = { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' };

async function freeze(app: TestApp['app']) {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/decide',
    headers: { authorization: `Bearer ${ADMIN}` },
    payload: { agent: { id: 'fraudbot-r', confidence: 0.93 }, action: 'freeze_account', resource: ACCOUNT, task: { kind: 'investigation', flagged: true } },
  });
  expect(r.statusCode).toBe(200);
  return r.json() as { decision: string; reasons: string[] };
}

async function within(ms: number, app: TestApp['app'], want: (d: { decision: string; reasons: string[] }) => boolean): Promise<number> {
  const started = Date.now();
  for (;;) {
    const d = await freeze(app);
    if (want(d)) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`not seen within ${ms} ms: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function admin(app: TestApp['app'], method: 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown) {
  return app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });
}

describe('two replicas on one Redis', () => {
  it('require registration by default and share the registry', async () => {
    expect((await freeze(b.app)).reasons).toEqual(['unknown agent']);
    expect((await admin(a.app, 'PUT', '/v1/admin/agents/fraudbot-r', { attributes: FRAUDBOT_ATTRIBUTES })).statusCode).toBe(201);
    await within(1000, b.app, (d) => d.decision === 'escalate');
  });

  it('see a grant made through the other within a second', async () => {
    expect((await freeze(b.app)).decision).toBe('escalate'); // warm in B's cache
    const g = await admin(a.app, 'POST', '/v1/admin/agents/fraudbot-r/grants', { actions: ['freeze_account'], resource: 'account:991', expires_in_s: 600, reason: 'approved', approved_by: 'alice' });
    expect(g.statusCode).toBe(201);
    const grantId = g.json().id as string;
    expect(await within(1000, b.app, (d) => d.decision === 'permit')).toBeLessThan(1000);
    const listed = await b.app.inject({ method: 'GET', url: '/v1/admin/agents/fraudbot-r/grants', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(listed.json().grants.map((x: { id: string }) => x.id)).toEqual([grantId]);

    // ... and a revocation.
    expect((await admin(a.app, 'DELETE', `/v1/admin/agents/fraudbot-r/grants/${grantId}`)).statusCode).toBe(204);
    expect(await within(1000, b.app, (d) => d.decision === 'escalate')).toBeLessThan(1000);
  });

  it('see a new model version within a second', async () => {
    expect((await freeze(b.app)).decision).toBe('escalate');
    const put = await admin(a.app, 'PUT', '/v1/admin/agents/fraudbot-r', { attributes: { ...FRAUDBOT_ATTRIBUTES, model: { name: 'fraudnet', version: '1.9.0' } } });
    expect(put.statusCode).toBe(200);
    expect(await within(1000, b.app, (d) => d.decision === 'deny' && d.reasons.includes('model version retired'))).toBeLessThan(1000);
  });

  it('report the Redis store on readyz', async () => {
    const r = await b.app.inject({ method: 'GET', url: '/readyz' });
    expect(r.json()).toMatchObject({ status: 'ready', store: { kind: 'redis', state: 'ok' } });
    const m = await b.app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/agp_store_cache_hit_ratio \d/);
  });
});
