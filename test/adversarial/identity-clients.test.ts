// An agent's whole credential life through panva's certified clients against a real
// listener: `openid-client` and `oauth4webapi` discover the RFC 8414 metadata, exchange
// tokens with private_key_jwt, client_secret_basic and client_secret_post, introspect,
// revoke (which revokes what was exchanged from the token), and bind tokens with DPoP.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import { cleanup, serve, type Served } from './harness.js';
import {
  ACCESS_TYPE, TOKEN_EXCHANGE, admin, introspect, issueSecret, postForm, registerAgent, type AgentKey, IDENTITY_ENV,
} from './identity-helpers.js';

let agp: Served;
let key: AgentKey;
let secret: string;

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
  key = await registerAgent(agp, 'fraudbot');
  secret = await issueSecret(agp, 'fraudbot');
  expect((await admin(agp, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
  expect((await admin(agp, 'PUT', '/v1/admin/resources/account/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

async function configured(auth: client.ClientAuth): Promise<client.Configuration> {
  const config = await client.discovery(new URL(agp.url), 'fraudbot', undefined, auth, { execute: [client.allowInsecureRequests], algorithm: 'oauth2' });
  return config;
}

async function authorizationServer(): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(agp.url);
  const res = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true });
  return oauth.processDiscoveryResponse(issuer, res);
}

describe('openid-client', () => {
  it('runs the credential life: client_credentials (basic), token exchange (post), introspection, revocation', async () => {
    const basic = await configured(client.ClientSecretBasic(secret));
    const first = await client.clientCredentialsGrant(basic, { scope: 'transactions:read account:read' });
    expect(first.token_type).toBe('bearer');
    expect(first.scope).toBe('transactions:read account:read');

    const post = await configured(client.ClientSecretPost(secret));
    const narrowed = await client.genericGrantRequest(post, TOKEN_EXCHANGE, {
      subject_token: first.access_token,
      subject_token_type: ACCESS_TYPE,
      scope: 'transactions:read',
    });
    expect(narrowed.scope).toBe('transactions:read');
    expect(decodeJwt(narrowed.access_token)['agp_ancestors']).toEqual([decodeJwt(first.access_token).jti]);

    const seen = await client.tokenIntrospection(post, narrowed.access_token);
    expect(seen).toMatchObject({ active: true, sub: 'fraudbot', scope: 'transactions:read', token_type: 'Bearer' });

    await client.tokenRevocation(basic, first.access_token);
    expect(await client.tokenIntrospection(basic, narrowed.access_token)).toEqual({ active: false });
  });

  it('reports a wrong secret as invalid_client, not as a challenge, with client_secret_post', async () => {
    const post = await configured(client.ClientSecretPost('wrong'));
    const err = await client.clientCredentialsGrant(post, { scope: 'transactions:read' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(client.ResponseBodyError);
    expect((err as client.ResponseBodyError).error).toBe('invalid_client');
    // With Basic the server sends the Basic challenge, as RFC 6749 §5.2 asks.
    const basic = await configured(client.ClientSecretBasic('wrong'));
    const challenged = await client.clientCredentialsGrant(basic, { scope: 'transactions:read' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(challenged).toBeInstanceOf(client.WWWAuthenticateChallengeError);
  });
});

describe('oauth4webapi', () => {
  it('exchanges with private_key_jwt and binds the token to a DPoP key', async () => {
    const as = await authorizationServer();
    expect(as.dpop_signing_alg_values_supported).toContain('ES256');
    const c: oauth.Client = { client_id: 'fraudbot' };
    const auth = oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.thumbprint });
    const dpopKeys = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(c, dpopKeys);
    const res = await oauth.clientCredentialsGrantRequest(as, c, auth, { scope: 'transactions:read' }, { DPoP, [oauth.allowInsecureRequests]: true });
    const token = await oauth.processClientCredentialsResponse(as, c, res);
    expect(token.token_type).toBe('dpop');
    expect(decodeJwt(token.access_token)['cnf']).toEqual({ jkt: await DPoP.calculateThumbprint() });

    // Exchanged again by its agent (private_key_jwt), the child stays bound to the same key.
    const again = await oauth.genericTokenEndpointRequest(
      as,
      c,
      auth,
      TOKEN_EXCHANGE,
      { subject_token: token.access_token, subject_token_type: ACCESS_TYPE, scope: 'transactions:read' },
      { DPoP, [oauth.allowInsecureRequests]: true },
    );
    const child = await oauth.processGenericTokenEndpointResponse(as, c, again);
    expect(child.token_type).toBe('dpop');
    expect(decodeJwt(child.access_token)['cnf']).toEqual({ jkt: await DPoP.calculateThumbprint() });

    // Without the proof the child is refused; with another key too.
    const unbound = await postForm(agp, '/oauth2/token', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: token.access_token,
      subject_token_type: ACCESS_TYPE,
      scope: 'transactions:read',
      client_id: 'fraudbot',
      client_secret: secret,
    });
    expect(unbound.status).toBe(400);
    expect(unbound.body['error']).toBe('invalid_dpop_proof');
    const otherKeys = oauth.DPoP(c, await oauth.generateKeyPair('ES256'));
    const stolen = await oauth.genericTokenEndpointRequest(
      as,
      c,
      auth,
      TOKEN_EXCHANGE,
      { subject_token: token.access_token, subject_token_type: ACCESS_TYPE, scope: 'transactions:read' },
      { DPoP: otherKeys, [oauth.allowInsecureRequests]: true },
    );
    expect(stolen.status).toBe(400);

    // Introspection shows the binding (RFC 9449 §6.2).
    expect(await introspect(agp, child.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: await DPoP.calculateThumbprint() } });

    // Revoked by its agent through oauth4webapi (private_key_jwt).
    const revoked = await oauth.revocationRequest(as, c, auth, token.access_token, { [oauth.allowInsecureRequests]: true });
    await oauth.processRevocationResponse(revoked);
    expect(await introspect(agp, child.access_token)).toEqual({ active: false });
  });

  it('gets a DPoP-bound token for an agent registered for DPoP only, and is refused without a proof', async () => {
    expect((await admin(agp, 'PUT', '/v1/admin/agents/fraudbot/credentials/settings', { dpop_bound_access_tokens: true })).status).toBe(200);
    try {
      const as = await authorizationServer();
      const c: oauth.Client = { client_id: 'fraudbot' };
      const auth = oauth.ClientSecretPost(secret);
      const plain = await oauth.clientCredentialsGrantRequest(as, c, auth, { scope: 'transactions:read' }, { [oauth.allowInsecureRequests]: true });
      expect(plain.status).toBe(400);
      expect(await plain.json()).toEqual({ error: 'invalid_dpop_proof', error_description: 'this agent is registered for DPoP-bound tokens only: send a `DPoP` proof' });
      const DPoP = oauth.DPoP(c, await oauth.generateKeyPair('ES256'));
      const bound = await oauth.clientCredentialsGrantRequest(as, c, auth, { scope: 'transactions:read' }, { DPoP, [oauth.allowInsecureRequests]: true });
      expect((await oauth.processClientCredentialsResponse(as, c, bound)).token_type).toBe('dpop');
    } finally {
      await admin(agp, 'PUT', '/v1/admin/agents/fraudbot/credentials/settings', { dpop_bound_access_tokens: false });
    }
  });
});
