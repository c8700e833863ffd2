// The token endpoint's logic (RFC 8693 token exchange, plus RFC 6749 client_credentials for
// agents holding a secret): who the agent is and for whom it acts, each requested scope
// decided by the policies, and a token narrowed to what they permitted.

import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify } from 'jose';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import type { ContextStore } from '../context/types.js';
import type { CredentialCheck, CredentialService } from './credentials.js';
import type { IdentityAudit } from './events.js';
import type { ApprovalRequired, ClientAuth, FormParams, OAuthResponse } from './oauth.js';
import { FormError, many, oauthError, single } from './oauth.js';
import type { ParsedScope, ScopeMap } from './scopes.js';
import { parseScope, parseScopeParam, scopeCovers, scopeQuestion } from './scopes.js';
import type { AccessTokenClaims, ActClaim, MayActClaim, TokenService } from './tokens.js';
import { actChain } from './tokens.js';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_ID = 'urn:ietf:params:oauth:token-type:id_token';
const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS, TOKEN_TYPE_ID];
const MAX_AUDIENCES = 8;

/**
 * One requested scope as a policy question. Throwing means the policies cannot decide now
 * (`temporarily_unavailable`); `invalid` means this scope can never be decided as asked
 * (e.g. a required resource attribute is unknown): the whole request is refused with it.
 */
export type DecideScope = (input: {
  agentId: string;
  action: string;
  resource: { type: string; id: string };
  onBehalfOf?: string;
  claims?: Record<string, unknown>;
  /** The `task` form parameter (AGP extension): the caller's own task context, a JSON object. */
  task?: Record<string, unknown>;
  /** Agents that handed the task down before the acting agent, most recent first (from `act`). */
  delegation?: string[];
}) => Promise<{
  effect: 'permit' | 'deny' | 'escalate';
  obligations: Record<string, unknown>;
  reasons: string[];
  decision_id?: string;
  invalid?: string;
}>;

/** Largest `task` form parameter, in characters. */
export const MAX_TASK_PARAM = 4096;

/** An identity provider whose user tokens agents may act for. */
export interface TrustedIssuer {
  issuer: string;
  /** Its JWKS, inline or as a `jwks_uri`. */
  jwks: JSONWebKeySet | URL;
  /** Audiences its tokens must carry to be exchanged here (default: AGP's issuer). */
  audience?: string | string[];
  algorithms?: string[];
}

export interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  /** AGP extension: requested scopes that were left out because they need approval. */
  agp_approval?: ApprovalRequired[];
}

export interface TokenEndpointOptions {
  store: ContextStore;
  tokens: TokenService;
  credentials: CredentialService;
  decideScope: DecideScope;
  audit?: IdentityAudit;
  /** A fixed map, or a function read at every request (a map that reloads). */
  scopeMap?: ScopeMap | (() => ScopeMap);
  trustedIssuers?: readonly TrustedIssuer[];
  /** Logical audience names accepted besides absolute URIs. */
  audiences?: readonly string[];
  /** Default and maximum lifetime in seconds (default: the token service's maximum). */
  defaultTtlS?: number;
  now?: () => number;
}

export type TokenEndpoint = (params: FormParams, client: ClientAuth) => Promise<OAuthResponse<TokenResponse>>;

/** Who the request is about, once every token in it verified. */
interface Party {
  /** The new token's `sub`. */
  subject: string;
  /** The agent whose identity the new token carries (decisions use it). */
  agent: string;
  /** The requesting agent (`client_id`). */
  client: string;
  act?: ActClaim;
  onBehalfOf?: string;
  claims?: Record<string, unknown>;
  /** From an AGP subject token: the new token never exceeds its scope or lifetime. */
  ceiling?: { scopes: ParsedScope[]; exp: number };
  /** From an external subject token: the new token never outlives it. */
  expCap?: number;
}

class Refusal extends Error {
  constructor(readonly response: OAuthResponse<never>) {
    super(typeof response.body === 'object' ? response.body.error : 'refused');
  }
}

const refuse = (...args: Parameters<typeof oauthError>): never => {
  throw new Refusal(oauthError(...args));
};

