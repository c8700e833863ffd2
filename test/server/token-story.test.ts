// The fraud story with tokens, end to end through the real server: `start()` over the
// example policies (with their scopes.json), the embedded store, a real listening port and
// plain HTTP. The admin registers the agent and the resources; the agent proves itself
// with a signed assertion (or a client secret) and exchanges it for policy-narrowed
// tokens; a person's grant turns "approval required" into a token for one account; the
// token stands for the agent on /v1/decide until it is revoked.

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type ServerConfig } from '../../server/config.js';
import { parseScopeConfig } from '../../server/identity/scope-config.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import { start, tokenDecideScope, type RunningServer } from '../../server/main.js';

const PEP = 'pep-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const FRAUDBOT = {
  owner: 'risk-team',
  roles: ['fraud-detector'],
  model: { name: 'fraudnet', version: '2.4.1' },
  trust: 'verified',
};
const INVESTIGATION = JSON.stringify({ kind: 'investigation', flagged: true });

function config(over: Partial<ServerConfig> = {}): ServerConfig {
  const r = loadConfig({}, {});
  if (!r.ok) throw new Error(r.errors.join('; '));
  return { ...r.config, policies: 'policies', port: 0, audit: 'none', logLevel: 'silent', watch: false, apiKeys: [PEP], adminKey: ADMIN, ...over };
}

interface AgentKey {
  privateKey: CryptoKey;
  jwk: JWK;
  kid: string;
}

/** A running server with helpers that speak plain HTTP to it, as curl would. */
class Story {
  constructor(readonly s: RunningServer) {}

  get issuer(): string {
    return this.s.identity.tokens.issuer;
  }

  async call(method: string, path: string, options: { key?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (options.key !== undefined) headers['authorization'] = `Bearer ${options.key}`;
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.s.url}${path}`, { method, headers, ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  async form(path: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params).toString() });
    return { status: res.status, body: await res.json() };
  }

  async registerAgent(id: string, attributes: Record<string, unknown>): Promise<AgentKey> {
    const put = await this.call('PUT', `/v1/admin/agents/${id}`, { key: ADMIN, json: { attributes } });
    expect(put.status).toBe(201);
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    const reg = await this.call('POST', `/v1/admin/agents/${id}/credentials/keys`, { key: ADMIN, json: { ...jwk, kid, alg: 'ES256', use: 'sig' } });
    expect(reg.status).toBe(201);
    expect(reg.body.kid).toBe(kid);
    return { privateKey: pair.privateKey, jwk, kid };
  }

  /** RFC 7523 client assertion: iss = sub = the agent, aud = the token endpoint, fresh jti. */
  assertion(agent: string, key: AgentKey): Promise<string> {
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(agent)
      .setSubject(agent)
      .setAudience(`${this.issuer}/oauth2/token`)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(key.privateKey);
  }

  async exchange(agent: string, key: AgentKey, scope: string, extra: Record<string, string> = {}) {
    return this.form('/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await this.assertion(agent, key),
      subject_token_type: JWT_TYPE,
      scope,
      ...extra,
    });
  }

  decideWithToken(token: string, body: unknown) {
    return this.call('POST', '/v1/decide', { key: PEP, json: body, headers: { 'agp-agent-token': token } });
  }
}

const FREEZE_991 = {
  agent: { id: 'not-the-token-agent', confidence: 0.93 },
  action: 'freeze_account',
  resource: { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' },
  task: { kind: 'investigation', flagged: true },
};

describe('the fraud story with tokens, through the real server', () => {
  let story: Story;
  let dir: string;
  let offset = 0;
  let fraudbot: AgentKey;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agp-token-story-'));
    const s = await start(config({ audit: 'file', auditFile: join(dir, 'audit.jsonl') }), {
      env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64') },
      // Decision time (grant expiry, behaviour windows) can be moved ahead; token times stay real.
      clock: () => Date.now() + offset,
    });
    story = new Story(s);
  });

  afterAll(async () => {
    await story?.s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1. the admin registers the agent, the resources and the agent\'s public key', async () => {
    fraudbot = await story.registerAgent('fraudbot-1', FRAUDBOT);
    const tx = await story.call('PUT', '/v1/admin/resources/transactions/*', { key: ADMIN, json: { attributes: { owner: 'payments', sensitivity: 'internal', tags: ['finance'] } } });
    expect(tx.status).toBe(201);
    const acct = await story.call('PUT', '/v1/admin/resources/account/991', { key: ADMIN, json: { attributes: { owner: 'payments', sensitivity: 'confidential', tags: ['finance', 'pii'] } } });
    expect(acct.status).toBe(201);
    expect((await story.call('GET', '/v1/admin/resources', { key: ADMIN })).body.resources.map((r: { type: string; id: string }) => `${r.type}:${r.id}`)).toEqual(['account:991', 'transactions:*']);
  });

  it('2. the agent exchanges its assertion for a 5-minute transactions:read token that verifies against the JWKS', async () => {
    const r = await story.exchange('fraudbot-1', fraudbot, 'transactions:read');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', scope: 'transactions:read', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    // fraud_read says 15m; AGP_TOKEN_TTL (default 300 s) caps it.
    expect(r.body.expires_in).toBeGreaterThan(0);
    expect(r.body.expires_in).toBeLessThanOrEqual(300);
    const jwks = createRemoteJWKSet(new URL(`${story.s.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(r.body.access_token, jwks, { issuer: story.issuer, audience: story.issuer, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'fraudbot-1', agp_agent: 'fraudbot-1', client_id: 'fraudbot-1', scope: 'transactions:read' });
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
  });

