import { afterEach, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  ACCESS_TYPE, ADMIN_KEY, ISSUER, JWT_TYPE, TOKEN_EXCHANGE, assertion, harness, postForm, registerAgent, selfExchange,
  verifyWithPublishedJwks,
} from './harness.js';
import type { Harness } from './harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const admin = { authorization: `Bearer ${ADMIN_KEY}` };

describe('the fraud story with tokens', () => {
  it('issues a 5-minute transactions:read token that verifies against the published JWKS', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toEqual({
      access_token: expect.any(String),
      issued_token_type: ACCESS_TYPE,
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'transactions:read',
    });
    const claims = await verifyWithPublishedJwks(h, body.access_token);
    expect(claims).toMatchObject({ iss: ISSUER, sub: 'fraudbot', aud: ISSUER, scope: 'transactions:read', client_id: 'fraudbot', agp_agent: 'fraudbot' });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(typeof claims.jti).toBe('string');
    expect(claims.act).toBeUndefined();
    expect(decodeProtectedHeader(body.access_token)).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(h.decisions[0]).toEqual({ agentId: 'fraudbot', action: 'read', resource: { type: 'transactions', id: '*' } });
  });

  it('answers approval required before the grant, and a freeze-only token of at most 10 minutes after it', async () => {
    h = await harness({ tokenTtlS: 900 });
    const key = await registerAgent(h, 'fraudbot');
    const before = await selfExchange(h, 'fraudbot', key, 'accounts:991:freeze');
    expect(before.statusCode).toBe(400);
    expect(before.json()).toEqual({
      error: 'invalid_scope',
      error_description: 'approval required',
      agp_approval: [{ scope: 'accounts:991:freeze', approver: 'fraud-ops', decision_id: expect.any(String), reasons: ['needs approval'] }],
    });
    expect(h.decisions.at(-1)).toEqual({ agentId: 'fraudbot', action: 'freeze_account', resource: { type: 'account', id: '991' } });

    await h.store.createGrant(
      { agent: 'fraudbot', actions: ['freeze_account'], resource: 'account:991', expiresAt: h.clock.now() + 600_000, reason: 'flagged', approvedBy: 'ops-alice' },
      h.clock.now(),
    );
    const after = await selfExchange(h, 'fraudbot', key, 'accounts:991:freeze transactions:read');
    expect(after.statusCode).toBe(200);
    const body = after.json();
    // Both permitted; the smallest ttl obligation (5m for read) caps the token.
    expect(body.scope).toBe('accounts:991:freeze transactions:read');
    expect(body.expires_in).toBe(300);
    const only = await selfExchange(h, 'fraudbot', key, 'accounts:991:freeze');
    const claims = await verifyWithPublishedJwks(h, only.json().access_token);
    expect(claims.scope).toBe('accounts:991:freeze');
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
    expect(claims.exp! - claims.iat!).toBe(600);
  });

  it('narrows a token to the permitted scopes and says which need approval', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read accounts:991:freeze payroll:write');
    expect(res.statusCode).toBe(200);
    expect(res.json().scope).toBe('transactions:read');
    expect(res.json().agp_approval).toEqual([expect.objectContaining({ scope: 'accounts:991:freeze', approver: 'fraud-ops' })]);
  });

  it('refuses with invalid_scope when no scope is permitted', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const res = await selfExchange(h, 'fraudbot', key, 'payroll:write');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_scope', error_description: 'no requested scope is permitted: payroll:write (no policy applies)' });
  });
});

