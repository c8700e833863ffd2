// The agent's side of identity against a real `agp serve`: registering agents, keys and
// secrets through the admin API, signing client assertions, and form posts to the OAuth
// endpoints. Shared by the identity suites of test/adversarial.

import { randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import type { Served } from './harness.js';

export const PEP = 'pep-key-identity-0123456789';
export const ADMIN = 'admin-key-identity-9876543210';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export const FRAUDBOT = { owner: 'risk-team', roles: ['fraud-detector'], model: { name: 'fraudnet', version: '2.4.1' }, trust: 'verified' };

/**
 * The environment of the identity suites: keys on, and the per-address bucket of keyless
 * routes (`AGP_RATE_LIMIT_PER_SECOND`, docs/security.md) off, so that what is tested is
 * identity's own throttling and bounds, as an attacker with many addresses would meet them.
 */
export const IDENTITY_ENV = { AGP_API_KEYS: PEP, AGP_ADMIN_KEY: ADMIN, AGP_RATE_LIMIT_PER_SECOND: '0' };

export const adminHeaders = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

export interface AgentKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  thumbprint: string;
}

export async function agentKey(): Promise<AgentKey> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(pair.publicKey);
  return { privateKey: pair.privateKey, publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk) };
}

export async function admin(agp: Served, method: string, path: string, body?: unknown): Promise<Response> {
  if (body === undefined) return fetch(`${agp.url}${path}`, { method, headers: { authorization: adminHeaders.authorization } });
  return fetch(`${agp.url}${path}`, { method, headers: adminHeaders, body: JSON.stringify(body) });
}

/** Registers the agent (attributes), then a fresh key for it; returns the key. */
export async function registerAgent(agp: Served, id: string, attributes: Record<string, unknown> = FRAUDBOT): Promise<AgentKey> {
  const put = await admin(agp, 'PUT', `/v1/admin/agents/${id}`, { attributes });
  if (put.status !== 201 && put.status !== 200) throw new Error(`register ${id}: ${put.status} ${await put.text()}`);
  const key = await agentKey();
  const res = await admin(agp, 'POST', `/v1/admin/agents/${id}/credentials/keys`, key.publicJwk);
  if (res.status !== 201) throw new Error(`register key of ${id}: ${res.status} ${await res.text()}`);
  return key;
}

export async function issueSecret(agp: Served, id: string): Promise<string> {
  const res = await admin(agp, 'POST', `/v1/admin/agents/${id}/credentials/secret`);
  if (res.status !== 201) throw new Error(`secret of ${id}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { client_secret: string }).client_secret;
}

export async function assertion(
  agp: Served,
  agent: string,
  key: AgentKey,
  over: { iatS?: number; expS?: number; nbfS?: number; iss?: string } = {},
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid: key.thumbprint })
    .setIssuer(over.iss ?? agent)
    .setSubject(agent)
    .setAudience(`${agp.url}/oauth2/token`)
    .setIssuedAt(nowS + (over.iatS ?? 0))
    .setExpirationTime(nowS + (over.expS ?? 60));
  if (over.nbfS !== undefined) jwt.setNotBefore(nowS + over.nbfS);
  return jwt.sign(key.privateKey);
}

export interface FormAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export async function postForm(agp: Served, path: string, params: Record<string, string | undefined>, headers: Record<string, string> = {}): Promise<FormAnswer> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) form.append(k, v);
  const res = await fetch(`${agp.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form.toString() });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** The agent's own assertion exchanged for a token with `scope`. */
export async function selfToken(agp: Served, agent: string, key: AgentKey, scope: string, extra: Record<string, string> = {}): Promise<FormAnswer> {
  return postForm(agp, '/oauth2/token', {
    grant_type: TOKEN_EXCHANGE,
    subject_token: await assertion(agp, agent, key),
    subject_token_type: JWT_TYPE,
    scope,
    ...extra,
  });
}

/** Client authentication by assertion, as form parameters. */
export async function clientAuth(agp: Served, agent: string, key: AgentKey): Promise<Record<string, string>> {
  return { client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(agp, agent, key) };
}

export async function introspect(agp: Served, token: string): Promise<Record<string, unknown>> {
  return (await postForm(agp, '/oauth2/introspect', { token }, { authorization: `Bearer ${ADMIN}` })).body;
}

export function decide(agp: Served, token: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${agp.url}/v1/decide`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PEP}`, 'content-type': 'application/json', 'agp-agent-token': token, ...headers },
    body: JSON.stringify(body),
  });
}

export const READ_TRANSACTIONS = {
  agent: { id: 'ignored', confidence: 0.93 },
  action: 'read',
  resource: { type: 'transactions', id: 't1', sensitivity: 'internal' },
  task: { kind: 'investigation', flagged: false },
};
