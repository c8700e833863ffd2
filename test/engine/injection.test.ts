// Code injection: the compiler generates JavaScript, so every piece of user text (policy
// names, strings, attribute names, reasons, obligation keys, globs) is hostile input here.
// The compiled function must still be correct, and nothing the policy says may execute.

import { afterEach, describe, expect, it } from 'vitest';
import { compilePolicySet } from '../../engine/compiler.js';
import { interpret } from '../../engine/interpreter.js';
import type { Schema } from '../../engine/ir.js';
import { createPolicySet } from '../../engine/policy-set.js';
import { T, and, branch, cmp, concat, factor, field, forbid, inE, letDecl, letRef, like, num, obligation, policy, policySet, str, target } from './ir-builders.js';

const g = globalThis as Record<string, unknown>;
const PAYLOADS = [
  '"); globalThis.__agp_pwned = 1; ("',
  "'); globalThis.__agp_pwned = 2; ('",
  '`; globalThis.__agp_pwned = 3; `',
  '${globalThis.__agp_pwned = 4}',
  '*/ globalThis.__agp_pwned = 5; /*',
  '\\"; globalThis.__agp_pwned = 6; //',
  'line\nglobalThis.__agp_pwned = 7;\n',
  'sep\u2028globalThis.__agp_pwned = 8;\u2029',
  '</script><script>globalThis.__agp_pwned = 9</script>',
  '__proto__',
  'constructor',
  'a]; globalThis.__agp_pwned = 10; [',
];

afterEach(() => {
  delete g['__agp_pwned'];
});

function schemaWith(names: string[]): Schema {
  return {
    request: T.record([
      field('agent', T.record([field('id', T.string), ...names.map((n) => field(n, T.string))])),
      field('resource', T.record([field('type', T.string), field('id', T.string), field('x`y', T.string, true)])),
      field('task', T.record([field('kind', T.string)])),
      field('action', T.string),
    ]) as Schema['request'],
  };
}

