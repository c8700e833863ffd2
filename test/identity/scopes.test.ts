import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseScope, parseScopeParam, scopeAllows, scopeCovers, scopeQuestion } from '../../server/identity/scopes.js';
import { identityConfigFromEnv, parseDurationMs } from '../../server/identity/index.js';

const map = { resourceTypes: { accounts: 'account' }, actions: { 'accounts:freeze': 'freeze_account', write: 'update' } };

describe('scope mapping', () => {
  it('maps two- and three-part scopes to decisions, with aliases', () => {
    expect(scopeQuestion(parseScope('transactions:read')!, map)).toEqual({ action: 'read', resource: { type: 'transactions', id: '*' } });
    expect(scopeQuestion(parseScope('accounts:991:freeze')!, map)).toEqual({ action: 'freeze_account', resource: { type: 'account', id: '991' } });
    expect(scopeQuestion(parseScope('docs:a:b:c:write')!, map)).toEqual({ action: 'update', resource: { type: 'docs', id: 'a:b:c' } });
  });

  it('rejects malformed scopes with the offending scope named', () => {
    for (const bad of ['read', ':read', 'a:', 'a::b', 'a:"x":b']) expect(parseScope(bad)).toBeNull();
    expect(parseScopeParam('transactions:read nope')).toEqual({ ok: false, message: 'scope `nope` is not `<type>:<action>` or `<type>:<id>:<action>`' });
    expect(parseScopeParam('  ')).toEqual({ ok: false, message: 'no scope requested' });
  });

  it('round-trips any well-formed type, id and action', () => {
    const part = fc.stringMatching(/^[a-z0-9_.-]{1,12}$/);
    fc.assert(
      fc.property(part, fc.stringMatching(/^[a-z0-9_.:-]{1,20}$/).filter((s) => !s.startsWith(':') && !s.endsWith(':') && !s.includes('::')), part, (type, id, verb) => {
        const parsed = parseScope(`${type}:${id}:${verb}`);
        expect(parsed).toEqual({ scope: `${type}:${id}:${verb}`, type, id, verb });
        expect(scopeCovers(parseScope(`${type}:${verb}`)!, parsed!)).toBe(true);
        expect(scopeAllows(`x:y ${type}:${id}:${verb}`, verb, { type, id })).toBe(true);
        expect(scopeAllows(`${type}:${id}:${verb}`, verb, { type, id: `${id}x` })).toBe(false);
      }),
    );
  });
});

describe('identity configuration from the environment', () => {
  it('reads durations and refuses a missing or short key', () => {
    expect(parseDurationMs('5m', 's')).toBe(300_000);
    expect(parseDurationMs('300', 's')).toBe(300_000);
    expect(parseDurationMs('soon', 's')).toBeNull();
    const good = identityConfigFromEnv({ AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'), AGP_TOKEN_TTL: '10m', AGP_KEY_ROTATE_EVERY: '12h' }, 'http://127.0.0.1:8080/');
    expect(good.value).toEqual({ issuer: 'http://127.0.0.1:8080', encryptionKey: Buffer.alloc(32, 7).toString('base64'), tokenTtlS: 600, rotateEveryMs: 43_200_000, trustedIssuers: [] });
    const bad = identityConfigFromEnv({ AGP_KEY_ENCRYPTION_KEY: 'c2hvcnQ=', AGP_ISSUER: 'ftp://x' }, 'http://127.0.0.1:8080');
    expect(bad.value).toBeUndefined();
    expect(bad.errors.map((e) => e.variable)).toEqual(['AGP_ISSUER', 'AGP_KEY_ENCRYPTION_KEY']);
    expect(identityConfigFromEnv({}, 'http://127.0.0.1:8080').errors[0]).toMatchObject({ variable: 'AGP_KEY_ENCRYPTION_KEY', message: 'no key encryption key is set' });
  });
});
