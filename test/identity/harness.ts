// Test harness: an app with the identity routes over a real context store, a movable clock,
// a scripted policy that behaves like the fraud policies, and agent-side helpers (key pairs,
// client assertions, an identity provider for users).

import { randomBytes, randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { ContextStore } from '../../server/context/types.js';
import type { IdentityAuditEvent } from '../../server/identity/events.js';
import type { DecideScope } from '../../server/identity/exchange.js';
import { createIdentity } from '../../server/identity/index.js';
import type { Identity } from '../../server/identity/index.js';
import { identityRoutes } from '../../server/identity/routes.js';

export const ISSUER = 'https://agp.test';
export const TOKEN_URL = `${ISSUER}/oauth2/token`;
export const ADMIN_KEY = 'admin-key-for-tests';
export const PEP_KEY = 'pep-key-for-tests';
export const IDP = 'https://idp.test';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const ENCRYPTION_KEY = randomBytes(32).toString('base64');

export interface Clock {
  now(): number;
  advance(ms: number): void;
}

export function clock(start = Date.now()): Clock {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

/** Mimics policies/fraud: read transactions (5m); freeze needs a flagged grant (10m), else escalate. */
export function fraudPolicy(store: ContextStore, now: () => number, calls: Parameters<DecideScope>[0][] = []): DecideScope {
  return async (input) => {
    calls.push(input);
    const decision_id = `d_${randomUUID()}`;
    const agent = await store.getAgent(input.agentId);
    const roles = agent?.attributes.roles;
    const fraud = agent !== null && agent.active && Array.isArray(roles) && roles.includes('fraud-detector');
    if (!fraud) return { effect: 'deny', obligations: {}, reasons: ['no policy applies'], decision_id };
    if (input.action === 'read' && input.resource.type === 'transactions') {
      return { effect: 'permit', obligations: { ttl_s: 300 }, reasons: [], decision_id };
    }
    if (input.action === 'freeze_account' && input.resource.type === 'account') {
      const key = `${input.resource.type}:${input.resource.id}`;
      const grants = await store.listGrants(input.agentId, now());
      if (grants.some((g) => g.actions.includes('freeze_account') && g.resource === key)) {
        return { effect: 'permit', obligations: { ttl_s: 600, scopes: [`accounts:${input.resource.id}:freeze`] }, reasons: [], decision_id };
      }
      return { effect: 'escalate', obligations: { approver: 'fraud-ops', ttl_s: 600 }, reasons: ['needs approval'], decision_id };
    }
    return { effect: 'deny', obligations: {}, reasons: ['no policy applies'], decision_id };
  };
}

export interface Harness {
  app: FastifyInstance;
  store: ContextStore;
  identity: Identity;
  clock: Clock;
  audit: IdentityAuditEvent[];
  decisions: Parameters<DecideScope>[0][];
  /** A user token from the trusted identity provider. */
  userToken(sub: string, claims: Record<string, unknown>, ttlS?: number): Promise<string>;
  close(): Promise<void>;
}

export async function harness(options: { store?: ContextStore; decideScope?: DecideScope; tokenTtlS?: number; clock?: Clock; keysLockWaitMs?: number } = {}): Promise<Harness> {
  const store = options.store ?? createEmbeddedStore();
  const c = options.clock ?? clock();
  const audit: IdentityAuditEvent[] = [];
  const decisions: Parameters<DecideScope>[0][] = [];
  const identity = await createIdentity({
    store,
    issuer: ISSUER,
    encryptionKey: ENCRYPTION_KEY,
    tokenTtlS: options.tokenTtlS ?? 300,
    audit: (e) => audit.push(e),
    scryptN: 1024,
    ...(options.keysLockWaitMs !== undefined ? { keysLockWaitMs: options.keysLockWaitMs } : {}),
    now: c.now,
    timer: false,
  });
  const idp = await identityProvider();
  const app = Fastify();
  await app.register(identityRoutes, {
    store,
    keys: identity.keys,
    tokens: identity.tokens,
    credentials: identity.credentials,
    decideScope: options.decideScope ?? fraudPolicy(store, c.now, decisions),
    issuer: ISSUER,
    audit: (e) => audit.push(e),
    callerRole: (request) =>
      request.headers.authorization === `Bearer ${ADMIN_KEY}` ? 'admin' : request.headers.authorization === `Bearer ${PEP_KEY}` ? 'resource_server' : null,
    scopeMap: { resourceTypes: { accounts: 'account' }, actions: { 'accounts:freeze': 'freeze_account' } },
    trustedIssuers: [{ issuer: IDP, jwks: idp.jwks }],
    audiences: ['payments'],
    now: c.now,
  });
  await app.ready();
  return {
    app,
    store,
    identity,
    clock: c,
    audit,
    decisions,
    userToken: (sub, claims, ttlS) => idp.userToken(sub, claims, c.now(), ttlS),
    async close() {
      identity.close();
      await app.close();
    },
  };
}

// ---- agent side

export interface AgentKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  thumbprint: string;
}

export async function agentKey(alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<AgentKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(pair.publicKey);
  return { privateKey: pair.privateKey, publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk) };
}

