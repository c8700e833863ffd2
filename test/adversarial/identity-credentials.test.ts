// Client credentials against a real listener: failed secrets back off per client (429 with
// Retry-After), a flood of guesses costs the server little CPU (no scrypt for unknown clients,
// at most a few at once for known ones), unauthenticated callers get one `invalid_client`
// whatever is wrong with the agent, and the audit keeps the reason without the kilobytes.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, cpuMs, serve, type Served } from './harness.js';
import {
  ASSERTION_TYPE, FRAUDBOT, JWT_TYPE, TOKEN_EXCHANGE, admin, agentKey, assertion, issueSecret, postForm, registerAgent, type AgentKey, IDENTITY_ENV,
} from './identity-helpers.js';

let agp: Served;
let secret: string;

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
  await registerAgent(agp, 'fraudbot');
  secret = await issueSecret(agp, 'fraudbot');
  expect((await admin(agp, 'PUT', '/v1/admin/resources/transactions/*', { attributes: { owner: 'payments', sensitivity: 'internal' } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

const basic = (id: string, s: string) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(s)}`).toString('base64')}` });
const grant = { grant_type: 'client_credentials', scope: 'transactions:read' };

describe('failed client secrets', () => {
  it('back off after 5 failures with 429 and Retry-After, for known and unknown clients alike', async () => {
    await registerAgent(agp, 'slowbot');
    const slowSecret = await issueSecret(agp, 'slowbot');
    for (const id of [`ghost-${randomUUID()}`, 'slowbot']) {
      for (let i = 0; i < 5; i++) {
        const res = await postForm(agp, '/oauth2/token', grant, basic(id, 'wrong'));
        expect(res.status).toBe(401);
        expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      }
      const sixth = await postForm(agp, '/oauth2/token', grant, basic(id, 'wrong'));
      expect(sixth.status).toBe(429);
      expect(sixth.headers.get('retry-after')).toBe('1');
      expect(sixth.body['error']).toBe('temporarily_unavailable');
    }
    // Even the right secret waits out the backoff, then works.
    expect((await postForm(agp, '/oauth2/token', grant, basic('slowbot', slowSecret))).status).toBe(429);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await postForm(agp, '/oauth2/token', grant, basic('slowbot', slowSecret))).status).toBe(200);
  });

  it('cost the server little CPU when flooded: no scrypt for unknown clients, a few at a time for known ones', async () => {
    const before = cpuMs(agp.pid);
    const tries = Array.from({ length: 150 }, (_, i) =>
      postForm(agp, '/oauth2/token', { ...grant, client_id: i % 2 === 0 ? `nobody-${i}` : 'fraudbot', client_secret: `guess-${i}` }),
    );
    const answers = await Promise.all(tries);
    const spent = cpuMs(agp.pid) - before;
    // 150 scrypt runs (N = 2^14, ~50 ms each) cost 8 s or more; here (about 1.1 s measured) at most 2 run at once
    // with 16 waiting, the rest are refused (503), and the backoff then stops them (429).
    expect(spent).toBeLessThan(4000);
    expect(answers.every((a) => [401, 429, 503].includes(a.status))).toBe(true);
    expect(answers.filter((a) => a.status === 503).every((a) => a.headers.get('retry-after') === '1')).toBe(true);
    // The backoff is per client and address: the flood's address waits, the secret stays good.
    expect((await postForm(agp, '/oauth2/token', grant, basic('fraudbot', secret))).status).toBe(429);
  });
});

describe('unauthenticated callers', () => {
  // A server of their own: the floods above fill this address's audit flood window (10 lines
  // in full per window), and these tests read the lines; they write 10 between them.
  let agp: Served;
  beforeAll(async () => {
    agp = await serve({ env: IDENTITY_ENV });
    await registerAgent(agp, 'fraudbot');
  }, 60_000);
  afterAll(async () => {
    await agp?.stop();
    if (agp) cleanup(agp);
  });

  it('get one invalid_client for an unknown, deactivated or keyless agent and a bad signature', async () => {
    await registerAgent(agp, 'retired');
    expect((await admin(agp, 'POST', '/v1/admin/agents/retired/deactivate')).status).toBe(200);
    const keyless = await registerAgent(agp, 'keyless');
    const retiredKey = await agentKey();
    expect((await admin(agp, 'DELETE', `/v1/admin/agents/keyless/credentials/keys/${keyless.thumbprint}`)).status).toBe(204);
    const stranger = await agentKey();
    const cases: [string, AgentKey][] = [
      ['unknown-agent', stranger],
      ['retired', retiredKey],
      ['keyless', keyless],
      ['fraudbot', stranger],
    ];
    for (const [agent, key] of cases) {
      const asClient = await postForm(agp, '/oauth2/token', {
        ...grant,
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(agp, agent, key),
      });
      const asSubject = await postForm(agp, '/oauth2/token', {
        grant_type: TOKEN_EXCHANGE,
        subject_token: await assertion(agp, agent, key),
        subject_token_type: JWT_TYPE,
        scope: 'transactions:read',
      });
      for (const res of [asClient, asSubject]) {
        expect([agent, res.status, res.body]).toEqual([agent, 401, { error: 'invalid_client', error_description: 'client authentication failed' }]);
        expect(res.headers.get('www-authenticate')).toBeNull();
      }
    }
    // A deactivated agent's real key reads the same.
    const retiredReal = await registerAgent(agp, 'retired2');
    expect((await admin(agp, 'POST', '/v1/admin/agents/retired2/deactivate')).status).toBe(200);
    const res = await postForm(agp, '/oauth2/token', { ...grant, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(agp, 'retired2', retiredReal) });
    expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    // The audit tells them apart.
    await new Promise((r) => setTimeout(r, 300));
    const reasons = agp
      .auditLines()
      .filter((l) => l['operation'] === 'identity.credential_rejected')
      .map((l) => (l['detail'] as { reason: string }).reason);
    expect(reasons).toEqual(expect.arrayContaining(['unknown_agent', 'inactive_agent', 'no_credential', 'bad_signature']));
  });

  it('cannot write kilobytes of an unverified claim into the audit', async () => {
    const huge = 'x'.repeat(44_000);
    const key = await agentKey();
    const res = await postForm(agp, '/oauth2/token', { ...grant, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(agp, 'someone', key, { iss: huge }) });
    expect(res.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    const line = agp.auditLines().find((l) => l['operation'] === 'identity.credential_rejected' && String((l['detail'] as { agent?: string }).agent).startsWith('xxxx'));
    expect(line).toBeDefined();
    const agent = (line!['detail'] as { agent: string }).agent;
    expect(agent).toMatch(/^x{64}…sha256:[A-Za-z0-9_-]{16}$/);
    expect(JSON.stringify(line).length).toBeLessThan(1000);
  });
});

describe('secret holders', () => {
  it('keep working while another client is throttled', async () => {
    await registerAgent(agp, 'steady', FRAUDBOT);
    const steadySecret = await issueSecret(agp, 'steady');
    expect((await postForm(agp, '/oauth2/token', grant, basic('steady', steadySecret))).status).toBe(200);
  });
});
