// Random well-typed policy sets and valid normalized requests over RICH_SCHEMA, for the
// differential property test (compiled decide() vs the reference interpreter) and the
// on-demand benchmarks/differential.ts. Driven by a seeded PRNG so that a failing case is
// reproducible from its seed alone; fast-check supplies the seeds.

import type { Effect } from '../../grammar/ast.js';
import type { Grant, NormalizedRequest } from '../../engine/decision.js';
import type { IrExpr, IrFactor, IrLet, IrObligation, IrPolicy, IrPolicySet, IrTargetTest, ObligationKind, Type, Value } from '../../engine/ir.js';
import { encodeVersion } from '../../engine/ir.js';
import {
  SENSITIVITY,
  T,
  TRUST,
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
  neg,
  not,
  num,
  obligation,
  or,
  policy,
  policySet,
  risk,
  str,
  target,
} from './ir-builders.js';

/** mulberry32: small, fast, good enough to explore a policy space. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<X>(xs: readonly X[]): X {
    return xs[this.int(0, xs.length - 1)]!;
  }
  subset<X>(xs: readonly X[], min = 0, max = xs.length): X[] {
    const n = this.int(min, Math.min(max, xs.length));
    const pool = xs.slice();
    const out: X[] = [];
    for (let i = 0; i < n; i++) out.push(pool.splice(this.int(0, pool.length - 1), 1)[0]!);
    return out;
  }
}

// ---------------------------------------------------------------- value pools

export const STRINGS = ['', 'a', 'b', 'ab', 'read', 'account', 'file', '991', 'fraud-detector', 'a*b', 'a.b', '(x)', 'ü€', 'alice', 'acc*ount'];
export const ACTIONS = ['read', 'write', 'freeze_account', 'delete'];
export const TYPES = ['account', 'file', 'transactions'];
export const KINDS = ['investigation', 'report', 'cleanup'];
export const NUMBERS = [0, 1, -1, 0.5, 2.25, 3, 10, 40, 80, 100, 0.1, 0.2, 1e-7, 1.7976931348623157e308, -1.7976931348623157e308, 12345.678901];
export const VERSIONS = [encodeVersion(1, 9, 0), encodeVersion(2, 0, 0), encodeVersion(2, 3, 0), encodeVersion(2, 4, 1), encodeVersion(65535, 0, 65535)];
export const DURATIONS = [0, 0.25, 30, 300, 600, 3600];
export const GLOBS = ['*', 'a*', '*b', 'a*b', '*a*', 'a.b', '(x)', 'acc\\*ount', 'acc*ount*', '*.*', '\\*', '', 'a**b', '*ü*', 'f*l*e', '[a]*', '^a$', 'a?b'];
export const REASONS = ['risk too high', 'model version retired', 'no', 'needs \\ approval', 'a "quoted" reason'];
export const POLICY_NAMES = ['alpha', 'beta', 'gamma', 'delta', 'eps', 'zeta', 'Eta', '_theta', 'iota2', 'kappa', 'lambda', 'mu'];

// ---------------------------------------------------------------- attributes by type

const STRING_ATTRS = ['agent.id', 'agent.model.name', 'resource.type', 'resource.id', 'task.kind', 'action'];
const NUMBER_ATTRS = ['agent.confidence', 'agent.behavior.rate_z', 'agent.behavior.deny_ratio', 'resource.size'];
const BOOL_ATTRS = ['task.flagged', 'agent.behavior.new_resource'];
const SET_ATTRS = ['agent.roles', 'resource.labels'];
/** Optional attributes: each is read only under a `has` test of `guard`. */
const OPTIONAL: { path: string; guard: string; type: 'string' | 'number' | 'strings' }[] = [
  { path: 'agent.manager', guard: 'agent.manager', type: 'string' },
  { path: 'resource.owner', guard: 'resource.owner', type: 'string' },
  { path: 'task.on_behalf_of', guard: 'task.on_behalf_of', type: 'string' },
  { path: 'task.priority', guard: 'task.priority', type: 'number' },
  { path: 'agent.quota.limit', guard: 'agent.quota', type: 'number' },
  { path: 'agent.tags', guard: 'agent.tags', type: 'strings' },
];

type Kind = 'bool' | 'number' | 'string' | 'strings' | 'version' | 'duration' | 'trust' | 'sensitivity';

