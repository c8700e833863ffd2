// The differential property on the real policy sets of this repository (the checker's own
// IR, not the generator's): random valid requests built from each set's literals.

import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadPolicySet } from '../../engine/load.js';
import { readPolicySources } from '../../server/policy-files.js';
import { Rng, genRequestFor, harvest } from './arbitrary-ir.js';

const REQUESTS = 5_000;

describe('compiled decide() agrees with the interpreter on policies/', () => {
  it(`on ${REQUESTS} random requests`, async () => {
    const { sources } = await readPolicySources(['policies'], { includeTests: false });
    const loaded = loadPolicySet(sources);
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const set = loaded.policySet!;
    const ir = loaded.ir!;
    const h = harvest(ir);
    const rng = new Rng(20260101);
    const seen = new Set<string>();
    for (let i = 0; i < REQUESTS; i++) {
      const req = genRequestFor(ir, h, rng);
      const want = set.interpret(req);
      const got = set.decide(req);
      if (!isDeepStrictEqual(got, want)) expect({ i, request: req, got }).toEqual({ i, request: req, got: want });
      seen.add(want.effect);
      for (const p of want.policies) seen.add(p);
    }
    // Random requests reach every effect and a good share of the policies.
    expect(seen.has('permit') && seen.has('deny') && seen.has('escalate')).toBe(true);
    expect(seen.size - 3).toBeGreaterThanOrEqual(Math.min(5, ir.policies.length));
  });
});
