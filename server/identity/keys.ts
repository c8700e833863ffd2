// AGP's own token-signing keys: ES256 pairs generated here, kept in the context store (kv
// namespace `keys`, private halves sealed with AES-256-GCM) so every replica signs and
// verifies with the same set, rotated on a schedule under a store lock, and published as a
// JWKS until the last token each key signed has expired.

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import type { ContextStore } from '../context/types.js';

export const KEYS_NS = 'keys';
const LOCK_NS = 'keys-lock';
const LOCK_KEY = 'rotate';
const LOCK_TTL_MS = 30_000;
const SIGNING_ALG = 'ES256';

/** One signing key as stored (JSON) in the kv namespace `keys`, keyed by `kid`. */
export interface StoredSigningKey {
  kid: string;
  /** Public JWK with `kid`, `alg`, `use`. */
  publicJwk: JWK;
  /** base64url(iv | ciphertext | tag) of the private JWK; AAD is the kid. */
  sealedPrivate: string;
  createdAt: number;
  /** When a newer key replaced it for signing; absent on the active key. */
  rotatedAt?: number;
  /** When it leaves the JWKS: no token it signed can still be valid then. */
  retireAt?: number;
}

export interface KeyRingOptions {
  store: ContextStore;
  /** 32 bytes, raw or base64 (`AGP_KEY_ENCRYPTION_KEY`); the AES key is derived with HKDF. */
  encryptionKey: Uint8Array | string;
  /** Longest lifetime of any token AGP issues, in ms: an old key stays this long after rotation. */
  maxTokenTtlMs: number;
  /** Signing key lifetime (default 24h). */
  rotateEveryMs?: number;
  /** Clock skew allowed by verifiers, added to the retirement delay (default 60s). */
  leewayMs?: number;
  /** How long the in-process copy is trusted before re-reading the store (default 10s). */
  reloadEveryMs?: number;
  now?: () => number;
  /** Start an unref'd timer that checks the schedule (default true). */
  timer?: boolean;
  /** Called with rotations (for the audit log) and background failures. */
  onEvent?: (event: KeyRingEvent) => void;
}

export type KeyRingEvent =
  | { kind: 'key_rotated'; kid: string; previous?: string; at: number; forced: boolean }
  | { kind: 'key_retired'; kid: string; at: number }
  | { kind: 'key_error'; message: string; at: number };

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
}

export interface KeyRing {
  /** The key to sign with now; rotates first when the schedule says so. */
  signingKey(): Promise<SigningKey>;
  /** Public keys by kid; reloads the store once when the kid is unknown here. */
  publicKey(kid: string): Promise<CryptoKey | null>;
  /** Every key not yet retired, newest first. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Rotates now, whatever the schedule says; returns the new kid. */
  forceRotate(): Promise<string>;
  close(): void;
}

export class KeyRingError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
    this.name = 'KeyRingError';
  }
}

/** The AES-256 key for sealing private JWKs, from the configured 32-byte secret. */
export function deriveSealingKey(encryptionKey: Uint8Array | string): Buffer {
  const raw = typeof encryptionKey === 'string' ? Buffer.from(encryptionKey, 'base64') : Buffer.from(encryptionKey);
  if (raw.length !== 32) {
    throw new KeyRingError(
      `the key encryption key has ${raw.length} bytes, not 32`,
      'set AGP_KEY_ENCRYPTION_KEY to 32 random bytes in base64, e.g. `openssl rand -base64 32`',
    );
  }
  return Buffer.from(hkdfSync('sha256', raw, 'agp-identity', 'agp signing key sealing v1', 32));
}

function seal(key: Buffer, kid: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(kid));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

