// Per-agent credentials: public keys for `private_key_jwt` client assertions (RFC 7523)
// with single-use `jti`s shared across replicas, and AGP-issued client secrets kept only
// as scrypt hashes, rotated with an overlap window. Every use is reported to the audit.

import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, errors, importJWK, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import type { AgentRecord, ContextStore } from '../context/types.js';
import type { CredentialMethod, IdentityAudit } from './events.js';
import { unverifiedText } from './events.js';
import type { RequestOrigin } from './oauth.js';
import type { ScryptGateOptions, SecretThrottleOptions } from './secret-attempts.js';
import { ScryptGate, SecretThrottle } from './secret-attempts.js';

const OWNER_NS = 'cred-key-owner';
const AGENT_KEYS_NS = 'cred-keys';
const SECRET_NS = 'cred-secret';
const JTI_NS = 'assertion-jti';
/** Per-agent credential settings (`dpop_bound_access_tokens`). */
const SETTINGS_NS = 'cred-settings';
// kvSetIfAbsent needs a TTL; the binding is made permanent right after it is won.
const CLAIM_TTL_MS = 60_000;
/** Serializes changes to one agent's key list across replicas (a lease in the store). */
const KEYS_LOCK_NS = 'cred-keys-lock';
/** A lease outlives any change by far; it only expires on its own if its holder died. */
const KEYS_LOCK_TTL_MS = 10_000;
/** How long a change waits for another admin's change to the same agent's keys, by default. */
const KEYS_LOCK_WAIT_MS = 5_000;

export const ASSERTION_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] as const;
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const MAX_ASSERTION_LIFETIME_S = 300;
export const MAX_KEYS_PER_AGENT = 10;
/** Longer `iss` values name no agent: refused before any store lookup. */
const MAX_AGENT_ID = 256;

export type CredentialFailure =
  | 'malformed'
  | 'unknown_agent'
  | 'inactive_agent'
  | 'no_credential'
  | 'bad_signature'
  | 'expired'
  | 'wrong_audience'
  | 'lifetime_too_long'
  | 'replayed'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'bad_secret'
  | 'throttled'
  | 'busy';

export type CredentialCheck =
  | { ok: true; agent: AgentRecord; method: CredentialMethod; credential: string }
  | {
      ok: false;
      reason: CredentialFailure;
      message: string;
      agent?: string;
      /** The assertion's signature verified: what is wrong with its claims may be told. */
      signed: boolean;
      /** Throttled or out of verification capacity: retry after this many seconds. */
      retryAfterS?: number;
    };

/** What an agent's registration says about its tokens (RFC 7591 / RFC 9449 §5.2 names). */
export interface CredentialSettings {
  /** Every token of the agent must be DPoP-bound: a token request without a proof is refused. */
  dpop_bound_access_tokens: boolean;
}

export interface RegisteredKey {
  /** RFC 7638 SHA-256 thumbprint: the key's identity across all agents. */
  thumbprint: string;
  jwk: JWK;
  createdAt: number;
}

export type RegisterKeyResult =
  | { ok: true; key: RegisteredKey; created: boolean }
  | { ok: false; status: 400 | 404 | 409; code: string; message: string; hint?: string };

export interface IssuedSecret {
  client_id: string;
  client_secret: string;
  secret_id: string;
  /** Epoch ms until which the previous secret still works, when there was one and overlap > 0. */
  previous_valid_until?: number;
}

interface StoredSecret {
  id: string;
  salt: string;
  hash: string;
  n: number;
  createdAt: number;
  /** Only on the previous secret during an overlap window. */
  expiresAt?: number;
}

interface SecretRecord {
  current: StoredSecret;
  previous?: StoredSecret;
}