function credentialRefusal(check: Extract<CredentialCheck, { ok: false }>, which: string): never {
  if (check.reason === 'inactive_agent') return refuse('unauthorized_client', check.message);
  // RFC 8693 §2.2.2: an invalid subject or actor token is `invalid_request`.
  return refuse('invalid_request', `${which} rejected: ${check.message}`);
}

/** The `task` parameter: a JSON object of the caller's task attributes, or undefined. */
function taskParam(params: FormParams): Record<string, unknown> | undefined {
  const text = single(params, 'task');
  if (text === undefined) return undefined;
  if (text.length > MAX_TASK_PARAM) refuse('invalid_request', `\`task\` is longer than ${MAX_TASK_PARAM} characters`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse('invalid_request', '`task` must be a JSON object, e.g. `{"kind":"investigation","flagged":true}`');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('invalid_request', '`task` must be a JSON object, e.g. `{"kind":"investigation","flagged":true}`');
  }
  return value as Record<string, unknown>;
}

function isAbsoluteUri(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol.length > 1 && url.hash === '';
  } catch {
    return false;
  }
}

export function createTokenEndpoint(options: TokenEndpointOptions): TokenEndpoint {
  const { store, tokens, credentials, decideScope } = options;
  const now = options.now ?? Date.now;
  const audit = options.audit ?? (() => {});
  const defaultTtlS = Math.min(options.defaultTtlS ?? tokens.maxTtlS, tokens.maxTtlS);
  const knownAudiences = new Set(options.audiences ?? []);
  const trusted = new Map(
    (options.trustedIssuers ?? []).map((t) => [
      t.issuer,
      { config: t, keys: t.jwks instanceof URL ? createRemoteJWKSet(t.jwks) : createLocalJWKSet(t.jwks) },
    ]),
  );

  async function verifyExternal(token: string, iss: string): Promise<JWTPayload> {
    const entry = trusted.get(iss)!;
    try {
      const { payload } = await jwtVerify(token, entry.keys, {
        issuer: iss,
        audience: entry.config.audience ?? tokens.issuer,
        ...(entry.config.algorithms ? { algorithms: entry.config.algorithms } : {}),
        currentDate: new Date(now()),
        clockTolerance: 30,
        requiredClaims: ['sub', 'exp'],
      });
      return payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) return refuse('invalid_request', 'subject_token expired');
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') {
        return refuse('invalid_request', 'subject_token audience is not this AGP');
      }
      return refuse('invalid_request', 'subject_token does not verify');
    }
  }

  async function activeAgentOrRefuse(agentId: string): Promise<void> {
    const agent = await store.getAgent(agentId);
    if (!agent) refuse('invalid_request', `unknown agent \`${agentId}\``);
    else if (!agent.active) refuse('unauthorized_client', `agent \`${agentId}\` is deactivated`);
  }

  /** An actor token: an agent's client assertion, or an agent's own AGP token. */
  async function verifyActor(token: string, type: string, assertionCache: Map<string, string>): Promise<string> {
    if (type !== TOKEN_TYPE_JWT && type !== TOKEN_TYPE_ACCESS) refuse('invalid_request', `unsupported actor_token_type \`${type}\``);
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return refuse('invalid_request', 'actor_token is not a JWT');
    }
    if (iss === tokens.issuer) {
      const v = await tokens.verify(token, { audience: 'any' });
      if (!v.ok) return refuse('invalid_request', `actor_token ${v.error}: ${v.message}`);
      if (v.claims.act !== undefined || v.claims.sub !== v.claims.agp_agent) {
        return refuse('invalid_request', 'actor_token must be an agent acting for itself');
      }
      await activeAgentOrRefuse(v.claims.agp_agent);
      return v.claims.agp_agent;
    }
    if (type !== TOKEN_TYPE_JWT) refuse('invalid_request', 'a client assertion as actor_token has type `urn:ietf:params:oauth:token-type:jwt`');
    return verifyAssertionOnce(token, assertionCache, 'actor_token');
  }

  async function verifyAssertionOnce(token: string, cache: Map<string, string>, which: string): Promise<string> {
    // The same assertion may authenticate the client and be the subject: its jti is spent once.
    const known = cache.get(token);
    if (known !== undefined) return known;
    const check = await credentials.verifyAssertion(token);
    if (!check.ok) return credentialRefusal(check, which);
    cache.set(token, check.agent.id);
    return check.agent.id;
  }

  async function tokenExchangeParty(params: FormParams, client: ClientAuth): Promise<Party> {
    const subjectToken = single(params, 'subject_token');
    const subjectType = single(params, 'subject_token_type');
    const actorToken = single(params, 'actor_token');
    const actorType = single(params, 'actor_token_type');
    if (subjectToken === undefined) refuse('invalid_request', '`subject_token` is required');
    if (subjectType === undefined) refuse('invalid_request', '`subject_token_type` is required');
    if (actorToken !== undefined && actorType === undefined) refuse('invalid_request', '`actor_token_type` is required with `actor_token`');
    if (actorToken === undefined && actorType !== undefined) refuse('invalid_request', '`actor_token_type` was sent without `actor_token`');
    if (!SUBJECT_TOKEN_TYPES.includes(subjectType!)) refuse('invalid_request', `unsupported subject_token_type \`${subjectType}\``);

    const assertions = new Map<string, string>();
    if (client.kind === 'agent' && client.assertion) assertions.set(client.assertion, client.agentId);
    const clientAgent = client.kind === 'agent' ? client.agentId : undefined;

    let iss: unknown;
    let sub: unknown;
    try {
      ({ iss, sub } = decodeJwt(subjectToken!));
    } catch {
      return refuse('invalid_request', 'subject_token is not a JWT');
    }
    const actor = actorToken !== undefined ? await verifyActor(actorToken, actorType!, assertions) : undefined;
    if (actor !== undefined && clientAgent !== undefined && actor !== clientAgent) {
      refuse('unauthorized_client', 'the authenticated client is not the actor');
    }

    // 1. The agent's own credential: the agent acts for itself.
    if (typeof iss === 'string' && iss !== tokens.issuer && !trusted.has(iss) && iss === sub) {
      if (subjectType !== TOKEN_TYPE_JWT) refuse('invalid_request', 'a client assertion as subject_token has type `urn:ietf:params:oauth:token-type:jwt`');
      if (actor !== undefined) refuse('invalid_request', 'an agent credential cannot be the subject of a delegation');
      const agent = await verifyAssertionOnce(subjectToken!, assertions, 'subject_token');
      if (clientAgent !== undefined && clientAgent !== agent) refuse('unauthorized_client', 'the authenticated client is not the subject');
      return { subject: agent, agent, client: agent };
    }

    // 2. A token AGP issued: narrowed again, or delegated onward.
    if (iss === tokens.issuer) {
      const v = await tokens.verify(subjectToken!, { audience: 'any' });
      if (!v.ok) return refuse('invalid_request', `subject_token ${v.error}: ${v.message}`);
      const c = v.claims;
      const newActor = actor ?? (clientAgent !== undefined && clientAgent !== c.agp_agent ? clientAgent : undefined);
      const ceiling = { scopes: c.scope.split(' ').map(parseScope).filter((s): s is ParsedScope => s !== null), exp: c.exp };
      if (newActor === undefined || newActor === c.agp_agent) {
        await activeAgentOrRefuse(c.agp_agent);
        return { subject: c.sub, agent: c.agp_agent, client: c.agp_agent, ...(c.act ? { act: c.act, onBehalfOf: c.sub } : {}), claims: c, ceiling };
      }
      enforceMayAct(c.may_act, newActor);
      return {
        subject: c.sub,
        agent: newActor,
        client: newActor,
        act: { sub: newActor, ...(c.act ? { act: c.act } : {}) },
        onBehalfOf: c.sub,
        claims: c,
        ceiling,
      };
    }

    // 3. A user's token from a trusted identity provider: an agent acts for the user.
    if (typeof iss === 'string' && trusted.has(iss)) {
      const claims = await verifyExternal(subjectToken!, iss);
      const newActor = actor ?? clientAgent;
      if (newActor === undefined) refuse('invalid_request', 'a user token needs the acting agent: send `actor_token` or authenticate the client');
      enforceMayAct(claims.may_act, newActor!);
      const priorAct = isActClaim(claims.act) ? claims.act : undefined;
      return {
        subject: claims.sub!,
        agent: newActor!,
        client: newActor!,
        act: { sub: newActor!, ...(priorAct ? { act: priorAct } : {}) },
        onBehalfOf: claims.sub!,
        claims,
        expCap: claims.exp!,
      };
    }
    return refuse('invalid_request', 'subject_token issuer is not trusted');
  }

  function enforceMayAct(mayAct: unknown, actor: string): void {
    const m = mayAct as Partial<MayActClaim> | undefined;
    if (typeof m !== 'object' || m === null || typeof m.sub !== 'string') {
      refuse('invalid_request', 'subject_token has no `may_act` claim: no agent may act for it');
    }
    if (m!.sub !== actor || (m!.iss !== undefined && m!.iss !== tokens.issuer)) {
      refuse('invalid_request', `subject_token \`may_act\` does not name agent \`${actor}\``);
    }
  }

  function audiences(params: FormParams): string[] {
    const out: string[] = [];
    for (const r of many(params, 'resource')) {
      if (!isAbsoluteUri(r)) refuse('invalid_target', `resource \`${r.slice(0, 100)}\` is not an absolute URI without a fragment`);
      out.push(r);
    }
    for (const a of many(params, 'audience')) {
      if (!knownAudiences.has(a) && !isAbsoluteUri(a) && a !== tokens.issuer) refuse('invalid_target', `audience \`${a.slice(0, 100)}\` is unknown`);
      out.push(a);
    }
    const unique = [...new Set(out)];
    if (unique.length > MAX_AUDIENCES) refuse('invalid_target', `at most ${MAX_AUDIENCES} audiences per token`);
    return unique.length > 0 ? unique : [tokens.issuer];
  }

  async function handle(params: FormParams, client: ClientAuth): Promise<OAuthResponse<TokenResponse>> {
    if (client.kind === 'failed') return client.response;
    const grantType = single(params, 'grant_type');
    if (grantType === undefined) refuse('invalid_request', '`grant_type` is required');
    if (grantType !== GRANT_TOKEN_EXCHANGE && grantType !== GRANT_CLIENT_CREDENTIALS) {
      refuse('unsupported_grant_type', `grant type \`${grantType!.slice(0, 100)}\` is not supported`);
    }
    const requestedType = single(params, 'requested_token_type');
    if (requestedType !== undefined && requestedType !== TOKEN_TYPE_ACCESS && requestedType !== TOKEN_TYPE_JWT) {
      refuse('invalid_request', `requested_token_type \`${requestedType.slice(0, 100)}\` is not issued here`);
    }
    const delegateTo = single(params, 'delegate_to');
    const task = taskParam(params);

    let party: Party;
    if (grantType === GRANT_CLIENT_CREDENTIALS) {
      if (client.kind !== 'agent') return oauthError('invalid_client', 'client_credentials needs client authentication');
      party = { subject: client.agentId, agent: client.agentId, client: client.agentId };
    } else {
      party = await tokenExchangeParty(params, client);
    }

    const aud = audiences(params);
    const scopeParam = single(params, 'scope');
    if (scopeParam === undefined) refuse('invalid_scope', '`scope` is required: AGP issues only policy-narrowed tokens');
    const parsed = parseScopeParam(scopeParam!);
    if (!parsed.ok) return refuse('invalid_scope', parsed.message);
    if (party.ceiling) {
      const over = parsed.scopes.find((w) => !party.ceiling!.scopes.some((h) => scopeCovers(h, w)));
      if (over) refuse('invalid_scope', `scope \`${over.scope}\` exceeds the subject token's scope`);
    }
    if (delegateTo !== undefined && !(await store.getAgent(delegateTo))) refuse('invalid_request', `delegate_to names unknown agent \`${delegateTo}\``);

    const permitted: string[] = [];
    const approval: ApprovalRequired[] = [];
    const denied: string[] = [];
    const decisionIds: string[] = [];
    let ttlS = defaultTtlS;
    const map = typeof options.scopeMap === 'function' ? options.scopeMap() : options.scopeMap;
    const delegation = party.act ? actChain(party.act).slice(1) : [];
    for (const scope of parsed.scopes) {
      const q = scopeQuestion(scope, map);
      let d: Awaited<ReturnType<DecideScope>>;
      try {
        d = await decideScope({
          agentId: party.agent,
          action: q.action,
          resource: q.resource,
          ...(party.onBehalfOf !== undefined ? { onBehalfOf: party.onBehalfOf } : {}),
          ...(party.claims ? { claims: party.claims } : {}),
          ...(task !== undefined ? { task } : {}),
          ...(delegation.length > 0 ? { delegation } : {}),
        });
      } catch {
        return oauthError('temporarily_unavailable', 'policy decisions are unavailable; retry later');
      }
      if (d.decision_id) decisionIds.push(d.decision_id);
      if (d.invalid !== undefined) {
        const error = `scope \`${scope.scope}\` cannot be decided: ${d.invalid}`;
        audit({ kind: 'token_refused', agent: party.agent, sub: party.subject, error, scopes: parsed.scopes.map((s) => s.scope), decision_ids: decisionIds, at: now() });
        return oauthError('invalid_scope', error);
      }
      if (d.effect === 'permit') {
        permitted.push(scope.scope);
        const ttl = d.obligations.ttl_s;
        if (typeof ttl === 'number' && ttl > 0) ttlS = Math.min(ttlS, ttl);
      } else if (d.effect === 'escalate') {
        const approver = d.obligations.approver;
        approval.push({
          scope: scope.scope,
          ...(typeof approver === 'string' ? { approver } : {}),
          ...(d.decision_id ? { decision_id: d.decision_id } : {}),
          reasons: d.reasons,
        });
      } else {
        denied.push(d.reasons.length > 0 ? `${scope.scope} (${d.reasons.join('; ')})` : scope.scope);
      }
    }

    if (permitted.length === 0) {
      const error = approval.length > 0 ? 'approval required' : `no requested scope is permitted: ${denied.join(', ')}`;
      audit({ kind: 'token_refused', agent: party.agent, sub: party.subject, error, scopes: parsed.scopes.map((s) => s.scope), decision_ids: decisionIds, at: now() });
      if (approval.length > 0) {
        return { status: 400, body: { error: 'invalid_scope', error_description: 'approval required', agp_approval: approval } };
      }
      return oauthError('invalid_scope', error);
    }

    const nowS = Math.floor(now() / 1000);
    const cap = party.ceiling?.exp ?? party.expCap;
    if (cap !== undefined) ttlS = Math.min(ttlS, cap - nowS);
    if (ttlS < 1) refuse('invalid_request', 'subject_token expires too soon');
    const mayAct: MayActClaim | undefined = delegateTo !== undefined ? { sub: delegateTo, iss: tokens.issuer } : undefined;
    const { token, claims } = await tokens.issue({
      subject: party.subject,
      agent: party.agent,
      clientId: party.client,
      audience: aud,
      scope: permitted,
      ttlS,
      ...(party.act ? { act: party.act } : {}),
      ...(mayAct ? { mayAct } : {}),
    });
    auditIssued(claims, decisionIds);
    return {
      status: 200,
      body: {
        access_token: token,
        issued_token_type: requestedType === TOKEN_TYPE_JWT ? TOKEN_TYPE_JWT : TOKEN_TYPE_ACCESS,
        token_type: 'Bearer',
        expires_in: claims.exp - claims.iat,
        scope: claims.scope,
        ...(approval.length > 0 ? { agp_approval: approval } : {}),
      },
    };
  }

  function auditIssued(claims: AccessTokenClaims, decisionIds: string[]): void {
    audit({
      kind: 'token_issued',
      agent: claims.agp_agent,
      sub: claims.sub,
      ...(claims.act ? { act: actChain(claims.act) } : {}),
      jti: claims.jti,
      scope: claims.scope,
      aud: claims.aud,
      exp: claims.exp,
      decision_ids: decisionIds,
      at: now(),
    });
  }

  return async (params, client) => {
    try {
      return await handle(params, client);
    } catch (err) {
      if (err instanceof Refusal) return err.response;
      if (err instanceof FormError) return oauthError('invalid_request', err.message);
      throw err;
    }
  };
}

function isActClaim(value: unknown): value is ActClaim {
  return typeof value === 'object' && value !== null && typeof (value as { sub?: unknown }).sub === 'string';
}
