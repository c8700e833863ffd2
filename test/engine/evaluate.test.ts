// The decision rules of docs/language.md on hand-built IR. Every case runs through both the
// compiled decide() and the reference interpreter, which must agree.

import { describe, expect, it } from 'vitest';
import { compilePolicySet } from '../../engine/compiler.js';
import type { Decision, NormalizedRequest } from '../../engine/decision.js';
import { interpret } from '../../engine/interpreter.js';
import type { IrPolicySet } from '../../engine/ir.js';
import { encodeVersion } from '../../engine/ir.js';
import { createPolicySet } from '../../engine/policy-set.js';
import {
  SENSITIVITY,
  T,
  and,
  arith,
  attr,
  bool,
  branch,
  call,
  cmp,
  concat,
  cond,
  dur,
  factor,
  forbid,
  grantedE,
  has,
  inE,
  letDecl,
  letRef,
  like,
  lit,
  match,
  not,
  num,
  obligation,
  or,
  policy,
  policySet,
  request,
  risk,
  str,
  strs,
  target,
  ver,
} from './ir-builders.js';
import { REP_TYPES, repActions, representativePolicySet } from './representative-ir.js';

function decide(ps: IrPolicySet, req: NormalizedRequest): Decision {
  const compiled = compilePolicySet(ps).decide(req);
  expect(compiled).toEqual(interpret(ps, req, false));
  return compiled;
}

const permitAll = (name: string, reason: string | null = null) => policy(name, { branches: [branch('permit', null, { reason })] });

describe('combining effects', () => {
  it('denies with `no policy applies` when nothing applies', () => {
    const d = decide(policySet({ policies: [policy('p', { target: [target('action', 'write')], branches: [branch('permit')] })] }), request());
    expect(d).toMatchObject({ effect: 'deny', allowed: false, policies: [], reasons: ['no policy applies'], obligations: {} });
    expect(decide(policySet({ policies: [] }), request()).reasons).toEqual(['no policy applies']);
  });

  it('lets a forbid win over any permit', () => {
    const ps = policySet({ policies: [permitAll('a'), permitAll('z'), forbid('retired', { when: cmp('<', attr('agent.model.version'), ver(2, 0, 0)), reason: 'model version retired' })] });
    expect(decide(ps, request()).effect).toBe('permit');
    const d = decide(ps, request({ agent: { model: { name: 'fraudnet', version: encodeVersion(1, 9, 0) } } }));
    expect(d).toMatchObject({ effect: 'deny', allowed: false, policies: ['retired'], reasons: ['model version retired'] });
  });

  it('orders deny > escalate > permit', () => {
    const esc = policy('esc', { branches: [branch('escalate', null, { reason: 'needs a person' })] });
    const den = policy('den', { when: attr('task.flagged'), branches: [branch('deny', null, { reason: 'flagged' })] });
    const ps = policySet({ policies: [permitAll('per'), esc, den] });
    expect(decide(ps, request()).effect).toBe('escalate');
    expect(decide(ps, request({ task: { flagged: true } })).effect).toBe('deny');
    expect(decide(policySet({ policies: [permitAll('per')] }), request())).toMatchObject({ effect: 'permit', allowed: true });
  });

  it('reports the determining policies by name, and only those', () => {
    const ps = policySet({ policies: [permitAll('zeta', 'z ok'), permitAll('alpha', 'a ok'), policy('mid', { branches: [branch('escalate')] }), permitAll('beta', 'a ok')] });
    const d = decide(ps, request());
    expect(d.effect).toBe('escalate');
    expect(d.policies).toEqual(['mid']);
    const p = decide(policySet({ policies: [permitAll('zeta', 'z ok'), permitAll('alpha', 'a ok'), permitAll('beta', 'a ok'), permitAll('Beta')] }), request());
    expect(p.policies).toEqual(['Beta', 'alpha', 'beta', 'zeta']);
    // Reasons: deduplicated, in policy-name order, absent `because` contributes nothing.
    expect(p.reasons).toEqual(['a ok', 'z ok']);
  });

  it('fires the first outcome whose condition holds, in source order', () => {
    const p = policy('p', {
      branches: [
        branch('permit', bool(false), { reason: 'first' }),
        branch('escalate', cmp('==', attr('task.kind'), str('investigation')), { reason: 'second' }),
        branch('deny', null, { reason: 'third' }),
      ],
    });
    const ps = policySet({ policies: [p] });
    expect(decide(ps, request())).toMatchObject({ effect: 'escalate', reasons: ['second'] });
    expect(decide(ps, request({ task: { kind: 'other' } }))).toMatchObject({ effect: 'deny', reasons: ['third'] });
  });

  it('does not apply a policy whose outcomes all have false conditions', () => {
    const p = policy('p', { branches: [branch('deny', bool(false)), branch('deny', attr('task.flagged'))] });
    expect(decide(policySet({ policies: [p, permitAll('q')] }), request()).effect).toBe('permit');
  });
});

