// The identity service assembled: key ring, token service and credentials built from one
// configuration, and the environment variables that configure them. The server wires
// `identityRoutes` with these and uses `verifyAgentToken` for `/v1/decide`.

import type { ContextStore } from '../context/types.js';
import type { CredentialService } from './credentials.js';
import { createCredentialService } from './credentials.js';
import type { IdentityAudit } from './events.js';
import type { KeyRing } from './keys.js';
import { createKeyRing, deriveSealingKey, KeyRingError } from './keys.js';
import { assertionAudiences } from './routes.js';
import type { TokenService, TokenVerification } from './tokens.js';
import { createTokenService } from './tokens.js';
import { DPOP_HEADER, DpopVerifier } from './dpop.js';
import type { TrustedIssuer } from './exchange.js';
import { TRUSTED_ISSUERS_ENV, trustedIssuersFromEnv } from './trusted-issuers.js';

export type { DecideScope, TrustedIssuer, TokenResponse } from './exchange.js';
export type { IdentityAudit, IdentityAuditEvent } from './events.js';
export type { KeyRing } from './keys.js';
export type { AccessTokenClaims, ActClaim, TokenErrorCode, TokenService, TokenVerification } from './tokens.js';
export type { CredentialService, CredentialSettings } from './credentials.js';
export { DpopVerifier, DPOP_HEADER, DPOP_ALGS, accessTokenHash } from './dpop.js';
export { auditFloodKey, unverifiedText } from './events.js';
export type { ScopeMap } from './scopes.js';
export type { ScopeConfig } from './scope-config.js';
export { EMPTY_SCOPE_CONFIG, SCOPE_CONFIG_FILE, loadScopeConfig, parseScopeConfig } from './scope-config.js';
export type { IdentityRoutesOptions } from './routes.js';
export { identityRoutes } from './routes.js';
export { scopeAllows } from './scopes.js';
export { KeyRingError } from './keys.js';
export { TRUSTED_ISSUERS_ENV, parseTrustedIssuers, trustedIssuersFromEnv } from './trusted-issuers.js';

export interface IdentityOptions {
  store: ContextStore;
  /** `AGP_ISSUER`: the public base URL. */
  issuer: string;
  /** `AGP_KEY_ENCRYPTION_KEY`: 32 bytes, base64. */
  encryptionKey: Uint8Array | string;
  /** `AGP_TOKEN_TTL`: default and maximum token lifetime, seconds (default 300). */
  tokenTtlS?: number;
  /** `AGP_KEY_ROTATE_EVERY`: signing key lifetime in ms (the variable: a duration, bare numbers in seconds; default 24h). */
  rotateEveryMs?: number;
  /** Audiences `/v1/decide` accepts on agent tokens (default: the issuer). */
  agentAudiences?: readonly string[];
  audit?: IdentityAudit;
  /** scrypt cost for client secrets (default 2^14). */
  scryptN?: number;
  /** How long a key change waits for another change to the same agent's keys (default 5 s). */
  keysLockWaitMs?: number;
  now?: () => number;
  /** Background rotation timer (default true). */
  timer?: boolean;
}

/** The HTTP request an agent token came with (a decision route), as far as identity needs it. */
export interface AgentTokenRequest {
  method: string;
  /** The URL as the server saw it; only its path is used (the proof's `htu` is the issuer and this path). */
  url: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface Identity {
  keys: KeyRing;
  tokens: TokenService;
  credentials: CredentialService;
  dpop: DpopVerifier;
  /**
   * An AGP-issued token as an agent's identity (`claims.agp_agent` is the agent id): its
   * signature, audience, expiry and revocation (its own and every ancestor's). A DPoP-bound
   * token is refused here: use `verifyAgentRequest`.
   */
  verifyAgentToken(token: string): Promise<TokenVerification>;
  /**
   * The same for a request to a decision route, with RFC 9449: a DPoP-bound token needs a
   * valid proof of its key for this method and URL, with `ath` the token's hash.
   */
  verifyAgentRequest(token: string, request: AgentTokenRequest): Promise<TokenVerification>;
  close(): void;
}

const TOKEN_SCHEME = /^(?:Bearer|DPoP)[ \t]+/i;

/** The path of a request URL (absolute or not), without its query. */
function pathOf(url: string): string {
  try {
    return new URL(url, 'http://agp.invalid').pathname;
  } catch {
    return url.split('?')[0]!;
  }
}

/**
 * An agent token on a decision route. A token bound to a key (`cnf.jkt`) needs the
 * request's `DPoP` proof: signed with that key, for this method and `<issuer><path>`,
 * fresh, unused, and with `ath` the token's hash. The token may be sent as `DPoP <token>`.
 */
export async function verifyAgentRequest(
  tokens: TokenService,
  dpop: DpopVerifier,
  issuer: string,
  header: string,
  request: AgentTokenRequest,
): Promise<TokenVerification> {
  const token = header.replace(TOKEN_SCHEME, '').trim();
  const v = await tokens.verifyAgentToken(token);
  if (!v.ok) return v;
  const jkt = v.claims.cnf?.jkt;
  if (jkt === undefined) return v;
  const proof = await dpop.check(request.headers[DPOP_HEADER], { method: request.method, url: `${issuer}${pathOf(request.url)}`, accessToken: token });
  if (proof === undefined) return { ok: false, error: 'invalid_dpop_proof', message: 'the token is DPoP-bound: send a `DPoP` proof of its key' };
  if (!proof.ok) return { ok: false, error: 'invalid_dpop_proof', message: proof.message };
  if (proof.jkt !== jkt) return { ok: false, error: 'invalid_dpop_proof', message: 'the DPoP proof is not signed with the key the token is bound to' };
  return v;
}

/** Throws `KeyRingError` (with a hint) when the encryption key is wrong or missing. */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  const issuer = options.issuer.replace(/\/+$/, '');
  const tokenTtlS = options.tokenTtlS ?? 300;
  const audit = options.audit ?? (() => {});
  const now = options.now ?? Date.now;
  const keys = await createKeyRing({
    store: options.store,
    encryptionKey: options.encryptionKey,
    maxTokenTtlMs: tokenTtlS * 1000,
    now,
    ...(options.rotateEveryMs !== undefined ? { rotateEveryMs: options.rotateEveryMs } : {}),
    ...(options.timer !== undefined ? { timer: options.timer } : {}),
    onEvent: (e) => {
      if (e.kind !== 'key_error') audit(e);
    },
  });
  const tokens = createTokenService({
    keys,
    store: options.store,
    issuer,
    maxTtlS: tokenTtlS,
    now,
    ...(options.agentAudiences ? { agentAudiences: options.agentAudiences } : {}),
  });
  const credentials = createCredentialService({
    store: options.store,
    audit,
    assertionAudiences: assertionAudiences(issuer),
    now,
    ...(options.scryptN !== undefined ? { scryptN: options.scryptN } : {}),
    ...(options.keysLockWaitMs !== undefined ? { keysLockWaitMs: options.keysLockWaitMs } : {}),
  });
  const dpop = new DpopVerifier({ store: options.store, now });
  return {
    keys,
    tokens,
    credentials,
    dpop,
    // Without the request there is no proof to check: a bound token is refused (fail closed).
    verifyAgentToken: async (t) => {
      const v = await tokens.verifyAgentToken(t);
      return v.ok && v.claims.cnf ? { ok: false, error: 'invalid_dpop_proof', message: 'the token is DPoP-bound: send a `DPoP` proof of its key' } : v;
    },
    verifyAgentRequest: (t, r) => verifyAgentRequest(tokens, dpop, issuer, t, r),
    close: () => keys.close(),
  };
}