describe('generated code is built from data, never from user text', () => {
  // `__proto__` and `constructor` never reach evaluation (validate drops them), so
  // attribute names use the other payloads.
  const attrNames = PAYLOADS.filter((p) => p !== '__proto__' && p !== 'constructor');
  const schema = schemaWith(attrNames);
  const attrOf = (name: string) => ({ op: 'attr' as const, path: ['agent', name], type: T.string });

  const ps = policySet({
    schema,
    lets: [letDecl(PAYLOADS[0]!, cmp('==', attrOf(attrNames[1]!), str(PAYLOADS[1]!)), T.bool)],
    factors: PAYLOADS.map((p, i) => factor(p, num(i))),
    policies: [
      ...PAYLOADS.map((name, i) =>
        policy(name, {
          target: [target('action', PAYLOADS[i]!, 'read'), target('task.kind', PAYLOADS[(i + 1) % PAYLOADS.length]!, 'k')],
          when: and(cmp('==', attrOf(attrNames[i % attrNames.length]!), str(PAYLOADS[i]!)), letRef(0, T.bool)),
          branches: [
            branch('permit', like(attrOf(attrNames[(i + 2) % attrNames.length]!), `${PAYLOADS[i]!}*`), {
              reason: PAYLOADS[i]!,
              obligations: [
                obligation(PAYLOADS[i]!, 'scalar', str(PAYLOADS[(i + 3) % PAYLOADS.length]!)),
                obligation('scopes', 'strings', { op: 'list', items: [concat(str(PAYLOADS[i]!), attrOf(attrNames[0]!))], type: T.list(T.string) }),
              ],
            }),
          ],
        }),
      ),
      forbid('block "quoted" */', { when: inE(attrOf(attrNames[2]!), { op: 'list', items: PAYLOADS.map(str), type: T.list(T.string) }), reason: PAYLOADS[4]! }),
    ],
  });

  function requestFor(i: number, withGlobMatch: boolean) {
    const agent: Record<string, string> = { id: 'x' };
    attrNames.forEach((n) => (agent[n] = 'plain'));
    agent[attrNames[i % attrNames.length]!] = PAYLOADS[i]!;
    agent[attrNames[1]!] = PAYLOADS[1]!;
    if (withGlobMatch) agent[attrNames[(i + 2) % attrNames.length]!] = `${PAYLOADS[i]!}tail`;
    if (i === 1) agent[attrNames[1]!] = PAYLOADS[1]!;
    return {
      agent,
      action: PAYLOADS[i]!,
      resource: { type: 't', id: 'r' },
      task: { kind: PAYLOADS[(i + 1) % PAYLOADS.length]! },
    };
  }

  it('compiles and decides hostile policies exactly like the interpreter, executing nothing', () => {
    const set = createPolicySet(ps);
    expect(g['__agp_pwned']).toBeUndefined();
    let permits = 0;
    for (let i = 0; i < PAYLOADS.length; i++) {
      for (const glob of [true, false]) {
        const raw = requestFor(i, glob);
        const v = set.validate(raw);
        if (!v.ok) throw new Error(JSON.stringify(v.issues));
        const d = set.decide(v.request);
        expect(d).toEqual(interpret(ps, v.request, false));
        if (d.effect === 'permit') {
          permits++;
          expect(d.policies).toEqual([PAYLOADS[i]]);
          expect(d.reasons).toEqual([PAYLOADS[i]]);
          expect(Object.prototype.hasOwnProperty.call(d.obligations, PAYLOADS[i]!)).toBe(true);
          expect(d.obligations[PAYLOADS[i]!]).toBe(PAYLOADS[(i + 3) % PAYLOADS.length]);
          expect(d.obligations['scopes']).toEqual([`${PAYLOADS[i]!}${raw.agent[attrNames[0]!]!}`]);
        }
        expect(Object.keys(d.factors)).toEqual(PAYLOADS);
        expect(d.factors['__proto__']).toBe(PAYLOADS.indexOf('__proto__'));
      }
    }
    // The glob-matching requests permit, except three whose attributes collide by
    // construction (two conditions on one attribute) or that the forbid catches.
    expect(permits).toBe(PAYLOADS.length - 3);
    expect(g['__agp_pwned']).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('keeps every payload out of the generated source as code', () => {
    const { source } = compilePolicySet(ps);
    // Names, reasons and obligation keys travel as data; strings only as JSON literals.
    expect(source).not.toContain('globalThis.__agp_pwned = 1; ("');
    expect(source).not.toContain('\u2028');
    expect(source).not.toContain('block "quoted"');
    for (const p of PAYLOADS) {
      if (p.includes('\n')) expect(source).not.toContain(p);
    }
    expect(() => new Function(source)).not.toThrow();
  });

  it('reads an attribute named like a prototype member only as data', () => {
    const s: Schema = {
      request: T.record([
        field('agent', T.record([field('id', T.string), field('toString', T.string, true), field('valueOf', T.string)])),
        field('resource', T.record([field('type', T.string), field('id', T.string)])),
        field('task', T.record([])),
        field('action', T.string),
      ]) as Schema['request'],
    };
    const hasToString = { op: 'has' as const, path: ['agent', 'toString'] };
    const p = policySet({
      schema: s,
      policies: [
        policy('p', { when: hasToString, branches: [branch('permit')] }),
        policy('q', { when: cmp('==', { op: 'attr', path: ['agent', 'valueOf'], type: T.string }, str('v')), branches: [branch('escalate')] }),
      ],
    });
    const set = createPolicySet(p);
    const without = set.validate({ agent: { id: 'a', valueOf: 'w' }, action: 'read', resource: { type: 't', id: '1' }, task: {} });
    if (!without.ok) throw new Error(JSON.stringify(without.issues));
    // `toString` is inherited by every object, but it is not an attribute of this request.
    expect(set.decide(without.request).effect).toBe('deny');
    expect(set.decide(without.request)).toEqual(set.interpret(without.request));
    const withIt = set.validate({ agent: { id: 'a', toString: 'x', valueOf: 'v' }, action: 'read', resource: { type: 't', id: '1' }, task: {} });
    if (!withIt.ok) throw new Error(JSON.stringify(withIt.issues));
    expect(set.decide(withIt.request)).toMatchObject({ effect: 'escalate', policies: ['q'] });
    expect(set.decide(withIt.request)).toEqual(set.interpret(withIt.request));
  });
});
