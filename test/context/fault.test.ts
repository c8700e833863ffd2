// Redis failure: a private redis-server is killed under a running store and started again.
// Cached context keeps serving (stale) within the bound, unknown context fails closed, health
// says so, nothing crashes, and the same store recovers on its own when Redis is back.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../server/context/errors.js';
import { createRedisStore, type RedisContextStore } from '../../server/context/redis.js';
import { freePort, startRedis, within } from './redis-helpers.js';

const STALE_MAX_MS = 2_500;
const CACHE_TTL_MS = 300;

let port = 0;
let child: ChildProcess | null = null;
let store: RedisContextStore;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };

async function startRedisChild(): Promise<void> {
  child = await startRedis(port);
}

async function stopRedis(): Promise<void> {
  const proc = child;
  child = null;
  if (proc === null || proc.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  port = await freePort();
  await startRedisChild();
  store = createRedisStore({
    url: `redis://127.0.0.1:${port}`,
    prefix: 'agpfault',
    cacheTtlMs: CACHE_TTL_MS,
    staleMaxMs: STALE_MAX_MS,
    commandTimeoutMs: 300,
    maxReconnectDelayMs: 200,
  });
  expect(await store.waitReady(5_000)).toBe(true);
});

afterAll(async () => {
  await store.close();
  await stopRedis();
  process.off('unhandledRejection', onUnhandled);
});

describe('context store when Redis fails', () => {
  it('serves cached context stale, fails closed for the rest, and recovers on its own', async () => {
    const t0 = Date.now();
    await store.putAgent('agent-a', { roles: ['reader'], model: { version: '2.4.1' } }, t0);
    const grant = await store.createGrant(
      { agent: 'agent-a', actions: ['read'], resource: 'account:*', expiresAt: t0 + 600_000, reason: 'test', approvedBy: 'ops' }, t0);
    expect(await store.agentContext('agent-a', Date.now())).toMatchObject({ status: 'ok', stale: false });
    expect(store.health().state).toBe('ok');

    await stopRedis();
    expect(await within(2_000, () => store.health().state !== 'ok')).toBeGreaterThanOrEqual(0);
    expect(store.health().state).toBe('degraded');

    // Past the cache TTL: the cached context is still served, marked stale, grants included.
    await new Promise((r) => setTimeout(r, CACHE_TTL_MS + 50));
    const stale = await store.agentContext('agent-a', Date.now());
    expect(stale).toMatchObject({ status: 'ok', stale: true, agent: { id: 'agent-a' } });
    expect(stale.status === 'ok' && stale.grants.map((g) => g.id)).toEqual([grant.id]);

    // Nothing cached: never a permit, an unavailable context with a reason.
    const unknown = await store.agentContext('agent-b', Date.now());
    expect(unknown.status).toBe('unavailable');
    expect(unknown.status === 'unavailable' && unknown.reason).toMatch(/unreachable|error/);

    // Admin writes and token checks refuse with a 503-mapped error, promptly.
    const started = Date.now();
    await expect(store.putAgent('agent-b', {}, Date.now())).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.createGrant(
      { agent: 'agent-a', actions: ['read'], resource: '*', expiresAt: Date.now() + 1000, reason: '', approvedBy: 'x' }, Date.now()))
      .rejects.toMatchObject({ statusCode: 503 });
    await expect(store.isTokenRevoked('never-seen')).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(1_000);
    // Behaviour figures are in-process and keep working.
    store.recordDecision('agent-a', 'account:1', true, Date.now());
    expect(store.behavior('agent-a', 'account:1', Date.now()).new_resource).toBe(false);

    // Beyond the staleness bound the cached context is no longer used: fail closed.
    const beyond = t0 + STALE_MAX_MS + 200 - Date.now();
    if (beyond > 0) await new Promise((r) => setTimeout(r, beyond));
    expect((await store.agentContext('agent-a', Date.now())).status).toBe('unavailable');
    expect(await within(1_000, () => store.health().state === 'down')).toBeGreaterThanOrEqual(0);

    // Redis is back (empty: it kept nothing). The same store reconnects without help.
    await startRedisChild();
    expect(await within(5_000, () => store.health().state === 'ok')).toBeGreaterThanOrEqual(0);
    expect(await store.agentContext('agent-a', Date.now())).toEqual({ status: 'unknown' });
    await store.putAgent('agent-a', { roles: ['reader'], model: { version: '2.5.0' } }, Date.now());
    const fresh = await store.agentContext('agent-a', Date.now());
    expect(fresh).toMatchObject({ status: 'ok', stale: false, grants: [], agent: { attributes: { model: { version: '2.5.0' } } } });
    expect(await store.isTokenRevoked('never-seen')).toBe(false);

    expect(unhandled).toEqual([]);
  });

  it('denies everything while Redis has never been reachable', async () => {
    const deadPort = await freePort();
    const dead = createRedisStore({ url: `redis://127.0.0.1:${deadPort}`, prefix: 'agpfault2', connectTimeoutMs: 200, maxReconnectDelayMs: 100 });
    try {
      expect(await dead.waitReady(300)).toBe(false);
      expect(dead.health().state).toBe('down');
      expect(await dead.agentContext('anyone', Date.now())).toMatchObject({ status: 'unavailable' });
      await expect(dead.getAgent('anyone')).rejects.toMatchObject({ statusCode: 503 });
    } finally {
      await dead.close();
    }
    expect(unhandled).toEqual([]);
  });
});