export interface CredentialServiceOptions {
  store: ContextStore;
  audit?: IdentityAudit;
  /** Values accepted as an assertion's `aud` (token endpoint URLs, the issuer). */
  assertionAudiences: readonly string[];
  /** scrypt cost N for new secrets (default 2^14); stored with each hash. */
  scryptN?: number;
  /** Clock skew tolerated on assertions (`exp`, `nbf`, `iat`), in seconds (default 30). */
  leewayS?: number;
  /** Backoff of failed client-secret attempts. */
  throttle?: SecretThrottleOptions;
  /** How many scrypt verifications run at once, and how many may wait. */
  scryptGate?: ScryptGateOptions;
  now?: () => number;
  /** How long a key change waits for another change to the same agent's keys (default 5 s). */
  keysLockWaitMs?: number;
}

/** A key change that could not get the agent's key list in time (another change holds it). */
export class CredentialsBusyError extends Error {
  readonly statusCode = 503;
  readonly code = 'credentials_busy';
}

export interface CredentialService {
  registerKey(agentId: string, jwk: unknown): Promise<RegisterKeyResult>;
  /** By thumbprint or the JWK's own `kid`. */
  removeKey(agentId: string, kid: string): Promise<boolean>;
  listKeys(agentId: string): Promise<RegisteredKey[]>;
  /** Issues (or rotates to) a new secret; the previous one keeps working for `overlapS`. */
  issueSecret(agentId: string, overlapS: number): Promise<IssuedSecret | null>;
  /** Revokes every secret of the agent at once. */
  revokeSecret(agentId: string): Promise<boolean>;
  verifyAssertion(assertion: string, origin?: RequestOrigin): Promise<CredentialCheck>;
  verifySecret(clientId: string, secret: string, origin?: RequestOrigin): Promise<CredentialCheck>;
  settings(agentId: string): Promise<CredentialSettings>;
  /** Null when the agent is unknown. */
  putSettings(agentId: string, settings: CredentialSettings): Promise<CredentialSettings | null>;
}

function scrypt(secret: string, salt: Buffer, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(secret, salt, 32, { N: n, r: 8, p: 1, maxmem: 256 * n * 8 + 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function publicJwk(input: unknown): { ok: true; jwk: JWK } | { ok: false; message: string; hint?: string } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, message: 'the key must be a JWK object' };
  const jwk = input as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) {
    return { ok: false, message: 'the JWK holds private key material', hint: 'send only the public key; keep the private key with the agent' };
  }
  if (jwk.kty !== 'EC' && jwk.kty !== 'RSA' && jwk.kty !== 'OKP') {
    return { ok: false, message: `key type \`${String(jwk.kty)}\` is not supported`, hint: 'use an EC (P-256, P-384), RSA (2048+) or Ed25519 key' };
  }
  if (jwk.alg !== undefined && !(ASSERTION_ALGS as readonly unknown[]).includes(jwk.alg)) {
    return { ok: false, message: `algorithm \`${String(jwk.alg)}\` is not supported`, hint: `use one of ${ASSERTION_ALGS.join(', ')}` };
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') return { ok: false, message: 'the key is not a signing key (`use` is not `sig`)' };
  if (jwk.kty === 'RSA' && (typeof jwk.n !== 'string' || Buffer.from(jwk.n, 'base64url').length < 256)) {
    return { ok: false, message: 'RSA keys must have at least 2048 bits' };
  }
  const out: JWK = {};
  for (const k of ['kty', 'crv', 'x', 'y', 'n', 'e', 'alg', 'kid', 'use']) {
    const v = jwk[k];
    if (typeof v === 'string') (out as Record<string, string>)[k] = v;
  }
  return { ok: true, jwk: out };
}

/** Why a correctly signed assertion's claims were refused. */
function claimFailure(err: unknown): { reason: CredentialFailure; message: string } {
  if (err instanceof errors.JWTExpired) return { reason: 'expired', message: 'the assertion expired' };
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return { reason: 'wrong_audience', message: 'the assertion `aud` must be the token endpoint URL or the issuer' };
    if (err.claim === 'nbf') return { reason: 'not_yet_valid', message: 'the assertion is not valid yet (`nbf`)' };
  }
  return { reason: 'malformed', message: 'the assertion claims are invalid' };
}

