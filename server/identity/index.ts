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
import type { TrustedIssuer } from './exchange.js';
import { TRUSTED_ISSUERS_ENV, trustedIssuersFromEnv } from './trusted-issuers.js';

export type { DecideScope, TrustedIssuer, TokenResponse } from './exchange.js';
export type { IdentityAudit, IdentityAuditEvent } from './events.js';
export type { KeyRing } from './keys.js';
export type { AccessTokenClaims, ActClaim, TokenErrorCode, TokenService, TokenVerification } from './tokens.js';
export type { CredentialService } from './credentials.js';
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

export interface Identity {
  keys: KeyRing;
  tokens: TokenService;
  credentials: CredentialService;
  /** An AGP-issued bearer token as an agent's identity: `claims.agp_agent` is the agent id. */
  verifyAgentToken(token: string): Promise<TokenVerification>;
  close(): void;
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
  return { keys, tokens, credentials, verifyAgentToken: (t) => tokens.verifyAgentToken(t), close: () => keys.close() };
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
