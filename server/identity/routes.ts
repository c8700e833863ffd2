// The identity HTTP surface as a Fastify plugin: the OAuth token, introspection and
// revocation endpoints (form bodies, RFC-shaped errors), JWKS and RFC 8414 metadata, and
// the admin calls that rotate signing keys and manage agent credentials.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ContextStore } from '../context/types.js';
import type { CredentialService } from './credentials.js';
import { ASSERTION_ALGS, createCredentialService } from './credentials.js';
import type { IdentityAudit } from './events.js';
import type { DecideScope, TrustedIssuer } from './exchange.js';
import { GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, createTokenEndpoint } from './exchange.js';
import type { Caller } from './introspection.js';
import { createIntrospection } from './introspection.js';
import type { KeyRing } from './keys.js';
import type { FormParams, OAuthResponse } from './oauth.js';
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
  /** Whether the request carries the admin credential. */
  authorizeAdmin: (request: FastifyRequest) => boolean | Promise<boolean>;
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

const FORM = 'application/x-www-form-urlencoded';
const TOKEN_PATHS = ['/oauth2/token', '/v1/token'];

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
  const tokenEndpoint = createTokenEndpoint({
    store,
    tokens,
    credentials,
    decideScope: opts.decideScope,
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

  async function callerOf(request: FastifyRequest, params: FormParams): Promise<Caller | OAuthResponse<never>> {
    if (await opts.authorizeAdmin(request)) return { kind: 'admin' };
    let client;
    try {
      client = await authenticateClient(request.headers.authorization, params, credentials);
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
      let client;
      try {
        client = await authenticateClient(request.headers.authorization, params, credentials);
      } catch (err) {
        if (err instanceof FormError) return sendOAuth(reply, oauthError('invalid_request', err.message));
        throw err;
      }
      return sendOAuth(reply, await tokenEndpoint(params, client));
    });
  }

  app.post('/oauth2/introspect', async (request, reply) => {
    const params = await formOf(request, reply);
    if (!params) return reply;
    const caller = await callerOf(request, params);
    if ('status' in caller) return sendOAuth(reply, caller);
    return sendOAuth(reply, await introspection.introspect(params, caller));
  });

  app.post('/oauth2/revoke', async (request, reply) => {
    const params = await formOf(request, reply);
    if (!params) return reply;
    const caller = await callerOf(request, params);
    if ('status' in caller) return sendOAuth(reply, caller);
    return sendOAuth(reply, await introspection.revoke(params, caller));
  });

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
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
      token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
      introspection_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
      revocation_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
      scopes_supported: [],
    };
  });

  // ---- admin
  async function admin(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    if (await opts.authorizeAdmin(request)) return true;
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

  app.delete<{ Params: { id: string } }>('/v1/admin/agents/:id/credentials/secret', async (request, reply) => {
    if (!(await admin(request, reply))) return reply;
    if (!(await credentials.revokeSecret(request.params.id))) {
      return adminError(reply, 404, 'not_found', `agent \`${request.params.id}\` has no client secret`);
    }
    return reply.code(204).send();
  });

}