describe('targets', () => {
  const ps = policySet({
    policies: [
      policy('read_accounts', { target: [target('action', 'read', 'list'), target('resource.type', 'account')], branches: [branch('permit')] }),
      policy('any_file', { target: [target('resource.type', 'file')], branches: [branch('escalate')] }),
      policy('investigations', { target: [target('action', 'freeze_account'), target('task.kind', 'investigation')], branches: [branch('permit')] }),
      policy('trusted_only', { target: [target('agent.trust', 3)], branches: [branch('deny', null, { reason: 'privileged agents may not act' })] }),
    ],
  });
  const compiled = compilePolicySet(ps);

  it('selects policies by action, resource type and other target attributes', () => {
    expect(decide(ps, request({ action: 'read' })).policies).toEqual(['read_accounts']);
    expect(decide(ps, request({ action: 'list' })).policies).toEqual(['read_accounts']);
    expect(decide(ps, request({ action: 'read', resource: { type: 'file' } })).policies).toEqual(['any_file']);
    expect(decide(ps, request({ action: 'freeze_account' })).policies).toEqual(['investigations']);
    expect(decide(ps, request({ action: 'freeze_account', task: { kind: 'report' } })).effect).toBe('deny');
    expect(decide(ps, request({ action: 'read', agent: { trust: 3 } })).effect).toBe('deny');
  });

  it('falls back for unknown actions and types to the policies without those targets', () => {
    expect(compiled.candidates('nope', 'nope')).toEqual(['trusted_only']);
    expect(compiled.candidates('nope', 'file')).toEqual(['any_file', 'trusted_only']);
    expect(compiled.candidates('read', 'nope')).toEqual(['trusted_only']);
    expect(compiled.candidates('read', 'account')).toEqual(['read_accounts', 'trusted_only']);
    expect(decide(ps, request({ action: 'nope', resource: { type: 'nope' } })).reasons).toEqual(['no policy applies']);
  });

  it('keeps the candidate list flat from 10 to 10,000 policies', () => {
    const small = compilePolicySet(representativePolicySet(10));
    const large = compilePolicySet(representativePolicySet(10_000));
    const actionsSmall = repActions(10);
    const actionsLarge = repActions(10_000);
    const worst = (c: ReturnType<typeof compilePolicySet>, actions: string[]) =>
      Math.max(...actions.flatMap((a) => [...REP_TYPES, 'unknown'].map((t) => c.candidates(a, t).length)));
    const medium = compilePolicySet(representativePolicySet(1_000));
    // 1000× the policies, yet the largest candidate list stays a small constant.
    expect(worst(small, actionsSmall)).toBeGreaterThan(0);
    expect(worst(medium, repActions(1_000))).toBeLessThanOrEqual(30);
    expect(worst(large, actionsLarge)).toBeLessThanOrEqual(30);
    expect(large.candidates('never-used', 'x').length).toBeLessThanOrEqual(2);
  });
});

