// Token exchange against a real listener: an AGP token alone buys no new token, `delegate_to`
// only narrows `may_act`, revoking a token revokes every token exchanged from it (on
// introspection and on /v1/decide), a child never outlives its parent, and a scope without
// an id is decided against every registered resource it covers.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { cleanup, serve, type Served } from './harness.js';
import {
  ACCESS_TYPE, ADMIN, READ_TRANSACTIONS, TOKEN_EXCHANGE, admin, assertion, clientAuth, decide, introspect, postForm, registerAgent, selfToken, type AgentKey, IDENTITY_ENV,
} from './identity-helpers.js';

let agp: Served;
let fraudbot: AgentKey;
let planner: AgentKey;
let helper: AgentKey;

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
  fraudbot = await registerAgent(agp, 'fraudbot');
  planner = await registerAgent(agp, 'planner');
  helper = await registerAgent(agp, 'helper');
  await registerAgent(agp, 'evilbot');
  expect((await admin(agp, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

async function token(agent: string, key: AgentKey, scope = 'transactions:read', extra: Record<string, string> = {}): Promise<string> {
  const res = await selfToken(agp, agent, key, scope, extra);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body['access_token'] as string;
}

/** Exchanges `subject` again, authenticated as `agent` when a key is given. */
async function reexchange(subject: string, auth: { agent: string; key: AgentKey } | undefined, extra: Record<string, string> = {}) {
  return postForm(agp, '/oauth2/token', {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subject,
    subject_token_type: ACCESS_TYPE,
    scope: 'transactions:read',
    ...(auth ? await clientAuth(agp, auth.agent, auth.key) : {}),
    ...extra,
  });
}

describe('re-exchanging an AGP token', () => {
  it('needs the agent to authenticate: a bare token buys nothing', async () => {
    const t = await token('fraudbot', fraudbot);
    const bare = await reexchange(t, undefined);
    expect(bare.status).toBe(401);
    expect(bare.body['error']).toBe('invalid_client');
    // The same request, authenticated as the token's agent, is a narrowing exchange.
    const own = await reexchange(t, { agent: 'fraudbot', key: fraudbot });
    expect(own.status).toBe(200);
    expect(decodeJwt(own.body['access_token'] as string)).toMatchObject({ sub: 'fraudbot', agp_agent: 'fraudbot' });
  });

  it('refuses an authenticated agent that is neither the token\'s agent nor named by may_act', async () => {
    const t = await token('fraudbot', fraudbot);
    const other = await reexchange(t, { agent: 'evilbot', key: await registerAgent(agp, 'evilbot') });
    expect(other.status).toBe(400);
    expect(other.body).toEqual({ error: 'invalid_request', error_description: 'subject_token has no `may_act` claim: no agent may act for it' });
  });

  it('lets delegate_to only narrow may_act', async () => {
    const t1 = await token('planner', planner, 'transactions:read', { delegate_to: 'helper' });
    expect(decodeJwt(t1)['may_act']).toMatchObject({ sub: 'helper' });
    const rewritten = await reexchange(t1, { agent: 'planner', key: planner }, { delegate_to: 'evilbot' });
    expect(rewritten.status).toBe(400);
    expect(rewritten.body).toEqual({ error: 'invalid_request', error_description: '`delegate_to` may only narrow `may_act`: the subject token names agent `helper`' });
    // Keeping the same delegate is allowed; leaving it out drops may_act.
    const same = await reexchange(t1, { agent: 'planner', key: planner }, { delegate_to: 'helper' });
    expect(decodeJwt(same.body['access_token'] as string)['may_act']).toMatchObject({ sub: 'helper' });
    const narrowed = await reexchange(t1, { agent: 'planner', key: planner });
    expect(decodeJwt(narrowed.body['access_token'] as string)['may_act']).toBeUndefined();
    // A token that names nobody cannot be made to name someone.
    const plain = await token('planner', planner);
    const added = await reexchange(plain, { agent: 'planner', key: planner }, { delegate_to: 'evilbot' });
    expect(added.body).toEqual({ error: 'invalid_request', error_description: '`delegate_to` may only narrow `may_act`: the subject token lets no other agent act for it' });
  });
});

describe('revoking a token', () => {
  it('revokes every token exchanged from it, on introspection and on /v1/decide', async () => {
    const parent = await token('planner', planner, 'transactions:read', { delegate_to: 'helper' });
    const child = await reexchange(parent, { agent: 'planner', key: planner }, { delegate_to: 'helper' });
    expect(child.status).toBe(200);
    const childToken = child.body['access_token'] as string;
    // The delegate takes the child over: a grandchild acting for the planner.
    const grand = await reexchange(childToken, { agent: 'helper', key: helper });
    expect(grand.status).toBe(200);
    const grandToken = grand.body['access_token'] as string;
    expect(decodeJwt(grandToken)).toMatchObject({ agp_agent: 'helper', act: { sub: 'helper' }, agp_ancestors: [decodeJwt(childToken).jti, decodeJwt(parent).jti] });
    expect((await introspect(agp, grandToken))['active']).toBe(true);

    const revoked = await postForm(agp, '/oauth2/revoke', { token: parent }, { authorization: `Bearer ${ADMIN}` });
    expect(revoked.status).toBe(200);
    expect(await introspect(agp, childToken)).toEqual({ active: false });
    expect(await introspect(agp, grandToken)).toEqual({ active: false });
    const decided = await decide(agp, grandToken, READ_TRANSACTIONS);
    expect(decided.status).toBe(401);
    expect(((await decided.json()) as { error: { message: string } }).error.message).toBe('the agent token is not valid: token revoked');
    // Nor can a descendant be exchanged again.
    const again = await reexchange(childToken, { agent: 'planner', key: planner });
    expect(again.body).toEqual({ error: 'invalid_request', error_description: 'subject_token revoked: token revoked' });
  });

  it('gives a child no later expiry than its parent', async () => {
    const parent = await token('fraudbot', fraudbot);
    await new Promise((r) => setTimeout(r, 1100));
    const child = await reexchange(parent, { agent: 'fraudbot', key: fraudbot });
    expect(decodeJwt(child.body['access_token'] as string).exp).toBe(decodeJwt(parent).exp);
  });
});

describe('a scope without an id', () => {
  it('is decided against the most sensitive registered resource it covers', async () => {
    const task = JSON.stringify({ kind: 'investigation', flagged: true });
    expect((await admin(agp, 'PUT', '/v1/admin/resources/account/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
    // Only the type default is registered: the broad scope is decided against it.
    const broad = await selfToken(agp, 'fraudbot', fraudbot, 'accounts:freeze', { task });
    expect(broad.status, JSON.stringify(broad.body)).toBe(200);
    expect(await admin(agp, 'PUT', '/v1/admin/resources/account/991', { attributes: { owner: 'payments', sensitivity: 'confidential' } })).toHaveProperty('status', 201);
    const one = await selfToken(agp, 'fraudbot', fraudbot, 'accounts:991:freeze', { task });
    expect(one.status).toBe(400);
    expect(one.body['error_description']).toBe('approval required');
    // Now the broad scope covers account/991 too: it needs the same approval.
    const again = await selfToken(agp, 'fraudbot', fraudbot, 'accounts:freeze', { task });
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_scope', error_description: 'approval required', agp_approval: [{ scope: 'accounts:freeze', approver: 'fraud-ops' }] });
  });

  it('is refused as too broad past 16 registered resources of its type', async () => {
    for (let i = 0; i < 16; i++) {
      expect((await admin(agp, 'PUT', `/v1/admin/resources/transactions/t${i}`, { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
    }
    // 16 are decided one by one: all internal, all permitted.
    expect((await selfToken(agp, 'fraudbot', fraudbot, 'transactions:read')).status).toBe(200);
    for (let i = 16; i < 17; i++) {
      expect((await admin(agp, 'PUT', `/v1/admin/resources/transactions/t${i}`, { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
    }
    const res = await selfToken(agp, 'fraudbot', fraudbot, 'transactions:read');
    expect(res.status).toBe(400);
    expect(res.body['error']).toBe('invalid_scope');
    expect(res.body['error_description']).toContain('covers more than 16 registered `transactions` resources');
    expect((await selfToken(agp, 'fraudbot', fraudbot, 'transactions:t3:read')).status).toBe(200);
  });
});

describe('assertions', () => {
  it('are refused with an iat in the future beyond the skew, or before their nbf', async () => {
    const future = await postForm(agp, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion(agp, 'fraudbot', fraudbot, { iatS: 600, expS: 120 }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      scope: 'transactions:t3:read',
    });
    expect(future.body).toEqual({ error: 'invalid_request', error_description: 'subject_token rejected: the assertion `iat` is more than 30s in the future' });
    const early = await postForm(agp, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion(agp, 'fraudbot', fraudbot, { nbfS: 120, expS: 200 }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      scope: 'transactions:t3:read',
    });
    expect(early.body).toEqual({ error: 'invalid_request', error_description: 'subject_token rejected: the assertion is not valid yet (`nbf`)' });
    // Within the skew is fine.
    const skewed = await postForm(agp, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await assertion(agp, 'fraudbot', fraudbot, { iatS: 10 }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      scope: 'transactions:t3:read',
    });
    expect(skewed.status).toBe(200);
  });
});
