// Two Redis store instances on one Redis and one prefix behave as two AGP replicas: a change
// made through one is seen by the other within a second, although the other had it cached.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore, type RedisContextStore } from '../../server/context/redis.js';
import type { AgentContext } from '../../server/context/types.js';
import { REDIS_URL, cleanupPrefix, runPrefix, within } from './redis-helpers.js';

const prefix = runPrefix();
let one: RedisContextStore;
let two: RedisContextStore;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A change notice drops the entry wherever it arrives, even after a newer load: let it land. */
const settle = (): Promise<void> => sleep(100);

const grantIds = (ctx: AgentContext): string[] => (ctx.status === 'ok' ? ctx.grants.map((g) => g.id) : []);

beforeAll(async () => {
  // A cache TTL of a minute: only the change notices can explain seeing a change in a second.
  one = createRedisStore({ url: REDIS_URL, prefix, cacheTtlMs: 60_000, staleMaxMs: 120_000 });
  two = createRedisStore({ url: REDIS_URL, prefix, cacheTtlMs: 60_000, staleMaxMs: 120_000 });
  expect(await one.waitReady()).toBe(true);
  expect(await two.waitReady()).toBe(true);
});

afterAll(async () => {
  await Promise.all([one.close(), two.close()]);
  await cleanupPrefix(prefix);
});

describe('two replicas on one Redis', () => {
  it('sees a grant, its revocation and a new model version made through the other replica', async () => {
    const now = Date.now();
    await one.putAgent('fraudbot-1', { model: { name: 'fraudnet', version: '2.4.1' }, roles: ['fraud-detector'] }, now);
    await settle();

    // Replica two loads and caches the agent: the next read is a synchronous cache hit.
    expect(await two.agentContext('fraudbot-1', now)).toMatchObject({ status: 'ok', grants: [] });
    const cached = two.agentContext('fraudbot-1', now);
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ status: 'ok', stale: false });

    const grant = await one.createGrant(
      { agent: 'fraudbot-1', actions: ['freeze_account'], resource: 'account:991', expiresAt: now + 600_000, reason: 'flagged', approvedBy: 'alice' }, now);
    const granted = await within(1_000, async () => grantIds(await two.agentContext('fraudbot-1', Date.now())).includes(grant.id));
    expect(granted).toBeGreaterThanOrEqual(0);

    expect(await one.revokeGrant('fraudbot-1', grant.id)).toBe(true);
    const revoked = await within(1_000, async () => grantIds(await two.agentContext('fraudbot-1', Date.now())).length === 0);
    expect(revoked).toBeGreaterThanOrEqual(0);

    // Make sure two holds the old version in cache before the change.
    await settle();
    const before = await two.agentContext('fraudbot-1', Date.now());
    expect(before.status === 'ok' && before.agent.attributes.model).toEqual({ name: 'fraudnet', version: '2.4.1' });
    expect(two.agentContext('fraudbot-1', Date.now())).not.toBeInstanceOf(Promise);
    await one.putAgent('fraudbot-1', { model: { name: 'fraudnet', version: '2.5.0' }, roles: ['fraud-detector'] }, Date.now());
    const upgraded = await within(1_000, async () => {
      const ctx = await two.agentContext('fraudbot-1', Date.now());
      return ctx.status === 'ok' && (ctx.agent.attributes.model as { version: string }).version === '2.5.0';
    });
    expect(upgraded).toBeGreaterThanOrEqual(0);

    await one.setAgentActive('fraudbot-1', false, Date.now());
    const deactivated = await within(1_000, async () => (await two.agentContext('fraudbot-1', Date.now())).status === 'inactive');
    expect(deactivated).toBeGreaterThanOrEqual(0);
  });

  it('sees a new agent that it had cached as unknown', async () => {
    expect(await two.agentContext('late-agent', Date.now())).toEqual({ status: 'unknown' });
    expect(two.agentContext('late-agent', Date.now())).toEqual({ status: 'unknown' });
    await one.putAgent('late-agent', { roles: [] }, Date.now());
    const seen = await within(1_000, async () => (await two.agentContext('late-agent', Date.now())).status === 'ok');
    expect(seen).toBeGreaterThanOrEqual(0);
  });

  it('sees a token revocation made through the other replica', async () => {
    expect(await two.isTokenRevoked('jti-77')).toBe(false);
    await one.revokeToken('jti-77', Date.now() + 300_000);
    const seen = await within(1_000, () => two.isTokenRevoked('jti-77'));
    expect(seen).toBeGreaterThanOrEqual(0);
  });

  it('shares a single round trip between concurrent misses for one agent', async () => {
    await one.putAgent('busy-agent', { roles: ['reader'] }, Date.now());
    await settle();
    const misses = two.stats().cacheMisses;
    const results = await Promise.all(Array.from({ length: 50 }, () => two.agentContext('busy-agent', Date.now())));
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(two.stats().cacheMisses - misses).toBe(50);
    // All 50 were answered by one load: the 51st call is a synchronous hit.
    expect(two.agentContext('busy-agent', Date.now())).not.toBeInstanceOf(Promise);
  });

  it('counts the request rate across replicas and shares known resources', async () => {
    const now = Date.now();
    for (let i = 0; i < 30; i++) one.recordDecision('shared-1', 'account:' + (i % 3), true, now);
    for (let i = 0; i < 20; i++) two.recordDecision('shared-1', 'account:' + (i % 3), true, now);
    expect(one.behavior('shared-1', 'account:1', now).rate).toBe(30);
    const both = await within(2_000, async () => {
      await one.flush();
      await two.flush();
      return one.behavior('shared-1', 'account:1', now).rate === 50 && two.behavior('shared-1', 'account:1', now).rate === 50;
    });
    expect(both).toBeGreaterThanOrEqual(0);

    // Replica two has never seen `reader-9`; its first context load learns what one saw.
    one.recordDecision('reader-9', 'account:991', true, now);
    await one.flush();
    expect(two.behavior('reader-9', 'account:991', now).new_resource).toBe(true);
    await two.agentContext('reader-9', now);
    expect(two.behavior('reader-9', 'account:991', now)).toMatchObject({ new_resource: false, new_resource_type: false });
    expect(two.behavior('reader-9', 'account:992', now)).toMatchObject({ new_resource: true, new_resource_type: false });
  });

  it('counts the deny ratio across replicas, and each replica sees the other\'s denials', async () => {
    const now = Date.now();
    // Twelve denials through one replica: past the 10-decision minimum, all denied.
    for (let i = 0; i < 12; i++) one.recordDecision('deny-1', 'account:7', false, now);
    expect(one.behavior('deny-1', 'account:7', now).deny_ratio).toBe(1);
    expect(two.behavior('deny-1', 'account:7', now).deny_ratio).toBe(0);
    // Replica two sees them once one has flushed and two has read the window back.
    two.recordDecision('deny-1', 'account:7', true, now);
    const seen = await within(2_000, async () => {
      await one.flush();
      await two.flush();
      return two.behavior('deny-1', 'account:7', now).deny_ratio === 12 / 13;
    });
    expect(seen).toBeGreaterThanOrEqual(0);
    // Twelve permits through replica two bring both to the same ratio: 12 of 25 denied.
    for (let i = 0; i < 12; i++) two.recordDecision('deny-1', 'account:7', true, now);
    const both = await within(2_000, async () => {
      await two.flush();
      await one.flush();
      return one.behavior('deny-1', 'account:7', now).deny_ratio === 12 / 25 && two.behavior('deny-1', 'account:7', now).deny_ratio === 12 / 25;
    });
    expect(both).toBeGreaterThanOrEqual(0);
  });
});