export interface IdentityEnvConfig {
  issuer: string;
  encryptionKey: string;
  tokenTtlS: number;
  rotateEveryMs: number;
  /** Identity providers whose user tokens agents may act for (`AGP_TRUSTED_ISSUERS`). */
  trustedIssuers: TrustedIssuer[];
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `300`, `300s`, `5m`, `24h` → milliseconds; a bare number is in `bareUnit`. */
export function parseDurationMs(text: string, bareUnit: 's' | 'ms'): number | null {
  const m = DURATION.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? bareUnit]!;
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

/**
 * Identity settings from the environment. `defaultIssuer` applies without `AGP_ISSUER`
 * (e.g. `http://127.0.0.1:8080`); a missing encryption key is an error the caller reports
 * (it may choose an ephemeral key on loopback).
 */
export function identityConfigFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  defaultIssuer: string,
): { value?: IdentityEnvConfig; errors: { variable: string; message: string; hint: string }[] } {
  const errors: { variable: string; message: string; hint: string }[] = [];
  const issuer = (env.AGP_ISSUER ?? defaultIssuer).replace(/\/+$/, '');
  try {
    const u = new URL(issuer);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
  } catch {
    errors.push({ variable: 'AGP_ISSUER', message: `issuer \`${issuer}\` is not an http(s) URL`, hint: 'e.g. `https://agp.example.com`' });
  }
  const encryptionKey = env.AGP_KEY_ENCRYPTION_KEY ?? '';
  if (encryptionKey === '') {
    errors.push({ variable: 'AGP_KEY_ENCRYPTION_KEY', message: 'no key encryption key is set', hint: 'set it to `openssl rand -base64 32`' });
  } else {
    try {
      deriveSealingKey(encryptionKey);
    } catch (err) {
      if (!(err instanceof KeyRingError)) throw err;
      errors.push({ variable: 'AGP_KEY_ENCRYPTION_KEY', message: err.message, hint: err.hint });
    }
  }
  const ttlMs = parseDurationMs(env.AGP_TOKEN_TTL ?? '300', 's');
  if (ttlMs === null || ttlMs < 1000 || ttlMs > 86_400_000) {
    errors.push({ variable: 'AGP_TOKEN_TTL', message: `token lifetime \`${env.AGP_TOKEN_TTL}\` is invalid`, hint: 'seconds or a duration from `1s` to `24h`, e.g. `5m`' });
  }
  const rotateMs = parseDurationMs(env.AGP_KEY_ROTATE_EVERY ?? '24h', 's');
  if (rotateMs === null || rotateMs < 60_000) {
    errors.push({ variable: 'AGP_KEY_ROTATE_EVERY', message: `rotation period \`${env.AGP_KEY_ROTATE_EVERY}\` is invalid`, hint: 'a duration of at least `1m`, e.g. `24h`' });
  }
  const trusted = trustedIssuersFromEnv(env, issuer);
  for (const message of trusted.errors) {
    errors.push({ variable: TRUSTED_ISSUERS_ENV, message, hint: 'a JSON array of {"issuer", "jwks_uri" or "jwks", "audience"?, "algorithms"?}, inline or in a file; see docs/identity.md' });
  }
  if (errors.length > 0) return { errors };
  return { value: { issuer, encryptionKey, tokenTtlS: Math.floor(ttlMs! / 1000), rotateEveryMs: rotateMs!, trustedIssuers: trusted.value ?? [] }, errors };
}