function unseal(key: Buffer, kid: string, sealed: string): string {
  const all = Buffer.from(sealed, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', key, all.subarray(0, 12));
  decipher.setAAD(Buffer.from(kid));
  decipher.setAuthTag(all.subarray(all.length - 16));
  return Buffer.concat([decipher.update(all.subarray(12, all.length - 16)), decipher.final()]).toString('utf8');
}

function parseRecord(value: string): StoredSigningKey | null {
  try {
    const r = JSON.parse(value) as StoredSigningKey;
    return typeof r.kid === 'string' && typeof r.sealedPrivate === 'string' && typeof r.createdAt === 'number' ? r : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function createKeyRing(options: KeyRingOptions): Promise<KeyRing> {
  const { store } = options;
  const now = options.now ?? Date.now;
  const rotateEveryMs = options.rotateEveryMs ?? 24 * 3600_000;
  const retireAfterMs = options.maxTokenTtlMs + (options.leewayMs ?? 60_000);
  const reloadEveryMs = options.reloadEveryMs ?? 10_000;
  const sealingKey = deriveSealingKey(options.encryptionKey);
  const emit = options.onEvent ?? (() => {});

  let records: StoredSigningKey[] = [];
  let loadedAt = -Infinity;
  let lastUnknownKidReload = -Infinity;
  const publicKeys = new Map<string, CryptoKey>();
  const privateKeys = new Map<string, CryptoKey>();

  async function load(): Promise<void> {
    const rows = await store.kvList(KEYS_NS);
    const t = now();
    const next: StoredSigningKey[] = [];
    for (const row of rows) {
      const r = parseRecord(row.value);
      if (!r) continue;
      if (r.retireAt !== undefined && r.retireAt <= t) {
        // Every token this key signed has expired: it leaves the JWKS and the store.
        await store.kvDelete(KEYS_NS, r.kid);
        publicKeys.delete(r.kid);
        privateKeys.delete(r.kid);
        emit({ kind: 'key_retired', kid: r.kid, at: t });
        continue;
      }
      next.push(r);
    }
    // The active key first, then the most recently rotated.
    next.sort((a, b) => (a.rotatedAt ?? Infinity) === (b.rotatedAt ?? Infinity) ? b.createdAt - a.createdAt : (b.rotatedAt ?? Infinity) - (a.rotatedAt ?? Infinity));
    records = next;
    loadedAt = t;
  }

  async function fresh(): Promise<void> {
    const t = now();
    // A key due to retire is dropped (and deleted from the store) at once, not at the next reload.
    if (t - loadedAt >= reloadEveryMs || records.some((r) => r.retireAt !== undefined && r.retireAt <= t)) await load();
  }

  function active(): StoredSigningKey | undefined {
    // Newest unrotated key; during a rotation two may briefly be unrotated, the newest wins.
    return records.find((r) => r.rotatedAt === undefined);
  }

  async function rotateLocked(forced: boolean): Promise<string | null> {
    const owner = randomBytes(8).toString('hex');
    if (!(await store.kvSetIfAbsent(LOCK_NS, LOCK_KEY, owner, LOCK_TTL_MS))) return null;
    try {
      await load();
      const current = active();
      // Another replica may have rotated between our check and the lock.
      if (!forced && current && now() - current.createdAt < rotateEveryMs) return current.kid;
      const pair = await generateKeyPair(SIGNING_ALG, { extractable: true });
      const publicJwk = await exportJWK(pair.publicKey);
      const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
      const privateJwk = await exportJWK(pair.privateKey);
      const t = now();
      const record: StoredSigningKey = {
        kid,
        publicJwk: { ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' },
        sealedPrivate: seal(sealingKey, kid, JSON.stringify(privateJwk)),
        createdAt: t,
      };
      await store.kvSet(KEYS_NS, kid, JSON.stringify(record));
      for (const r of records) {
        if (r.rotatedAt !== undefined) continue;
        const rotated: StoredSigningKey = { ...r, rotatedAt: t, retireAt: t + retireAfterMs };
        await store.kvSet(KEYS_NS, r.kid, JSON.stringify(rotated));
      }
      privateKeys.set(kid, pair.privateKey);
      publicKeys.set(kid, pair.publicKey);
      await load();
      emit({ kind: 'key_rotated', kid, ...(current ? { previous: current.kid } : {}), at: t, forced });
      return kid;
    } finally {
      if ((await store.kvGet(LOCK_NS, LOCK_KEY)) === owner) await store.kvDelete(LOCK_NS, LOCK_KEY);
    }
  }

  async function rotate(forced: boolean): Promise<string> {
    // Wait for a rotation running elsewhere instead of rotating twice.
    for (let attempt = 0; attempt < 100; attempt++) {
      const kid = await rotateLocked(forced);
      if (kid !== null) return kid;
      await sleep(50);
      if (!forced) {
        await load();
        const current = active();
        if (current && now() - current.createdAt < rotateEveryMs) return current.kid;
      }
    }
    throw new KeyRingError('signing key rotation is locked by another replica', 'retry in a few seconds');
  }

  async function ensureCurrent(): Promise<StoredSigningKey> {
    await fresh();
    let current = active();
    if (!current || now() - current.createdAt >= rotateEveryMs) {
      await rotate(false);
      current = active();
    }
    if (!current) throw new KeyRingError('no signing key after rotation', 'check the context store');
    return current;
  }

  async function privateKeyOf(record: StoredSigningKey): Promise<CryptoKey> {
    const cached = privateKeys.get(record.kid);
    if (cached) return cached;
    let jwk: JWK;
    try {
      jwk = JSON.parse(unseal(sealingKey, record.kid, record.sealedPrivate)) as JWK;
    } catch {
      throw new KeyRingError(
        `cannot decrypt signing key \`${record.kid}\``,
        'every replica must use the same AGP_KEY_ENCRYPTION_KEY; force a rotation after changing it',
      );
    }
    const key = (await importJWK(jwk, SIGNING_ALG)) as CryptoKey;
    privateKeys.set(record.kid, key);
    return key;
  }

  async function publicKeyOf(record: StoredSigningKey): Promise<CryptoKey> {
    const cached = publicKeys.get(record.kid);
    if (cached) return cached;
    const key = (await importJWK(record.publicJwk, SIGNING_ALG)) as CryptoKey;
    publicKeys.set(record.kid, key);
    return key;
  }

  await load();
  const first = await ensureCurrent();
  // Fail at startup, not at the first token, when the sealing key is wrong.
  await privateKeyOf(first);

  let timer: NodeJS.Timeout | undefined;
  if (options.timer !== false) {
    timer = setInterval(() => {
      ensureCurrent().catch((err: unknown) => {
        emit({ kind: 'key_error', message: err instanceof Error ? err.message : String(err), at: now() });
      });
    }, Math.max(1000, Math.min(60_000, Math.floor(rotateEveryMs / 4))));
    timer.unref();
  }

  return {
    async signingKey() {
      const current = await ensureCurrent();
      return { kid: current.kid, privateKey: await privateKeyOf(current) };
    },
    async publicKey(kid) {
      await fresh();
      let record = records.find((r) => r.kid === kid);
      // Another replica may have rotated: look again, at most once a second.
      if (!record && now() - lastUnknownKidReload >= 1000) {
        lastUnknownKidReload = now();
        await load();
        record = records.find((r) => r.kid === kid);
      }
      if (!record || (record.retireAt !== undefined && record.retireAt <= now())) return null;
      return publicKeyOf(record);
    },
    async jwks() {
      await fresh();
      const t = now();
      return {
        keys: records.filter((r) => r.retireAt === undefined || r.retireAt > t).map((r) => ({ ...r.publicJwk })),
      };
    },
    async forceRotate() {
      return rotate(true);
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
