// The generated success path of request validation against zod (the reference): same
// verdict, same normalized request, same issues, for random schemas and random inputs.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createValidator, fastRequestCheck } from '../../engine/validate.js';
import type { FieldType, Schema, Type } from '../../engine/ir.js';
import { RICH_SCHEMA, rawRequest } from './ir-builders.js';

const NAMES = ['a', 'b', 'id', 'roles', 'toString', 'valueOf', 'constructor', 'x_y', 'na"me'];

const typeArb: fc.Arbitrary<Type> = fc.letrec<{ type: Type }>((tie) => ({
  type: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Type>({ t: 'string' }),
    fc.constant<Type>({ t: 'number' }),
    fc.constant<Type>({ t: 'bool' }),
    fc.constant<Type>({ t: 'version' }),
    fc.constant<Type>({ t: 'duration' }),
    fc.constant<Type>({ t: 'level', name: 'trust', members: ['low', 'mid', 'high'] }),
    tie('type').map((elem): Type => ({ t: 'set', elem })),
    tie('type').map((elem): Type => ({ t: 'list', elem })),
    fc
      .uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), type: tie('type'), optional: fc.boolean() }), { selector: (f) => f.name, maxLength: 4 })
      .map((fields): Type => ({ t: 'record', fields: fields as FieldType[] })),
  ),
})).type;

/** A value that often fits `t` and sometimes does not, in every way a PEP can get it wrong. */
function valueFor(t: Type, depth = 0): fc.Arbitrary<unknown> {
  const wrong = fc.oneof(fc.constant(null), fc.constant(undefined), fc.string(), fc.double(), fc.boolean(), fc.constant([]), fc.constant({}));
  let right: fc.Arbitrary<unknown>;
  switch (t.t) {
    case 'string':
      right = fc.string();
      break;
    case 'number':
      right = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(Number.NaN, Infinity, -0));
      break;
    case 'bool':
      right = fc.boolean();
      break;
    case 'version':
      right = fc.oneof(fc.constantFrom('2.4.1', '0.0.0', '01.2.3', '1.2', '99999.0.1', '100000.0.0'), fc.tuple(fc.nat(20), fc.nat(20), fc.nat(20)).map(([a, b, c]) => `${a}.${b}.${c}`));
      break;
    case 'duration':
      right = fc.oneof(fc.constantFrom('5m', '30s', '250ms', '2h', '1d', '1.5h', '5 m', '-1s', '1w'), fc.double(), fc.nat());
      break;
    case 'level':
      right = fc.constantFrom('low', 'mid', 'high', 'constructor', 'LOW');
      break;
    case 'set':
    case 'list':
      right = depth > 3 ? fc.constant([]) : fc.array(valueFor(t.elem, depth + 1), { maxLength: 4 });
      break;
    case 'record': {
      const entries = t.fields.map((f) => fc.option(valueFor(f.type, depth + 1), { nil: undefined, freq: 4 }).map((v) => [f.name, v] as const));
      right = fc.tuple(fc.tuple(...entries), fc.boolean(), fc.boolean()).map(([kv, extra, nullProto]) => {
        const o: Record<string, unknown> = nullProto ? (Object.create(null) as Record<string, unknown>) : {};
        // Absent, or present with `undefined`: zod tells them apart for optional attributes.
        for (const [k, v] of kv) if (v !== undefined || k.length % 2 === 0) o[k] = v;
        if (extra) o['unknown_attr'] = 1;
        return o;
      });
      break;
    }
  }
  return fc.oneof({ weight: 9, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

const caseArb = fc
  .tuple(typeArb, typeArb, typeArb)
  .map(([agent, resource, task]): Schema => ({
    request: {
      t: 'record',
      fields: [
        { name: 'agent', type: agent.t === 'record' ? agent : { t: 'record', fields: [{ name: 'a', type: agent, optional: false }] }, optional: true },
        { name: 'action', type: { t: 'string' }, optional: true },
        { name: 'resource', type: resource.t === 'record' ? resource : { t: 'record', fields: [] }, optional: true },
        { name: 'task', type: task, optional: true },
      ],
    },
  }))
  .chain((schema) => fc.tuple(fc.constant(schema), fc.array(valueFor(schema.request), { minLength: 1, maxLength: 8 })));

describe('fast request validation', () => {
  it('decides, normalizes and reports exactly as zod does', () => {
    fc.assert(
      fc.property(caseArb, ([schema, inputs]) => {
        const fast = createValidator(schema);
        const reference = createValidator(schema, { fast: false });
        const check = fastRequestCheck(schema);
        for (const input of inputs) {
          const a = fast.validate(input, { now: 7 });
          const b = reference.validate(input, { now: 7 });
          expect(a).toStrictEqual(b);
          // The generated path itself takes exactly what zod accepts (no silent fallback).
          expect(check(input) !== undefined).toBe(b.ok);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('gives the reference result on the example schema, valid and broken', () => {
    const fast = createValidator(RICH_SCHEMA);
    const reference = createValidator(RICH_SCHEMA, { fast: false });
    const good = rawRequest();
    expect(fast.validate(good, { now: 1 })).toStrictEqual(reference.validate(good, { now: 1 }));
    expect(fast.validate(good).ok).toBe(true);
    expect(fastRequestCheck(RICH_SCHEMA)(good)).toBeDefined();
    const bad = rawRequest();
    (bad['agent'] as Record<string, unknown>)['trust'] = 'omnipotent';
    expect(fast.validate(bad)).toStrictEqual(reference.validate(bad));
    expect(fast.validate(bad).ok).toBe(false);
  });
});