describe('key rotation', () => {
  it('keeps old tokens valid after a forced rotation, signs new ones with the new key, and retires the old key after expiry', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const oldToken = (await selfExchange(h, 'fraudbot', key, 'transactions:read')).json().access_token as string;
    const oldKid = decodeProtectedHeader(oldToken).kid;

    const rotated = await h.app.inject({ method: 'POST', url: '/v1/admin/keys/rotate', headers: admin });
    expect(rotated.statusCode).toBe(200);
    const newKid = rotated.json().kid;
    expect(newKid).not.toBe(oldKid);
    expect(rotated.json().keys).toEqual([newKid, oldKid]);
    expect(h.audit).toContainEqual(expect.objectContaining({ kind: 'key_rotated', kid: newKid, previous: oldKid, forced: true }));

    await expect(verifyWithPublishedJwks(h, oldToken)).resolves.toMatchObject({ sub: 'fraudbot' });
    const newToken = (await selfExchange(h, 'fraudbot', key, 'transactions:read')).json().access_token as string;
    expect(decodeProtectedHeader(newToken).kid).toBe(newKid);
    await expect(verifyWithPublishedJwks(h, newToken)).resolves.toMatchObject({ sub: 'fraudbot' });

    // Old tokens live at most 300s; the key goes after that plus the verifiers' leeway.
    h.clock.advance(300_000 + 60_000 + 1);
    const jwks = (await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([newKid]);
    const introspected = await postForm(h, '/oauth2/introspect', { token: oldToken }, admin);
    expect(introspected.json()).toEqual({ active: false });
  });

  it('publishes RFC 8414 metadata', async () => {
    h = await harness();
    const res = await h.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.json()).toMatchObject({
      issuer: ISSUER,
      token_endpoint: `${ISSUER}/oauth2/token`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      introspection_endpoint: `${ISSUER}/oauth2/introspect`,
      revocation_endpoint: `${ISSUER}/oauth2/revoke`,
      grant_types_supported: [TOKEN_EXCHANGE, 'client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
    });
    expect(res.json().token_endpoint_auth_signing_alg_values_supported).toContain('ES256');
  });
});

describe('rejected tokens, each with its reason', () => {
  async function issued() {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read', { audience: 'https://payments.test' });
    return { key, token: res.json().access_token as string };
  }

  it('verifies a good token and rejects an expired one', async () => {
    const { token } = await issued();
    expect(await h.identity.tokens.verify(token, { audience: 'https://payments.test' })).toMatchObject({ ok: true, claims: { agp_agent: 'fraudbot' } });
    h.clock.advance(301_000 + 30_000);
    expect(await h.identity.tokens.verify(token, { audience: 'https://payments.test' })).toMatchObject({ ok: false, error: 'expired' });
  });

  it('rejects a token for another audience', async () => {
    const { token } = await issued();
    expect(await h.identity.verifyAgentToken(token)).toMatchObject({ ok: false, error: 'wrong_audience' });
    expect(await h.identity.tokens.verify(token, { audience: 'https://other.test' })).toMatchObject({ ok: false, error: 'wrong_audience' });
  });

  it('rejects a tampered token and garbage', async () => {
    const { token } = await issued();
    const [head, payload, sig] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, scope: 'accounts:*:freeze' })).toString('base64url');
    expect(await h.identity.tokens.verify(`${head}.${forged}.${sig}`, { audience: 'any' })).toMatchObject({ ok: false, error: 'bad_signature' });
    expect(await h.identity.tokens.verify('not-a-token', { audience: 'any' })).toMatchObject({ ok: false, error: 'malformed' });
    const noneHeader = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
    expect((await h.identity.tokens.verify(`${noneHeader}.${payload}.`, { audience: 'any' })).ok).toBe(false);
  });

  it('revokes a token (RFC 7009) so that it is rejected and inactive', async () => {
    const { key, token } = await issued();
    const other = await registerAgent(h, 'otherbot');
    // Another agent may not revoke it.
    const foreign = await postForm(h, '/oauth2/revoke', {
      token,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion('otherbot', other, h.clock.now()),
    });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json()).toEqual({ error: 'unauthorized_client', error_description: 'the token was not issued to this client' });
    expect((await h.identity.tokens.verify(token, { audience: 'any' })).ok).toBe(true);

    const res = await postForm(h, '/oauth2/revoke', {
      token,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion('fraudbot', key, h.clock.now()),
    });
    expect(res.statusCode).toBe(200);
    expect(await h.identity.tokens.verify(token, { audience: 'any' })).toMatchObject({ ok: false, error: 'revoked' });
    expect((await postForm(h, '/oauth2/introspect', { token }, admin)).json()).toEqual({ active: false });
    expect(await h.store.isTokenRevoked(decodeJwt(token).jti!)).toBe(true);
    // Unknown tokens: still 200.
    expect((await postForm(h, '/oauth2/revoke', { token: 'garbage' }, admin)).statusCode).toBe(200);
  });

  it('introspects (RFC 7662) for the owning agent and the admin only', async () => {
    const { key, token } = await issued();
    const mine = await postForm(h, '/oauth2/introspect', {
      token,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion('fraudbot', key, h.clock.now()),
    });
    expect(mine.json()).toMatchObject({ active: true, token_type: 'Bearer', sub: 'fraudbot', scope: 'transactions:read', aud: 'https://payments.test' });
    const other = await registerAgent(h, 'otherbot');
    const theirs = await postForm(h, '/oauth2/introspect', {
      token,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion('otherbot', other, h.clock.now()),
    });
    expect(theirs.json()).toEqual({ active: false });
    const anonymous = await postForm(h, '/oauth2/introspect', { token });
    expect(anonymous.statusCode).toBe(401);
    // No Basic challenge: the caller did not try Basic.
    expect(anonymous.headers['www-authenticate']).toBeUndefined();
    expect(anonymous.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
  });

  it('rejects a replayed client assertion, also when the replay is on another route', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const a = await assertion('fraudbot', key, h.clock.now());
    const params = { grant_type: TOKEN_EXCHANGE, subject_token: a, subject_token_type: JWT_TYPE, scope: 'transactions:read' };
    expect((await postForm(h, '/oauth2/token', params)).statusCode).toBe(200);
    const replay = await postForm(h, '/v1/token', params);
    expect(replay.statusCode).toBe(400);
    expect(replay.json()).toEqual({ error: 'invalid_request', error_description: 'subject_token rejected: the assertion `jti` was already used' });
  });

  it('rejects assertions with the wrong audience, a long lifetime, an expiry in the past, or a foreign key', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const stranger = await registerAgent(h, 'stranger');
    const cases: [string, string][] = [
      [await assertion('fraudbot', key, h.clock.now(), { aud: 'https://elsewhere.test/token' }), 'the assertion `aud` must be the token endpoint URL or the issuer'],
      [await assertion('fraudbot', key, h.clock.now(), { expS: 3600 }), 'an assertion may live at most 300s'],
      [await assertion('fraudbot', key, h.clock.now() - 600_000), 'the assertion expired'],
    ];
    for (const [subjectToken, why] of cases) {
      const res = await postForm(h, '/oauth2/token', { grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: JWT_TYPE, scope: 'transactions:read' });
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: `subject_token rejected: ${why}` });
    }
    // A signature that does not verify tells nothing about the agent.
    const foreign = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion('fraudbot', stranger, h.clock.now()),
      subject_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(foreign.statusCode).toBe(401);
    expect(foreign.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
  });
});

