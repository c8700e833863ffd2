// A representative policy set of any size, shaped like docs/language.md's example (lets,
// risk factors, targets on action and resource.type, thresholds, obligations, a few
// untargeted forbids), for engine measurements and scaling tests.

import type { IrPolicy, IrPolicySet } from '../../engine/ir.js';
import {
  SENSITIVITY,
  T,
  TRUST,
  and,
  arith,
  attr,
  branch,
  call,
  cmp,
  concat,
  cond,
  dur,
  factor,
  forbid,
  grantedE,
  inE,
  letDecl,
  letRef,
  lit,
  match,
  not,
  num,
  obligation,
  policy,
  policySet,
  risk,
  str,
  target,
  ver,
} from './ir-builders.js';

/** Action names: a larger set has more actions (each action has about 5 policies). */
export function repActions(n: number): string[] {
  return Array.from({ length: Math.max(2, Math.ceil(n / 20)) }, (_, i) => (i === 0 ? 'freeze_account' : i === 1 ? 'read' : `action_${i}`));
}
export const REP_TYPES = Array.from({ length: 4 }, (_, i) => (i === 0 ? 'account' : `type_${i}`));

export function representativePolicySet(n: number): IrPolicySet {
  const lets = [
    letDecl('fraud_agent', inE(str('fraud-detector'), attr('agent.roles')), T.bool),
    letDecl('sensitive', cmp('>=', attr('resource.sensitivity'), lit(2, SENSITIVITY)), T.bool),
    letDecl('trusted', and(cmp('>=', attr('agent.trust'), lit(2, TRUST)), not(attr('agent.behavior.new_resource'))), T.bool),
  ];
  const factors = [
    factor(
      'sensitivity',
      match(
        attr('resource.sensitivity'),
        [0, 1, 2, 3].map((v, i) => ({ value: v, result: num([0, 10, 40, 70][i]!) })),
        null,
        T.number,
      ),
    ),
    factor('doubt', arith('*', num(30), arith('-', num(1), attr('agent.confidence')))),
    factor('old_model', cond(cmp('<', attr('agent.model.version'), ver(2, 3, 0)), num(25))),
    factor('unusual', arith('*', num(10), call('clamp', arith('-', attr('agent.behavior.rate_z'), num(2)), num(0), num(5)))),
  ];
  const policies: IrPolicy[] = [];
  const actionNames = repActions(n);
  for (let i = 0; i < n; i++) {
    const name = `policy_${String(i).padStart(5, '0')}`;
    if (i % 50 === 7) {
      // Two untargeted guardrails apply to every request; the rest target one action.
      const tgt = i < 100 ? [] : [target('action', actionNames[i % actionNames.length]!)];
      policies.push(forbid(name, { target: tgt, when: cmp('<', attr('agent.model.version'), ver(1, i % 7, 0)), reason: 'model version retired' }));
      continue;
    }
    const actions = [actionNames[i % actionNames.length]!];
    if (i % 3 === 0) actions.push(actionNames[(i * 7 + 3) % actionNames.length]!);
    const tgt = [target('action', ...actions)];
    if (i % 5 !== 4) tgt.push(target('resource.type', REP_TYPES[Math.floor(i / actionNames.length) % REP_TYPES.length]!));
    if (i % 11 === 0) tgt.push(target('task.kind', 'investigation', 'audit'));
    const when =
      i % 4 === 0
        ? and(letRef(0, T.bool), attr('task.flagged'))
        : i % 4 === 1
          ? and(letRef(2, T.bool), not(letRef(1, T.bool)))
          : i % 4 === 2
            ? cmp('>=', attr('agent.confidence'), num(0.5 + (i % 5) / 10))
            : null;
    policies.push(
      policy(name, {
        target: tgt,
        when,
        branches: [
          branch('permit', grantedE, {
            obligations: [
              obligation('ttl', 'duration', dur(600)),
              obligation('scopes', 'strings', { op: 'list', items: [concat(str('accounts:'), concat(attr('resource.id'), str(':freeze')))], type: T.list(T.string) }),
            ],
          }),
          branch('permit', cmp('<', risk, num(40)), { obligations: [obligation('ttl', 'duration', dur(300))] }),
          branch('escalate', cmp('<', risk, num(80)), {
            obligations: [obligation('approver', 'scalar', str('fraud-ops')), obligation('ttl', 'duration', dur(600))],
          }),
          branch('deny', null, { reason: 'risk too high' }),
        ],
      }),
    );
  }
  return policySet({ lets, factors, policies, revision: `sha256:representative-${n}` });
}
