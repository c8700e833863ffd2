// THE differential property: on random well-typed policy sets and random valid requests,
// the compiled decision function and the reference interpreter return identical decisions.

import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicySet } from '../../engine/compiler.js';
import { interpret } from '../../engine/interpreter.js';
import { Rng, genPolicySet, genRequest } from './arbitrary-ir.js';

const SETS = 1_000;
const REQUESTS_PER_SET = 20;

describe('compiled decide() agrees with the interpreter', () => {
  it(`on ${SETS * REQUESTS_PER_SET} random (policy set, request) pairs`, () => {
    let cases = 0;
    const effects = { permit: 0, deny: 0, escalate: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fffffff }), (seed) => {
        const ps = genPolicySet(seed);
        const { decide } = compilePolicySet(ps);
        const rng = new Rng(seed ^ 0x5bd1e995);
        for (let i = 0; i < REQUESTS_PER_SET; i++) {
          const req = genRequest(rng);
          const want = interpret(ps, req, false);
          const got = decide(req);
          cases++;
          effects[want.effect]++;
          if (!isDeepStrictEqual(got, want)) {
            expect({ seed, request: i, got }).toEqual({ seed, request: i, got: want });
          }
        }
      }),
      { numRuns: SETS },
    );
    expect(cases).toBe(SETS * REQUESTS_PER_SET);
    // The generator must exercise every effect, or the property says little.
    expect(effects.permit).toBeGreaterThan(cases / 50);
    expect(effects.deny).toBeGreaterThan(cases / 50);
    expect(effects.escalate).toBeGreaterThan(cases / 50);
  });
});
