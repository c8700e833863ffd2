import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decisionBody, decisionJson } from '../../server/routes/decide.js';
import type { DecidedDecision } from '../../server/decider.js';

// Strings that exercise every escape: quotes, backslashes, control characters, lone and
// paired surrogates, and plain text (which takes the fast path).
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '😀', 'a"b\\c', 'permit'),
);
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0, -0, Number.NaN, Infinity, -Infinity, 1e21, 5e-7));
const jsonValue = fc.jsonValue();

const decision = fc.record(
  {
    effect: fc.constantFrom('permit', 'deny', 'escalate') as fc.Arbitrary<DecidedDecision['effect']>,
    allowed: fc.boolean(),
    risk: number,
    factors: fc.dictionary(text, number),
    policies: fc.array(text),
    reasons: fc.array(text),
    obligations: fc.dictionary(text, fc.oneof(jsonValue, number, text, fc.constant(undefined))) as fc.Arbitrary<DecidedDecision['obligations']>,
    decision_id: text,
    revision: text,
    explanation: jsonValue as unknown as fc.Arbitrary<DecidedDecision['explanation']>,
  },
  { requiredKeys: ['effect', 'allowed', 'risk', 'factors', 'policies', 'reasons', 'obligations', 'decision_id', 'revision'] },
) as fc.Arbitrary<DecidedDecision>;

describe('the /v1/decide response body', () => {
  it('is byte for byte JSON.stringify of the decision body, whatever the decision holds', () => {
    fc.assert(
      fc.property(decision, (d) => {
        expect(decisionJson(d)).toBe(JSON.stringify(decisionBody(d)));
      }),
      { numRuns: 3000 },
    );
  });

  it('parses back to the decision a PEP acts on', () => {
    const d: DecidedDecision = {
      effect: 'escalate',
      allowed: false,
      risk: 53,
      factors: { model_age: 10, sensitivity: 30, behaviour: 13 },
      policies: ['fraud_freeze_needs_review'],
      reasons: ['freezing a "confidential" account needs a human'],
      obligations: { ttl_s: 300, scopes: ['accounts:read'] },
      decision_id: '01KB4Z1D4A5WQ2YB3NF7ZJ2K9X',
      revision: 'sha256:00',
    };
    const { effect, ...rest } = d;
    expect(JSON.parse(decisionJson(d))).toEqual({ decision: effect, ...rest });
  });
});
