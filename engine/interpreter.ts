// The reference interpreter: a direct tree-walk over the checked IR that defines what every
// policy set means. No index, no folding, every policy evaluated; the compiler must agree
// with it on every request (test/engine/differential.test.ts). Also produces explanations.

import type { Decision, Effect, NormalizedRequest, Obligations, PolicyTrace } from './decision.js';
import type { IrBranch, IrExpr, IrPolicy, IrPolicySet, IrTargetTest, Value } from './ir.js';
import { renderExpr, renderTargetTest } from './render.js';
import {
  EFFECT_BIT,
  NO_POLICY_REASON,
  arith,
  callBuiltin,
  combinedEffect,
  compareNames,
  defineOwn,
  globMatch,
  granted,
  mergeObligation,
  obligationOutputKey,
  round6,
  saturate,
  addSat,
} from './semantics.js';

type Rec = { readonly [k: string]: Value };

/** Per-request evaluation state: let memo and the risk total. */
export interface EvalContext {
  readonly ps: IrPolicySet;
  /** Null while evaluating constants at compile time: any request access is then a bug. */
  readonly req: NormalizedRequest | null;
  readonly letDone: boolean[];
  readonly letValue: Value[];
  risk: number | null;
}

export function newContext(ps: IrPolicySet, req: NormalizedRequest | null): EvalContext {
  return { ps, req, letDone: new Array<boolean>(ps.lets.length).fill(false), letValue: new Array<Value>(ps.lets.length), risk: null };
}

function request(ctx: EvalContext): NormalizedRequest {
  if (ctx.req === null) throw new Error('bug: constant expression reads the request');
  return ctx.req;
}

function own(obj: unknown, key: string): Value | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined;
  return Object.prototype.hasOwnProperty.call(obj, key) ? (obj as Rec)[key] : undefined;
}

/** The value at `path` (own properties only), or undefined when some step is absent. */
export function readPath(req: NormalizedRequest, path: readonly string[]): Value | undefined {
  let cur: unknown = req;
  for (const seg of path) {
    cur = own(cur, seg);
    if (cur === undefined) return undefined;
  }
  return cur as Value;
}

function attr(ctx: EvalContext, path: readonly string[]): Value {
  const v = readPath(request(ctx), path);
  // The checker proves every read attribute present; this only keeps a checker bug loud.
  if (v === undefined) throw new Error(`bug: attribute \`${path.join('.')}\` read while absent`);
  return v;
}

export function evalExpr(e: IrExpr, ctx: EvalContext): Value {
  switch (e.op) {
    case 'lit':
      return e.value;
    case 'attr':
      return attr(ctx, e.path);
    case 'has':
      return readPath(request(ctx), e.path) !== undefined;
    case 'let': {
      if (ctx.letDone[e.index]) return ctx.letValue[e.index]!;
      const decl = ctx.ps.lets[e.index];
      if (!decl) throw new Error(`bug: unknown let #${e.index}`);
      const v = evalExpr(decl.expr, ctx);
      ctx.letValue[e.index] = v;
      ctx.letDone[e.index] = true;
      return v;
    }
    case 'risk':
      if (ctx.risk === null) throw new Error('bug: risk read before the factors were computed');
      return ctx.risk;
    case 'granted': {
      const req = request(ctx);
      return granted(req.grants, req.action, req.resource['type'] as string, req.resource['id'] as string, req.now);
    }
    case 'not':
      return !evalExpr(e.arg, ctx);
    case 'and':
      for (const a of e.args) if (!evalExpr(a, ctx)) return false;
      return true;
    case 'or':
      for (const a of e.args) if (evalExpr(a, ctx)) return true;
      return false;
    case 'cmp': {
      const l = evalExpr(e.left, ctx) as string | number | boolean;
      const r = evalExpr(e.right, ctx) as string | number | boolean;
      switch (e.cmp) {
        case '==':
          return l === r;
        case '!=':
          return l !== r;
        case '<':
          return l < r;
        case '<=':
          return l <= r;
        case '>':
          return l > r;
        case '>=':
          return l >= r;
      }
      break;
    }
    case 'in': {
      const x = evalExpr(e.elem, ctx);
      const coll = evalExpr(e.coll, ctx) as readonly Value[];
      for (const c of coll) if (c === x) return true;
      return false;
    }
    case 'like':
      return globMatch(e.pattern, evalExpr(e.arg, ctx) as string);
    case 'arith':
      return arith(e.arith, evalExpr(e.left, ctx) as number, evalExpr(e.right, ctx) as number);
    case 'concat':
      return (evalExpr(e.left, ctx) as string) + (evalExpr(e.right, ctx) as string);
    case 'neg':
      return saturate(-(evalExpr(e.arg, ctx) as number));
    case 'call':
      return callBuiltin(
        e.fn,
        e.args.map((a) => evalExpr(a, ctx)),
      );
    case 'match': {
      const s = evalExpr(e.subject, ctx);
      for (const c of e.cases) if (c.value === s) return evalExpr(c.result, ctx);
      if (e.otherwise) return evalExpr(e.otherwise, ctx);
      // A level match is exhaustive by checking; the last arm keeps evaluation total.
      const last = e.cases[e.cases.length - 1];
      if (!last) throw new Error('bug: match without arms');
      return evalExpr(last.result, ctx);
    }
    case 'cond':
      return evalExpr(e.cond, ctx) ? evalExpr(e.then, ctx) : evalExpr(e.else, ctx);
    case 'list':
      return e.items.map((a) => evalExpr(a, ctx));
  }
  throw new Error('bug: unknown expression');
}