describe('delegation', () => {
  it('enforces may_act on a user token and records the actor in act', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    await registerAgent(h, 'otherbot');
    const user = await h.userToken('alice', { may_act: { sub: 'fraudbot' } });
    const res = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: user,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('fraudbot', key, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(res.statusCode).toBe(200);
    const claims = await verifyWithPublishedJwks(h, res.json().access_token);
    expect(claims).toMatchObject({ sub: 'alice', act: { sub: 'fraudbot' }, agp_agent: 'fraudbot', client_id: 'fraudbot' });
    expect(h.decisions.at(-1)).toMatchObject({ agentId: 'fraudbot', onBehalfOf: 'alice', claims: expect.objectContaining({ sub: 'alice' }) });
    const audit = h.audit.find((e) => e.kind === 'token_issued');
    expect(audit).toMatchObject({ agent: 'fraudbot', sub: 'alice', act: ['fraudbot'] });

    // Another agent is not named by may_act.
    const otherKey = await registerAgent(h, 'thirdbot');
    const refused = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: user,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('thirdbot', otherKey, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toEqual({ error: 'invalid_request', error_description: 'subject_token `may_act` does not name agent `thirdbot`' });

    // No may_act at all: nobody may act for the user.
    const bare = await h.userToken('bob', {});
    const noMayAct = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: bare,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('fraudbot', key, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(noMayAct.json().error).toBe('invalid_request');
  });

  it('nests act for a chain and keeps the chain within the first token scope and lifetime', async () => {
    h = await harness();
    const planner = await registerAgent(h, 'planner', { roles: ['planner'] });
    const fraudbot = await registerAgent(h, 'fraudbot');
    const user = await h.userToken('alice', { may_act: { sub: 'planner' } });
    const first = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: user,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('planner', planner, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
      delegate_to: 'fraudbot',
    });
    // planner is not a fraud detector: the policy denies it.
    expect(first.json()).toEqual({ error: 'invalid_scope', error_description: 'no requested scope is permitted: transactions:read (no policy applies)' });
    await h.store.putAgent('planner', { roles: ['fraud-detector'] }, h.clock.now());
    const ok = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: user,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('planner', planner, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
      delegate_to: 'fraudbot',
    });
    expect(ok.statusCode).toBe(200);
    const t1 = ok.json().access_token as string;
    expect(decodeJwt(t1)).toMatchObject({ sub: 'alice', act: { sub: 'planner' }, may_act: { sub: 'fraudbot', iss: ISSUER } });

    h.clock.advance(100_000);
    const chained = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: t1,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('fraudbot', fraudbot, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'transactions:read',
    });
    expect(chained.statusCode).toBe(200);
    const claims = await verifyWithPublishedJwks(h, chained.json().access_token);
    expect(claims).toMatchObject({ sub: 'alice', agp_agent: 'fraudbot', act: { sub: 'fraudbot', act: { sub: 'planner' } } });
    // Never outlives the token it came from.
    expect(claims.exp).toBe(decodeJwt(t1).exp);

    const wider = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: t1,
      subject_token_type: ACCESS_TYPE,
      actor_token: await assertion('fraudbot', fraudbot, h.clock.now()),
      actor_token_type: JWT_TYPE,
      scope: 'accounts:991:freeze',
    });
    expect(wider.json()).toEqual({ error: 'invalid_scope', error_description: "scope `accounts:991:freeze` exceeds the subject token's scope" });
  });
});

