// The token endpoint's logic (RFC 8693 token exchange, plus RFC 6749 client_credentials for
// agents holding a secret): who the agent is and for whom it acts, each requested scope
// decided by the policies, and a token narrowed to what they permitted, bound to a DPoP key
// when the caller proved one (or must).

import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify } from 'jose';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import type { ContextStore } from '../context/types.js';
import type { CredentialCheck, CredentialService } from './credentials.js';
import type { IdentityAudit } from './events.js';
import type { ApprovalRequired, ClientAuth, FormParams, OAuthResponse, RequestOrigin } from './oauth.js';
import { CLIENT_AUTH_FAILED, FormError, many, oauthError, single } from './oauth.js';
import type { ParsedScope, ScopeMap, ScopeQuestion } from './scopes.js';
import { parseScope, parseScopeParam, scopeCovers, scopeQuestion } from './scopes.js';
import type { AccessTokenClaims, ActClaim, MayActClaim, TokenService } from './tokens.js';
import { MAX_ANCESTORS, ParentExpiringError, actChain } from './tokens.js';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_ID = 'urn:ietf:params:oauth:token-type:id_token';
const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS, TOKEN_TYPE_ID];
const MAX_AUDIENCES = 8;
/**
 * Most registered resources a scope without an id may cover: such a scope is decided
 * against each of them, so more would let one request buy that many decisions.
 */
export const MAX_COVERED_RESOURCES = 16;
/** The obligation by which a policy asks for a sender-constrained (DPoP-bound) token. */
export const DPOP_OBLIGATION = 'dpop';

/** One policy decision's outcome, as the token endpoint needs it. */
export interface ScopeDecision {
  effect: 'permit' | 'deny' | 'escalate';
  obligations: Record<string, unknown>;
  reasons: string[];
  decision_id?: string;
  invalid?: string;
}

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
}) => Promise<ScopeDecision>;

/**
 * The ids of the registered resources of a (policy) resource type, without the type's
 * default `*`; `too_many` when there are more than `limit`.
 */
export type RegisteredResources = (type: string, limit: number) => Promise<string[] | 'too_many'>;

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
  /** `DPoP` when the token is bound to the caller's DPoP key (RFC 9449 §5). */
  token_type: 'Bearer' | 'DPoP';
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
  /** The registered resources a scope without an id covers (default: none besides `type/*`). */
  registeredResources?: RegisteredResources;
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

/** What the route learned about the request beyond its form: a verified DPoP proof's key. */
export interface TokenRequestContext {
  /** RFC 7638 thumbprint of the key of a valid `DPoP` proof sent with the request. */
  dpopJkt?: string;
  /** The caller's address (throttling and the audit's flood control of rejected assertions). */
  origin?: RequestOrigin;
}

export type TokenEndpoint = (params: FormParams, client: ClientAuth, context?: TokenRequestContext) => Promise<OAuthResponse<TokenResponse>>;

/** An agent named by a token or credential in the request, and how it was proven. */
interface Presenter {
  agent: string;
  /** By an assertion or a secret (an AGP bearer token as `actor_token` is not a credential). */
  authenticated: boolean;
  /** The DPoP key an AGP actor token is bound to. */
  jkt?: string;
}

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
  /** The subject token's `jti` and its ancestors, parent first. */
  ancestors?: string[];
  /**
   * Set when the token's own agent exchanges it again: the new `may_act` may only narrow
   * this one (`null`: the subject token lets nobody act for it).
   */
  mayActCeiling?: MayActClaim | null;
  /** The DPoP key the new token must be bound to (the subject token's, on a re-exchange). */
  requiredJkt?: string;
  /** A key-bound subject or actor token: the new token must be bound too. */
  mustBind?: boolean;
}

/** The outcome of one requested scope, over every resource it covers. */
interface ScopeOutcome {
  effect: 'permit' | 'deny' | 'escalate';
  reasons: string[];
  ttlS?: number;
  dpop: boolean;
  approver?: string;
  decisionId?: string;
  invalid?: string;
}

class Refusal extends Error {
  constructor(readonly response: OAuthResponse<never>) {
    super(typeof response.body === 'object' ? response.body.error : 'refused');
  }
}

const refuse = (...args: Parameters<typeof oauthError>): never => {
  throw new Refusal(oauthError(...args));
};

/**
 * An assertion in `subject_token` or `actor_token` that did not verify. Unknown, deactivated
 * and keyless agents and a bad signature read alike (the audit has the reason); what is
 * wrong with a correctly signed assertion is told, only its signer can see that.
 */