describe('risk', () => {
  it('reports every factor rounded to 6 decimals in declaration order, and their rounded sum', () => {
    const ps = policySet({
      factors: [
        factor('z_first', num(0.1)),
        factor('a_second', num(0.2)),
        factor('doubt', arith('*', num(30), arith('-', num(1), attr('agent.confidence')))),
        factor('tiny', num(1e-7)),
        factor('old_model', cond(cmp('<', attr('agent.model.version'), ver(2, 3, 0)), num(25))),
      ],
      policies: [policy('p', { branches: [branch('permit', cmp('<', risk, num(2.4))), branch('escalate')] })],
    });
    const d = decide(ps, request());
    expect(Object.keys(d.factors)).toEqual(['z_first', 'a_second', 'doubt', 'tiny', 'old_model']);
    expect(d.factors).toEqual({ z_first: 0.1, a_second: 0.2, doubt: 2.1, tiny: 0, old_model: 0 });
    expect(d.risk).toBe(2.4);
    // `risk` in a policy is the reported (rounded) total: 2.4 < 2.4 is false.
    expect(d.effect).toBe('escalate');
    const old = decide(ps, request({ agent: { model: { name: 'm', version: encodeVersion(2, 2, 9) } } }));
    expect(old.factors['old_model']).toBe(25);
    expect(old.risk).toBe(27.4);
  });

  it('never produces Infinity or NaN, however large the factors', () => {
    const M = Number.MAX_VALUE;
    const ps = policySet({
      factors: [factor('a', num(M)), factor('b', num(M)), factor('c', arith('/', num(1), arith('-', attr('agent.confidence'), attr('agent.confidence'))))],
      policies: [permitAll('p')],
    });
    const d = decide(ps, request());
    expect(d.factors).toEqual({ a: M, b: M, c: 0 });
    expect(d.risk).toBe(M);
  });

  it('reports factors and risk 0 when there are none', () => {
    expect(decide(policySet({ policies: [permitAll('p')] }), request())).toMatchObject({ risk: 0, factors: {} });
  });
});

describe('obligations', () => {
  it('merge over the determining outcomes only', () => {
    const ps = policySet({
      policies: [
        policy('a', { branches: [branch('permit', null, { obligations: [obligation('ttl', 'duration', dur(600)), obligation('scopes', 'strings', strs('b', 'a')), obligation('approver', 'scalar', str('ops-a'))] })] }),
        policy('b', {
          branches: [
            branch('permit', null, {
              obligations: [
                obligation('ttl', 'duration', dur(300)),
                obligation('scopes', 'strings', { op: 'list', items: [concat(str('accounts:'), concat(attr('resource.id'), str(':freeze')))], type: T.list(T.string) }),
                obligation('approver', 'scalar', str('ops-b')),
              ],
            }),
          ],
        }),
        policy('c', { when: attr('task.flagged'), branches: [branch('escalate', null, { obligations: [obligation('ttl', 'duration', dur(60)), obligation('approver', 'scalar', str('fraud-ops'))] })] }),
      ],
    });
    expect(decide(ps, request()).obligations).toEqual({ ttl_s: 300, scopes: ['a', 'accounts:991:freeze', 'b'], approver: 'ops-a' });
    expect(decide(ps, request({ task: { flagged: true } })).obligations).toEqual({ ttl_s: 60, approver: 'fraud-ops' });
  });

  it('carry numbers, bools and set attributes too', () => {
    const ps = policySet({
      policies: [
        policy('p', {
          branches: [
            branch('permit', null, {
              obligations: [obligation('limit', 'scalar', arith('*', num(2), attr('resource.size'))), obligation('notify', 'scalar', not(attr('task.flagged'))), obligation('roles', 'strings', attr('agent.roles'))],
            }),
          ],
        }),
      ],
    });
    expect(decide(ps, request({ agent: { roles: ['z', 'a'] } })).obligations).toEqual({ limit: 20, notify: true, roles: ['a', 'z'] });
  });
});