describe('RFC-shaped request errors', () => {
  it.each([
    [{}, 400, { error: 'invalid_request', error_description: '`grant_type` is required' }],
    [{ grant_type: 'password' }, 400, { error: 'unsupported_grant_type', error_description: 'grant type `password` is not supported' }],
    [{ grant_type: TOKEN_EXCHANGE, subject_token_type: JWT_TYPE }, 400, { error: 'invalid_request', error_description: '`subject_token` is required' }],
    [{ grant_type: TOKEN_EXCHANGE, subject_token: 'x' }, 400, { error: 'invalid_request', error_description: '`subject_token_type` is required' }],
    [{ grant_type: TOKEN_EXCHANGE, subject_token: 'x', subject_token_type: JWT_TYPE, actor_token: 'y' }, 400, { error: 'invalid_request', error_description: '`actor_token_type` is required with `actor_token`' }],
    [{ grant_type: TOKEN_EXCHANGE, subject_token: 'x', subject_token_type: 'urn:x' }, 400, { error: 'invalid_request', error_description: 'unsupported subject_token_type `urn:x`' }],
    [{ grant_type: [TOKEN_EXCHANGE, TOKEN_EXCHANGE] }, 400, { error: 'invalid_request', error_description: 'parameter `grant_type` is repeated' }],
    [{ grant_type: 'client_credentials', scope: 'transactions:read' }, 401, { error: 'invalid_client', error_description: 'client_credentials needs client authentication' }],
  ])('%j → %i %j', async (params, status, body) => {
    h = await harness();
    const res = await postForm(h, '/oauth2/token', params as Record<string, string>);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual(body);
    expect(res.headers['cache-control']).toBe('no-store');
    // RFC 6749 §5.2: the Basic challenge only answers a client that tried Basic.
    if (status === 401) expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('refuses a JSON body, bad scopes and bad targets', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const json = await h.app.inject({ method: 'POST', url: '/oauth2/token', payload: { grant_type: TOKEN_EXCHANGE } });
    expect(json.statusCode).toBe(400);
    expect(json.json()).toEqual({ error: 'invalid_request', error_description: 'the body must be `application/x-www-form-urlencoded`' });
    expect((await selfExchange(h, 'fraudbot', key, 'transactions')).json()).toEqual({
      error: 'invalid_scope',
      error_description: 'scope `transactions` is not `<type>:<action>` or `<type>:<id>:<action>`',
    });
    expect((await selfExchange(h, 'fraudbot', key, 'transactions:read', { audience: 'not a uri' })).json()).toEqual({
      error: 'invalid_target',
      error_description: 'audience `not a uri` is unknown',
    });
    expect((await selfExchange(h, 'fraudbot', key, 'transactions:read', { resource: 'https://api.test/#frag' })).json().error).toBe('invalid_target');
    const named = await selfExchange(h, 'fraudbot', key, 'transactions:read', { audience: 'payments' });
    expect(decodeJwt(named.json().access_token).aud).toBe('payments');
    const multi = await postForm(h, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion('fraudbot', key, h.clock.now()),
      subject_token_type: JWT_TYPE,
      scope: 'transactions:read',
      resource: ['https://a.test/', 'https://b.test/'],
    });
    expect(decodeJwt(multi.json().access_token).aud).toEqual(['https://a.test/', 'https://b.test/']);
  });

  it('answers an oversized or unparsable body in OAuth shape', async () => {
    h = await harness();
    const big = await postForm(h, '/oauth2/token', { grant_type: TOKEN_EXCHANGE, subject_token: 'x'.repeat(70_000) });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({ error: 'invalid_request', error_description: 'request body too large' });
    const weird = await h.app.inject({ method: 'POST', url: '/oauth2/token', headers: { 'content-type': 'text/plain' }, payload: 'grant_type=x' });
    expect(weird.statusCode).toBe(400);
    expect(weird.json()).toEqual({ error: 'invalid_request', error_description: 'the body must be `application/x-www-form-urlencoded`' });
    const unknownType = await h.app.inject({ method: 'POST', url: '/oauth2/token', headers: { 'content-type': 'application/xml' }, payload: '<x/>' });
    expect(unknownType.statusCode).toBe(415);
    expect(unknownType.json()).toEqual({ error: 'invalid_request', error_description: 'the body must be `application/x-www-form-urlencoded`' });
    const badJson = await h.app.inject({ method: 'POST', url: '/v1/admin/keys/rotate', headers: { ...admin, 'content-type': 'application/json' }, payload: '{' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toEqual({ error: { code: 'invalid_request', message: 'malformed request' } });
  });

  it('answers 503 temporarily_unavailable when the store is unreachable', async () => {
    const { createEmbeddedStore } = await import('../../server/context/embedded.js');
    const { StoreUnavailableError } = await import('../../server/context/errors.js');
    const inner = createEmbeddedStore();
    let down = false;
    const store = new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (down && prop !== 'close') throw new StoreUnavailableError();
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    h = await harness({ store });
    const key = await registerAgent(h, 'fraudbot');
    down = true;
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the context store is unavailable; retry later' });
    down = false;
  });

  it('answers 503 temporarily_unavailable when decisions fail (fail closed)', async () => {
    h = await harness({ decideScope: async () => { throw new Error('no policy set loaded'); } });
    const key = await registerAgent(h, 'fraudbot');
    const res = await selfExchange(h, 'fraudbot', key, 'transactions:read');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'policy decisions are unavailable; retry later' });
  });
});

