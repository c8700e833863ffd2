// The identity HTTP surface as a Fastify plugin: the OAuth token, introspection and
// revocation endpoints (form bodies, RFC-shaped errors, DPoP proofs at the token endpoint),
// JWKS and RFC 8414 metadata, and the admin calls that rotate signing keys and manage agent
// credentials.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ContextStore } from '../context/types.js';
import type { CredentialService } from './credentials.js';
import { ASSERTION_ALGS, createCredentialService } from './credentials.js';
import type { IdentityAudit } from './events.js';
import { ANY_ID, listResources } from '../routes/resources.js';
import { DPOP_ALGS, DPOP_HEADER, DpopVerifier } from './dpop.js';
import type { DecideScope, RegisteredResources, TrustedIssuer } from './exchange.js';
import { GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, createTokenEndpoint } from './exchange.js';
import type { Caller } from './introspection.js';
import { createIntrospection } from './introspection.js';
import type { KeyRing } from './keys.js';
import type { FormParams, OAuthResponse, RequestOrigin } from './oauth.js';
import { FormError, authenticateClient, oauthError, parseForm } from './oauth.js';
import type { ScopeMap } from './scopes.js';
import type { TokenService } from './tokens.js';
import { createTokenService } from './tokens.js';

export interface IdentityRoutesOptions {
  store: ContextStore;
  keys: KeyRing;
  decideScope: DecideScope;
  /** Public base URL, e.g. `https://agp.example.com` (no trailing slash). */
  issuer: string;
  audit?: IdentityAudit;
  /**
   * Who the request's `Authorization` header names: the admin, a resource server (a PEP
   * key: it may introspect), or neither (null).
   */
  callerRole: (request: FastifyRequest) => CallerRole | Promise<CallerRole>;
  /** Shared with the decision routes (one `jti` cache for proofs); built when absent. */
  dpop?: DpopVerifier;
  /** The registered resources a scope without an id covers (default: the resource registry). */
  registeredResources?: RegisteredResources;
  /** Share the server's instances (so `/v1/decide` verifies with the same settings); built when absent. */
  tokens?: TokenService;
  credentials?: CredentialService;
  /** Token lifetime cap in seconds when `tokens` is not given (default 300). */
  tokenTtlS?: number;
  /** A fixed map, or a function read at every request (e.g. reloaded with the policies). */
  scopeMap?: ScopeMap | (() => ScopeMap);
  trustedIssuers?: readonly TrustedIssuer[];
  /** Logical audience names accepted besides absolute URIs. */
  audiences?: readonly string[];
  /** Form body limit in bytes (default 64 KiB). */
  bodyLimit?: number;
  now?: () => number;
}

export type CallerRole = 'admin' | 'resource_server' | null;

const FORM = 'application/x-www-form-urlencoded';
const TOKEN_PATHS = ['/oauth2/token', '/v1/token'];
const AUTH_METHODS = ['private_key_jwt', 'client_secret_basic', 'client_secret_post'];

/** The resource registry's ids of one type (not its default), up to `limit`. */
export function registryResources(store: ContextStore): RegisteredResources {
  return async (type, limit) => {
    const ids = (await listResources(store)).filter((r) => r.type === type && r.id !== ANY_ID).map((r) => r.id);
    return ids.length > limit ? 'too_many' : ids;
  };
}

/** The endpoints as absolute URLs under `issuer`. */
export function identityEndpoints(issuer: string) {
  const base = issuer.replace(/\/+$/, '');
  return {
    token: `${base}/oauth2/token`,
    tokenAlias: `${base}/v1/token`,
    introspection: `${base}/oauth2/introspect`,
    revocation: `${base}/oauth2/revoke`,
    jwks: `${base}/.well-known/jwks.json`,
  };
}

/** Values a client assertion's `aud` may carry. */
export function assertionAudiences(issuer: string): string[] {
  const e = identityEndpoints(issuer);
  return [issuer, e.token, e.tokenAlias, e.introspection, e.revocation];
}