describe('expressions', () => {
  const when = (e: Parameters<typeof and>[0]) => policySet({ policies: [policy('p', { when: e, branches: [branch('permit')] })] });
  const holds = (e: Parameters<typeof and>[0], req: NormalizedRequest = request()) => decide(when(e), req).effect === 'permit';

  it('compares versions numerically part by part and levels by position', () => {
    expect(holds(cmp('<', attr('agent.model.version'), ver(2, 10, 0)))).toBe(true);
    expect(holds(cmp('>', attr('agent.model.version'), ver(2, 4, 0)))).toBe(true);
    expect(holds(cmp('>=', attr('resource.sensitivity'), lit(2, SENSITIVITY)))).toBe(false);
    expect(holds(cmp('>=', attr('resource.sensitivity'), lit(2, SENSITIVITY)), request({ resource: { sensitivity: 3 } }))).toBe(true);
  });

  it('tests membership in sets, attribute lists and long constant lists', () => {
    expect(holds(inE(str('fraud-detector'), attr('agent.roles')))).toBe(true);
    expect(holds(inE(str('admin'), attr('agent.roles')))).toBe(false);
    const many = strs(...Array.from({ length: 20 }, (_, i) => `kind${i}`), 'investigation');
    expect(holds(inE(attr('task.kind'), many))).toBe(true);
    expect(holds(inE(attr('task.kind'), many), request({ task: { kind: 'kind21' } }))).toBe(false);
    expect(holds(inE(attr('task.kind'), { op: 'list', items: [attr('agent.id'), str('investigation')], type: T.list(T.string) }))).toBe(true);
    expect(holds(inE(attr('task.kind'), strs()))).toBe(false);
  });

  it('matches globs with metacharacters literally', () => {
    expect(holds(like(attr('resource.id'), '9*'))).toBe(true);
    expect(holds(like(attr('agent.id'), 'fraud*-1'))).toBe(true);
    expect(holds(like(attr('agent.id'), 'fraud.ot*'))).toBe(false);
    expect(holds(like(attr('agent.id'), 'fraud.ot*'), request({ agent: { id: 'fraud.ot-1' } }))).toBe(true);
    expect(holds(like(attr('resource.id'), 'a\\*b'), request({ resource: { id: 'a*b' } }))).toBe(true);
    expect(holds(like(attr('resource.id'), 'a\\*b'), request({ resource: { id: 'axb' } }))).toBe(false);
  });

  it('reads optional attributes only where `has` holds', () => {
    const e = and(has('resource.owner'), cmp('==', attr('resource.owner'), attr('agent.id')));
    expect(holds(e)).toBe(false);
    expect(holds(e, request({ resource: { owner: 'fraudbot-1' } }))).toBe(true);
    expect(holds(e, request({ resource: { owner: 'someone' } }))).toBe(false);
    const nested = and(has('agent.quota'), cmp('>', attr('agent.quota.limit'), num(5)));
    expect(holds(nested)).toBe(false);
    expect(holds(nested, request({ agent: { quota: { limit: 6 } } }))).toBe(true);
  });

  it('evaluates match on levels, strings and bools', () => {
    const m = (subject: Parameters<typeof and>[0], cases: { value: string | number | boolean; result: Parameters<typeof and>[0] }[], otherwise: Parameters<typeof and>[0] | null) =>
      policySet({ factors: [factor('m', match(subject, cases, otherwise, T.number))], policies: [permitAll('p')] });
    const lv = m(attr('resource.sensitivity'), [0, 1, 2, 3].map((v) => ({ value: v, result: num(v * 10) })), null);
    expect(decide(lv, request({ resource: { sensitivity: 2 } })).risk).toBe(20);
    const s = m(attr('task.kind'), [{ value: 'investigation', result: num(5) }], num(1));
    expect(decide(s, request()).risk).toBe(5);
    expect(decide(s, request({ task: { kind: 'x' } })).risk).toBe(1);
    const b = m(attr('task.flagged'), [{ value: true, result: num(7) }], num(3));
    expect(decide(b, request({ task: { flagged: true } })).risk).toBe(7);
    expect(decide(b, request()).risk).toBe(3);
  });

  it('uses built-ins, string concatenation and constant folding consistently', () => {
    const ps = policySet({
      lets: [letDecl('k', arith('+', num(1), num(2)), T.number), letDecl('k2', arith('*', letRef(0, T.number), num(2)), T.number)],
      factors: [
        factor('c', call('clamp', arith('-', attr('agent.behavior.rate_z'), num(2)), num(0), num(5))),
        factor('n', call('size', concat(attr('resource.type'), str(':')))),
        factor('k', letRef(1, T.number)),
        factor('m', call('max', num(1), call('min', num(4), num(9)), call('abs', num(-3)))),
      ],
      policies: [policy('p', { when: or(bool(false), cmp('==', arith('%', num(7), num(0)), num(0))), branches: [branch('permit')] })],
    });
    const d = decide(ps, request({ agent: { behavior: { rate_z: 9, deny_ratio: 0, new_resource: false } } }));
    expect(d.factors).toEqual({ c: 5, n: 8, k: 6, m: 4 });
    expect(d.effect).toBe('permit');
  });

  it('folds constant expressions and constant lets at compile time', () => {
    const ps = policySet({
      lets: [letDecl('k', arith('+', num(1), num(2)), T.number), letDecl('k2', arith('*', letRef(0, T.number), num(2)), T.number), letDecl('big', cmp('>', letRef(1, T.number), num(5)), T.bool)],
      factors: [factor('k2', letRef(1, T.number))],
      policies: [policy('p', { when: and(letRef(2, T.bool), cmp('==', concat(str('a'), str('b')), str('ab'))), branches: [branch('permit')] })],
    });
    const { source } = compilePolicySet(ps);
    expect(source).not.toMatch(/function L\d/);
    expect(source).toContain('ROUND6(6)');
    expect(decide(ps, request())).toMatchObject({ effect: 'permit', factors: { k2: 6 } });
  });

  it('evaluates `granted` against the request’s grants and clock', () => {
    const ps = policySet({ policies: [policy('p', { target: [target('action', 'freeze_account')], branches: [branch('permit', grantedE), branch('escalate')] })] });
    const base = { action: 'freeze_account', now: 5_000 };
    expect(decide(ps, request(base)).effect).toBe('escalate');
    const grant = { actions: ['freeze_account'], resource: 'account:99*', expiresAt: 6_000 };
    expect(decide(ps, request({ ...base, grants: [grant] })).effect).toBe('permit');
    expect(decide(ps, request({ ...base, grants: [grant], now: 6_000 })).effect).toBe('escalate');
    expect(decide(ps, request({ ...base, grants: [{ ...grant, resource: 'file:*' }] })).effect).toBe('escalate');
  });
});

