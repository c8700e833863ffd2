// AGP access tokens: issuing short-lived ES256 JWTs (RFC 9068 `at+jwt`) signed with the
// key ring's current key, and verifying them (signature, issuer, audience, expiry,
// revocation) with a typed reason for every rejection.

import { randomBytes } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import type { ContextStore } from '../context/types.js';
import type { KeyRing } from './keys.js';

export type TokenErrorCode =
  | 'expired'
  | 'revoked'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'bad_signature'
  | 'malformed'
  /** A DPoP-bound token came without a valid proof of its key (RFC 9449 §7). */
  | 'invalid_dpop_proof';

/** RFC 8693 §4.1: the current actor, with the previous actors nested inside. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** RFC 8693 §4.4: who may act for the token's subject. */
export interface MayActClaim {
  sub: string;
  iss?: string;
}

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  /** The subject: the agent itself, or the user it acts for. */
  sub: string;
  aud: string | string[];
  /** Space-separated, only what the policies permitted. */
  scope: string;
  jti: string;
  iat: number;
  exp: number;
  /** RFC 9068: the agent that asked for the token. */
  client_id: string;
  /** The agent whose identity the token carries: the outermost actor, or `sub` without `act`. */
  agp_agent: string;
  act?: ActClaim;
  may_act?: MayActClaim;
  /**
   * The `jti`s of the tokens this one was exchanged from, its parent first: revoking any of
   * them revokes this one. Absent on a token made from a credential or a foreign token.
   */
  agp_ancestors?: string[];
  /** RFC 9449 §6.1: the token is bound to the DPoP key with this RFC 7638 thumbprint. */
  cnf?: { jkt: string };
}

export type TokenVerification =
  | { ok: true; claims: AccessTokenClaims }
  | { ok: false; error: TokenErrorCode; message: string };

export interface IssueInput {
  subject: string;
  agent: string;
  clientId: string;
  audience: readonly string[];
  scope: readonly string[];
  /** Requested lifetime; capped at the service's maximum. */
  ttlS: number;
  act?: ActClaim;
  mayAct?: MayActClaim;
  /** The `jti`s of the subject token and its ancestors, parent first. */
  ancestors?: readonly string[];
  /** Epoch seconds the token may not outlive (its parent's `exp`). */
  notAfter?: number;
  /** Binds the token to a DPoP key (its RFC 7638 thumbprint). */
  jkt?: string;
}

export interface VerifyOptions {
  /** Accepted audiences; `any` skips the check (introspection, revocation, subject tokens). */
  audience?: string | readonly string[] | 'any';
  /** Default true. */
  checkRevocation?: boolean;
}

export interface TokenService {
  readonly issuer: string;
  readonly maxTtlS: number;
  issue(input: IssueInput): Promise<{ token: string; claims: AccessTokenClaims }>;
  verify(token: string, options?: VerifyOptions): Promise<TokenVerification>;
  /**
   * For `/v1/decide`: an AGP-issued bearer token as the agent's identity. The audience must
   * be one of `agentAudiences` (default: the issuer); the agent id is `claims.agp_agent`.
   */
  verifyAgentToken(token: string): Promise<TokenVerification>;
}

export interface TokenServiceOptions {
  keys: KeyRing;
  store: ContextStore;
  /** e.g. `https://agp.example.com`; also the default audience. */
  issuer: string;
  /** Longest token lifetime in seconds (`AGP_TOKEN_TTL`, default 300). */
  maxTtlS?: number;
  /** Clock skew tolerated on `exp`, in seconds (default 30). */
  leewayS?: number;
  /** Audiences `verifyAgentToken` accepts (default `[issuer]`). */
  agentAudiences?: readonly string[];
  now?: () => number;
}

/** The token would expire no later than it is issued: its parent is about to expire. */
export class ParentExpiringError extends Error {}

export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Longest chain of exchanges from one first token: each step adds an ancestor to check. */
export const MAX_ANCESTORS = 8;
const MAX_TOKEN_LENGTH = 16_384;
const VERIFIED_CACHE_MAX = 10_000;

function isAct(value: unknown, depth = 0): value is ActClaim {
  if (depth > 16 || typeof value !== 'object' || value === null) return false;
  const v = value as { sub?: unknown; act?: unknown };
  return typeof v.sub === 'string' && (v.act === undefined || isAct(v.act, depth + 1));
}

function wellFormed(p: JWTPayload): p is AccessTokenClaims {
  const c = p as Record<string, unknown>;
  return (
    typeof c.sub === 'string' &&
    typeof c.jti === 'string' &&
    typeof c.scope === 'string' &&
    typeof c.client_id === 'string' &&
    typeof c.agp_agent === 'string' &&
    typeof c.exp === 'number' &&
    typeof c.iat === 'number' &&
    (c.act === undefined || isAct(c.act)) &&
    (c.agp_ancestors === undefined ||
      (Array.isArray(c.agp_ancestors) && c.agp_ancestors.length <= MAX_ANCESTORS && c.agp_ancestors.every((j) => typeof j === 'string'))) &&
    (c.cnf === undefined || (typeof c.cnf === 'object' && c.cnf !== null && typeof (c.cnf as { jkt?: unknown }).jkt === 'string'))
  );
}

/** The actors of a chain, outermost (current) first. */
export function actChain(act: ActClaim | undefined): string[] {
  const out: string[] = [];
  for (let a = act; a; a = a.act) out.push(a.sub);
  return out;
}