const KIND_TYPE: Record<Kind, Type> = {
  bool: T.bool,
  number: T.number,
  string: T.string,
  strings: T.set(T.string),
  version: T.version,
  duration: T.duration,
  trust: TRUST,
  sensitivity: SENSITIVITY,
};

interface Env {
  lets: { index: number; kind: Kind; usesRisk: boolean }[];
  allowRisk: boolean;
  /** Guards (`has` paths) proven true here. */
  present: ReadonlySet<string>;
}

class ExprGen {
  usedRisk = false;
  constructor(private readonly rng: Rng) {}

  gen(kind: Kind, depth: number, env: Env): IrExpr {
    const r = this.rng;
    const lets = env.lets.filter((l) => l.kind === kind && (env.allowRisk || !l.usesRisk));
    if (lets.length > 0 && r.chance(0.15)) {
      const l = r.pick(lets);
      if (l.usesRisk) this.usedRisk = true;
      return letRef(l.index, KIND_TYPE[kind]);
    }
    switch (kind) {
      case 'bool':
        return this.bool(depth, env);
      case 'number':
        return this.number(depth, env);
      case 'string':
        return this.string(depth, env);
      case 'strings':
        return this.strings(depth, env);
      case 'version':
        return r.chance(0.6) ? attr('agent.model.version') : lit(r.pick(VERSIONS), T.version);
      case 'duration':
        return r.chance(0.5) ? attr('task.deadline') : dur(r.pick(DURATIONS));
      case 'trust':
        return r.chance(0.7) ? attr('agent.trust') : lit(r.int(0, 3), TRUST);
      case 'sensitivity':
        return r.chance(0.7) ? attr('resource.sensitivity') : lit(r.int(0, 3), SENSITIVITY);
    }
  }

  /** `has guard and <e using the optional attribute>`, or its number/string counterpart. */
  private guarded(kind: 'bool' | 'number' | 'string' | 'strings', depth: number, env: Env): IrExpr | null {
    const r = this.rng;
    const opts = OPTIONAL.filter((o) => kind === 'bool' || o.type === kind);
    if (opts.length === 0) return null;
    const o = r.pick(opts);
    const inner: Env = { ...env, present: new Set([...env.present, o.guard]) };
    const read = (): IrExpr => attr(o.path);
    if (kind === 'bool') {
      const use =
        o.type === 'number'
          ? cmp(r.pick(['<', '>=', '==']), read(), this.number(depth - 1, inner))
          : o.type === 'string'
            ? r.chance(0.5)
              ? cmp('==', read(), this.string(depth - 1, inner))
              : like(read(), r.pick(GLOBS))
            : inE(this.string(depth - 1, inner), read());
      return and(has(o.guard), use);
    }
    if (o.type !== kind) return null;
    return cond(has(o.guard), read(), this.gen(kind, depth - 1, env));
  }

  private presentRead(kind: 'number' | 'string' | 'strings', env: Env): IrExpr | null {
    const ok = OPTIONAL.filter((o) => o.type === kind && env.present.has(o.guard));
    return ok.length > 0 ? attr(this.rng.pick(ok).path) : null;
  }

  private bool(depth: number, env: Env): IrExpr {
    const r = this.rng;
    if (depth <= 0) {
      const leaf = r.int(0, 3);
      if (leaf === 0) return bool(r.chance(0.5));
      if (leaf === 1) return grantedE;
      return attr(r.pick(BOOL_ATTRS));
    }
    const d = depth - 1;
    switch (r.int(0, 15)) {
      case 0:
        return bool(r.chance(0.5));
      case 1:
        return attr(r.pick(BOOL_ATTRS));
      case 2:
        return not(this.bool(d, env));
      case 3:
        return and(...Array.from({ length: r.int(2, 3) }, () => this.bool(d, env)));
      case 4:
        return or(...Array.from({ length: r.int(2, 3) }, () => this.bool(d, env)));
      case 5: {
        const k = r.pick<Kind>(['number', 'version', 'duration', 'trust', 'sensitivity']);
        return cmp(r.pick(['==', '!=', '<', '<=', '>', '>=']), this.gen(k, d, env), this.gen(k, d, env));
      }
      case 6:
        return cmp(r.pick(['==', '!=']), this.string(d, env), this.string(d, env));
      case 7:
        return cmp(r.pick(['==', '!=']), this.bool(d, env), this.bool(d, env));
      case 8:
        return inE(this.string(d, env), this.strings(d, env));
      case 9:
        return like(this.string(d, env), r.pick(GLOBS));
      case 10:
        return grantedE;
      case 11:
        if (env.allowRisk) {
          this.usedRisk = true;
          return cmp(r.pick(['<', '<=', '>', '>=']), risk, num(r.pick([0, 10, 40, 80, 100])));
        }
        return this.bool(d, env);
      case 12:
        return this.guarded('bool', depth, env) ?? bool(true);
      case 13:
        return this.matchOf('bool', d, env);
      case 14:
        return { op: 'has', path: r.pick(OPTIONAL).guard.split('.') };
      default:
        return inE(this.gen('number', d, env), { op: 'list', items: [num(r.pick(NUMBERS)), num(r.pick(NUMBERS)), this.number(0, env)], type: T.list(T.number) });
    }
  }

