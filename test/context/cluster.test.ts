// The Redis store on a real Redis Cluster: three private redis-server nodes joined with
// `redis-cli --cluster create`; agents, grants, kv, revocations, change notices and the
// behaviour flush all work although the keys spread over the slots of three masters.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore, type RedisContextStore } from '../../server/context/redis.js';
import { freePort, within } from './redis-helpers.js';

const run = promisify(execFile);
const nodes: ChildProcess[] = [];
const ports: number[] = [];
let dir = '';
let one: RedisContextStore | undefined;
let two: RedisContextStore | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agp-cluster-'));
  for (let i = 0; i < 3; i++) {
    // The cluster bus uses port + 10000: keep the data port low enough.
    let port = await freePort();
    while (port > 55_000) port = await freePort();
    ports.push(port);
    nodes.push(spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--dir', dir,
    ], { stdio: 'ignore' }));
  }
  for (const port of ports) {
    const up = await within(10_000, async () => {
      try {
        return (await run('redis-cli', ['-p', String(port), 'ping'])).stdout.trim() === 'PONG';
      } catch {
        return false;
      }
    });
    expect(up).toBeGreaterThanOrEqual(0);
  }
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  const ok = await within(15_000, async () => {
    const info = (await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'])).stdout;
    return info.includes('cluster_state:ok');
  });
  expect(ok).toBeGreaterThanOrEqual(0);

  const url = ports.map((p) => `redis://127.0.0.1:${p}`).join(',');
  one = createRedisStore({ url, cluster: true, prefix: 'agpc', cacheTtlMs: 60_000 });
  two = createRedisStore({ url, cluster: true, prefix: 'agpc', cacheTtlMs: 60_000 });
  expect(await one.waitReady(10_000)).toBe(true);
  expect(await two.waitReady(10_000)).toBe(true);
}, 60_000);

afterAll(async () => {
  await Promise.all([one?.close(), two?.close()]);
  await Promise.all(nodes.map((n) => new Promise<void>((resolve) => {
    if (n.exitCode !== null) return resolve();
    n.once('exit', () => resolve());
    n.kill('SIGKILL');
  })));
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('Redis store on a Redis Cluster', () => {
  it('keeps agents, grants, revocations and kv across three masters', async () => {
    const a = one!;
    const b = two!;
    const now = Date.now();
    const ids = Array.from({ length: 12 }, (_, i) => `agent-${String(i).padStart(2, '0')}`);
    for (const id of ids) await a.putAgent(id, { roles: ['reader'], n: id }, now);
    const page1 = await a.listAgents(undefined, 5);
    const page2 = await a.listAgents(page1.next, 5);
    const page3 = await a.listAgents(page2.next, 5);
    expect([...page1.items, ...page2.items, ...page3.items].map((r) => r.id)).toEqual(ids);
    expect(page3.next).toBeUndefined();

    const grant = await a.createGrant({ agent: 'agent-03', actions: ['read'], resource: 'account:*', expiresAt: now + 60_000, reason: 'r', approvedBy: 'ops' }, now);
    expect(await b.agentContext('agent-03', now)).toMatchObject({ status: 'ok', grants: [{ id: grant.id }] });
    expect(await a.revokeGrant('agent-03', grant.id)).toBe(true);
    const gone = await within(1_000, async () => {
      const ctx = await b.agentContext('agent-03', Date.now());
      return ctx.status === 'ok' && ctx.grants.length === 0;
    });
    expect(gone).toBeGreaterThanOrEqual(0);

    await a.revokeToken('jti-c1', now + 60_000);
    expect(await within(1_000, () => b.isTokenRevoked('jti-c1'))).toBeGreaterThanOrEqual(0);

    for (let i = 0; i < 30; i++) await a.kvSet('creds', `key-${i}`, `v${i}`);
    expect(await a.kvSetIfAbsent('creds', 'key-1', 'x', 1_000)).toBe(false);
    const listed = await b.kvList('creds');
    expect(listed).toHaveLength(30);
    expect(listed[0]).toEqual({ key: 'key-0', value: 'v0' });

    for (const id of ids) a.recordDecision(id, 'account:1', true, now);
    for (const id of ids) b.recordDecision(id, 'account:1', true, now);
    const shared = await within(3_000, async () => {
      await a.flush();
      await b.flush();
      return ids.every((id) => a.behavior(id, 'account:1', now).rate === 2 && b.behavior(id, 'account:1', now).rate === 2);
    });
    expect(shared).toBeGreaterThanOrEqual(0);
    expect(a.stats().flushErrors).toBe(0);
    expect(a.health().state).toBe('ok');
  });
});
