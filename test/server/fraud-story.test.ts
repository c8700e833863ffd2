// VISION.md's fraud-detection story end to end over HTTP with the example policies:
// read → flag → escalate → a person approves (admin grant) → permit for ten minutes,
// scoped to the account → the grant expires → escalate again; a retired model is denied.

import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { FRAUDBOT_ATTRIBUTES, makeApp, type TestApp } from './helpers.js';

let t: TestApp;
let now = Date.parse('2026-03-02T09:00:00Z');
const ADMIN = 'admin-key-0123456789abcdef';
const PEP = 'pep-key-0123456789abcdef';

beforeAll(async () => {
  t = await makeApp({ clock: () => now, apiKeys: [PEP], adminKey: ADMIN });
});
afterAll(async () => t.close());

/** What a PEP sends for a registered agent: its id and the call's confidence only. */
function call(action: string, resource: Record<string, unknown>, flagged: boolean, agent = 'fraudbot-1') {
  return t.app.inject({
    method: 'POST',
    url: '/v1/decide',
    headers: { authorization: `Bearer ${PEP}` },
    payload: {
      agent: { id: agent, confidence: 0.93, model: { name: 'fraudnet', version: '9.9.9' } },
      action,
      resource,
      task: { kind: 'investigation', flagged },
    },
  });
}

function admin(method: 'PUT' | 'POST', url: string, payload: unknown) {
  return t.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, payload: payload as Record<string, unknown> });
}

const ACCOUNT_991 = { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' };

describe('the fraud-detection story over HTTP', () => {
  it('registers the agents (checked against the policy schema)', async () => {
    expect((await admin('PUT', '/v1/admin/agents/fraudbot-1', { attributes: FRAUDBOT_ATTRIBUTES })).statusCode).toBe(201);
    const old = await admin('PUT', '/v1/admin/agents/fraudbot-old', { attributes: { ...FRAUDBOT_ATTRIBUTES, model: { name: 'fraudnet', version: '1.9.0' } } });
    expect(old.statusCode).toBe(201);
    const bad = await admin('PUT', '/v1/admin/agents/fraudbot-x', { attributes: { ...FRAUDBOT_ATTRIBUTES, trust: 'godlike' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.issues[0].path).toBe('attributes.trust');
  });

  it('1. reads transactions: permit', async () => {
    const r = await call('read', { type: 'transactions', id: 'acct-991/2026-01', sensitivity: 'internal' }, false);
    expect(r.statusCode).toBe(200);
    const d = r.json();
    expect(d).toMatchObject({ decision: 'permit', allowed: true, policies: ['fraud_read'], obligations: { ttl_s: 900, scopes: ['transactions:read'] } });
    expect(d.factors).toMatchObject({ sensitivity: 10, doubt: 2, impact: 0 });
  });

  it('2. flags account 991: permit, fully audited', async () => {
    const r = await call('flag_account', ACCOUNT_991, false);
    expect(r.json()).toMatchObject({ decision: 'permit', policies: ['fraud_flag'], obligations: { audit: 'full', ttl_s: 300 } });
  });

  it('3. asks to freeze it: escalate to fraud-ops', async () => {
    const r = await call('freeze_account', ACCOUNT_991, true);
    const d = r.json();
    expect(d).toMatchObject({ decision: 'escalate', allowed: false, policies: ['fraud_freeze'], obligations: { approver: 'fraud-ops', ttl_s: 600 } });
    expect(d.risk).toBeGreaterThanOrEqual(48);
    expect(d.risk).toBeLessThan(80);
  });

  it('4. a person approves: a ten-minute grant permits the freeze, scoped to the account', async () => {
    const g = await admin('POST', '/v1/admin/agents/fraudbot-1/grants', {
      actions: ['freeze_account'],
      resource: 'account:991',
      expires_in_s: 600,
      reason: 'escalation approved: case 991',
      approved_by: 'alice@fraud-ops',
    });
    expect(g.statusCode).toBe(201);
    const r = await call('freeze_account', ACCOUNT_991, true);
    expect(r.json()).toMatchObject({ decision: 'permit', allowed: true, obligations: { ttl_s: 600, scopes: ['accounts:991:freeze'] } });
    // The grant names account 991 only.
    const other = await call('freeze_account', { ...ACCOUNT_991, id: '992' }, true);
    expect(other.json().decision).toBe('escalate');
  });

  it('5. a retired model is denied whatever version it claims', async () => {
    const r = await call('freeze_account', ACCOUNT_991, true, 'fraudbot-old');
    expect(r.json()).toMatchObject({ decision: 'deny', reasons: expect.arrayContaining(['model version retired']) });
  });

  it('6. after ten minutes the grant has expired: escalate again', async () => {
    now += 9 * 60_000;
    expect((await call('freeze_account', ACCOUNT_991, true)).json().decision).toBe('permit');
    now += 60_001;
    expect((await call('freeze_account', ACCOUNT_991, true)).json().decision).toBe('escalate');
  });

  it('explains a decision on request', async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/v1/decide',
      headers: { authorization: `Bearer ${PEP}` },
      payload: { agent: { id: 'fraudbot-1', confidence: 0.93 }, action: 'freeze_account', resource: ACCOUNT_991, task: { kind: 'investigation', flagged: false }, explain: true },
    });
    const d = r.json();
    expect(d.decision).toBe('deny');
    const freeze = d.explanation.find((p: any) => p.policy === 'fraud_freeze');
    expect(freeze).toMatchObject({ target: true, when: false, effect: null });
  });

  it('rejects a request missing a schema attribute, naming it', async () => {
    const r = await call('read', { type: 'transactions', id: 't' }, false);
    expect(r.statusCode).toBe(400);
    expect(r.json().error.issues.map((i: any) => i.path)).toContain('resource.sensitivity');
  });
});