  private number(depth: number, env: Env): IrExpr {
    const r = this.rng;
    if (depth <= 0) {
      if (r.chance(0.5)) return num(r.pick(NUMBERS));
      return this.presentRead('number', env) ?? attr(r.pick(NUMBER_ATTRS));
    }
    const d = depth - 1;
    switch (r.int(0, 10)) {
      case 0:
        return num(r.pick(NUMBERS));
      case 1:
        return this.presentRead('number', env) ?? attr(r.pick(NUMBER_ATTRS));
      case 2:
      case 3:
        return arith(r.pick(['+', '-', '*', '/', '%']), this.number(d, env), this.number(d, env));
      case 4:
        return neg(this.number(d, env));
      case 5: {
        const fn = r.pick(['clamp', 'min', 'max', 'abs', 'size'] as const);
        if (fn === 'clamp') return call('clamp', this.number(d, env), this.number(d, env), this.number(d, env));
        if (fn === 'abs') return call('abs', this.number(d, env));
        if (fn === 'size') return call('size', r.chance(0.5) ? this.string(d, env) : this.strings(d, env));
        return call(fn, ...Array.from({ length: r.int(1, 3) }, () => this.number(d, env)));
      }
      case 6:
        return this.matchOf('number', d, env);
      case 7:
        return cond(this.bool(d, env), this.number(d, env), this.number(d, env));
      case 8:
        return this.guarded('number', depth, env) ?? num(1);
      case 9:
        if (env.allowRisk) {
          this.usedRisk = true;
          return risk;
        }
        return num(r.pick(NUMBERS));
      default:
        // Multiplying a level or version is ill-typed; numbers only, but from every source.
        return arith('*', num(r.pick([0.5, 10, 30])), arith('-', num(1), attr('agent.confidence')));
    }
  }

  private string(depth: number, env: Env): IrExpr {
    const r = this.rng;
    if (depth <= 0) {
      if (r.chance(0.4)) return str(r.pick(STRINGS));
      return this.presentRead('string', env) ?? attr(r.pick(STRING_ATTRS));
    }
    const d = depth - 1;
    switch (r.int(0, 6)) {
      case 0:
        return str(r.pick(STRINGS));
      case 1:
      case 2:
        return this.presentRead('string', env) ?? attr(r.pick(STRING_ATTRS));
      case 3:
        return concat(this.string(d, env), this.string(d, env));
      case 4:
        return this.matchOf('string', d, env);
      case 5:
        return cond(this.bool(d, env), this.string(d, env), this.string(d, env));
      default:
        return this.guarded('string', depth, env) ?? str('g');
    }
  }

  private strings(depth: number, env: Env): IrExpr {
    const r = this.rng;
    const c = r.int(0, 3);
    if (c === 0) return attr(r.pick(SET_ATTRS));
    if (c === 1) return this.presentRead('strings', env) ?? attr(r.pick(SET_ATTRS));
    if (c === 2 || depth <= 0) {
      const pool = [...STRINGS, ...ACTIONS, ...TYPES];
      // Long constant lists exercise the compiler's hoisted Set.
      return { op: 'list', items: r.subset(pool, 0, r.chance(0.3) ? 12 : 3).map(str), type: T.list(T.string) };
    }
    return { op: 'list', items: Array.from({ length: r.int(1, 3) }, () => this.string(depth - 1, env)), type: T.list(T.string) };
  }

