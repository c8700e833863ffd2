// Token introspection (RFC 7662) and revocation (RFC 7009). An agent sees and revokes only
// its own tokens; the admin sees and revokes any; a resource server (a PEP key) sees any.
// Revoked `jti`s stay in the store until the token would have expired, so every replica
// rejects them — and every token exchanged from them, which names them as ancestors.

import type { ContextStore } from '../context/types.js';
import type { IdentityAudit } from './events.js';
import type { FormParams, OAuthResponse } from './oauth.js';
import { FormError, oauthError, single } from './oauth.js';
import type { AccessTokenClaims, TokenService } from './tokens.js';

export type Caller = { kind: 'admin' } | { kind: 'resource_server' } | { kind: 'agent'; agentId: string };

export type IntrospectionResponse = { active: false } | ({ active: true; token_type: 'Bearer' | 'DPoP' } & AccessTokenClaims);

export interface IntrospectionOptions {
  store: ContextStore;
  tokens: TokenService;
  audit?: IdentityAudit;
  /** Added to `exp` so a token accepted with clock leeway stays revoked (default 60s). */
  leewayMs?: number;
  now?: () => number;
}

function owns(caller: Caller, claims: AccessTokenClaims): boolean {
  return caller.kind !== 'agent' || claims.client_id === caller.agentId || claims.agp_agent === caller.agentId;
}

export function createIntrospection(options: IntrospectionOptions) {
  const { store, tokens } = options;
  const audit = options.audit ?? (() => {});
  const now = options.now ?? Date.now;
  const leewayMs = options.leewayMs ?? 60_000;

  async function introspect(params: FormParams, caller: Caller): Promise<OAuthResponse<IntrospectionResponse>> {
    let token: string | undefined;
    try {
      token = single(params, 'token');
    } catch (err) {
      if (err instanceof FormError) return oauthError('invalid_request', err.message);
      throw err;
    }
    if (token === undefined) return oauthError('invalid_request', '`token` is required');
    const v = await tokens.verify(token, { audience: 'any' });
    // RFC 7662 §2.2: nothing about why; a token of another agent is simply not active to you.
    if (!v.ok || !owns(caller, v.claims)) return { status: 200, body: { active: false } };
    // RFC 9449 §6.2: a bound token is of type DPoP and shows its `cnf`.
    return { status: 200, body: { active: true, token_type: v.claims.cnf ? 'DPoP' : 'Bearer', ...v.claims } };
  }

  async function revoke(params: FormParams, caller: Caller): Promise<OAuthResponse<Record<string, never>>> {
    let token: string | undefined;
    try {
      token = single(params, 'token');
      single(params, 'token_type_hint');
    } catch (err) {
      if (err instanceof FormError) return oauthError('invalid_request', err.message);
      throw err;
    }
    if (token === undefined) return oauthError('invalid_request', '`token` is required');
    const v = await tokens.verify(token, { audience: 'any', checkRevocation: false });
    // RFC 7009 §2.2: invalid, expired and unknown tokens need no action and answer 200.
    if (!v.ok) return { status: 200, body: {} };
    if (!owns(caller, v.claims)) return oauthError('unauthorized_client', 'the token was not issued to this client');
    await store.revokeToken(v.claims.jti, v.claims.exp * 1000 + leewayMs);
    audit({
      kind: 'token_revoked',
      agent: v.claims.agp_agent,
      jti: v.claims.jti,
      by: caller.kind === 'agent' ? caller.agentId : caller.kind,
      at: now(),
    });
    return { status: 200, body: {} };
  }

  return { introspect, revoke };
}