describe('audit', () => {
  it('reports credential uses and issued tokens by jti, never a token or an assertion', async () => {
    h = await harness();
    const key = await registerAgent(h, 'fraudbot');
    const a = await assertion('fraudbot', key, h.clock.now());
    const res = await postForm(h, '/oauth2/token', { grant_type: TOKEN_EXCHANGE, subject_token: a, subject_token_type: JWT_TYPE, scope: 'transactions:read' });
    const token = res.json().access_token as string;
    await postForm(h, '/oauth2/revoke', { token }, admin);
    const used = h.audit.find((e) => e.kind === 'credential_used');
    expect(used).toMatchObject({ agent: 'fraudbot', method: 'private_key_jwt', credential: key.thumbprint, jti: decodeJwt(a).jti });
    expect(h.audit.find((e) => e.kind === 'token_issued')).toMatchObject({ agent: 'fraudbot', jti: decodeJwt(token).jti, scope: 'transactions:read' });
    expect(h.audit.find((e) => e.kind === 'token_revoked')).toMatchObject({ agent: 'fraudbot', by: 'admin' });
    const text = JSON.stringify(h.audit);
    for (const secretish of [token, a, token.split('.')[2]!, a.split('.')[2]!]) expect(text).not.toContain(secretish);
  });
});