  it('3. an assertion is single-use: replaying it is refused', async () => {
    const assertion = await story.assertion('fraudbot-1', fraudbot);
    const params = { grant_type: TOKEN_EXCHANGE, subject_token: assertion, subject_token_type: JWT_TYPE, scope: 'transactions:read' };
    expect((await story.form('/oauth2/token', params)).status).toBe(200);
    const again = await story.form('/oauth2/token', params);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_request');
  });

  it('4. freezing account 991 outside a flagged task is not permitted; inside one it needs fraud-ops', async () => {
    const unflagged = await story.exchange('fraudbot-1', fraudbot, 'accounts:991:freeze');
    expect(unflagged.status).toBe(400);
    expect(unflagged.body.error).toBe('invalid_scope');
    expect(unflagged.body.error_description).toBe('no requested scope is permitted: accounts:991:freeze (no policy applies)');

    const flagged = await story.exchange('fraudbot-1', fraudbot, 'accounts:991:freeze', { task: INVESTIGATION });
    expect(flagged.status).toBe(400);
    expect(flagged.body).toMatchObject({ error: 'invalid_scope', error_description: 'approval required' });
    expect(flagged.body.access_token).toBeUndefined();
    expect(flagged.body.agp_approval).toEqual([{ scope: 'accounts:991:freeze', approver: 'fraud-ops', decision_id: expect.stringMatching(/^[0-9A-Z]{26}$/), reasons: expect.any(Array) }]);
  });

