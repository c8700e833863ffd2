// Identity over the real Redis store: two replicas (two store clients, one key prefix) share
// signing keys, single-use assertion jtis and token revocations.
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { REDIS_URL, cleanupPrefix } from '../context/redis-helpers.js';
import { createRedisStore } from '../../server/context/redis.js';
import type { ContextStore } from '../../server/context/types.js';
import { ISSUER, JWT_TYPE, TOKEN_EXCHANGE, agentKey, assertion, clock, harness, postForm, registerAgent } from './harness.js';
import type { Harness } from './harness.js';

const PREFIX = `agptest:identity:${randomBytes(6).toString('hex')}`;
const stores: ContextStore[] = [];
const harnesses: Harness[] = [];

afterAll(async () => {
  for (const h of harnesses) await h.close();
  for (const s of stores) await s.close();
  // Remove exactly this run's keys (never FLUSHDB).
  await cleanupPrefix(PREFIX);
});

async function replicaStore(): Promise<ContextStore> {
  const s = createRedisStore({ url: REDIS_URL, prefix: PREFIX });
  stores.push(s);
  expect(await s.waitReady(5_000)).toBe(true);
  return s;
}

describe('identity on the Redis store, two replicas', () => {
  it('keeps every key when admins on two replicas add and remove keys of one agent at the same time', async () => {
    const c = clock();
    const a = await harness({ store: await replicaStore(), clock: c });
    const b = await harness({ store: await replicaStore(), clock: c });
    harnesses.push(a, b);
    const first = await registerAgent(a, 'keyring-bot');
    const keys = await Promise.all(Array.from({ length: 8 }, () => agentKey()));
    const results = await Promise.all([
      ...keys.map((k, i) => (i % 2 === 0 ? a : b).identity.credentials.registerKey('keyring-bot', k.publicJwk)),
      b.identity.credentials.removeKey('keyring-bot', first.thumbprint),
    ]);
    expect(results.map((r) => (typeof r === 'boolean' ? r : r.ok && r.created))).toEqual([...keys.map(() => true), true]);
    const listed = (await b.identity.credentials.listKeys('keyring-bot')).map((k) => k.thumbprint).sort();
    expect(listed).toEqual(keys.map((k) => k.thumbprint).sort());
  });

  it('shares keys, rejects a replayed assertion on the other replica, and shares revocations', async () => {
    const c = clock();
    const a = await harness({ store: await replicaStore(), clock: c });
    harnesses.push(a);
    const b = await harness({ store: await replicaStore(), clock: c });
    harnesses.push(b);
    const jwksA = (await a.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    const jwksB = (await b.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwksA.keys).toHaveLength(1);
    expect(jwksB).toEqual(jwksA);

    const key = await registerAgent(a, 'fraudbot');
    const signed = await assertion('fraudbot', key, c.now());
    const params = { grant_type: TOKEN_EXCHANGE, subject_token: signed, subject_token_type: JWT_TYPE, scope: 'transactions:read' };
    const first = await postForm(a, '/oauth2/token', params);
    expect(first.statusCode).toBe(200);
    const replay = await postForm(b, '/oauth2/token', params);
    expect(replay.json()).toEqual({ error: 'invalid_request', error_description: 'subject_token rejected: the assertion `jti` was already used' });

    const token = first.json().access_token as string;
    expect(await b.identity.verifyAgentToken(token)).toMatchObject({ ok: true, claims: { agp_agent: 'fraudbot', aud: ISSUER } });
    await postForm(a, '/oauth2/revoke', { token }, { authorization: 'Bearer admin-key-for-tests' });
    // The other replica learns of it by the store's change notice (pub/sub): within moments.
    const deadline = Date.now() + 2_000;
    let seen = await b.identity.verifyAgentToken(token);
    while (seen.ok && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      seen = await b.identity.verifyAgentToken(token);
    }
    expect(seen).toMatchObject({ ok: false, error: 'revoked' });

    // A rotation on one replica: the other verifies the new key's tokens at once.
    const rotated = (await b.app.inject({ method: 'POST', url: '/v1/admin/keys/rotate', headers: { authorization: 'Bearer admin-key-for-tests' } })).json();
    const fresh = await postForm(b, '/oauth2/token', { ...params, subject_token: await assertion('fraudbot', key, c.now()) });
    expect(await a.identity.verifyAgentToken(fresh.json().access_token)).toMatchObject({ ok: true });
    expect((await a.identity.keys.jwks()).keys.map((k) => k.kid)).toContain(rotated.kid);
  });
});