/** Evaluates an expression that reads nothing from the request (constant folding). */
export function evalConstant(e: IrExpr, ps: IrPolicySet): Value {
  return evalExpr(e, newContext(ps, null));
}

/**
 * Whether an expression's value is the same for every request: no attr/has/risk/granted,
 * and lets only where `constantLet` says the let is itself constant (none by default).
 */
export function isConstant(e: IrExpr, constantLet: (index: number) => boolean = () => false): boolean {
  const c = (x: IrExpr): boolean => isConstant(x, constantLet);
  switch (e.op) {
    case 'lit':
      return true;
    case 'let':
      return constantLet(e.index);
    case 'attr':
    case 'has':
    case 'risk':
    case 'granted':
      return false;
    case 'not':
    case 'neg':
    case 'like':
      return c(e.arg);
    case 'and':
    case 'or':
    case 'call':
      return e.args.every(c);
    case 'list':
      return e.items.every(c);
    case 'cmp':
    case 'arith':
    case 'concat':
      return c(e.left) && c(e.right);
    case 'in':
      return c(e.elem) && c(e.coll);
    case 'match':
      return c(e.subject) && e.cases.every((k) => c(k.result)) && (e.otherwise === null || c(e.otherwise));
    case 'cond':
      return c(e.cond) && c(e.then) && c(e.else);
  }
}

/** Computes every factor (rounded) and the risk total: the rounded sum of the rounded factors. */
export function computeFactors(ctx: EvalContext): Record<string, number> {
  const factors: Record<string, number> = {};
  let total = 0;
  for (const f of ctx.ps.factors) {
    const v = round6(evalExpr(f.expr, ctx) as number);
    defineOwn(factors, f.name, v);
    total = addSat(total, v);
  }
  ctx.risk = round6(total);
  return factors;
}

export function targetTestHolds(t: IrTargetTest, req: NormalizedRequest): boolean {
  const v = readPath(req, t.path);
  for (const x of t.values) if (x === v) return true;
  return false;
}

interface Applicable {
  policy: IrPolicy;
  branch: IrBranch;
}

/** Evaluates one policy; returns the firing branch or null, filling `trace` when given. */
function evalPolicy(p: IrPolicy, ctx: EvalContext, tr: PolicyTrace | null): IrBranch | null {
  const req = request(ctx);
  for (const t of p.target) {
    if (!targetTestHolds(t, req)) {
      if (tr) {
        tr.target = false;
        tr.targetFailed = renderTargetTest(t, ctx.ps.schema);
      }
      return null;
    }
  }
  if (tr) tr.target = true;
  if (p.when) {
    let holds: boolean;
    if (tr && p.when.op === 'and') {
      holds = true;
      for (const c of p.when.args) {
        if (!evalExpr(c, ctx)) {
          holds = false;
          tr.whenFailed = renderExpr(c, ctx.ps.lets);
          break;
        }
      }
    } else {
      holds = evalExpr(p.when, ctx) as boolean;
      if (tr && !holds) tr.whenFailed = renderExpr(p.when, ctx.ps.lets);
    }
    if (tr) tr.when = holds;
    if (!holds) return null;
  } else if (tr) {
    tr.when = true;
  }
  for (let i = 0; i < p.branches.length; i++) {
    const b = p.branches[i]!;
    const fires = b.condition === null || (evalExpr(b.condition, ctx) as boolean);
    if (tr) tr.branches[i]!.condition = b.condition === null ? true : fires;
    if (fires) {
      if (tr) tr.effect = b.effect;
      return b;
    }
  }
  return null;
}

/** Evaluates a policy set on a validated request; `trace` adds a PolicyTrace per policy. */
export function interpret(ps: IrPolicySet, req: NormalizedRequest, trace: boolean): Decision {
  const ctx = newContext(ps, req);
  const factors = computeFactors(ctx);
  const policies = ps.policies.slice().sort((a, b) => compareNames(a.name, b.name));
  const applicable: Applicable[] = [];
  const traces: PolicyTrace[] = [];
  let bits = 0;
  for (const p of policies) {
    const tr: PolicyTrace | null = trace
      ? {
          policy: p.name,
          file: p.file,
          line: p.span.line,
          target: false,
          when: null,
          branches: p.branches.map((b) => ({ effect: b.effect, condition: null, line: b.span.line })),
          effect: null,
        }
      : null;
    const b = evalPolicy(p, ctx, tr);
    if (tr) traces.push(tr);
    if (b) {
      applicable.push({ policy: p, branch: b });
      bits |= EFFECT_BIT[b.effect];
    }
  }
  let effect: Effect = 'deny';
  const names: string[] = [];
  const reasons: string[] = [];
  const obligations: Obligations = {};
  if (bits === 0) {
    reasons.push(NO_POLICY_REASON);
  } else {
    effect = combinedEffect(bits);
    for (const { policy, branch } of applicable) {
      if (branch.effect !== effect) continue;
      names.push(policy.name);
      if (branch.reason !== null && !reasons.includes(branch.reason)) reasons.push(branch.reason);
      for (const o of branch.obligations) {
        mergeObligation(obligations, obligationOutputKey(o.key, o.kind), o.kind, evalExpr(o.expr, ctx));
      }
    }
  }
  const decision: Decision = {
    effect,
    allowed: effect === 'permit',
    risk: ctx.risk ?? 0,
    factors,
    policies: names,
    reasons,
    obligations,
    revision: ps.revision,
  };
  if (trace) decision.explanation = traces;
  return decision;
}