  it('5. the agent cannot talk the sensitivity down: resource attributes come from the registry only', async () => {
    // `task` is the caller's, but it cannot carry resource attributes (unknown task
    // attributes are dropped) nor claim a delegating user.
    const r = await story.exchange('fraudbot-1', fraudbot, 'accounts:991:freeze', { task: JSON.stringify({ kind: 'investigation', flagged: true, sensitivity: 'public', on_behalf_of: 'ceo' }) });
    expect(r.body).toMatchObject({ error: 'invalid_scope', error_description: 'approval required' });
    const bad = await story.exchange('fraudbot-1', fraudbot, 'transactions:read', { task: '["not", "an", "object"]' });
    expect(bad.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('`task` must be a JSON object') });
  });

  it('6. a person approves with a grant; the same request now yields a token for exactly that account, for at most 10 minutes', async () => {
    const grant = await story.call('POST', '/v1/admin/agents/fraudbot-1/grants', {
      key: ADMIN,
      json: { actions: ['freeze_account'], resource: 'account:991', expires_in_s: 600, reason: 'case 4711', approved_by: 'ops-alice' },
    });
    expect(grant.status).toBe(201);
    const r = await story.exchange('fraudbot-1', fraudbot, 'accounts:991:freeze', { task: INVESTIGATION });
    expect(r.status).toBe(200);
    expect(r.body.scope).toBe('accounts:991:freeze');
    expect(r.body.expires_in).toBeLessThanOrEqual(600);
    const claims = decodeJwt(r.body.access_token);
    expect(claims.scope).toBe('accounts:991:freeze');
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);

    // The grant names account 991 only.
    const other = await story.exchange('fraudbot-1', fraudbot, 'accounts:992:freeze', { task: INVESTIGATION });
    expect(other.status).toBe(400);
    // account 992 is not registered and there is no account:* default: nothing to decide with.
    expect(other.body).toEqual({
      error: 'invalid_scope',
      error_description: 'scope `accounts:992:freeze` cannot be decided: resource.sensitivity: required attribute is missing; register the resource: PUT /v1/admin/resources/account/992 (or account/*)',
    });

    // 7. the token stands for the agent on /v1/decide: the freeze on 991 is permitted.
    const token = r.body.access_token as string;
    const d = await story.decideWithToken(token, FREEZE_991);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ decision: 'permit', policies: ['fraud_freeze'], obligations: { ttl_s: 600, scopes: ['accounts:991:freeze'] } });

    // ... and only that: the token's scope narrows what /v1/decide permits, whatever the
    // policies and the grant would allow. Account 992 is outside it...
    const elsewhere = await story.decideWithToken(token, { ...FREEZE_991, resource: { ...FREEZE_991.resource, id: '992' } });
    expect(elsewhere.body).toMatchObject({ decision: 'deny', allowed: false, policies: [], reasons: ['the agent token does not cover this request'] });
    // ... and a transactions:read token cannot freeze 991 even while the grant is active.
    const reader = await story.exchange('fraudbot-1', fraudbot, 'transactions:read');
    expect(reader.status).toBe(200);
    const viaReader = await story.decideWithToken(reader.body.access_token as string, FREEZE_991);
    expect(viaReader.body).toMatchObject({ decision: 'deny', reasons: ['the agent token does not cover this request'] });

    // 8. revoked: every later use is refused with 401 invalid_agent_token.
    const rev = await story.form('/oauth2/revoke', { token }, { authorization: `Bearer ${ADMIN}` });
    expect(rev.status).toBe(200);
    const after = await story.decideWithToken(token, FREEZE_991);
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('invalid_agent_token');
    const intro = await story.form('/oauth2/introspect', { token }, { authorization: `Bearer ${ADMIN}` });
    expect(intro.body).toEqual({ active: false });
  });

  it('7. an agent on fraudnet 1.9 is refused: model version retired', async () => {
    const old = await story.registerAgent('fraudbot-legacy', { ...FRAUDBOT, model: { name: 'fraudnet', version: '1.9.0' } });
    const r = await story.exchange('fraudbot-legacy', old, 'transactions:read');
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_scope');
    // fraud_read's own deny (old_model adds 25 to the risk) and the fleet-wide forbid.
    expect(r.body.error_description).toMatch(/^no requested scope is permitted: transactions:read \(.*model version retired.*\)$/);
  });

  it('8. a client secret works too: client_credentials, rotation with overlap, revocation', async () => {
    const issued = await story.call('POST', '/v1/admin/agents/fraudbot-1/credentials/secret', { key: ADMIN });
    expect(issued.status).toBe(201);
    const basic = (secret: string) => ({ authorization: `Basic ${Buffer.from(`fraudbot-1:${secret}`).toString('base64')}` });
    const cc = await story.form('/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read' }, basic(issued.body.client_secret));
    expect(cc.status).toBe(200);
    expect(cc.body.scope).toBe('transactions:read');
    const rotated = await story.call('POST', '/v1/admin/agents/fraudbot-1/credentials/secret', { key: ADMIN, json: { overlap_s: 600 } });
    expect(rotated.status).toBe(201);
    for (const secret of [issued.body.client_secret, rotated.body.client_secret]) {
      expect((await story.form('/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read' }, basic(secret))).status).toBe(200);
    }
    expect((await story.call('DELETE', '/v1/admin/agents/fraudbot-1/credentials/secret', { key: ADMIN })).status).toBe(204);
    const refused = await story.form('/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read' }, basic(rotated.body.client_secret));
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
  });

  it('9. after a forced signing-key rotation, old tokens still verify and new ones use the new key', async () => {
    const before = await story.exchange('fraudbot-1', fraudbot, 'transactions:read');
    const rot = await story.call('POST', '/v1/admin/keys/rotate', { key: ADMIN });
    expect(rot.status).toBe(200);
    const after = await story.exchange('fraudbot-1', fraudbot, 'transactions:read');
    const jwks = createRemoteJWKSet(new URL(`${story.s.url}/.well-known/jwks.json`));
    const a = await jwtVerify(before.body.access_token, jwks, { issuer: story.issuer, audience: story.issuer });
    const b = await jwtVerify(after.body.access_token, jwks, { issuer: story.issuer, audience: story.issuer });
    expect(b.protectedHeader.kid).toBe(rot.body.kid);
    expect(a.protectedHeader.kid).not.toBe(b.protectedHeader.kid);
  });

  it('10. AuthZEN resource search returns the registered resources the agent may act on', async () => {
    await story.call('PUT', '/v1/admin/resources/account/992', { key: ADMIN, json: { attributes: { owner: 'payments', sensitivity: 'restricted' } } });
    await story.call('PUT', '/v1/admin/resources/account/993', { key: ADMIN, json: { attributes: { owner: 'payments', sensitivity: 'internal' } } });
    await story.call('PUT', '/v1/admin/resources/account/*', { key: ADMIN, json: { attributes: { sensitivity: 'confidential' } } });
    // flag_account: permit below risk 60. 991 (confidential) 40 + impact 6 + new resource 5
    // = 51, 993 (internal) 21, 992 (restricted) 81 escalates; `account:*` is no resource.
    // A second fraud detector with no history (fraudbot-1's refusals so far count in its
    // `denials` risk factor).
    await story.registerAgent('fraudbot-2', FRAUDBOT);
    const r = await story.call('POST', '/access/v1/search/resource', {
      key: PEP,
      json: { subject: { type: 'agent', id: 'fraudbot-2', properties: { confidence: 0.95 } }, action: { name: 'flag_account' }, resource: { type: 'account' }, context: { kind: 'investigation', flagged: false } },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ results: [{ type: 'account', id: '991' }, { type: 'account', id: '993' }] });
    // The caller cannot lower a registered resource's sensitivity: the registry's value wins.
    const lie = await story.call('POST', '/access/v1/search/resource', {
      key: PEP,
      json: { subject: { type: 'agent', id: 'fraudbot-2', properties: { confidence: 0.95 } }, action: { name: 'flag_account' }, resource: { type: 'account', properties: { sensitivity: 'public' } }, context: { kind: 'investigation', flagged: false } },
    });
    expect(lie.body.results).toEqual([{ type: 'account', id: '991' }, { type: 'account', id: '993' }]);
  });

  it('11. once the grant has expired, the freeze needs approval again', async () => {
    // Last in the story: moving decision time ahead also moves the behaviour windows.
    offset += 11 * 60_000;
    const r = await story.exchange('fraudbot-1', fraudbot, 'accounts:991:freeze', { task: INVESTIGATION });
    expect(r.body).toMatchObject({ error: 'invalid_scope', error_description: 'approval required' });
  });

  it('12. the audit log holds the registry changes and the token events, never a token', async () => {
    // Flush by closing happens at the end; the file sink writes as it goes.
    await new Promise((r) => setTimeout(r, 200));
    const text = readFileSync(join(dir, 'audit.jsonl'), 'utf8');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; operation?: string; target?: string });
    const ops = lines.filter((l) => l.kind === 'admin').map((l) => `${l.operation} ${l.target ?? ''}`.trim());
    expect(ops).toEqual(expect.arrayContaining(['resource.create transactions:*', 'resource.create account:991', 'grant.create fraudbot-1', 'identity.token_issued fraudbot-1', 'identity.token_refused fraudbot-1', 'identity.token_revoked fraudbot-1']));
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\./);
  });
});

