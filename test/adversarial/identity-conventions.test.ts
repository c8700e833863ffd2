// The OAuth conventions callers rely on, against a real listener: complete RFC 8414
// metadata, 405 for other methods on the OAuth endpoints, the Basic challenge only for
// Basic, introspection by a resource server's PEP key, and 403 (not 401) for a PEP key on
// the identity admin routes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, httpRequest, rawRequest, serve, type Served } from './harness.js';
import {
  PEP, admin, postForm, registerAgent, selfToken, IDENTITY_ENV,
} from './identity-helpers.js';

let agp: Served;

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

describe('RFC 8414 metadata', () => {
  it('names the signing algorithms wherever private_key_jwt is listed, DPoP\'s too, and no empty scope list', async () => {
    const meta = (await (await fetch(`${agp.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    for (const endpoint of ['token', 'introspection', 'revocation']) {
      expect(meta[`${endpoint}_endpoint_auth_methods_supported`]).toContain('private_key_jwt');
      expect(meta[`${endpoint}_endpoint_auth_signing_alg_values_supported`]).toEqual(['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA']);
    }
    expect(meta['dpop_signing_alg_values_supported']).toEqual(['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA']);
    expect(meta).not.toHaveProperty('scopes_supported');
  });
});

describe('the OAuth endpoints', () => {
  it.each(['/oauth2/token', '/v1/token', '/oauth2/introspect', '/oauth2/revoke'])('answer GET %s with 405 and Allow: POST', async (path) => {
    const res = await rawRequest(agp.port, httpRequest('GET', path, { connection: 'close' }));
    expect(res.status).toBe(405);
    expect(res.headers['allow']).toBe('POST');
    expect(res.body).toContain('"error":"invalid_request"');
  });

  it('send the Basic challenge on a 401 only to a client that tried Basic', async () => {
    const grant = { grant_type: 'client_credentials', scope: 'transactions:read' };
    const viaPost = await postForm(agp, '/oauth2/token', { ...grant, client_id: 'nobody', client_secret: 'x' });
    expect(viaPost.status).toBe(401);
    expect(viaPost.headers.get('www-authenticate')).toBeNull();
    const none = await postForm(agp, '/oauth2/token', grant);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBeNull();
    const viaBasic = await postForm(agp, '/oauth2/token', grant, { authorization: `Basic ${Buffer.from('nobody:x').toString('base64')}` });
    expect(viaBasic.status).toBe(401);
    expect(viaBasic.headers.get('www-authenticate')).toMatch(/^Basic realm="agp"/);
  });
});

describe('a resource server', () => {
  it('introspects any agent token with its PEP key, but may not revoke with it', async () => {
    const key = await registerAgent(agp, 'fraudbot');
    expect((await admin(agp, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
    const token = (await selfToken(agp, 'fraudbot', key, 'transactions:read')).body['access_token'] as string;
    const seen = await postForm(agp, '/oauth2/introspect', { token }, { authorization: `Bearer ${PEP}` });
    expect(seen.status).toBe(200);
    expect(seen.body).toMatchObject({ active: true, sub: 'fraudbot', scope: 'transactions:read' });
    const wrongKey = await postForm(agp, '/oauth2/introspect', { token }, { authorization: `Bearer ${PEP}x` });
    expect(wrongKey.status).toBe(401);
    const revoke = await postForm(agp, '/oauth2/revoke', { token }, { authorization: `Bearer ${PEP}` });
    expect(revoke.status).toBe(400);
    expect(revoke.body).toEqual({ error: 'unauthorized_client', error_description: 'a PEP key may introspect tokens, not revoke them' });
  });
});

describe('the identity admin routes', () => {
  it.each([
    ['POST', '/v1/admin/keys/rotate'],
    ['GET', '/v1/admin/agents/fraudbot/credentials/keys'],
    ['POST', '/v1/admin/agents/fraudbot/credentials/secret'],
    ['GET', '/v1/admin/agents/fraudbot/credentials/settings'],
  ])('answer a PEP key on %s %s with 403, a wrong key with 401', async (method, path) => {
    const pep = await fetch(`${agp.url}${path}`, { method, headers: { authorization: `Bearer ${PEP}` } });
    expect(pep.status).toBe(403);
    expect(((await pep.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    const wrong = await fetch(`${agp.url}${path}`, { method, headers: { authorization: `Bearer ${PEP}x` } });
    expect(wrong.status).toBe(401);
  });
});