  private matchOf(kind: 'bool' | 'number' | 'string', depth: number, env: Env): IrExpr {
    const r = this.rng;
    const t = KIND_TYPE[kind];
    const res = (): IrExpr => this.gen(kind, depth, env);
    const subj = r.int(0, 2);
    if (subj === 0) {
      const lv = r.pick<Kind>(['trust', 'sensitivity']);
      const exhaustive = r.chance(0.5);
      const members = exhaustive ? [0, 1, 2, 3] : r.subset([0, 1, 2, 3], 1, 3).sort();
      return match(
        this.gen(lv, depth, env),
        members.map((m) => ({ value: m, result: res() })),
        exhaustive && r.chance(0.5) ? null : exhaustive ? null : res(),
        t,
      );
    }
    if (subj === 1) {
      const labels = r.subset([...STRINGS, ...ACTIONS, ...TYPES], 1, 3);
      return match(
        this.string(depth, env),
        labels.map((l) => ({ value: l, result: res() })),
        res(),
        t,
      );
    }
    const both = r.chance(0.5);
    return match(
      this.bool(depth, env),
      both ? [{ value: true, result: res() }, { value: false, result: res() }] : [{ value: r.chance(0.5), result: res() }],
      both ? null : res(),
      t,
    );
  }
}

// ---------------------------------------------------------------- policy sets

const OBLIGATION_KEYS: { key: string; kind: ObligationKind; gen: (g: ExprGen, rng: Rng, env: Env) => IrExpr }[] = [
  { key: 'ttl', kind: 'duration', gen: (g, _r, env) => g.gen('duration', 1, env) },
  { key: 'max_age', kind: 'duration', gen: (_g, r) => dur(r.pick(DURATIONS)) },
  {
    key: 'scopes',
    kind: 'strings',
    gen: (g, r, env) =>
      r.chance(0.5)
        ? { op: 'list', items: [concat(str('accounts:'), concat(attr('resource.id'), str(':freeze')))], type: T.list(T.string) }
        : g.gen('strings', 1, env),
  },
  { key: 'approver', kind: 'scalar', gen: (g, _r, env) => g.gen('string', 1, env) },
  { key: 'limit', kind: 'scalar', gen: (g, _r, env) => g.gen('number', 1, env) },
  { key: 'notify', kind: 'scalar', gen: (g, _r, env) => g.gen('bool', 1, env) },
];

export interface GenOptions {
  maxPolicies?: number;
  maxDepth?: number;
}

export function genPolicySet(seed: number, opts: GenOptions = {}): IrPolicySet {
  const r = new Rng(seed);
  const g = new ExprGen(r);
  const maxDepth = opts.maxDepth ?? 3;
  const env0: Env = { lets: [], allowRisk: false, present: new Set() };

  const lets: IrLet[] = [];
  const letInfo: Env['lets'] = [];
  const nLets = r.int(0, 4);
  for (let i = 0; i < nLets; i++) {
    const kind = r.pick<Kind>(['bool', 'bool', 'number', 'string', 'strings']);
    g.usedRisk = false;
    const env: Env = { lets: letInfo.slice(), allowRisk: r.chance(0.3), present: new Set() };
    const expr = g.gen(kind, r.int(0, maxDepth), env);
    lets.push(letDecl(`l${i}`, expr, KIND_TYPE[kind]));
    letInfo.push({ index: i, kind, usesRisk: g.usedRisk });
  }

  const factors: IrFactor[] = [];
  const nFactors = r.int(0, 4);
  const fEnv: Env = { ...env0, lets: letInfo };
  for (let i = 0; i < nFactors; i++) {
    const e = g.gen('number', r.int(0, maxDepth), fEnv);
    factors.push(factor(`f${i}`, r.chance(0.4) ? cond(g.gen('bool', 1, fEnv), e) : e));
  }

  const names = r.subset(POLICY_NAMES, 1, Math.min(opts.maxPolicies ?? 8, POLICY_NAMES.length));
  const policies: IrPolicy[] = names.map((name) => {
    const tgt: IrTargetTest[] = [];
    if (r.chance(0.7)) tgt.push(target('action', ...r.subset(ACTIONS, 1, 2)));
    if (r.chance(0.5)) tgt.push(target('resource.type', ...r.subset(TYPES, 1, 2)));
    if (r.chance(0.2)) tgt.push(target('task.kind', ...r.subset(KINDS, 1, 2)));
    if (r.chance(0.1)) tgt.push(target('agent.trust', ...r.subset([0, 1, 2, 3], 1, 2)));
    if (r.chance(0.1)) tgt.push(target('task.flagged', r.chance(0.5)));
    if (r.chance(0.05)) tgt.push(target('action', ...r.subset(ACTIONS, 1, 3)));

    const pEnv: Env = { lets: letInfo, allowRisk: true, present: new Set() };
    let when: IrExpr | null = null;
    let bEnv = pEnv;
    if (r.chance(0.75)) {
      if (r.chance(0.3)) {
        const o = r.pick(OPTIONAL);
        bEnv = { ...pEnv, present: new Set([o.guard]) };
        when = and({ op: 'has', path: o.guard.split('.') }, g.gen('bool', r.int(0, maxDepth), bEnv));
      } else {
        when = g.gen('bool', r.int(0, maxDepth), pEnv);
      }
    }
    if (r.chance(0.2)) return forbid(name, { target: tgt, when, reason: r.chance(0.7) ? r.pick(REASONS) : null });
    const nBranches = r.int(1, 3);
    const branches = Array.from({ length: nBranches }, (_, bi) => {
      const effect = r.pick<Effect>(['permit', 'permit', 'escalate', 'deny']);
      const condition =
        bi === nBranches - 1 && r.chance(0.5)
          ? null
          : r.chance(0.4)
            ? cmp(r.pick(['<', '<=', '>=']), risk, num(r.pick([10, 40, 80])))
            : g.gen('bool', r.int(0, maxDepth), bEnv);
      const obligations: IrObligation[] = r
        .subset(OBLIGATION_KEYS, 0, 3)
        .map((o) => obligation(o.key, o.kind, o.gen(g, r, bEnv)));
      return branch(effect, condition, { obligations, reason: r.chance(0.5) ? r.pick(REASONS) : null, line: bi + 2 });
    });
    return policy(name, { target: tgt, when, branches });
  });
  return policySet({ lets, factors, policies, revision: `sha256:${seed}` });
}