function algsFor(jwk: JWK): string[] {
  if (jwk.alg) return [jwk.alg];
  if (jwk.kty === 'EC') return jwk.crv === 'P-384' ? ['ES384'] : ['ES256'];
  if (jwk.kty === 'OKP') return ['EdDSA'];
  return ['RS256', 'PS256'];
}

export function createCredentialService(options: CredentialServiceOptions): CredentialService {
  const { store } = options;
  const now = options.now ?? Date.now;
  const audit = options.audit ?? (() => {});
  const scryptN = options.scryptN ?? 2 ** 14;
  const leewayS = options.leewayS ?? 30;
  const throttle = new SecretThrottle({ ...options.throttle, now });
  const gate = new ScryptGate(options.scryptGate);
  // How long one verification takes here: a client id without a secret waits as long,
  // without doing the work, so the answer has one shape and costs no CPU.
  let scryptMs: number | undefined;

  async function timedScrypt(secret: string, salt: Buffer, n: number): Promise<Buffer> {
    const started = performance.now();
    const hash = await scrypt(secret, salt, n);
    const took = performance.now() - started;
    scryptMs = scryptMs === undefined ? took : scryptMs * 0.8 + took * 0.2;
    return hash;
  }

  async function decoyWait(): Promise<void> {
    if (scryptMs === undefined) {
      // Measured once, through the gate like any verification.
      if ((await gate.run(() => timedScrypt('decoy', randomBytes(16), scryptN))) !== 'busy') return;
    }
    await new Promise((resolve) => setTimeout(resolve, scryptMs ?? 50));
  }

  /**
   * Runs `change` holding the lease on the agent's key list: two admins (on any replicas)
   * adding or removing keys of one agent at once would otherwise each write the list they
   * read, and one change would be lost.
   */
  async function withKeysLock<T>(agentId: string, change: () => Promise<T>): Promise<T> {
    const token = randomBytes(12).toString('base64url');
    const giveUpAt = Date.now() + (options.keysLockWaitMs ?? KEYS_LOCK_WAIT_MS);
    for (let wait = 2; !(await store.kvSetIfAbsent(KEYS_LOCK_NS, agentId, token, KEYS_LOCK_TTL_MS)); wait = Math.min(wait * 2, 50)) {
      if (Date.now() > giveUpAt) throw new CredentialsBusyError(`the keys of agent \`${agentId}\` are being changed by another request`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    try {
      return await change();
    } finally {
      // Released only if still ours (an expired lease may have passed to someone else).
      if ((await store.kvGet(KEYS_LOCK_NS, agentId)) === token) await store.kvDelete(KEYS_LOCK_NS, agentId);
    }
  }

  async function agentKeys(agentId: string): Promise<RegisteredKey[]> {
    const raw = await store.kvGet(AGENT_KEYS_NS, agentId);
    return raw ? (JSON.parse(raw) as RegisteredKey[]) : [];
  }

  async function activeAgent(agentId: string): Promise<{ ok: true; agent: AgentRecord } | { ok: false; reason: CredentialFailure; message: string }> {
    const agent = await store.getAgent(agentId);
    if (!agent) return { ok: false, reason: 'unknown_agent', message: `unknown agent \`${agentId.slice(0, 100)}\`` };
    if (!agent.active) return { ok: false, reason: 'inactive_agent', message: `agent \`${agentId}\` is deactivated` };
    return { ok: true, agent };
  }

  /**
   * A rejected credential. `agent` is whatever the caller claimed, unverified: the audit gets
   * a short prefix and a digest of it, and the caller's address as the flood-control key.
   */
  function reject(
    method: CredentialMethod,
    reason: CredentialFailure,
    message: string,
    extra: { agent?: string; origin?: RequestOrigin; signed?: boolean; retryAfterS?: number } = {},
  ): CredentialCheck & { ok: false } {
    const { agent, origin } = extra;
    audit({
      kind: 'credential_rejected',
      ...(agent !== undefined ? { agent: unverifiedText(agent) } : {}),
      method,
      reason,
      ...(origin !== undefined ? { address: origin.address } : {}),
      at: now(),
    });
    return {
      ok: false,
      reason,
      message,
      signed: extra.signed ?? false,
      ...(agent !== undefined ? { agent } : {}),
      ...(extra.retryAfterS !== undefined ? { retryAfterS: extra.retryAfterS } : {}),
    };
  }

  return {
    async registerKey(agentId, input) {
      const agent = await store.getAgent(agentId);
      if (!agent) return { ok: false, status: 404, code: 'unknown_agent', message: `unknown agent \`${agentId}\`` };
      const checked = publicJwk(input);
      if (!checked.ok) return { ok: false, status: 400, code: 'invalid_key', message: checked.message, ...(checked.hint ? { hint: checked.hint } : {}) };
      const jwk = checked.jwk;
      try {
        await importJWK(jwk, algsFor(jwk)[0]);
      } catch {
        return { ok: false, status: 400, code: 'invalid_key', message: 'the JWK is not a valid public key' };
      }
      const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
      return withKeysLock(agentId, async () => {
        const owner = (await store.kvSetIfAbsent(OWNER_NS, thumbprint, agentId, CLAIM_TTL_MS))
          ? agentId
          : await store.kvGet(OWNER_NS, thumbprint);
        if (owner !== null && owner !== agentId) {
          return {
            ok: false,
            status: 409,
            code: 'key_bound_to_other_agent',
            message: 'this key is already registered to another agent',
            hint: 'generate a key pair per agent: a credential belongs to exactly one agent',
          };
        }
        await store.kvSet(OWNER_NS, thumbprint, agentId);
        const keys = await agentKeys(agentId);
        const existing = keys.find((k) => k.thumbprint === thumbprint);
        if (existing) return { ok: true, key: existing, created: false };
        if (keys.length >= MAX_KEYS_PER_AGENT) {
          await store.kvDelete(OWNER_NS, thumbprint);
          return { ok: false, status: 409, code: 'too_many_keys', message: `an agent holds at most ${MAX_KEYS_PER_AGENT} keys`, hint: 'remove a retired key first' };
        }
        const key: RegisteredKey = { thumbprint, jwk, createdAt: now() };
        await store.kvSet(AGENT_KEYS_NS, agentId, JSON.stringify([...keys, key]));
        audit({ kind: 'credential_registered', agent: agentId, method: 'private_key_jwt', credential: thumbprint, at: now() });
        return { ok: true, key, created: true };
      });
    },

    removeKey(agentId, kid) {
      return withKeysLock(agentId, async () => {
        const keys = await agentKeys(agentId);
        const gone = keys.filter((k) => k.thumbprint === kid || k.jwk.kid === kid);
        if (gone.length === 0) return false;
        const kept = keys.filter((k) => !gone.includes(k));
        if (kept.length > 0) await store.kvSet(AGENT_KEYS_NS, agentId, JSON.stringify(kept));
        else await store.kvDelete(AGENT_KEYS_NS, agentId);
        for (const k of gone) {
          await store.kvDelete(OWNER_NS, k.thumbprint);
          audit({ kind: 'credential_revoked', agent: agentId, method: 'private_key_jwt', credential: k.thumbprint, at: now() });
        }
        return true;
      });
    },

    listKeys: agentKeys,

    async issueSecret(agentId, overlapS) {
      if (!(await store.getAgent(agentId))) return null;
      const secret = randomBytes(32).toString('base64url');
      const salt = randomBytes(16);
      const t = now();
      const current: StoredSecret = {
        id: randomBytes(6).toString('base64url'),
        salt: salt.toString('base64url'),
        hash: (await scrypt(secret, salt, scryptN)).toString('base64url'),
        n: scryptN,
        createdAt: t,
      };
      const raw = await store.kvGet(SECRET_NS, agentId);
      const old = raw ? (JSON.parse(raw) as SecretRecord).current : undefined;
      const overlapMs = Math.max(0, Math.floor(overlapS * 1000));
      const record: SecretRecord = { current };
      if (old && overlapMs > 0) record.previous = { ...old, expiresAt: t + overlapMs };
      await store.kvSet(SECRET_NS, agentId, JSON.stringify(record));
      audit({ kind: 'credential_registered', agent: agentId, method: 'client_secret', credential: current.id, at: t });
      return {
        client_id: agentId,
        client_secret: secret,
        secret_id: current.id,
        ...(record.previous?.expiresAt !== undefined ? { previous_valid_until: record.previous.expiresAt } : {}),
      };
    },

    async revokeSecret(agentId) {
      const raw = await store.kvGet(SECRET_NS, agentId);
      if (!raw) return false;
      await store.kvDelete(SECRET_NS, agentId);
      const record = JSON.parse(raw) as SecretRecord;
      for (const s of [record.current, record.previous]) {
        if (s) audit({ kind: 'credential_revoked', agent: agentId, method: 'client_secret', credential: s.id, at: now() });
      }
      return true;
    },

    async verifySecret(clientId, secret, origin) {
      const method = 'client_secret';
      const key = `${clientId.slice(0, 256)}\n${origin?.address ?? ''}`;
      const waitMs = throttle.waitMs(key);
      if (waitMs > 0) {
        const retryAfterS = Math.ceil(waitMs / 1000);
        return reject(method, 'throttled', `too many failed client authentications; retry after ${retryAfterS}s`, { agent: clientId, ...(origin ? { origin } : {}), retryAfterS });
      }
      const raw = clientId.length <= 256 ? await store.kvGet(SECRET_NS, clientId) : null;
      const t = now();
      const record = raw ? (JSON.parse(raw) as SecretRecord) : undefined;
      const candidates = record
        ? [record.current, record.previous].filter((s): s is StoredSecret => s !== undefined && (s.expiresAt === undefined || s.expiresAt > t))
        : [];
      const fail = (reason: CredentialFailure, message: string) => {
        throttle.failed(key);
        return reject(method, reason, message, { agent: clientId, ...(origin ? { origin } : {}) });
      };
      if (candidates.length === 0) {
        await decoyWait();
        return fail(record ? 'bad_secret' : 'no_credential', 'client authentication failed');
      }
      const matched = await gate.run(async () => {
        let found: StoredSecret | undefined;
        for (const s of candidates) {
          const hash = await timedScrypt(secret, Buffer.from(s.salt, 'base64url'), s.n);
          const stored = Buffer.from(s.hash, 'base64url');
          if (hash.length === stored.length && timingSafeEqual(hash, stored)) found = s;
        }
        return found;
      });
      if (matched === 'busy') {
        return reject(method, 'busy', 'too many client authentications at once; retry in a moment', { agent: clientId, ...(origin ? { origin } : {}), retryAfterS: 1 });
      }
      if (!matched) return fail('bad_secret', 'client authentication failed');
      const agent = await activeAgent(clientId);
      if (!agent.ok) return fail(agent.reason, agent.message);
      throttle.succeeded(key);
      audit({ kind: 'credential_used', agent: clientId, method, credential: matched.id, at: t });
      return { ok: true, agent: agent.agent, method, credential: matched.id };
    },

    async verifyAssertion(assertion, origin) {
      const method = 'private_key_jwt';
      const from = origin ? { origin } : {};
      let claims: ReturnType<typeof decodeJwt>;
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        claims = decodeJwt(assertion);
        header = decodeProtectedHeader(assertion);
      } catch {
        return reject(method, 'malformed', 'the assertion is not a JWT', from);
      }
      if (typeof claims.iss !== 'string' || claims.iss !== claims.sub) {
        return reject(method, 'malformed', 'the assertion must have `iss` = `sub` = the agent id', {
          ...from,
          ...(typeof claims.iss === 'string' ? { agent: claims.iss } : {}),
        });
      }
      const agentId = claims.iss;
      if (agentId.length > MAX_AGENT_ID) return reject(method, 'unknown_agent', 'unknown agent', { ...from, agent: agentId });
      const who = { ...from, agent: agentId };
      const found = await activeAgent(agentId);
      if (!found.ok) return reject(method, found.reason, found.message, who);
      if (typeof header.alg !== 'string' || !(ASSERTION_ALGS as readonly string[]).includes(header.alg)) {
        return reject(method, 'bad_signature', `assertion algorithm \`${String(header.alg).slice(0, 20)}\` is not accepted`, who);
      }
      const keys = await agentKeys(agentId);
      if (keys.length === 0) return reject(method, 'no_credential', `agent \`${agentId}\` has no registered key`, who);
      const named = header.kid === undefined ? [] : keys.filter((k) => k.thumbprint === header.kid || k.jwk.kid === header.kid);
      const candidates = (named.length > 0 ? named : keys).filter((k) => algsFor(k.jwk).includes(header.alg!));
      let used: RegisteredKey | undefined;
      let failure: { reason: CredentialFailure; message: string } | undefined;
      for (const k of candidates) {
        try {
          await jwtVerify(assertion, await importJWK(k.jwk, header.alg), {
            issuer: agentId,
            subject: agentId,
            audience: [...options.assertionAudiences],
            algorithms: [header.alg],
            clockTolerance: leewayS,
            currentDate: new Date(now()),
            requiredClaims: ['exp', 'jti'],
          });
          used = k;
          break;
        } catch (err) {
          if (err instanceof errors.JWSSignatureVerificationFailed) continue;
          failure = claimFailure(err);
          // Claims are checked after the signature: this key verified, the claims did not.
          break;
        }
      }
      if (failure) return reject(method, failure.reason, failure.message, { ...who, signed: true });
      if (!used) return reject(method, 'bad_signature', 'the assertion signature does not verify with any registered key', who);
      const signed = { ...who, signed: true };
      const exp = claims.exp!;
      const t = now();
      if (exp * 1000 - t > (MAX_ASSERTION_LIFETIME_S + leewayS) * 1000) {
        return reject(method, 'lifetime_too_long', `an assertion may live at most ${MAX_ASSERTION_LIFETIME_S}s`, signed);
      }
      // jose checks `iat` only for its age; one from the future is a clock or a forgery.
      if (typeof claims.iat === 'number' && claims.iat * 1000 > t + leewayS * 1000) {
        return reject(method, 'issued_in_future', `the assertion \`iat\` is more than ${leewayS}s in the future`, signed);
      }
      const jti = String(claims.jti);
      const jtiKey = createHash('sha256').update(`${agentId}\n${jti}`).digest('base64url');
      const ttlMs = Math.max(1000, exp * 1000 - t + leewayS * 1000);
      if (!(await store.kvSetIfAbsent(JTI_NS, jtiKey, '1', ttlMs))) {
        return reject(method, 'replayed', 'the assertion `jti` was already used', signed);
      }
      audit({ kind: 'credential_used', agent: agentId, method, credential: used.thumbprint, jti: unverifiedText(jti), at: t });
      return { ok: true, agent: found.agent, method, credential: used.thumbprint };
    },

    async settings(agentId) {
      const raw = await store.kvGet(SETTINGS_NS, agentId);
      const stored = raw ? (JSON.parse(raw) as Partial<CredentialSettings>) : {};
      return { dpop_bound_access_tokens: stored.dpop_bound_access_tokens === true };
    },

    async putSettings(agentId, settings) {
      if (!(await store.getAgent(agentId))) return null;
      await store.kvSet(SETTINGS_NS, agentId, JSON.stringify(settings));
      audit({ kind: 'credential_settings', agent: agentId, dpop_bound_access_tokens: settings.dpop_bound_access_tokens, at: now() });
      return settings;
    },
  };
}