describe('token lifetimes follow the ttl obligations', () => {
  it('with AGP_TOKEN_TTL=1h, transactions:read lives 15 minutes (fraud_read) and the approved freeze 10 (fraud_freeze)', async () => {
    const s = await start(config(), { env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 5).toString('base64'), AGP_TOKEN_TTL: '1h' } });
    const story = new Story(s);
    try {
      const key = await story.registerAgent('fraudbot-1', FRAUDBOT);
      await story.call('PUT', '/v1/admin/resources/transactions/*', { key: ADMIN, json: { attributes: { sensitivity: 'internal' } } });
      await story.call('PUT', '/v1/admin/resources/account/*', { key: ADMIN, json: { attributes: { sensitivity: 'confidential' } } });
      expect((await story.exchange('fraudbot-1', key, 'transactions:read')).body.expires_in).toBe(900);
      await story.call('POST', '/v1/admin/agents/fraudbot-1/grants', { key: ADMIN, json: { actions: ['freeze_account'], resource: 'account:7', expires_in_s: 600, reason: 'case 1', approved_by: 'ops-bob' } });
      // account 7 has no record of its own: the account:* default describes it.
      const both = await story.exchange('fraudbot-1', key, 'transactions:read accounts:7:freeze', { task: INVESTIGATION });
      expect(both.status).toBe(200);
      expect(both.body.scope).toBe('transactions:read accounts:7:freeze');
      expect(both.body.expires_in).toBe(600);
    } finally {
      await s.close();
    }
  });
});