// ---------------------------------------------------------------- requests

export function genRequest(rng: Rng): NormalizedRequest {
  const r = rng;
  const s = (): string => r.pick(STRINGS);
  const n = (): number => r.pick(NUMBERS);
  const strs = (): string[] => Array.from(new Set(r.subset([...STRINGS, 'fraud-detector'], 0, 3)));
  const agent: Record<string, Value> = {
    id: s(),
    roles: strs(),
    model: { name: s(), version: r.pick(VERSIONS) },
    confidence: n(),
    trust: r.int(0, 3),
    behavior: { rate_z: n(), deny_ratio: n(), new_resource: r.chance(0.5) },
  };
  if (r.chance(0.5)) agent['manager'] = s();
  if (r.chance(0.5)) agent['tags'] = r.subset(STRINGS, 0, 3);
  if (r.chance(0.5)) agent['quota'] = { limit: n() };
  const resource: Record<string, Value> = {
    type: r.chance(0.85) ? r.pick(TYPES) : s(),
    id: r.pick(['991', 'a', '', 'x*y']),
    sensitivity: r.int(0, 3),
    size: n(),
    labels: strs(),
  };
  if (r.chance(0.5)) resource['owner'] = s();
  const task: Record<string, Value> = { kind: r.chance(0.8) ? r.pick(KINDS) : s(), flagged: r.chance(0.5), deadline: r.pick(DURATIONS) };
  if (r.chance(0.5)) task['on_behalf_of'] = s();
  if (r.chance(0.5)) task['priority'] = n();
  const now = 1_000_000;
  const grants: Grant[] = Array.from({ length: r.pick([0, 0, 1, 2]) }, () => ({
    actions: r.subset([...ACTIONS, '*'], 1, 2),
    resource: r.pick(['account:*', 'account:991', '*', 'file:a*', 'acc\\*:*', '*:x\\*y', 'transactions:*9*']),
    expiresAt: now + r.pick([-1, 0, 1, 60_000]),
  }));
  return {
    agent,
    action: r.chance(0.85) ? r.pick(ACTIONS) : s(),
    resource,
    task,
    grants,
    now,
  };
}

// ---------------------------------------------------------------- requests for any schema

/** Literal values that appear in a policy set: requests built from them hit its conditions. */
export interface Harvest {
  strings: string[];
  numbers: number[];
}

