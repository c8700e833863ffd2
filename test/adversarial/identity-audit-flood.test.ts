// Rejected credentials are what a stranger can cause at will: their audit lines go through
// the audit's flood control keyed by the caller's address (a few in full per window, the
// rest counted in one `audit_suppressed` line), against a real listener.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, serve, type Served } from './harness.js';
import { ASSERTION_TYPE, IDENTITY_ENV, agentKey, assertion, postForm } from './identity-helpers.js';

let agp: Served;

beforeAll(async () => {
  agp = await serve({ env: IDENTITY_ENV });
}, 60_000);

afterAll(() => {
  if (agp) cleanup(agp);
});

describe('rejected credentials in the audit', () => {
  it('are flood-controlled per client address', async () => {
    const key = await agentKey();
    for (let i = 0; i < 30; i++) {
      const res = await postForm(agp, '/oauth2/token', {
        grant_type: 'client_credentials',
        scope: 'transactions:read',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(agp, `stranger-${i}-${'x'.repeat(2000)}`, key),
      });
      expect(res.status).toBe(401);
    }
    // Closing ends the window: its summary is written.
    expect(await agp.stop()).toBe(0);
    const lines = agp.auditLines();
    const rejected = lines.filter((l) => l['operation'] === 'identity.credential_rejected');
    expect(rejected).toHaveLength(10);
    expect(rejected.every((l) => JSON.stringify(l).length < 1000)).toBe(true);
    const summary = lines.find((l) => l['kind'] === 'audit_suppressed' && l['key'] === 'identity:127.0.0.1');
    expect(summary).toMatchObject({ count: 20, written: 10 });
  });
});