function adminError(reply: FastifyReply, status: number, code: string, message: string, hint?: string) {
  return reply.code(status).send({ error: { code, message, ...(hint !== undefined ? { hint } : {}) } });
}

function sendOAuth<T>(reply: FastifyReply, r: OAuthResponse<T>) {
  void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
  for (const [k, v] of Object.entries(r.headers ?? {})) void reply.header(k, v);
  return reply.code(r.status).send(r.body);
}

function isForm(request: FastifyRequest): boolean {
  const type = request.headers['content-type'];
  return typeof type === 'string' && type.split(';')[0]!.trim().toLowerCase() === FORM;
}

export async function identityRoutes(app: FastifyInstance, opts: IdentityRoutesOptions): Promise<void> {
  const { store, keys, issuer } = opts;
  const now = opts.now ?? Date.now;
  const audit = opts.audit ?? (() => {});
  const endpoints = identityEndpoints(issuer);
  const tokens =
    opts.tokens ?? createTokenService({ keys, store, issuer, now, ...(opts.tokenTtlS !== undefined ? { maxTtlS: opts.tokenTtlS } : {}) });
  const credentials = opts.credentials ?? createCredentialService({ store, audit, assertionAudiences: assertionAudiences(issuer), now });
  const dpop = opts.dpop ?? new DpopVerifier({ store, now });
  const tokenEndpoint = createTokenEndpoint({
    store,
    tokens,
    credentials,
    decideScope: opts.decideScope,
    registeredResources: opts.registeredResources ?? registryResources(store),
    audit,
    now,
    ...(opts.scopeMap ? { scopeMap: opts.scopeMap } : {}),
    ...(opts.trustedIssuers ? { trustedIssuers: opts.trustedIssuers } : {}),
    ...(opts.audiences ? { audiences: opts.audiences } : {}),
  });
  const introspection = createIntrospection({ store, tokens, audit, now });

  // Form bodies only in this plugin's scope; a parser registered by the app is replaced here.
  if (app.hasContentTypeParser(FORM)) app.removeContentTypeParser(FORM);
  app.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: opts.bodyLimit ?? 65_536 }, (_req, body, done) => {
    done(null, parseForm(body as string));
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const code = err.statusCode;
    // 4xx from parsing, 503 from an unreachable store; anything else is ours: 500, logged.
    const status = typeof code === 'number' && ((code >= 400 && code < 500) || code === 503) ? code : 500;
    if (status === 500) request.log.error({ err }, 'identity route failed');
    if (request.url.startsWith('/oauth2/') || request.url.startsWith('/v1/token')) {
      if (status === 500) return sendOAuth(reply, { status: 500, body: { error: 'server_error' } });
      if (status === 503) return sendOAuth(reply, oauthError('temporarily_unavailable', 'the context store is unavailable; retry later'));
      const why = status === 413 ? 'request body too large' : status === 415 ? `the body must be \`${FORM}\`` : 'malformed request';
      return sendOAuth(reply, { ...oauthError('invalid_request', why), status });
    }
    if (status === 500) return adminError(reply, 500, 'internal', 'internal error');
    if (status === 503 && (err as { code?: unknown }).code === 'credentials_busy') return adminError(reply, 503, 'credentials_busy', err.message, 'retry in a moment');
    if (status === 503) return adminError(reply, 503, 'store_unavailable', 'the context store is unavailable', 'retry later');
    return adminError(reply, status, status === 413 ? 'payload_too_large' : 'invalid_request', status === 413 ? 'request body too large' : 'malformed request');
  });

  async function formOf(request: FastifyRequest, reply: FastifyReply): Promise<FormParams | undefined> {
    if (!isForm(request) || typeof request.body !== 'object' || request.body === null) {
      await sendOAuth(reply, oauthError('invalid_request', `the body must be \`${FORM}\``));
      return undefined;
    }
    return request.body as FormParams;
  }

  const originOf = (request: FastifyRequest): RequestOrigin => ({ address: request.ip });

  /** Who introspects or revokes: the admin, a resource server (introspection only), or an agent. */
  async function callerOf(request: FastifyRequest, params: FormParams, resourceServerMay: boolean): Promise<Caller | OAuthResponse<never>> {
    const role = await opts.callerRole(request);
    if (role === 'admin') return { kind: 'admin' };
    if (role === 'resource_server') {
      return resourceServerMay ? { kind: 'resource_server' } : oauthError('unauthorized_client', 'a PEP key may introspect tokens, not revoke them');
    }
    let client;
    try {
      client = await authenticateClient(request.headers.authorization, params, credentials, originOf(request));
    } catch (err) {
      if (err instanceof FormError) return oauthError('invalid_request', err.message);
      throw err;
    }
    if (client.kind === 'failed') return client.response;
    if (client.kind === 'none') return oauthError('invalid_client', 'client authentication is required');
    return { kind: 'agent', agentId: client.agentId };
  }

  for (const path of TOKEN_PATHS) {
    app.post(path, async (request, reply) => {
      const params = await formOf(request, reply);
      if (!params) return reply;
      const origin = originOf(request);
      let client;
      try {
        client = await authenticateClient(request.headers.authorization, params, credentials, origin);
      } catch (err) {
        if (err instanceof FormError) return sendOAuth(reply, oauthError('invalid_request', err.message));
        throw err;
      }
      if (client.kind === 'failed') return sendOAuth(reply, client.response);
      // RFC 9449 §5: a proof for this endpoint binds the token to its key.
      const proof = await dpop.check(request.headers[DPOP_HEADER], { method: 'POST', url: `${issuer}${path}` });
      if (proof !== undefined && !proof.ok) return sendOAuth(reply, oauthError('invalid_dpop_proof', proof.message));
      return sendOAuth(reply, await tokenEndpoint(params, client, { origin, ...(proof?.ok ? { dpopJkt: proof.jkt } : {}) }));
    });
  }

  app.post('/oauth2/introspect', async (request, reply) => {
    const params = await formOf(request, reply);
    if (!params) return reply;
    const caller = await callerOf(request, params, true);
    if ('status' in caller) return sendOAuth(reply, caller);
    return sendOAuth(reply, await introspection.introspect(params, caller));
  });

  app.post('/oauth2/revoke', async (request, reply) => {
    const params = await formOf(request, reply);
    if (!params) return reply;
    const caller = await callerOf(request, params, false);
    if ('status' in caller) return sendOAuth(reply, caller);
    return sendOAuth(reply, await introspection.revoke(params, caller));
  });

  // The OAuth endpoints take POST only: any other method is 405 with `Allow`, not 404.
  for (const path of [...TOKEN_PATHS, '/oauth2/introspect', '/oauth2/revoke']) {
    app.route({
      method: ['GET', 'PUT', 'DELETE', 'PATCH'],
      url: path,
      handler: (_request, reply) => {
        void reply.header('allow', 'POST');
        return sendOAuth(reply, oauthError('invalid_request', 'this endpoint takes POST with a form body', 405));
      },
    });
  }

  app.get('/.well-known/jwks.json', async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=60');
    return keys.jwks();
  });

  app.get('/.well-known/oauth-authorization-server', async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300');
    return {
      issuer,
      token_endpoint: endpoints.token,
      jwks_uri: endpoints.jwks,
      introspection_endpoint: endpoints.introspection,
      revocation_endpoint: endpoints.revocation,
      grant_types_supported: [GRANT_TOKEN_EXCHANGE, GRANT_CLIENT_CREDENTIALS],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: AUTH_METHODS,
      token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      introspection_endpoint_auth_methods_supported: AUTH_METHODS,
      introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      revocation_endpoint_auth_methods_supported: AUTH_METHODS,
      revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      dpop_signing_alg_values_supported: [...DPOP_ALGS],
      // No `scopes_supported`: scopes are `<type>[:<id>]:<action>` over the policies, not a list.
    };
  });

  // ---- admin
  /** Admin only: a PEP key is known but not allowed (403), anything else is not known (401). */
  async function admin(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const role = await opts.callerRole(request);
    if (role === 'admin') return true;
    if (role === 'resource_server') {
      await adminError(reply, 403, 'forbidden', 'this credential may not call the admin api');
      return false;
    }
    void reply.header('www-authenticate', 'Bearer realm="agp"');
    await adminError(reply, 401, 'unauthenticated', 'the admin credential is required');
    return false;
  }

  app.post('/v1/admin/keys/rotate', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    const kid = await keys.forceRotate();
    return { kid, keys: (await keys.jwks()).keys.map((k) => k.kid) };
  });

  app.get<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/keys', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    if (!(await store.getAgent(request.params.id))) return adminError(reply, 404, 'not_found', `unknown agent \`${request.params.id}\``);
    const list = await credentials.listKeys(request.params.id);
    return { keys: list.map((k) => ({ kid: k.thumbprint, jwk: k.jwk, created_at: new Date(k.createdAt).toISOString() })) };
  });

  app.post<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/keys', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    const body = request.body as { jwk?: unknown } | null;
    // Either the bare JWK or `{ "jwk": {...} }`.
    const jwk = body && typeof body === 'object' && 'jwk' in body ? body.jwk : body;
    const r = await credentials.registerKey(request.params.id, jwk);
    if (!r.ok) return adminError(reply, r.status, r.code, r.message, r.hint);
    return reply.code(r.created ? 201 : 200).send({ agent: request.params.id, kid: r.key.thumbprint, jwk: r.key.jwk });
  });

  app.delete<{ Params: { id: string; kid: string } }>('/v1/admin/agents/:id/credentials/keys/:kid', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    if (!(await credentials.removeKey(request.params.id, request.params.kid))) {
      return adminError(reply, 404, 'not_found', `agent \`${request.params.id}\` has no key \`${request.params.kid}\``);
    }
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/secret', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    const body = (request.body ?? {}) as { overlap_s?: unknown };
    const overlap = body.overlap_s ?? 0;
    if (typeof overlap !== 'number' || !Number.isFinite(overlap) || overlap < 0 || overlap > 30 * 86_400) {
      return adminError(reply, 400, 'invalid_request', '`overlap_s` must be a number of seconds from 0 to 2592000');
    }
    const issued = await credentials.issueSecret(request.params.id, overlap);
    if (!issued) return adminError(reply, 404, 'not_found', `unknown agent \`${request.params.id}\``);
    void reply.header('cache-control', 'no-store');
    return reply.code(201).send({
      ...issued,
      ...(issued.previous_valid_until !== undefined ? { previous_valid_until: new Date(issued.previous_valid_until).toISOString() } : {}),
    });
  });

  app.get<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/settings', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    if (!(await store.getAgent(request.params.id))) return adminError(reply, 404, 'not_found', `unknown agent \`${request.params.id}\``);
    return credentials.settings(request.params.id);
  });

  app.put<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/settings', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    const body = request.body as Record<string, unknown> | null;
    const value = typeof body === 'object' && body !== null ? body.dpop_bound_access_tokens : undefined;
    const extra = typeof body === 'object' && body !== null ? Object.keys(body).filter((k) => k !== 'dpop_bound_access_tokens') : [];
    if (typeof value !== 'boolean' || extra.length > 0) {
      return adminError(reply, 400, 'invalid_request', '`dpop_bound_access_tokens` must be a boolean (the only setting)', 'e.g. `{"dpop_bound_access_tokens": true}`');
    }
    const saved = await credentials.putSettings(request.params.id, { dpop_bound_access_tokens: value });
    if (!saved) return adminError(reply, 404, 'not_found', `unknown agent \`${request.params.id}\``);
    return saved;
  });

  app.delete<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/secret', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    if (!(await credentials.revokeSecret(request.params.id))) {
      return adminError(reply, 404, 'not_found', `agent \`${request.params.id}\` has no client secret`);
    }
    return reply.code(204).send();
  });

}