export function createTokenService(options: TokenServiceOptions): TokenService {
  const { keys, store, issuer } = options;
  const now = options.now ?? Date.now;
  const maxTtlS = options.maxTtlS ?? 300;
  const leewayS = options.leewayS ?? 30;
  const agentAudiences = options.agentAudiences ?? [issuer];

  // Agents reuse a token for many calls: a signature checked once need not be checked again.
  const verified = new Map<string, AccessTokenClaims>();

  function remember(token: string, claims: AccessTokenClaims): void {
    if (verified.size >= VERIFIED_CACHE_MAX) {
      const t = now() / 1000 - leewayS;
      for (const [k, c] of verified) if (c.exp < t) verified.delete(k);
      // Still full of live tokens: drop the oldest entries.
      for (const k of verified.keys()) {
        if (verified.size < VERIFIED_CACHE_MAX * 0.9) break;
        verified.delete(k);
      }
    }
    verified.set(token, claims);
  }

  /** The token, or any token it was exchanged from, is revoked. */
  async function revoked(claims: AccessTokenClaims): Promise<boolean> {
    const jtis = [claims.jti, ...(claims.agp_ancestors ?? [])];
    const answers = await Promise.all(jtis.map((j) => store.isTokenRevoked(j)));
    return answers.includes(true);
  }

  async function checkCached(claims: AccessTokenClaims, token: string, opts: VerifyOptions): Promise<TokenVerification> {
    if (claims.exp <= Math.floor(now() / 1000) - leewayS) {
      verified.delete(token);
      return { ok: false, error: 'expired', message: 'token expired' };
    }
    const audience = opts.audience ?? agentAudiences;
    if (audience !== 'any') {
      const wanted = typeof audience === 'string' ? [audience] : audience;
      const has = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
      if (!has.some((a) => wanted.includes(a))) return { ok: false, error: 'wrong_audience', message: 'token audience not accepted here' };
    }
    if (opts.checkRevocation !== false && (await revoked(claims))) {
      return { ok: false, error: 'revoked', message: 'token revoked' };
    }
    return { ok: true, claims };
  }

  async function verify(token: string, opts: VerifyOptions = {}): Promise<TokenVerification> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      return { ok: false, error: 'malformed', message: 'token is empty or too long' };
    }
    const cached = verified.get(token);
    if (cached) return checkCached(cached, token, opts);
    try {
      decodeProtectedHeader(token);
    } catch {
      return { ok: false, error: 'malformed', message: 'token is not a JWS' };
    }
    const audience = opts.audience ?? agentAudiences;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        async (header) => {
          const key = header.kid === undefined ? null : await keys.publicKey(header.kid);
          if (!key) throw new errors.JWSSignatureVerificationFailed('unknown signing key');
          return key;
        },
        {
          issuer,
          ...(audience === 'any' ? {} : { audience: typeof audience === 'string' ? audience : [...audience] }),
          algorithms: ['ES256'],
          typ: ACCESS_TOKEN_TYP,
          clockTolerance: leewayS,
          currentDate: new Date(now()),
          requiredClaims: ['jti', 'sub', 'exp', 'iat'],
        },
      ));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { ok: false, error: 'expired', message: 'token expired' };
      if (err instanceof errors.JWTClaimValidationFailed) {
        if (err.claim === 'aud') return { ok: false, error: 'wrong_audience', message: 'token audience not accepted here' };
        if (err.claim === 'iss') return { ok: false, error: 'wrong_issuer', message: 'token not issued by this AGP' };
        return { ok: false, error: 'malformed', message: `token claim \`${err.claim}\` is invalid` };
      }
      if (err instanceof errors.JWSSignatureVerificationFailed) {
        return { ok: false, error: 'bad_signature', message: 'token signature does not verify' };
      }
      if (err instanceof errors.JOSEAlgNotAllowed) {
        return { ok: false, error: 'bad_signature', message: 'token signed with an algorithm AGP does not use' };
      }
      if (err instanceof errors.JOSEError) return { ok: false, error: 'malformed', message: 'token is malformed' };
      throw err;
    }
    if (!wellFormed(payload)) return { ok: false, error: 'malformed', message: 'token lacks AGP claims' };
    remember(token, payload);
    if (opts.checkRevocation !== false && (await revoked(payload))) {
      return { ok: false, error: 'revoked', message: 'token revoked' };
    }
    return { ok: true, claims: payload };
  }

  return {
    issuer,
    maxTtlS,
    async issue(input) {
      const { kid, privateKey } = await keys.signingKey();
      const iat = Math.floor(now() / 1000);
      const ttl = Math.max(1, Math.min(maxTtlS, Math.floor(input.ttlS)));
      // A child never outlives its parent, even when the clock ticked since the caller looked.
      const exp = input.notAfter !== undefined ? Math.min(iat + ttl, input.notAfter) : iat + ttl;
      if (exp <= iat) throw new ParentExpiringError('the token it is made from expires too soon');
      const claims: AccessTokenClaims = {
        iss: issuer,
        sub: input.subject,
        aud: input.audience.length === 1 ? input.audience[0]! : [...input.audience],
        scope: input.scope.join(' '),
        jti: randomBytes(16).toString('base64url'),
        iat,
        exp,
        client_id: input.clientId,
        agp_agent: input.agent,
        ...(input.act ? { act: input.act } : {}),
        ...(input.mayAct ? { may_act: input.mayAct } : {}),
        ...(input.ancestors && input.ancestors.length > 0 ? { agp_ancestors: [...input.ancestors] } : {}),
        ...(input.jkt !== undefined ? { cnf: { jkt: input.jkt } } : {}),
      };
      const token = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: ACCESS_TOKEN_TYP }).sign(privateKey);
      return { token, claims };
    },
    verify,
    verifyAgentToken(token) {
      return verify(token, { audience: agentAudiences });
    },
  };
}