describe('lets', () => {
  it('are computed at most once per request, however often they are used', () => {
    let reads = 0;
    const req = request();
    const agent = { ...req.agent };
    Object.defineProperty(agent, 'id', {
      enumerable: true,
      get() {
        reads++;
        return 'fraudbot-1';
      },
    });
    const counted: NormalizedRequest = { ...req, agent };
    const isBot = letDecl('is_bot', like(attr('agent.id'), 'fraud*'), T.bool);
    const ps = policySet({
      lets: [isBot, letDecl('bot_score', cond(letRef(0, T.bool), num(10)), T.number)],
      factors: [factor('bot', letRef(1, T.number))],
      policies: ['a', 'b', 'c', 'd'].map((n) => policy(n, { when: letRef(0, T.bool), branches: [branch('permit', letRef(0, T.bool))] })),
    });
    const compiled = compilePolicySet(ps);
    reads = 0;
    expect(compiled.decide(counted).policies).toEqual(['a', 'b', 'c', 'd']);
    expect(reads).toBe(1);
    reads = 0;
    expect(compiled.decide(counted).risk).toBe(10);
    expect(reads).toBe(1);
    reads = 0;
    interpret(ps, counted, false);
    expect(reads).toBe(1);
  });

  it('are not computed when no candidate policy needs them', () => {
    let reads = 0;
    const req = request({ action: 'read' });
    const task = { ...req.task };
    Object.defineProperty(task, 'kind', {
      enumerable: true,
      get() {
        reads++;
        return 'investigation';
      },
    });
    const ps = policySet({
      lets: [letDecl('inv', cmp('==', attr('task.kind'), str('investigation')), T.bool)],
      policies: [policy('w', { target: [target('action', 'write')], when: letRef(0, T.bool), branches: [branch('permit')] }), permitAll('r')],
    });
    expect(compilePolicySet(ps).decide({ ...req, task }).effect).toBe('permit');
    expect(reads).toBe(0);
  });
});