export function harvest(ps: IrPolicySet): Harvest {
  const strings = new Set<string>(['', 'x']);
  const numbers = new Set<number>([0, 1, -1, 0.5]);
  const addNumber = (n: number) => {
    for (const d of [0, 1, -1, 0.001, -0.001]) if (Number.isFinite(n + d)) numbers.add(n + d);
  };
  const visit = (e: IrExpr): void => {
    switch (e.op) {
      case 'lit':
        if (typeof e.value === 'string') strings.add(e.value);
        else if (typeof e.value === 'number') addNumber(e.value);
        else if (Array.isArray(e.value)) for (const v of e.value) if (typeof v === 'string') strings.add(v);
        return;
      case 'like':
        strings.add(e.pattern.replace(/\\\*/g, '*').replace(/\*/g, ''));
        strings.add(e.pattern.replace(/\\\*/g, '*').replace(/\*/g, 'zz'));
        visit(e.arg);
        return;
      case 'not':
      case 'neg':
        visit(e.arg);
        return;
      case 'and':
      case 'or':
      case 'call':
        e.args.forEach(visit);
        return;
      case 'list':
        e.items.forEach(visit);
        return;
      case 'cmp':
      case 'arith':
      case 'concat':
        visit(e.left);
        visit(e.right);
        return;
      case 'in':
        visit(e.elem);
        visit(e.coll);
        return;
      case 'match':
        visit(e.subject);
        for (const c of e.cases) {
          if (typeof c.value === 'string') strings.add(c.value);
          visit(c.result);
        }
        if (e.otherwise) visit(e.otherwise);
        return;
      case 'cond':
        visit(e.cond);
        visit(e.then);
        visit(e.else);
        return;
      default:
        return;
    }
  };
  ps.lets.forEach((l) => visit(l.expr));
  ps.factors.forEach((f) => visit(f.expr));
  for (const p of ps.policies) {
    for (const t of p.target) for (const v of t.values) if (typeof v === 'string') strings.add(v);
    else if (typeof v === 'number') addNumber(v);
    if (p.when) visit(p.when);
    for (const b of p.branches) {
      if (b.condition) visit(b.condition);
      b.obligations.forEach((o) => visit(o.expr));
    }
  }
  return { strings: [...strings], numbers: [...numbers] };
}

function genValue(t: Type, r: Rng, h: Harvest): Value {
  switch (t.t) {
    case 'string':
      return r.pick(h.strings);
    case 'number':
    case 'duration':
      return r.pick(h.numbers);
    case 'bool':
      return r.chance(0.5);
    case 'version':
      return r.chance(0.7) ? r.pick(VERSIONS) : Math.max(0, Math.floor(r.pick(h.numbers)));
    case 'level':
      return r.int(0, t.members.length - 1);
    case 'set':
      return Array.from(new Set(Array.from({ length: r.int(0, 3) }, () => genValue(t.elem, r, h))));
    case 'list':
      return Array.from({ length: r.int(0, 3) }, () => genValue(t.elem, r, h));
    case 'record': {
      const out: Record<string, Value> = {};
      for (const f of t.fields) if (!f.optional || r.chance(0.5)) out[f.name] = genValue(f.type, r, h);
      return out;
    }
  }
}

/** A random valid normalized request for `ps`'s schema, built from the set's own literals. */
export function genRequestFor(ps: IrPolicySet, h: Harvest, r: Rng): NormalizedRequest {
  const body = genValue(ps.schema.request, r, h) as Record<string, Value>;
  // Most requests aim at one policy's target, so that its conditions get exercised.
  const aim = ps.policies.length > 0 && r.chance(0.8) ? r.pick(ps.policies) : null;
  for (const t of aim?.target ?? []) {
    let rec: Record<string, Value> = body;
    for (let i = 0; i < t.path.length - 1; i++) rec = (rec[t.path[i]!] ?? {}) as Record<string, Value>;
    rec[t.path[t.path.length - 1]!] = r.pick(t.values);
  }
  const now = 1_000_000;
  const type = typeof (body['resource'] as Record<string, Value> | undefined)?.['type'] === 'string' ? ((body['resource'] as Record<string, Value>)['type'] as string) : 'x';
  const grants: Grant[] = Array.from({ length: r.pick([0, 0, 1, 2]) }, () => ({
    actions: r.chance(0.2) ? ['*'] : [r.pick(h.strings)],
    resource: r.pick([`${type}:*`, '*', `${r.pick(h.strings)}:*`]),
    expiresAt: now + r.pick([-1, 0, 1, 60_000]),
  }));
  return {
    agent: (body['agent'] ?? {}) as NormalizedRequest['agent'],
    action: (body['action'] ?? '') as string,
    resource: (body['resource'] ?? {}) as NormalizedRequest['resource'],
    task: (body['task'] ?? {}) as NormalizedRequest['task'],
    grants,
    now,
  };
}
