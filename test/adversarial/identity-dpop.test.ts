// DPoP proofs (RFC 9449) against a real listener: what a proof must get right at the token
// endpoint (method, URL, age, single use), and that a bound token is worthless on a decision
// route without a proof of its key — a stolen bound token is not as good as the agent.

import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { cleanup, policyCopy, serve, type Served } from './harness.js';
import {
  READ_TRANSACTIONS, admin, clientAuth, decide, postForm, registerAgent, type AgentKey, IDENTITY_ENV,
} from './identity-helpers.js';

let agp: Served;
let key: AgentKey;
let dpopKey: { privateKey: CryptoKey; jwk: JWK; jkt: string };

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
  key = await registerAgent(agp, 'fraudbot');
  expect((await admin(agp, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
  const pair = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  dpopKey = { privateKey: pair.privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

function proof(over: { htm?: string; htu?: string; iatS?: number; jti?: string } = {}): Promise<string> {
  return new SignJWT({ htm: over.htm ?? 'POST', htu: over.htu ?? `${agp.url}/oauth2/token`, jti: over.jti ?? randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.jwk })
    .setIssuedAt(Math.floor(Date.now() / 1000) + (over.iatS ?? 0))
    .sign(dpopKey.privateKey);
}

async function tokenWith(dpop: string | undefined) {
  return postForm(agp, '/oauth2/token', { grant_type: 'client_credentials', scope: 'transactions:read', ...(await clientAuth(agp, 'fraudbot', key)) }, dpop ? { dpop } : {});
}

describe('a DPoP proof at the token endpoint', () => {
  it('binds the token to its key', async () => {
    const res = await tokenWith(await proof());
    expect(res.status).toBe(200);
    expect(res.body['token_type']).toBe('DPoP');
    expect(decodeJwt(res.body['access_token'] as string)['cnf']).toEqual({ jkt: dpopKey.jkt });
  });

  it.each([
    ['another method', { htm: 'GET' }, 'the DPoP proof `htm` must be `POST`'],
    ['another URL', { htu: 'https://elsewhere.test/oauth2/token' }, 'the DPoP proof `htu` must be'],
    ['an old iat', { iatS: -300 }, 'the DPoP proof is older than 60s (`iat`)'],
    ['an iat in the future', { iatS: 300 }, 'the DPoP proof `iat` is more than 30s in the future'],
  ])('is refused for %s', async (_name, over, message) => {
    const res = await tokenWith(await proof(over));
    expect(res.status).toBe(400);
    expect(res.body['error']).toBe('invalid_dpop_proof');
    expect(res.body['error_description']).toContain(message);
  });

  it('is spent once', async () => {
    const p = await proof();
    expect((await tokenWith(p)).status).toBe(200);
    const replay = await tokenWith(p);
    expect(replay.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'the DPoP proof was already used (`jti`)' });
  });
});

describe('a DPoP-bound token on /v1/decide', () => {
  it('is refused without a proof of its key', async () => {
    const bound = (await tokenWith(await proof())).body['access_token'] as string;
    for (const header of [bound, `DPoP ${bound}`, `Bearer ${bound}`]) {
      const res = await decide(agp, header, READ_TRANSACTIONS);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_agent_token');
    }
    // A bearer token of the same agent still works there.
    const bearer = (await tokenWith(undefined)).body['access_token'] as string;
    expect((await decide(agp, bearer, READ_TRANSACTIONS)).status).toBe(200);
  });
});

describe('a policy', () => {
  it('can require a DPoP-bound token with the obligation `dpop: true`', async () => {
    const policies = policyCopy();
    const fraud = join(policies, 'fraud.agp');
    const text = readFileSync(fraud, 'utf8');
    const bound = text.replace('permit if risk < 40 with { ttl: 15m, scopes: [resource.type + ":read"] }', 'permit if risk < 40 with { ttl: 15m, scopes: [resource.type + ":read"], dpop: true }');
    expect(bound).not.toBe(text);
    writeFileSync(fraud, bound);
    const strict = await serve({ env: IDENTITY_ENV, policies });
    try {
      const k = await registerAgent(strict, 'fraudbot');
      expect((await admin(strict, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
      const grant = { grant_type: 'client_credentials', scope: 'transactions:read' };
      const plain = await postForm(strict, '/oauth2/token', { ...grant, ...(await clientAuth(strict, 'fraudbot', k)) });
      expect(plain.status).toBe(400);
      expect(plain.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'a policy requires a DPoP-bound token for the permitted scopes: send a `DPoP` proof' });
      const p = await new SignJWT({ htm: 'POST', htu: `${strict.url}/oauth2/token`, jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.jwk })
        .setIssuedAt()
        .sign(dpopKey.privateKey);
      const withProof = await postForm(strict, '/oauth2/token', { ...grant, ...(await clientAuth(strict, 'fraudbot', k)) }, { dpop: p });
      expect(withProof.status).toBe(200);
      expect(withProof.body['token_type']).toBe('DPoP');
    } finally {
      await strict.stop();
      cleanup(strict);
    }
  });
});