describe('acting for a user signed in at a trusted identity provider (AGP_TRUSTED_ISSUERS)', () => {
  const IDP = 'https://idp.example.test';
  const ACCESS_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

  /** A company IdP: a signing key and a JWKS endpoint on a local port. */
  async function identityProvider() {
    const pair = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
    let fetches = 0;
    const server = createServer((req, res) => {
      fetches++;
      if (req.url !== '/jwks') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return {
      jwksUri: `http://127.0.0.1:${port}/jwks`,
      fetches: () => fetches,
      stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
      userToken: async (sub: string, audience: string, claims: Record<string, unknown>, key = pair.privateKey, kid = 'idp-1') =>
        new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(IDP).setSubject(sub).setAudience(audience).setIssuedAt().setExpirationTime('10m').sign(key),
    };
  }

  it('exchanges the user\'s token for one that names the user and the agent, with keys from the IdP\'s jwks_uri, and fails closed without them', async () => {
    const idp = await identityProvider();
    const trusted = JSON.stringify([{ issuer: IDP, jwks_uri: idp.jwksUri }]);
    const s = await start(config(), { env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 6).toString('base64'), AGP_TRUSTED_ISSUERS: trusted } });
    const story = new Story(s);
    try {
      const key = await story.registerAgent('fraudbot-1', FRAUDBOT);
      await story.call('PUT', '/v1/admin/resources/transactions/*', { key: ADMIN, json: { attributes: { owner: 'payments', sensitivity: 'internal' } } });
      const actAs = async (userToken: string) =>
        story.form('/oauth2/token', {
          grant_type: TOKEN_EXCHANGE,
          subject_token: userToken,
          subject_token_type: ACCESS_TYPE,
          actor_token: await story.assertion('fraudbot-1', key),
          actor_token_type: JWT_TYPE,
          scope: 'transactions:read',
        });

      const alice = await idp.userToken('alice', story.issuer, { may_act: { sub: 'fraudbot-1' } });
      const ok = await actAs(alice);
      expect(ok.status).toBe(200);
      expect(decodeJwt(ok.body.access_token)).toMatchObject({ sub: 'alice', act: { sub: 'fraudbot-1' }, agp_agent: 'fraudbot-1', scope: 'transactions:read' });
      expect(idp.fetches()).toBeGreaterThan(0);

      // may_act names another agent: refused.
      const forOther = await actAs(await idp.userToken('bob', story.issuer, { may_act: { sub: 'otherbot' } }));
      expect(forOther).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      // Signed by a key the IdP does not publish: refused.
      const stranger = await generateKeyPair('ES256');
      const forged = await actAs(await idp.userToken('alice', story.issuer, { may_act: { sub: 'fraudbot-1' } }, stranger.privateKey, 'idp-2'));
      expect(forged).toMatchObject({ status: 400, body: { error: 'invalid_request' } });

      // The IdP is down: a token whose key AGP has not seen is refused, and AGP keeps serving.
      await idp.stop();
      const rotated = await generateKeyPair('ES256');
      const unseen = await actAs(await idp.userToken('alice', story.issuer, { may_act: { sub: 'fraudbot-1' } }, rotated.privateKey, 'idp-9'));
      expect(unseen).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect((await story.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await s.close();
      await idp.stop().catch(() => {});
    }
  });

  it('refuses to start on a trusted-issuer list it cannot use, naming the variable and the entry', async () => {
    const env = (value: string) => ({ env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 6).toString('base64'), AGP_TRUSTED_ISSUERS: value } });
    await expect(start(config(), env('[{"issuer": "https://idp.example.test", "jwks_uri": "http://idp.example.test/jwks"}]'))).rejects.toThrow(
      /AGP_TRUSTED_ISSUERS: \[0\] https:\/\/idp\.example\.test: jwks_uri `http:\/\/idp\.example\.test\/jwks` must be https/,
    );
    await expect(start(config(), env('/nonexistent/trusted.json'))).rejects.toThrow(/AGP_TRUSTED_ISSUERS: cannot read `\/nonexistent\/trusted.json`: ENOENT/);
  });
});

