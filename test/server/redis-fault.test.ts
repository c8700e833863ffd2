// Redis failure under a running `agp serve`: a private redis-server (keeping its data on
// disk, as a production Redis would) is killed while AGP decides. AGP keeps deciding as
// docs/context.md says — cached context serves within the staleness bound, anything else
// is denied with a reason (fail closed), readiness and metrics show it — never a crash and
// never a permit; when Redis is back, the same AGP process recovers on its own.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../cli/helpers.js';
import { FRAUDBOT_ATTRIBUTES } from './helpers.js';
import { call, freePort, startAgp, startRedis, stopProcess, type AgpProcess } from './process-helpers.js';

const ADMIN = `admin-${randomUUID()}`;
const PEP = `pep-${randomUUID()}`;
const STALE_MAX_MS = 3_000;
const ACCOUNT = { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' };
const TRANSACTIONS = { type: 'transactions', id: 'batch-7', owner: 'payments', sensitivity: 'internal' };

let redisPort = 0;
let redis: ChildProcess | null = null;
let agp: AgpProcess;
const dataDir = mkdtempSync(join(tmpdir(), 'agp-redis-fault-'));

async function decide(agent: string, action: string, resource: typeof ACCOUNT) {
  const task = { kind: 'investigation', flagged: action === 'freeze_account' };
  const r = await call(agp, 'POST', '/v1/decide', PEP, { agent: { id: agent, confidence: 0.93 }, action, resource, task });
  expect(r.status).toBe(200);
  return r.json as { decision: string; allowed: boolean; reasons: string[] };
}

async function until<T>(ms: number, probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ensureBuilt();
  redisPort = await freePort();
  redis = await startRedis(redisPort, dataDir);
  agp = await startAgp({
    AGP_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    AGP_REDIS_PREFIX: 'agpfault',
    AGP_ADMIN_KEY: ADMIN,
    AGP_API_KEYS: PEP,
    AGP_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    AGP_CONTEXT_CACHE_TTL_MS: '300',
    AGP_CONTEXT_STALE_MAX_MS: String(STALE_MAX_MS),
  });
  for (const id of ['fraudbot-warm', 'fraudbot-cold']) {
    expect((await call(agp, 'PUT', `/v1/admin/agents/${id}`, ADMIN, { attributes: FRAUDBOT_ATTRIBUTES })).status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await stopProcess(agp?.child);
  await stopProcess(redis, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('agp serve when Redis fails and comes back', { timeout: 60_000 }, () => {
  it('decides normally while Redis is up', async () => {
    expect((await decide('fraudbot-warm', 'read', TRANSACTIONS)).decision).toBe('permit');
    expect((await decide('fraudbot-warm', 'freeze_account', ACCOUNT)).decision).toBe('escalate');
  });

  it('keeps serving cached context within the staleness bound and fails closed for the rest', async () => {
    await stopProcess(redis, 'SIGKILL');
    redis = null;
    const killedAt = Date.now();

    // The agent whose context is cached is still decided by the policies...
    const warm = await decide('fraudbot-warm', 'read', TRANSACTIONS);
    if (Date.now() - killedAt < STALE_MAX_MS) expect(warm.decision).toBe('permit');
    // ...and an agent AGP never read is denied with the reason, never permitted.
    const cold = await decide('fraudbot-cold', 'read', TRANSACTIONS);
    expect(cold).toMatchObject({ decision: 'deny', allowed: false, reasons: ['context store unavailable'] });

    // Readiness and metrics show the state; the process is alive.
    const ready = await until(5_000, () => call(agp, 'GET', '/readyz', null), (r) => r.json?.store?.state !== 'ok');
    expect(ready.json.store.state).not.toBe('ok');
    const metrics = await call(agp, 'GET', '/metrics', null);
    expect(metrics.text).toMatch(/^agp_store_up\{kind="redis"\} 0(\.5)?$/m);
    expect(metrics.text).toMatch(/^agp_context_denies_total\{status="unavailable"\} [1-9]/m);
    expect(agp.child.exitCode).toBeNull();

    // Past the bound, the cached agent is denied too: stale context never decides forever.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + STALE_MAX_MS + 300 - Date.now())));
    expect(await decide('fraudbot-warm', 'read', TRANSACTIONS)).toMatchObject({ decision: 'deny', reasons: ['context store unavailable'] });

    // Admin writes are refused with 503, not lost silently.
    const put = await call(agp, 'PUT', '/v1/admin/agents/fraudbot-new', ADMIN, { attributes: FRAUDBOT_ATTRIBUTES });
    expect(put.status).toBe(503);
  });

  it('recovers on its own when Redis is back, without restarting AGP', async () => {
    const pid = agp.child.pid;
    redis = await startRedis(redisPort, dataDir);
    const back = await until(10_000, () => decide('fraudbot-cold', 'read', TRANSACTIONS), (d) => d.decision === 'permit');
    expect(back.decision).toBe('permit');
    expect((await decide('fraudbot-warm', 'freeze_account', ACCOUNT)).decision).toBe('escalate');
    const ready = await until(5_000, () => call(agp, 'GET', '/readyz', null), (r) => r.json?.store?.state === 'ok');
    expect(ready.status).toBe(200);
    expect(ready.json.store).toMatchObject({ kind: 'redis', state: 'ok' });
    expect((await call(agp, 'PUT', '/v1/admin/agents/fraudbot-new', ADMIN, { attributes: FRAUDBOT_ATTRIBUTES })).status).toBe(201);
    expect(agp.child.pid).toBe(pid);
    expect(agp.child.exitCode).toBeNull();
  });
});
