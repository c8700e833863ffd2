// One contract suite for the ContextStore interface, run against the embedded store and a
// Redis store on the local Redis (unique prefix per run, own keys removed afterwards).
import { afterAll, describe, expect, it } from 'vitest';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import { StoreInputError } from '../../server/context/errors.js';
import { createRedisStore } from '../../server/context/redis.js';
import type { AnomalyEvent, ContextStore } from '../../server/context/types.js';
import { REDIS_URL, cleanupPrefix, runPrefix } from './redis-helpers.js';

const MINUTE = 60_000;
/** A minute boundary, so that driven time starts at the beginning of a minute. */
const T0 = Date.UTC(2026, 0, 1, 9, 0, 0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Factory = () => Promise<ContextStore>;

const prefix = runPrefix();
let made = 0;

const factories: [string, Factory][] = [
  ['embedded', async () => createEmbeddedStore()],
  ['redis', async () => {
    const store = createRedisStore({ url: REDIS_URL, prefix: `${prefix}:${++made}`, cacheTtlMs: 5_000 });
    expect(await store.waitReady(5_000)).toBe(true);
    return store;
  }],
];

afterAll(async () => {
  await cleanupPrefix(prefix);
});

describe.each(factories)('context store contract: %s', (_name, make) => {
  const open: ContextStore[] = [];
  const fresh = async (): Promise<ContextStore> => {
    const store = await make();
    open.push(store);
    return store;
  };
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
  });

  it('registers, updates, reads and pages through agents', async () => {
    const store = await fresh();
    const now = Date.now();
    const ids = ['b-agent', 'a-agent', 'e-agent', 'c-agent', 'd-agent'];
    for (const id of ids) await store.putAgent(id, { owner: 'team-' + id, roles: ['reader'] }, now);

    const first = await store.getAgent('a-agent');
    expect(first).toMatchObject({ id: 'a-agent', active: true, attributes: { owner: 'team-a-agent', roles: ['reader'] }, createdAt: now, updatedAt: now });
    const updated = await store.putAgent('a-agent', { owner: 'ops', model: { name: 'fraudnet', version: '2.4.1' } }, now + 10);
    expect(updated).toMatchObject({ createdAt: now, updatedAt: now + 10, attributes: { owner: 'ops', model: { version: '2.4.1' } } });
    expect((await store.getAgent('a-agent'))?.attributes).toEqual({ owner: 'ops', model: { name: 'fraudnet', version: '2.4.1' } });
    expect(await store.getAgent('nobody')).toBeNull();

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.listAgents(cursor, 2);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((a) => a.id));
      cursor = page.next;
      pages++;
    } while (cursor !== undefined && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].sort());

    const all = await store.listAgents(undefined, 100);
    expect(all.next).toBeUndefined();
    expect(all.items).toHaveLength(5);
    await expect(store.listAgents('not a cursor!', 2)).rejects.toBeInstanceOf(StoreInputError);
  });

  it('gives the agent context: unknown, ok, inactive and back', async () => {
    const store = await fresh();
    const now = Date.now();
    expect(await store.agentContext('ghost', now)).toEqual({ status: 'unknown' });

    await store.putAgent('fraudbot-1', { roles: ['fraud-detector'] }, now);
    const ok = await store.agentContext('fraudbot-1', now);
    expect(ok).toMatchObject({ status: 'ok', stale: false, grants: [], agent: { id: 'fraudbot-1', attributes: { roles: ['fraud-detector'] } } });

    const off = await store.setAgentActive('fraudbot-1', false, now + 1);
    expect(off).toMatchObject({ active: false, updatedAt: now + 1 });
    expect(await store.agentContext('fraudbot-1', now + 2)).toMatchObject({ status: 'inactive', agent: { id: 'fraudbot-1', active: false } });
    // Re-registering keeps the agent deactivated: only setAgentActive changes it.
    await store.putAgent('fraudbot-1', { roles: ['fraud-detector', 'x'] }, now + 3);
    expect((await store.agentContext('fraudbot-1', now + 3)).status).toBe('inactive');

    await store.setAgentActive('fraudbot-1', true, now + 4);
    expect(await store.agentContext('fraudbot-1', now + 5)).toMatchObject({ status: 'ok', agent: { active: true, attributes: { roles: ['fraud-detector', 'x'] } } });
    expect(await store.setAgentActive('ghost', false, now)).toBeNull();
  });

  it('creates, lists, expires and revokes grants', async () => {
    const store = await fresh();
    const now = Date.now();
    await store.putAgent('fraudbot-1', { roles: ['fraud-detector'] }, now);
    const long = await store.createGrant(
      { agent: 'fraudbot-1', actions: ['freeze_account'], resource: 'account:991', expiresAt: now + 10 * MINUTE, reason: 'flagged', approvedBy: 'alice' }, now);
    const short = await store.createGrant(
      { agent: 'fraudbot-1', actions: ['*'], resource: 'account:*', expiresAt: now + 1_000, reason: 'drill', approvedBy: 'bob' }, now + 1);
    expect(long).toMatchObject({ agent: 'fraudbot-1', actions: ['freeze_account'], resource: 'account:991', createdAt: now, approvedBy: 'alice' });
    expect(long.id).not.toBe(short.id);

    expect((await store.listGrants('fraudbot-1', now + 10)).map((g) => g.id)).toEqual([long.id, short.id]);
    const ctx = await store.agentContext('fraudbot-1', now + 10);
    expect(ctx.status === 'ok' && ctx.grants.map((g) => g.id)).toEqual([long.id, short.id]);

    // Expiry is by time: one second later the short grant is gone from both views.
    expect((await store.listGrants('fraudbot-1', now + 2_000)).map((g) => g.id)).toEqual([long.id]);
    const later = await store.agentContext('fraudbot-1', now + 2_000);
    expect(later.status === 'ok' && later.grants.map((g) => g.id)).toEqual([long.id]);
    // ...and a grant is active up to, not including, its expiry.
    const atExpiry = await store.agentContext('fraudbot-1', now + 10 * MINUTE);
    expect(atExpiry.status === 'ok' && atExpiry.grants).toEqual([]);

    expect(await store.revokeGrant('fraudbot-1', long.id)).toBe(true);
    expect(await store.revokeGrant('fraudbot-1', long.id)).toBe(false);
    expect(await store.listGrants('fraudbot-1', now + 10)).toHaveLength(1);
    const revoked = await store.agentContext('fraudbot-1', now + 10);
    expect(revoked.status === 'ok' && revoked.grants.map((g) => g.id)).toEqual([short.id]);

    await expect(store.createGrant(
      { agent: 'fraudbot-1', actions: ['read'], resource: 'account:1', expiresAt: now - 1, reason: '', approvedBy: 'x' }, now))
      .rejects.toMatchObject({ statusCode: 400 });
    await expect(store.createGrant(
      { agent: 'fraudbot-1', actions: [], resource: 'account:1', expiresAt: now + 1000, reason: '', approvedBy: 'x' }, now))
      .rejects.toBeInstanceOf(StoreInputError);
  });

  it('remembers token revocations until the token expires', async () => {
    const store = await fresh();
    const now = Date.now();
    expect(await store.isTokenRevoked('jti-1')).toBe(false);
    await store.revokeToken('jti-1', now + MINUTE);
    await store.revokeToken('jti-2', now + 300);
    await store.revokeToken('jti-3', now - 1);
    expect(await store.isTokenRevoked('jti-1')).toBe(true);
    expect(await store.isTokenRevoked('jti-2')).toBe(true);
    expect(await store.isTokenRevoked('jti-3')).toBe(false);
    expect(await store.isTokenRevoked('jti-other')).toBe(false);
    await sleep(400);
    expect(await store.isTokenRevoked('jti-2')).toBe(false);
    expect(await store.isTokenRevoked('jti-1')).toBe(true);
  });

  it('keeps a namespaced key-value space with TTLs and set-if-absent', async () => {
    const store = await fresh();
    const odd = 'we{ird}:key*?[x]\\%';
    await store.kvSet('keys', 'k1', 'v1');
    await store.kvSet('keys', odd, 'v-odd');
    await store.kvSet('other', 'k1', 'elsewhere');
    await store.kvSet('keys', 'short', 'gone soon', 200);
    expect(await store.kvGet('keys', 'k1')).toBe('v1');
    expect(await store.kvGet('keys', odd)).toBe('v-odd');
    expect(await store.kvGet('keys', 'short')).toBe('gone soon');
    expect(await store.kvGet('keys', 'missing')).toBeNull();
    expect(await store.kvList('keys')).toEqual([
      { key: 'k1', value: 'v1' }, { key: 'short', value: 'gone soon' }, { key: odd, value: 'v-odd' },
    ]);

    expect(await store.kvSetIfAbsent('jti', 'abc', '1', 250)).toBe(true);
    expect(await store.kvSetIfAbsent('jti', 'abc', '2', 250)).toBe(false);
    expect(await store.kvGet('jti', 'abc')).toBe('1');

    await sleep(350);
    expect(await store.kvGet('keys', 'short')).toBeNull();
    expect((await store.kvList('keys')).map((e) => e.key)).toEqual(['k1', odd]);
    expect(await store.kvSetIfAbsent('jti', 'abc', '3', 250)).toBe(true);
    expect(await store.kvGet('jti', 'abc')).toBe('3');

    await store.kvDelete('keys', 'k1');
    expect(await store.kvGet('keys', 'k1')).toBeNull();
    expect(await store.kvGet('other', 'k1')).toBe('elsewhere');
    await expect(store.kvSet('keys', 'bad', 'x', 0)).rejects.toBeInstanceOf(StoreInputError);
  });

  it('raises rate_z when the rate jumps 40x over the baseline, once as an anomaly', async () => {
    const store = await fresh();
    const events: AnomalyEvent[] = [];
    store.onAnomaly((e) => events.push(e));
    const agent = 'fraudbot-7';

    // Warm-up: the first (partial) minute and the next three do not give a z-score.
    for (let m = 0; m < 6; m++) {
      for (let i = 0; i < 10; i++) {
        const now = T0 + m * MINUTE + i * 1_000;
        if (m <= 3) expect(store.behavior(agent, 'txn:' + i, now).rate_z).toBe(0);
        store.recordDecision(agent, 'txn:' + i, true, now);
      }
    }
    const calm = store.behavior(agent, 'txn:1', T0 + 6 * MINUTE);
    expect(calm.baseline).toBeCloseTo(10, 5);
    expect(calm.rate).toBe(0);
    expect(events).toEqual([]);

    // 40x the usual per-minute rate within the next minute.
    for (let i = 0; i < 400; i++) store.recordDecision(agent, 'txn:' + (i % 10), true, T0 + 6 * MINUTE + i * 100);
    const burst = store.behavior(agent, 'txn:1', T0 + 6 * MINUTE + 45_000);
    expect(burst.rate).toBe(400);
    expect(burst.baseline).toBeCloseTo(10, 5);
    expect(burst.rate_z).toBeGreaterThan(50);

    const rateEvents = events.filter((e) => e.kind === 'rate');
    expect(rateEvents).toHaveLength(1);
    expect(rateEvents[0]).toMatchObject({ agent, kind: 'rate', threshold: 6 });
    expect(rateEvents[0]!.value).toBeGreaterThanOrEqual(6);

    // An agent at its usual rate stays calm.
    const other = 'steady-1';
    for (let m = 0; m < 8; m++) for (let i = 0; i < 10; i++) store.recordDecision(other, 'txn:' + i, true, T0 + m * MINUTE + i * 1_000);
    expect(Math.abs(store.behavior(other, 'txn:1', T0 + 7 * MINUTE + 30_000).rate_z)).toBeLessThan(1);
    expect(events.filter((e) => e.agent === other)).toEqual([]);
  });

  it('reports the deny ratio over the recent window and a deny anomaly once', async () => {
    const store = await fresh();
    const events: AnomalyEvent[] = [];
    store.onAnomaly((e) => events.push(e));

    for (let i = 0; i < 20; i++) store.recordDecision('mixed-1', 'doc:' + i, i % 4 !== 0, T0 + i * 1_000);
    expect(store.behavior('mixed-1', 'doc:1', T0 + 21_000).deny_ratio).toBeCloseTo(0.25, 10);
    // Ten minutes later the window holds nothing of it.
    expect(store.behavior('mixed-1', 'doc:1', T0 + 10 * MINUTE).deny_ratio).toBe(0);
    expect(events).toEqual([]);

    // Too few decisions say nothing yet.
    store.recordDecision('new-1', 'doc:1', false, T0);
    expect(store.behavior('new-1', 'doc:1', T0 + 1).deny_ratio).toBe(0);

    for (let i = 0; i < 30; i++) store.recordDecision('denied-1', 'doc:' + i, i % 3 === 0, T0 + i * 1_000);
    expect(store.behavior('denied-1', 'doc:1', T0 + 31_000).deny_ratio).toBeCloseTo(20 / 30, 10);
    const denyEvents = events.filter((e) => e.kind === 'deny_ratio');
    expect(denyEvents).toHaveLength(1);
    expect(denyEvents[0]).toMatchObject({ agent: 'denied-1', threshold: 0.5 });
  });

  it('tells a first access to a resource and a resource type', async () => {
    const store = await fresh();
    const now = T0;
    expect(store.behavior('reader-1', 'account:991', now)).toMatchObject({ new_resource: true, new_resource_type: true, rate: 0, rate_z: 0, deny_ratio: 0 });
    store.recordDecision('reader-1', 'account:991', true, now);
    expect(store.behavior('reader-1', 'account:991', now + 1)).toMatchObject({ new_resource: false, new_resource_type: false, rate: 1 });
    expect(store.behavior('reader-1', 'account:992', now + 1)).toMatchObject({ new_resource: true, new_resource_type: false });
    expect(store.behavior('reader-1', 'txn:1', now + 1)).toMatchObject({ new_resource: true, new_resource_type: true });
    // Another agent has its own history.
    expect(store.behavior('reader-2', 'account:991', now + 1).new_resource).toBe(true);
  });

  it('reports its health', async () => {
    const store = await fresh();
    expect(store.health().state).toBe('ok');
  });
});