describe('scopes.json', () => {
  it('ships the mapping the example policies need', () => {
    const r = parseScopeConfig(readFileSync('policies/scopes.json', 'utf8'));
    expect(r.errors).toEqual([]);
    expect(r.value?.map.resourceTypes?.['accounts']).toBe('account');
    expect(r.value?.map.actions?.['accounts:freeze']).toBe('freeze_account');
    expect(r.value?.defaults.task).toEqual({ kind: 'token_exchange', flagged: false });
  });

  it('names what is wrong in a broken file', () => {
    expect(parseScopeConfig('{"actions": {"a:b": 3}, "resourceType": {}}', 'p/scopes.json').errors).toEqual([
      'p/scopes.json: `actions.a:b`: invalid input: expected string, received number',
      'p/scopes.json: unrecognized key: "resourcetype" `resourceType`',
    ]);
    expect(parseScopeConfig('{', 'p/scopes.json').errors[0]).toMatch(/^p\/scopes\.json: not valid JSON/);
  });
});

describe('tokenDecideScope: what a scope decision is made of', () => {
  it('takes the resource from the registry, the task from defaults and the caller, and on_behalf_of/delegation from AGP only', async () => {
    const store = createEmbeddedStore();
    try {
      await store.kvSet('resource', 'account:*', JSON.stringify({ attributes: { sensitivity: 'confidential' }, createdAt: 0, updatedAt: 0 }));
      const seen: unknown[] = [];
      const decider = {
        decide: (raw: unknown) => {
          seen.push(raw);
          return { ok: true as const, decision: { effect: 'permit' as const, allowed: true, risk: 0, factors: {}, policies: [], reasons: [], obligations: { ttl_s: 60 }, revision: 'r', decision_id: 'd1' } };
        },
      };
      const scopes = parseScopeConfig(readFileSync('policies/scopes.json', 'utf8')).value!;
      const decide = tokenDecideScope({ decider, store, scopes: () => scopes });
      const r = await decide({
        agentId: 'fraudbot-1',
        action: 'freeze_account',
        resource: { type: 'account', id: '991' },
        onBehalfOf: 'alice',
        delegation: ['planner'],
        task: { flagged: true, on_behalf_of: 'ceo', delegation: [], ticket: 'T-1' },
      });
      expect(r).toEqual({ effect: 'permit', obligations: { ttl_s: 60 }, reasons: [], decision_id: 'd1' });
      expect(seen[0]).toEqual({
        agent: { confidence: 0.9, id: 'fraudbot-1' },
        action: 'freeze_account',
        resource: { sensitivity: 'confidential', type: 'account', id: '991' },
        task: { kind: 'token_exchange', flagged: true, ticket: 'T-1', on_behalf_of: 'alice', delegation: ['planner'] },
      });
      // Without a delegation the caller's claims of one are removed.
      await decide({ agentId: 'fraudbot-1', action: 'read', resource: { type: 'account', id: '1' }, task: { on_behalf_of: 'ceo', delegation: [] } });
      expect((seen[1] as { task: object }).task).toEqual({ kind: 'token_exchange', flagged: false });
    } finally {
      await store.close();
    }
  });

  it('names the missing attribute and where to supply it; a decider that cannot decide throws (503)', async () => {
    const store = createEmbeddedStore();
    try {
      const answer = (path: string, status: 400 | 503 = 400) => ({
        decide: () => ({ ok: false as const, status, error: { code: status === 400 ? ('invalid_request' as const) : ('policies_unavailable' as const), message: `${path}: required attribute is missing`, issues: [{ path, message: 'required attribute is missing' }] } }),
      });
      const empty = () => ({ map: {}, defaults: { agent: {}, task: {} } });
      const q = { agentId: 'a', action: 'read', resource: { type: 'ledger', id: '7' } };
      expect((await tokenDecideScope({ decider: answer('resource.sensitivity'), store, scopes: empty })(q)).invalid).toBe(
        'resource.sensitivity: required attribute is missing; register the resource: PUT /v1/admin/resources/ledger/7 (or ledger/*)',
      );
      expect((await tokenDecideScope({ decider: answer('task.kind'), store, scopes: empty })(q)).invalid).toMatch(/^task\.kind: required attribute is missing; send it in the `task` parameter/);
      expect((await tokenDecideScope({ decider: answer('agent.confidence'), store, scopes: empty })(q)).invalid).toMatch(/^agent\.confidence: .*PUT \/v1\/admin\/agents\/a/);
      await expect(tokenDecideScope({ decider: answer('', 503), store, scopes: empty })(q)).rejects.toThrow();
    } finally {
      await store.close();
    }
  });
});

