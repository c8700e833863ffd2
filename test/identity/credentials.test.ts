import { afterEach, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { ADMIN_KEY, JWT_TYPE, TOKEN_EXCHANGE, agentKey, assertion, harness, postForm, registerAgent, selfExchange } from './harness.js';
import type { Harness } from './harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const admin = { authorization: `Bearer ${ADMIN_KEY}` };
const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` });

async function issueSecret(overlapS?: number) {
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/admin/agents/fraudbot/credentials/secret',
    headers: admin,
    ...(overlapS !== undefined ? { payload: { overlap_s: overlapS } } : {}),
  });
  expect(res.statusCode).toBe(201);
  expect(res.headers['cache-control']).toBe('no-store');
  return res.json() as { client_id: string; client_secret: string; secret_id: string; previous_valid_until?: string };
}

function withSecret(secret: string, how: 'basic' | 'post' = 'basic') {
  return how === 'basic'
    ? postForm(h, '/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read' }, basic('fraudbot', secret))
    : postForm(h, '/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read', client_id: 'fraudbot', client_secret: secret });
}

describe('client secrets', () => {
  it('issues a secret shown once and stored only as a hash; it works with basic and post', async () => {
    h = await harness();
    await h.store.putAgent('fraudbot', { roles: ['fraud-detector'] }, h.clock.now());
    const issued = await issueSecret();
    expect(issued.client_id).toBe('fraudbot');
    expect(Buffer.from(issued.client_secret, 'base64url')).toHaveLength(32);
    const stored = JSON.stringify(await h.store.kvList('cred-secret'));
    expect(stored).not.toContain(issued.client_secret);

    const viaBasic = await withSecret(issued.client_secret, 'basic');
    expect(viaBasic.statusCode).toBe(200);
    expect(decodeJwt(viaBasic.json().access_token)).toMatchObject({ sub: 'fraudbot', client_id: 'fraudbot', scope: 'transactions:read' });
    expect((await withSecret(issued.client_secret, 'post')).statusCode).toBe(200);
    expect(h.audit).toContainEqual(expect.objectContaining({ kind: 'credential_used', agent: 'fraudbot', method: 'client_secret', credential: issued.secret_id }));
    expect(JSON.stringify(h.audit)).not.toContain(issued.client_secret);

    const wrong = await withSecret('not-the-secret');
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic/);
    expect(wrong.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
  });

  it('accepts old and new secrets during the overlap window and only the new one after it', async () => {
    h = await harness();
    await h.store.putAgent('fraudbot', { roles: ['fraud-detector'] }, h.clock.now());
    const first = await issueSecret();
    const second = await issueSecret(120);
    expect(second.previous_valid_until).toBe(new Date(h.clock.now() + 120_000).toISOString());
    expect((await withSecret(first.client_secret)).statusCode).toBe(200);
    expect((await withSecret(second.client_secret)).statusCode).toBe(200);
    h.clock.advance(120_001);
    expect((await withSecret(first.client_secret)).statusCode).toBe(401);
    expect((await withSecret(second.client_secret)).statusCode).toBe(200);

    // Without overlap, rotation retires the old secret at once.
    const third = await issueSecret(0);
    expect((await withSecret(second.client_secret)).statusCode).toBe(401);
    expect((await withSecret(third.client_secret)).statusCode).toBe(200);
  });

  it('revokes every secret at once', async () => {
    h = await harness();
    await h.store.putAgent('fraudbot', { roles: ['fraud-detector'] }, h.clock.now());
    const first = await issueSecret();
    const second = await issueSecret(600);
    const res = await h.app.inject({ method: 'DELETE', url: '/v1/admin/agents/fraudbot/credentials/secret', headers: admin });
    expect(res.statusCode).toBe(204);
    expect((await withSecret(first.client_secret)).statusCode).toBe(401);
    expect((await withSecret(second.client_secret)).statusCode).toBe(401);
    const again = await h.app.inject({ method: 'DELETE', url: '/v1/admin/agents/fraudbot/credentials/secret', headers: admin });
    expect(again.statusCode).toBe(404);
  });

  it('lets a secret-holding agent act for a user by authenticating the client', async () => {
    h = await harness();
    await h.store.putAgent('fraudbot', { roles: ['fraud-detector'] }, h.clock.now());
    const issued = await issueSecret();
    const user = await h.userToken('alice', { may_act: { sub: 'fraudbot' } });
    const res = await postForm(
      h,
      '/oauth2/token',
      { grant_type: TOKEN_EXCHANGE, subject_token: user, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', scope: 'transactions:read' },
      basic('fraudbot', issued.client_secret),
    );
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().access_token)).toMatchObject({ sub: 'alice', act: { sub: 'fraudbot' } });
  });
});

describe('agent keys', () => {
  it('refuses a key already bound to another agent, and a private key', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    await h.store.putAgent('copycat', {}, h.clock.now());
    const res = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/copycat/credentials/keys', headers: admin, payload: { jwk: key.publicJwk } });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('key_bound_to_other_agent');
    // The same key again for its own agent is idempotent.
    const again = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/fraudbot/credentials/keys', headers: admin, payload: key.publicJwk });
    expect(again.statusCode).toBe(200);
    expect(again.json().kid).toBe(key.thumbprint);

    const { exportJWK, generateKeyPair } = await import('jose');
    const pair = await generateKeyPair('ES256', { extractable: true });
    const priv = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/copycat/credentials/keys', headers: admin, payload: await exportJWK(pair.privateKey) });
    expect(priv.statusCode).toBe(400);
    expect(priv.json().error).toMatchObject({ code: 'invalid_key', message: 'the JWK holds private key material' });
    const unknown = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/ghost/credentials/keys', headers: admin, payload: key.publicJwk });
    expect(unknown.statusCode).toBe(404);
    const noAdmin = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/copycat/credentials/keys', payload: key.publicJwk });
    expect(noAdmin.statusCode).toBe(401);
  });

  it('stops accepting a removed key, and accepts Ed25519 keys', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const ed = await agentKey('EdDSA');
    const reg = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/fraudbot/credentials/keys', headers: admin, payload: ed.publicJwk });
    expect(reg.statusCode).toBe(201);
    const edToken = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion('fraudbot', ed, h.clock.now(), { alg: 'EdDSA' }),
      subject_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(edToken.statusCode).toBe(200);
    const list = await h.app.inject({ method: 'GET', url: '/v1/admin/agents/fraudbot/credentials/keys', headers: admin });
    expect(list.json().keys.map((k: { kid: string }) => k.kid)).toEqual([key.thumbprint, ed.thumbprint]);

    const del = await h.app.inject({ method: 'DELETE', url: `/v1/admin/agents/fraudbot/credentials/keys/${key.thumbprint}`, headers: admin });
    expect(del.statusCode).toBe(204);
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read');
    expect(res.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    expect(h.audit).toContainEqual(expect.objectContaining({ kind: 'credential_rejected', agent: 'fraudbot', reason: 'bad_signature' }));
    // The removed key is free again for another agent.
    await h.store.putAgent('newowner', {}, h.clock.now());
    const rebind = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/newowner/credentials/keys', headers: admin, payload: key.publicJwk });
    expect(rebind.statusCode).toBe(201);
  });

  it('answers 503 credentials_busy when another change holds the agent\'s key list too long', async () => {
    h = await harness({ keysLockWaitMs: 200 });
    await registerAgent(h, 'fraudbot');
    // Another admin's change holds the lease (as if it hung); it expires on its own.
    expect(await h.store.kvSetIfAbsent('cred-keys-lock', 'fraudbot', 'someone-else', 10_000)).toBe(true);
    const next = await agentKey();
    const busy = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/fraudbot/credentials/keys', headers: admin, payload: next.publicJwk });
    expect(busy.statusCode).toBe(503);
    expect(busy.json().error).toMatchObject({ code: 'credentials_busy', message: 'the keys of agent `fraudbot` are being changed by another request' });
    // Once the lease is gone, the same change goes through.
    await h.store.kvDelete('cred-keys-lock', 'fraudbot');
    const ok = await h.app.inject({ method: 'POST', url: '/v1/admin/agents/fraudbot/credentials/keys', headers: admin, payload: next.publicJwk });
    expect(ok.statusCode).toBe(201);
  });

});

describe('unknown and deactivated agents', () => {
  it('refuses a deactivated agent by key and by secret, and an unknown agent, with one answer (the audit has the reason)', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const issued = await issueSecret();
    await h.store.setAgentActive('fraudbot', false, h.clock.now());

    const byKey = await selfExchange(h, 'fraudbot', key, 'transactions:read');
    const failed = { error: 'invalid_client', error_description: 'client authentication failed' };
    expect(byKey.statusCode).toBe(401);
    expect(byKey.json()).toEqual(failed);
    const bySecret = await withSecret(issued.client_secret);
    expect(bySecret.statusCode).toBe(401);
    expect(bySecret.json()).toEqual(failed);
    expect(h.audit.filter((e) => e.kind === 'credential_rejected').map((e) => 'reason' in e && e.reason)).toEqual(['inactive_agent', 'inactive_agent']);

    const ghost = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion('ghost', key, h.clock.now()),
      subject_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(ghost.json()).toEqual(failed);
    expect(h.audit).toContainEqual(expect.objectContaining({ kind: 'credential_rejected', agent: 'ghost', reason: 'unknown_agent' }));

    // A token issued before deactivation cannot be exchanged onward either.
    await h.store.setAgentActive('fraudbot', true, h.clock.now());
    const token = (await selfExchange(h, 'fraudbot', key, 'transactions:read')).json().access_token as string;
    await h.store.setAgentActive('fraudbot', false, h.clock.now());
    const onward = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      scope: 'transactions:read',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion('fraudbot', key, h.clock.now()),
    });
    expect(onward.json()).toEqual(failed);
  });
});