function credentialRefusal(check: Extract<CredentialCheck, { ok: false }>, which: string): never {
  if (!check.signed) return refuse('invalid_client', CLIENT_AUTH_FAILED);
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

function isActClaim(value: unknown): value is ActClaim {
  return typeof value === 'object' && value !== null && typeof (value as { sub?: unknown }).sub === 'string';
}

/** Most restrictive first: a scope is only as permitted as the least permitted resource it covers. */
const EFFECT_RANK = { deny: 2, escalate: 1, permit: 0 } as const;

export function createTokenEndpoint(options: TokenEndpointOptions): TokenEndpoint {
  const endpoint = new TokenExchange(options);
  return (params, client, context) => endpoint.handle(params, client, context ?? {});
}

class TokenExchange {
  private readonly now: () => number;
  private readonly audit: IdentityAudit;
  private readonly defaultTtlS: number;
  private readonly knownAudiences: Set<string>;
  private readonly trusted: Map<string, { config: TrustedIssuer; keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet> }>;

  constructor(private readonly options: TokenEndpointOptions) {
    this.now = options.now ?? Date.now;
    this.audit = options.audit ?? (() => {});
    this.defaultTtlS = Math.min(options.defaultTtlS ?? options.tokens.maxTtlS, options.tokens.maxTtlS);
    this.knownAudiences = new Set(options.audiences ?? []);
    this.trusted = new Map(
      (options.trustedIssuers ?? []).map((t) => [
        t.issuer,
        { config: t, keys: t.jwks instanceof URL ? createRemoteJWKSet(t.jwks) : createLocalJWKSet(t.jwks) },
      ]),
    );
  }

  private get tokens(): TokenService {
    return this.options.tokens;
  }

  async handle(params: FormParams, client: ClientAuth, context: TokenRequestContext): Promise<OAuthResponse<TokenResponse>> {
    try {
      return await this.exchange(params, client, context);
    } catch (err) {
      if (err instanceof Refusal) return err.response;
      if (err instanceof FormError) return oauthError('invalid_request', err.message);
      if (err instanceof ParentExpiringError) return oauthError('invalid_request', 'subject_token expires too soon');
      throw err;
    }
  }

  private async exchange(params: FormParams, client: ClientAuth, context: TokenRequestContext): Promise<OAuthResponse<TokenResponse>> {
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
      party = await this.tokenExchangeParty(params, client, context.origin);
    }

    const aud = this.audiences(params);
    const scopeParam = single(params, 'scope');
    if (scopeParam === undefined) refuse('invalid_scope', '`scope` is required: AGP issues only policy-narrowed tokens');
    const parsed = parseScopeParam(scopeParam!);
    if (!parsed.ok) return refuse('invalid_scope', parsed.message);
    if (party.ceiling) {
      const over = parsed.scopes.find((w) => !party.ceiling!.scopes.some((h) => scopeCovers(h, w)));
      if (over) refuse('invalid_scope', `scope \`${over.scope}\` exceeds the subject token's scope`);
    }
    const mayAct = await this.mayActFor(party, delegateTo);
    const jkt = await this.binding(party, context);

    const permitted: string[] = [];
    const approval: ApprovalRequired[] = [];
    const denied: string[] = [];
    const decisionIds: string[] = [];
    let ttlS = this.defaultTtlS;
    let dpopRequired = false;
    const map = typeof this.options.scopeMap === 'function' ? this.options.scopeMap() : this.options.scopeMap;
    for (const scope of parsed.scopes) {
      const d = await this.decideScope(party, scopeQuestion(scope, map), task, decisionIds);
      if (d.invalid !== undefined) {
        const error = `scope \`${scope.scope}\` cannot be decided: ${d.invalid}`;
        this.auditRefused(party, error, parsed.scopes, decisionIds);
        return oauthError('invalid_scope', error);
      }
      if (d.effect === 'permit') {
        permitted.push(scope.scope);
        if (d.ttlS !== undefined) ttlS = Math.min(ttlS, d.ttlS);
        if (d.dpop) dpopRequired = true;
      } else if (d.effect === 'escalate') {
        approval.push({
          scope: scope.scope,
          ...(d.approver !== undefined ? { approver: d.approver } : {}),
          ...(d.decisionId !== undefined ? { decision_id: d.decisionId } : {}),
          reasons: d.reasons,
        });
      } else {
        denied.push(d.reasons.length > 0 ? `${scope.scope} (${d.reasons.join('; ')})` : scope.scope);
      }
    }

    if (permitted.length === 0) {
      const error = approval.length > 0 ? 'approval required' : `no requested scope is permitted: ${denied.join(', ')}`;
      this.auditRefused(party, error, parsed.scopes, decisionIds);
      if (approval.length > 0) {
        return { status: 400, body: { error: 'invalid_scope', error_description: 'approval required', agp_approval: approval } };
      }
      return oauthError('invalid_scope', error);
    }
    if (dpopRequired && jkt === undefined) {
      const error = 'a policy requires a DPoP-bound token for the permitted scopes: send a `DPoP` proof';
      this.auditRefused(party, error, parsed.scopes, decisionIds);
      return oauthError('invalid_dpop_proof', error);
    }

    const nowS = Math.floor(this.now() / 1000);
    const cap = party.ceiling?.exp ?? party.expCap;
    if (cap !== undefined) ttlS = Math.min(ttlS, cap - nowS);
    if (ttlS < 1) refuse('invalid_request', 'subject_token expires too soon');
    const { token, claims } = await this.tokens.issue({
      subject: party.subject,
      agent: party.agent,
      clientId: party.client,
      audience: aud,
      scope: permitted,
      ttlS,
      ...(cap !== undefined ? { notAfter: cap } : {}),
      ...(party.act ? { act: party.act } : {}),
      ...(mayAct ? { mayAct } : {}),
      ...(party.ancestors ? { ancestors: party.ancestors } : {}),
      ...(jkt !== undefined ? { jkt } : {}),
    });
    this.auditIssued(claims, decisionIds);
    return {
      status: 200,
      body: {
        access_token: token,
        issued_token_type: requestedType === TOKEN_TYPE_JWT ? TOKEN_TYPE_JWT : TOKEN_TYPE_ACCESS,
        token_type: jkt !== undefined ? 'DPoP' : 'Bearer',
        expires_in: claims.exp - claims.iat,
        scope: claims.scope,
        ...(approval.length > 0 ? { agp_approval: approval } : {}),
      },
    };
  }

  /**
   * The DPoP key the new token is bound to, or undefined for a bearer token. A proof binds
   * the token to its key; the agent's registration (`dpop_bound_access_tokens`) or a
   * key-bound subject token make a proof mandatory; a re-exchanged bound token keeps its key.
   */
  private async binding(party: Party, context: TokenRequestContext): Promise<string | undefined> {
    const jkt = context.dpopJkt;
    if (party.requiredJkt !== undefined && jkt !== party.requiredJkt) {
      refuse('invalid_dpop_proof', 'subject_token is bound to a DPoP key: send a `DPoP` proof signed with that key');
    }
    if (jkt === undefined && party.mustBind) refuse('invalid_dpop_proof', 'a token made from a DPoP-bound token is bound too: send a `DPoP` proof');
    if (jkt === undefined && (await this.options.credentials.settings(party.agent)).dpop_bound_access_tokens) {
      refuse('invalid_dpop_proof', 'this agent is registered for DPoP-bound tokens only: send a `DPoP` proof');
    }
    return jkt;
  }

  /** The new token's `may_act`: `delegate_to` names it, and on a re-exchange may only narrow. */
  private async mayActFor(party: Party, delegateTo: string | undefined): Promise<MayActClaim | undefined> {
    if (delegateTo === undefined) return undefined;
    if (party.mayActCeiling !== undefined && party.mayActCeiling?.sub !== delegateTo) {
      refuse(
        'invalid_request',
        party.mayActCeiling === null
          ? '`delegate_to` may only narrow `may_act`: the subject token lets no other agent act for it'
          : `\`delegate_to\` may only narrow \`may_act\`: the subject token names agent \`${party.mayActCeiling.sub}\``,
      );
    }
    if (!(await this.options.store.getAgent(delegateTo))) refuse('invalid_request', `delegate_to names unknown agent \`${delegateTo.slice(0, 100)}\``);
    return { sub: delegateTo, iss: this.tokens.issuer };
  }

  /**
   * One scope decided over every resource it covers: a scope with an id covers that one; a
   * scope without covers the type's default and every registered resource of the type, and
   * gets the most restrictive outcome among them (deny, then escalate, then permit) — so it
   * is decided against the most sensitive resource it covers, whatever makes it sensitive.
   */
  private async decideScope(party: Party, q: ScopeQuestion, task: Record<string, unknown> | undefined, decisionIds: string[]): Promise<ScopeOutcome> {
    let ids = [q.resource.id];
    if (q.resource.id === '*' && this.options.registeredResources) {
      const registered = await this.options.registeredResources(q.resource.type, MAX_COVERED_RESOURCES);
      if (registered === 'too_many') {
        return {
          effect: 'deny',
          reasons: [],
          dpop: false,
          invalid: `it covers more than ${MAX_COVERED_RESOURCES} registered \`${q.resource.type}\` resources; ask for the ids you need (\`<type>:<id>:<action>\`)`,
        };
      }
      ids = ['*', ...registered];
    }
    const delegation = party.act ? actChain(party.act).slice(1) : [];
    let outcome: ScopeOutcome | undefined;
    for (const id of ids) {
      let d: ScopeDecision;
      try {
        d = await this.options.decideScope({
          agentId: party.agent,
          action: q.action,
          resource: { type: q.resource.type, id },
          ...(party.onBehalfOf !== undefined ? { onBehalfOf: party.onBehalfOf } : {}),
          ...(party.claims ? { claims: party.claims } : {}),
          ...(task !== undefined ? { task } : {}),
          ...(delegation.length > 0 ? { delegation } : {}),
        });
      } catch {
        throw new Refusal(oauthError('temporarily_unavailable', 'policy decisions are unavailable; retry later'));
      }
      if (d.decision_id) decisionIds.push(d.decision_id);
      if (d.invalid !== undefined) return { effect: 'deny', reasons: d.reasons, dpop: false, invalid: d.invalid };
      const one = this.scopeOutcome(d, ids.length > 1 && id !== '*' ? `${q.resource.type}:${id}` : undefined);
      outcome = outcome === undefined ? one : this.stricter(outcome, one);
    }
    return outcome!;
  }

  private scopeOutcome(d: ScopeDecision, resource: string | undefined): ScopeOutcome {
    const ttl = d.obligations.ttl_s;
    const approver = d.obligations.approver;
    return {
      effect: d.effect,
      reasons: resource !== undefined ? d.reasons.map((r) => `${resource}: ${r}`) : d.reasons,
      ...(typeof ttl === 'number' && ttl > 0 ? { ttlS: ttl } : {}),
      dpop: d.obligations[DPOP_OBLIGATION] === true,
      ...(typeof approver === 'string' ? { approver } : {}),
      ...(d.decision_id !== undefined ? { decisionId: d.decision_id } : {}),
    };
  }

  private stricter(a: ScopeOutcome, b: ScopeOutcome): ScopeOutcome {
    if (EFFECT_RANK[b.effect] > EFFECT_RANK[a.effect]) return b;
    if (EFFECT_RANK[b.effect] < EFFECT_RANK[a.effect]) return a;
    const ttlS = a.ttlS === undefined ? b.ttlS : b.ttlS === undefined ? a.ttlS : Math.min(a.ttlS, b.ttlS);
    return { ...a, reasons: [...new Set([...a.reasons, ...b.reasons])], dpop: a.dpop || b.dpop, ...(ttlS !== undefined ? { ttlS } : {}) };
  }

  private async verifyExternal(token: string, iss: string): Promise<JWTPayload> {
    const entry = this.trusted.get(iss)!;
    try {
      const { payload } = await jwtVerify(token, entry.keys, {
        issuer: iss,
        audience: entry.config.audience ?? this.tokens.issuer,
        ...(entry.config.algorithms ? { algorithms: entry.config.algorithms } : {}),
        currentDate: new Date(this.now()),
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

  private async activeAgentOrRefuse(agentId: string): Promise<void> {
    const agent = await this.options.store.getAgent(agentId);
    if (!agent) refuse('invalid_request', `unknown agent \`${agentId}\``);
    else if (!agent.active) refuse('unauthorized_client', `agent \`${agentId}\` is deactivated`);
  }

  /** An actor token: an agent's client assertion, or an agent's own AGP token. */
  private async verifyActor(token: string, type: string, assertionCache: Map<string, string>, origin: RequestOrigin | undefined): Promise<Presenter> {
    if (type !== TOKEN_TYPE_JWT && type !== TOKEN_TYPE_ACCESS) refuse('invalid_request', `unsupported actor_token_type \`${type.slice(0, 100)}\``);
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return refuse('invalid_request', 'actor_token is not a JWT');
    }
    if (iss === this.tokens.issuer) {
      const v = await this.tokens.verify(token, { audience: 'any' });
      if (!v.ok) return refuse('invalid_request', `actor_token ${v.error}: ${v.message}`);
      if (v.claims.act !== undefined || v.claims.sub !== v.claims.agp_agent) {
        return refuse('invalid_request', 'actor_token must be an agent acting for itself');
      }
      await this.activeAgentOrRefuse(v.claims.agp_agent);
      return { agent: v.claims.agp_agent, authenticated: false, ...(v.claims.cnf ? { jkt: v.claims.cnf.jkt } : {}) };
    }
    if (type !== TOKEN_TYPE_JWT) refuse('invalid_request', 'a client assertion as actor_token has type `urn:ietf:params:oauth:token-type:jwt`');
    return { agent: await this.verifyAssertionOnce(token, assertionCache, 'actor_token', origin), authenticated: true };
  }

  private async verifyAssertionOnce(token: string, cache: Map<string, string>, which: string, origin: RequestOrigin | undefined): Promise<string> {
    // The same assertion may authenticate the client and be the subject: its jti is spent once.
    const known = cache.get(token);
    if (known !== undefined) return known;
    const check = await this.options.credentials.verifyAssertion(token, origin);
    if (!check.ok) return credentialRefusal(check, which);
    cache.set(token, check.agent.id);
    return check.agent.id;
  }

  private async tokenExchangeParty(params: FormParams, client: ClientAuth, origin: RequestOrigin | undefined): Promise<Party> {
    const subjectToken = single(params, 'subject_token');
    const subjectType = single(params, 'subject_token_type');
    const actorToken = single(params, 'actor_token');
    const actorType = single(params, 'actor_token_type');
    if (subjectToken === undefined) refuse('invalid_request', '`subject_token` is required');
    if (subjectType === undefined) refuse('invalid_request', '`subject_token_type` is required');
    if (actorToken !== undefined && actorType === undefined) refuse('invalid_request', '`actor_token_type` is required with `actor_token`');
    if (actorToken === undefined && actorType !== undefined) refuse('invalid_request', '`actor_token_type` was sent without `actor_token`');
    if (!SUBJECT_TOKEN_TYPES.includes(subjectType!)) refuse('invalid_request', `unsupported subject_token_type \`${subjectType!.slice(0, 100)}\``);

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
    const actor = actorToken !== undefined ? await this.verifyActor(actorToken, actorType!, assertions, origin) : undefined;
    if (actor !== undefined && clientAgent !== undefined && actor.agent !== clientAgent) {
      refuse('unauthorized_client', 'the authenticated client is not the actor');
    }
    // The agent presenting the subject token: the authenticated client, else the actor.
    const presenter: Presenter | undefined = clientAgent !== undefined ? { agent: clientAgent, authenticated: true } : actor;

    // 1. The agent's own credential: the agent acts for itself.
    if (typeof iss === 'string' && iss !== this.tokens.issuer && !this.trusted.has(iss) && iss === sub) {
      if (subjectType !== TOKEN_TYPE_JWT) refuse('invalid_request', 'a client assertion as subject_token has type `urn:ietf:params:oauth:token-type:jwt`');
      if (actor !== undefined) refuse('invalid_request', 'an agent credential cannot be the subject of a delegation');
      const agent = await this.verifyAssertionOnce(subjectToken!, assertions, 'subject_token', origin);
      if (clientAgent !== undefined && clientAgent !== agent) refuse('unauthorized_client', 'the authenticated client is not the subject');
      return { subject: agent, agent, client: agent };
    }

    // 2. A token AGP issued: narrowed again by its agent, or taken over by an allowed actor.
    if (iss === this.tokens.issuer) return this.agpSubjectParty(subjectToken!, presenter);

    // 3. A user's token from a trusted identity provider: an agent acts for the user.
    if (typeof iss === 'string' && this.trusted.has(iss)) {
      const claims = await this.verifyExternal(subjectToken!, iss);
      if (presenter === undefined) refuse('invalid_request', 'a user token needs the acting agent: send `actor_token` or authenticate the client');
      this.enforceMayAct(claims.may_act, presenter!.agent);
      const priorAct = isActClaim(claims.act) ? claims.act : undefined;
      return {
        subject: claims.sub!,
        agent: presenter!.agent,
        client: presenter!.agent,
        act: { sub: presenter!.agent, ...(priorAct ? { act: priorAct } : {}) },
        onBehalfOf: claims.sub!,
        claims,
        expCap: claims.exp!,
        ...(presenter!.jkt !== undefined ? { requiredJkt: presenter!.jkt } : {}),
      };
    }
    return refuse('invalid_request', 'subject_token issuer is not trusted');
  }

  /**
   * An AGP token as the subject. Whoever presents it must prove, with an assertion or a
   * secret, to be its agent (narrowing it again) or the agent its `may_act` names (acting
   * for its subject): a token alone, stolen or not, buys no new token.
   */
  private async agpSubjectParty(subjectToken: string, presenter: Presenter | undefined): Promise<Party> {
    const v = await this.tokens.verify(subjectToken, { audience: 'any' });
    if (!v.ok) return refuse('invalid_request', `subject_token ${v.error}: ${v.message}`);
    const c = v.claims;
    if (presenter === undefined || !presenter.authenticated) {
      return refuse(
        'invalid_client',
        'exchanging an AGP token needs the agent to authenticate (a client assertion or secret, or an assertion as `actor_token`)',
      );
    }
    const ancestors = [c.jti, ...(c.agp_ancestors ?? [])];
    if (ancestors.length > MAX_ANCESTORS) {
      refuse('invalid_request', `subject_token was exchanged ${MAX_ANCESTORS} times already; start again from the agent's credential`);
    }
    const ceiling = { scopes: c.scope.split(' ').map(parseScope).filter((s): s is ParsedScope => s !== null), exp: c.exp };
    const common = { subject: c.sub, claims: c, ceiling, ancestors };
    if (presenter.agent === c.agp_agent) {
      await this.activeAgentOrRefuse(c.agp_agent);
      return {
        ...common,
        agent: c.agp_agent,
        client: c.agp_agent,
        ...(c.act ? { act: c.act, onBehalfOf: c.sub } : {}),
        mayActCeiling: c.may_act ?? null,
        ...(c.cnf ? { requiredJkt: c.cnf.jkt } : {}),
      };
    }
    this.enforceMayAct(c.may_act, presenter.agent);
    await this.activeAgentOrRefuse(presenter.agent);
    return {
      ...common,
      agent: presenter.agent,
      client: presenter.agent,
      act: { sub: presenter.agent, ...(c.act ? { act: c.act } : {}) },
      onBehalfOf: c.sub,
      ...(c.cnf ? { mustBind: true } : {}),
    };
  }

  private enforceMayAct(mayAct: unknown, actor: string): void {
    const m = mayAct as Partial<MayActClaim> | undefined;
    if (typeof m !== 'object' || m === null || typeof m.sub !== 'string') {
      refuse('invalid_request', 'subject_token has no `may_act` claim: no agent may act for it');
    }
    if (m!.sub !== actor || (m!.iss !== undefined && m!.iss !== this.tokens.issuer)) {
      refuse('invalid_request', `subject_token \`may_act\` does not name agent \`${actor}\``);
    }
  }

  private audiences(params: FormParams): string[] {
    const out: string[] = [];
    for (const r of many(params, 'resource')) {
      if (!isAbsoluteUri(r)) refuse('invalid_target', `resource \`${r.slice(0, 100)}\` is not an absolute URI without a fragment`);
      out.push(r);
    }
    for (const a of many(params, 'audience')) {
      if (!this.knownAudiences.has(a) && !isAbsoluteUri(a) && a !== this.tokens.issuer) refuse('invalid_target', `audience \`${a.slice(0, 100)}\` is unknown`);
      out.push(a);
    }
    const unique = [...new Set(out)];
    if (unique.length > MAX_AUDIENCES) refuse('invalid_target', `at most ${MAX_AUDIENCES} audiences per token`);
    return unique.length > 0 ? unique : [this.tokens.issuer];
  }

  private auditRefused(party: Party, error: string, scopes: ParsedScope[], decisionIds: string[]): void {
    this.audit({ kind: 'token_refused', agent: party.agent, sub: party.subject, error, scopes: scopes.map((s) => s.scope), decision_ids: decisionIds, at: this.now() });
  }

  private auditIssued(claims: AccessTokenClaims, decisionIds: string[]): void {
    this.audit({
      kind: 'token_issued',
      agent: claims.agp_agent,
      sub: claims.sub,
      ...(claims.act ? { act: actChain(claims.act) } : {}),
      jti: claims.jti,
      ...(claims.agp_ancestors ? { parent: claims.agp_ancestors[0]! } : {}),
      ...(claims.cnf ? { jkt: claims.cnf.jkt } : {}),
      scope: claims.scope,
      aud: claims.aud,
      exp: claims.exp,
      decision_ids: decisionIds,
      at: this.now(),
    });
  }
}