describe('scopes.json with the policies', () => {
  function policyCopy(): string {
    const d = mkdtempSync(join(tmpdir(), 'agp-scopes-'));
    cpSync('policies', d, { recursive: true, filter: (src) => !src.endsWith('.test.agp') });
    return d;
  }

  it('a broken file stops the start, naming the member', async () => {
    const d = policyCopy();
    try {
      writeFileSync(join(d, 'scopes.json'), '{"actions": {"accounts:freeze": 1}}');
      await expect(start(config({ policies: d }), { env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 4).toString('base64') } })).rejects.toThrow(/scopes\.json: `actions\.accounts:freeze`: invalid input: expected string/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('is re-read at every policy reload; a broken one keeps the last good map', async () => {
    const d = policyCopy();
    const s = await start(config({ policies: d }), { env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 3).toString('base64') } });
    const story = new Story(s);
    try {
      const key = await story.registerAgent('fraudbot-1', FRAUDBOT);
      await story.call('PUT', '/v1/admin/resources/ledger/*', { key: ADMIN, json: { attributes: { sensitivity: 'internal' } } });
      // `ledger:read` means nothing to the policies until the map says it is `transactions`.
      expect((await story.exchange('fraudbot-1', key, 'ledger:read')).body.error).toBe('invalid_scope');
      const good = JSON.parse(readFileSync(join(d, 'scopes.json'), 'utf8')) as { resourceTypes: Record<string, string> };
      good.resourceTypes['ledger'] = 'transactions';
      writeFileSync(join(d, 'scopes.json'), JSON.stringify(good));
      await story.call('PUT', '/v1/admin/resources/transactions/*', { key: ADMIN, json: { attributes: { sensitivity: 'internal' } } });
      expect((await story.call('POST', '/v1/admin/policies/reload', { key: ADMIN })).status).toBe(200);
      // The file is re-read just after the reload answers: wait for it (at most 5 s).
      let mapped = await story.exchange('fraudbot-1', key, 'ledger:read');
      for (let i = 0; i < 50 && mapped.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        mapped = await story.exchange('fraudbot-1', key, 'ledger:read');
      }
      expect(mapped.status).toBe(200);
      expect(mapped.body.scope).toBe('ledger:read');
      writeFileSync(join(d, 'scopes.json'), '{ broken');
      await story.call('POST', '/v1/admin/policies/reload', { key: ADMIN });
      await new Promise((r) => setTimeout(r, 300));
      expect((await story.exchange('fraudbot-1', key, 'ledger:read')).status).toBe(200);
    } finally {
      await s.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
