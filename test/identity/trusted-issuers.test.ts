import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { identityConfigFromEnv } from '../../server/identity/index.js';
import { parseTrustedIssuers, trustedIssuersFromEnv } from '../../server/identity/trusted-issuers.js';

const AGP = 'https://agp.example.test';
const KEY = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };

describe('AGP_TRUSTED_ISSUERS', () => {
  it('reads issuers with a jwks_uri or inline keys, an audience and algorithms', () => {
    const r = parseTrustedIssuers(
      JSON.stringify([
        { issuer: 'https://login.example.test', jwks_uri: 'https://login.example.test/.well-known/jwks.json', audience: ['agp', AGP], algorithms: ['RS256'] },
        { issuer: 'https://dev-idp.local', jwks_uri: 'http://localhost:9000/jwks' },
        { issuer: 'https://static.example.test', jwks: { keys: [KEY] } },
      ]),
      AGP,
    );
    expect(r.errors).toEqual([]);
    expect(r.value).toHaveLength(3);
    expect(r.value![0]).toEqual({ issuer: 'https://login.example.test', jwks: new URL('https://login.example.test/.well-known/jwks.json'), audience: ['agp', AGP], algorithms: ['RS256'] });
    expect(r.value![1]!.jwks).toEqual(new URL('http://localhost:9000/jwks'));
    expect(r.value![2]!.jwks).toEqual({ keys: [KEY] });
  });

  it('names every mistake with its entry', () => {
    const r = parseTrustedIssuers(
      JSON.stringify([
        { issuer: 'https://a.test' },
        { issuer: 'https://b.test', jwks_uri: 'https://b.test/jwks', jwks: { keys: [KEY] } },
        { issuer: 'https://c.test', jwks_uri: 'http://c.test/jwks' },
        { issuer: 'https://d.test', jwks_uri: 'not a url' },
        { issuer: `${AGP}/`, jwks_uri: 'https://x.test/jwks' },
        { issuer: 'https://e.test', jwks_uri: 'https://e.test/jwks' },
        { issuer: 'https://e.test', jwks_uri: 'https://e.test/jwks' },
      ]),
      AGP,
    );
    expect(r.value).toBeUndefined();
    expect(r.errors).toEqual([
      '[0] https://a.test: give exactly one of `jwks_uri` and `jwks`',
      '[1] https://b.test: give exactly one of `jwks_uri` and `jwks`',
      '[2] https://c.test: jwks_uri `http://c.test/jwks` must be https (http only for localhost)',
      '[3] https://d.test: jwks_uri `not a url` is not a URL',
      `[4] ${AGP}/: is AGP's own issuer`,
      '[6] https://e.test: listed twice',
    ]);
  });

  it('rejects what is not a list of issuers, with the path of the bad field', () => {
    expect(parseTrustedIssuers('{', AGP).errors[0]).toMatch(/^not valid JSON: /);
    expect(parseTrustedIssuers('{"issuer": "x"}', AGP).errors).toEqual(['Invalid input: expected array, received object']);
    expect(parseTrustedIssuers('[{"issuer": "x", "jwks_url": "https://x/jwks"}]', AGP).errors).toEqual(['0: Unrecognized key: "jwks_url"']);
    expect(parseTrustedIssuers('[{"issuer": "x", "jwks": {"keys": []}}]', AGP).errors).toEqual(['0.jwks.keys: Too small: expected array to have >=1 items']);
  });

  it('takes the JSON inline or from a file, and none when unset', () => {
    expect(trustedIssuersFromEnv({}, AGP)).toEqual({ value: [], errors: [] });
    expect(trustedIssuersFromEnv({ AGP_TRUSTED_ISSUERS: ' ' }, AGP)).toEqual({ value: [], errors: [] });
    const inline = trustedIssuersFromEnv({ AGP_TRUSTED_ISSUERS: '[{"issuer": "https://i.test", "jwks": {"keys": [{"kty": "EC"}]}}]' }, AGP);
    expect(inline.value?.map((t) => t.issuer)).toEqual(['https://i.test']);
    const dir = mkdtempSync(join(tmpdir(), 'agp-trusted-'));
    try {
      const file = join(dir, 'trusted.json');
      writeFileSync(file, JSON.stringify([{ issuer: 'https://f.test', jwks_uri: 'https://f.test/jwks' }]));
      expect(trustedIssuersFromEnv({ AGP_TRUSTED_ISSUERS: file }, AGP).value?.map((t) => t.issuer)).toEqual(['https://f.test']);
      expect(trustedIssuersFromEnv({ AGP_TRUSTED_ISSUERS: join(dir, 'missing.json') }, AGP).errors).toEqual([`cannot read \`${join(dir, 'missing.json')}\`: ENOENT`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is part of the identity settings: a bad list is an error of AGP_TRUSTED_ISSUERS', () => {
    const base = { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64') };
    expect(identityConfigFromEnv(base, AGP).value?.trustedIssuers).toEqual([]);
    const bad = identityConfigFromEnv({ ...base, AGP_TRUSTED_ISSUERS: '[{"issuer": "https://a.test"}]' }, AGP);
    expect(bad.value).toBeUndefined();
    expect(bad.errors).toEqual([expect.objectContaining({ variable: 'AGP_TRUSTED_ISSUERS', message: '[0] https://a.test: give exactly one of `jwks_uri` and `jwks`' })]);
  });
});