export async function assertion(
  agent: string,
  key: AgentKey,
  nowMs: number,
  over: { aud?: string; expS?: number; jti?: string; iss?: string; alg?: string } = {},
): Promise<string> {
  const nowS = Math.floor(nowMs / 1000);
  return new SignJWT({ jti: over.jti ?? randomUUID() })
    .setProtectedHeader({ alg: over.alg ?? 'ES256', kid: key.thumbprint })
    .setIssuer(over.iss ?? agent)
    .setSubject(agent)
    .setAudience(over.aud ?? TOKEN_URL)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + (over.expS ?? 60))
    .sign(key.privateKey);
}

export async function registerAgent(h: Harness, id: string, attributes: Record<string, unknown> = { roles: ['fraud-detector'] }): Promise<AgentKey> {
  await h.store.putAgent(id, attributes as never, h.clock.now());
  const key = await agentKey();
  const res = await h.app.inject({
    method: 'POST',
    url: `/v1/admin/agents/${id}/credentials/keys`,
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
    payload: key.publicJwk,
  });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return key;
}

export function form(params: Record<string, string | string[] | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  }
  return p.toString();
}

export function postForm(h: Harness, url: string, params: Record<string, string | string[] | undefined>, headers: Record<string, string> = {}) {
  return h.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    payload: form(params),
  });
}

/** Exchanges the agent's own assertion for a token with `scope`. */
export async function selfExchange(h: Harness, agent: string, key: AgentKey, scope: string, extra: Record<string, string> = {}) {
  return postForm(h, '/oauth2/token', {
    grant_type: TOKEN_EXCHANGE,
    subject_token: await assertion(agent, key, h.clock.now()),
    subject_token_type: JWT_TYPE,
    scope,
    ...extra,
  });
}

export async function verifyWithPublishedJwks(h: Harness, token: string, audience = ISSUER): Promise<JWTPayload> {
  const jwks = (await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: JWK[] };
  const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: jwks.keys }), {
    issuer: ISSUER,
    audience,
    currentDate: new Date(h.clock.now()),
    typ: 'at+jwt',
  });
  return payload;
}

// ---- a user's identity provider

interface Idp {
  jwks: { keys: JWK[] };
  userToken(sub: string, claims: Record<string, unknown>, nowMs: number, ttlS?: number): Promise<string>;
}

async function identityProvider(): Promise<Idp> {
  const pair = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'ES256' };
  return {
    jwks: { keys: [jwk] },
    userToken: (sub, claims, nowMs, ttlS = 600) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
        .setIssuer(IDP)
        .setSubject(sub)
        .setAudience(ISSUER)
        .setIssuedAt(Math.floor(nowMs / 1000))
        .setExpirationTime(Math.floor(nowMs / 1000) + ttlS)
        .sign(pair.privateKey),
  };
}
