// Two real `agp serve` processes sharing one Redis (127.0.0.1:6379, a unique key prefix per
// run), as replicas run in production: an agent registered, a grant made and revoked, and
// a new model version set through one process are seen by the other within a second.

import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../cli/helpers.js';
import { cleanupPrefix } from '../context/redis-helpers.js';
import { FRAUDBOT_ATTRIBUTES } from './helpers.js';
import { call, startAgp, stopProcess, type AgpProcess } from './process-helpers.js';

const PREFIX = `agp-proc-${randomUUID().slice(0, 8)}`;
const ADMIN = `admin-${randomUUID()}`;
const PEP = `pep-${randomUUID()}`;
const AGENT = 'fraudbot-p';
/** Replicas share the key that seals the signing keys they share through Redis. */
const KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64');
const ACCOUNT = { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' };

let a: AgpProcess;
let b: AgpProcess;

const replicaEnv = (): NodeJS.ProcessEnv => ({
  AGP_REDIS_URL: 'redis://127.0.0.1:6379',
  AGP_REDIS_PREFIX: PREFIX,
  AGP_ADMIN_KEY: ADMIN,
  AGP_API_KEYS: PEP,
  AGP_KEY_ENCRYPTION_KEY: KEY_ENCRYPTION_KEY,
});

async function freeze(r: AgpProcess): Promise<{ decision: string; reasons: string[] }> {
  const res = await call(r, 'POST', '/v1/decide', PEP, {
    agent: { id: AGENT, confidence: 0.93 },
    action: 'freeze_account',
    resource: ACCOUNT,
    task: { kind: 'investigation', flagged: true },
  });
  expect(res.status).toBe(200);
  return res.json;
}

/** Decides through `r` until `want` holds; returns how long that took. */
async function seenWithin(ms: number, r: AgpProcess, want: (d: { decision: string; reasons: string[] }) => boolean): Promise<number> {
  const started = Date.now();
  for (;;) {
    const d = await freeze(r);
    if (want(d)) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`not seen within ${ms} ms: ${JSON.stringify(d)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

beforeAll(async () => {
  ensureBuilt();
  [a, b] = await Promise.all([startAgp(replicaEnv()), startAgp(replicaEnv())]);
}, 120_000);

afterAll(async () => {
  await Promise.all([stopProcess(a?.child), stopProcess(b?.child)]);
  await cleanupPrefix(PREFIX, 'redis://127.0.0.1:6379');
});

describe('two agp serve processes on one Redis', { timeout: 60_000 }, () => {
  it('deny an agent neither knows, then both see it once one registers it', async () => {
    expect((await freeze(b)).reasons).toEqual(['unknown agent']);
    expect((await call(a, 'PUT', `/v1/admin/agents/${AGENT}`, ADMIN, { attributes: FRAUDBOT_ATTRIBUTES })).status).toBe(201);
    expect(await seenWithin(1000, b, (d) => d.decision === 'escalate')).toBeLessThan(1000);
  });

  it('see a grant and its revocation made through the other process within a second', async () => {
    expect((await freeze(b)).decision).toBe('escalate'); // B holds the agent in its cache
    const grant = await call(a, 'POST', `/v1/admin/agents/${AGENT}/grants`, ADMIN, {
      actions: ['freeze_account'], resource: 'account:991', expires_in_s: 600, reason: 'fraud-ops approved', approved_by: 'alice',
    });
    expect(grant.status).toBe(201);
    expect(await seenWithin(1000, b, (d) => d.decision === 'permit')).toBeLessThan(1000);

    expect((await call(a, 'DELETE', `/v1/admin/agents/${AGENT}/grants/${grant.json.id as string}`, ADMIN)).status).toBe(204);
    expect(await seenWithin(1000, b, (d) => d.decision === 'escalate')).toBeLessThan(1000);
  });

  it('see a new (retired) model version within a second', async () => {
    const put = await call(a, 'PUT', `/v1/admin/agents/${AGENT}`, ADMIN, { attributes: { ...FRAUDBOT_ATTRIBUTES, model: { name: 'fraudnet', version: '1.9.0' } } });
    expect(put.status).toBe(200);
    expect(await seenWithin(1000, b, (d) => d.decision === 'deny' && d.reasons.includes('model version retired'))).toBeLessThan(1000);
  });

  it('refuse a PEP key on the admin API of either process', async () => {
    expect((await call(b, 'PUT', `/v1/admin/agents/${AGENT}`, PEP, { attributes: FRAUDBOT_ATTRIBUTES })).status).toBe(403);
  });
});
