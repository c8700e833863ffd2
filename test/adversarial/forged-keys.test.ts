// Forged PEP and admin keys against a real listener: only the exact key authenticates. A
// prefix, an extension, a case variant, an empty or whitespace-padded key, another scheme
// or the admin key's digest are all 401 — and none of them reaches a decision.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, httpRequest, rawRequest, serve, type Served } from './harness.js';

const PEP = 'pep-key-0123456789abcdef';
const ADMIN = 'admin-key-fedcba9876543210';
const BODY = JSON.stringify({
  agent: { id: 'fraudbot-1', owner: 'risk-team', roles: ['fraud-detector'], model: { name: 'fraudnet', version: '2.4.1' }, confidence: 0.93, trust: 'verified' },
  action: 'read',
  resource: { type: 'transactions', id: 't1', sensitivity: 'internal' },
  task: { kind: 'investigation', flagged: false },
});

let agp: Served;

beforeAll(async () => {
  agp = await serve({ env: { AGP_API_KEYS: PEP, AGP_ADMIN_KEY: ADMIN } });
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

async function decideWith(authorization: string | undefined): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== undefined) headers['authorization'] = authorization;
  const res = await rawRequest(agp.port, httpRequest('POST', '/v1/decide', { ...headers, connection: 'close' }, BODY));
  return res.status;
}

describe('PEP keys on a real listener', () => {
  it('accept the exact key', async () => {
    expect(await decideWith(`Bearer ${PEP}`)).toBe(200);
  });

  it.each([
    ['no header', undefined],
    ['a one-character prefix', `Bearer ${PEP.slice(0, 1)}`],
    ['all but the last character', `Bearer ${PEP.slice(0, -1)}`],
    ['the key with a suffix', `Bearer ${PEP}x`],
    ['the key with a prefix', `Bearer x${PEP}`],
    ['an upper-case variant', `Bearer ${PEP.toUpperCase()}`],
    ['an empty key', 'Bearer '],
    ['another scheme', `Basic ${Buffer.from(`${PEP}:`).toString('base64')}`],
    ['the key twice', `Bearer ${PEP} ${PEP}`],
  ])('refuse %s with 401', async (_name, authorization) => {
    expect(await decideWith(authorization)).toBe(401);
  });

  it('write no decision for a refused caller', async () => {
    const before = agp.auditLines().filter((l) => l['kind'] === 'decision').length;
    expect(await decideWith(`Bearer ${PEP.slice(0, -1)}`)).toBe(401);
    await new Promise((r) => setTimeout(r, 100));
    expect(agp.auditLines().filter((l) => l['kind'] === 'decision').length).toBe(before);
  });

  it('refuse a prefix of the admin key on the admin api', async () => {
    const res = await rawRequest(agp.port, httpRequest('GET', '/v1/admin/policies/diagnostics', { authorization: `Bearer ${ADMIN.slice(0, 8)}`, connection: 'close' }));
    expect(res.status).toBe(401);
  });
});
