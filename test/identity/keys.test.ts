import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { ContextStore } from '../../server/context/types.js';
import { KeyRingError, createKeyRing } from '../../server/identity/keys.js';
import type { KeyRing, KeyRingOptions } from '../../server/identity/keys.js';
import { createTokenService } from '../../server/identity/tokens.js';
import { clock } from './harness.js';

const KEY = randomBytes(32).toString('base64');
const rings: KeyRing[] = [];
afterEach(() => {
  for (const r of rings.splice(0)) r.close();
});

async function ring(store: ContextStore, options: Partial<KeyRingOptions> = {}): Promise<KeyRing> {
  const r = await createKeyRing({ store, encryptionKey: KEY, maxTokenTtlMs: 300_000, timer: false, ...options });
  rings.push(r);
  return r;
}

describe('the key ring', () => {
  it('names each key by its JWK thumbprint and keeps the private half sealed in the store', async () => {
    const store = createEmbeddedStore();
    const r = await ring(store);
    const { keys } = await r.jwks();
    expect(keys).toHaveLength(1);
    const jwk = keys[0]!;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwk.d).toBeUndefined();
    const { kty, crv, x, y } = jwk;
    expect(jwk.kid).toBe(await calculateJwkThumbprint({ kty, crv, x, y } as never));
    const [row] = await store.kvList('keys');
    const record = JSON.parse(row!.value);
    expect(Object.keys(record).sort()).toEqual(['createdAt', 'kid', 'publicJwk', 'sealedPrivate']);
    expect(() => JSON.parse(Buffer.from(record.sealedPrivate, 'base64url').toString())).toThrow();
  });

  it('refuses a wrong or short encryption key', async () => {
    const store = createEmbeddedStore();
    await ring(store);
    await expect(createKeyRing({ store, encryptionKey: randomBytes(32), maxTokenTtlMs: 1000, timer: false })).rejects.toThrow(/cannot decrypt signing key/);
    await expect(createKeyRing({ store, encryptionKey: randomBytes(16).toString('base64'), maxTokenTtlMs: 1000, timer: false })).rejects.toBeInstanceOf(KeyRingError);
  });

  it('rotates on schedule and retires the old key once its tokens have expired', async () => {
    const store = createEmbeddedStore();
    const c = clock();
    const r = await ring(store, { now: c.now, rotateEveryMs: 3_600_000, leewayMs: 10_000 });
    const first = (await r.signingKey()).kid;
    c.advance(3_599_000);
    expect((await r.signingKey()).kid).toBe(first);
    c.advance(1_000);
    const second = (await r.signingKey()).kid;
    expect(second).not.toBe(first);
    expect((await r.jwks()).keys.map((k) => k.kid)).toEqual([second, first]);
    expect(await r.publicKey(first)).not.toBeNull();
    c.advance(300_000 + 10_000 - 1);
    expect((await r.jwks()).keys.map((k) => k.kid)).toEqual([second, first]);
    c.advance(1);
    expect((await r.jwks()).keys.map((k) => k.kid)).toEqual([second]);
    expect(await r.publicKey(first)).toBeNull();
    expect((await store.kvList('keys')).map((row) => row.key)).toEqual([second]);
  });

  it('shares keys between replicas, and two replicas due at once rotate only once', async () => {
    const store = createEmbeddedStore();
    const c = clock();
    const a = await ring(store, { now: c.now, rotateEveryMs: 60_000 });
    const b = await ring(store, { now: c.now, rotateEveryMs: 60_000 });
    expect((await b.signingKey()).kid).toBe((await a.signingKey()).kid);
    c.advance(60_000);
    const [ka, kb] = await Promise.all([a.signingKey(), b.signingKey()]);
    expect(ka.kid).toBe(kb.kid);
    expect(await store.kvList('keys')).toHaveLength(2);
  });

  it('verifies on one replica a token signed right after a rotation on another', async () => {
    const store = createEmbeddedStore();
    const a = await ring(store, { reloadEveryMs: 3_600_000 });
    const b = await ring(store, { reloadEveryMs: 3_600_000 });
    const issuer = 'https://agp.test';
    const ta = createTokenService({ keys: a, store, issuer });
    const tb = createTokenService({ keys: b, store, issuer });
    const newKid = await b.forceRotate();
    const { token } = await tb.issue({ subject: 'x', agent: 'x', clientId: 'x', audience: [issuer], scope: ['t:read'], ttlS: 60 });
    expect(await ta.verify(token)).toMatchObject({ ok: true, claims: { sub: 'x' } });
    expect((await a.jwks()).keys[0]!.kid).toBe(newKid);
  });
});