describe('explanations', () => {
  const ps = policySet({
    lets: [letDecl('fraud_agent', inE(str('fraud-detector'), attr('agent.roles')), T.bool)],
    factors: [factor('doubt', arith('*', num(30), arith('-', num(1), attr('agent.confidence'))))],
    policies: [
      policy('fraud_freeze', {
        line: 10,
        target: [target('action', 'freeze_account'), target('resource.type', 'account')],
        when: and(letRef(0, T.bool), attr('task.flagged')),
        branches: [branch('permit', cmp('<', risk, num(1)), { line: 11 }), branch('escalate', cmp('<', risk, num(80)), { line: 12 }), branch('deny', null, { line: 13, reason: 'risk too high' })],
      }),
      policy('reads', { line: 20, target: [target('action', 'read', 'list')], branches: [branch('permit', null, { line: 21 })] }),
      policy('sensitive', { line: 30, when: cmp('>=', attr('resource.sensitivity'), lit(2, SENSITIVITY)), branches: [branch('deny', null, { line: 31 })] }),
    ],
  });
  const set = createPolicySet(ps);

  it('trace each policy: target, when, branches, effect', () => {
    const d = set.explain(request({ action: 'freeze_account', task: { flagged: true } }));
    expect(d.effect).toBe('escalate');
    expect(d.explanation).toEqual([
      {
        policy: 'fraud_freeze',
        file: 'test.agp',
        line: 10,
        target: true,
        when: true,
        branches: [
          { effect: 'permit', condition: false, line: 11 },
          { effect: 'escalate', condition: true, line: 12 },
          { effect: 'deny', condition: null, line: 13 },
        ],
        effect: 'escalate',
      },
      { policy: 'reads', file: 'test.agp', line: 20, target: false, targetFailed: 'action in ["read", "list"]', when: null, branches: [{ effect: 'permit', condition: null, line: 21 }], effect: null },
      { policy: 'sensitive', file: 'test.agp', line: 30, target: true, when: false, whenFailed: 'resource.sensitivity >= confidential', branches: [{ effect: 'deny', condition: null, line: 31 }], effect: null },
    ]);
    const { explanation: _, ...plain } = d;
    expect(plain).toEqual(set.decide(request({ action: 'freeze_account', task: { flagged: true } })));
  });

  it('name the first failing target test and `when` conjunct as source text', () => {
    const d = set.explain(request({ action: 'freeze_account', resource: { type: 'file' } }));
    expect(d.explanation![0]).toMatchObject({ target: false, targetFailed: 'resource.type == "account"' });
    const w = set.explain(request({ action: 'freeze_account', agent: { roles: [] }, task: { flagged: true } }));
    expect(w.explanation![0]).toMatchObject({ target: true, when: false, whenFailed: 'fraud_agent' });
    const f = set.explain(request({ action: 'freeze_account' }));
    expect(f.explanation![0]).toMatchObject({ when: false, whenFailed: 'task.flagged' });
  });
});
