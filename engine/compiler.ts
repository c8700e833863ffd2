// The compiler: turns a checked IrPolicySet into one decision function by generating
// JavaScript (`new Function`). Passes: sort → index targets → fold constants → generate →
// instantiate. It must agree with the reference interpreter on every request; the shared
// rules live in semantics.ts and constants are folded by the interpreter itself.
//
// Injection safety: generated code is built only from the checked IR, and user text
// (strings, names, attribute names, globs) never becomes code: strings are emitted with
// JSON.stringify, attribute names as `.name` only when they are plain identifiers (else a
// JSON.stringify'd bracket access), and policy names, reasons and globs travel as data in
// the runtime table `rt`, never as source text.

import type { Decision, NormalizedRequest } from './decision.js';
import type { IrExpr, IrPolicy, IrPolicySet, IrTargetTest, Type, Value } from './ir.js';
import { evalExpr, isConstant, newContext } from './interpreter.js';
import type { EvalContext } from './interpreter.js';
import {
  EFFECT_BIT,
  NO_POLICY_REASON,
  addSat,
  clamp,
  compareNames,
  compileGlob,
  divSat,
  granted,
  mergeObligation,
  modSat,
  mulSat,
  obligationOutputKey,
  round6,
  size,
  subSat,
} from './semantics.js';

export type DecideFn = (request: NormalizedRequest) => Decision;

export interface CompiledPolicySet {
  decide: DecideFn;
  /** The generated source, for debugging and tests. */
  source: string;
  /** How many policies the index yields for an (action, resource.type) pair; for tests. */
  candidates(action: string, resourceType: string): readonly string[];
}

/** Candidate policy indexes (into the name-sorted policy list), ascending. */
type Candidates = readonly number[];

interface TypeIndex {
  types: Map<string, Candidates>;
  other: Candidates;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Above this many constants, `in` uses a hoisted Set instead of a chain of `===`. */
const SET_THRESHOLD = 8;

/** A JS string literal; U+2028/U+2029 escaped too, so no text ever breaks a line of code. */
function jsString(s: string): string {
  return JSON.stringify(s).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

function jsNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error('bug: non-finite constant');
  if (Object.is(n, -0)) return '(-0)';
  return n < 0 ? `(${String(n)})` : String(n);
}

/** `.name` for plain identifiers, `["name"]` otherwise (and for `__proto__`). */
function member(name: string): string {
  return IDENT.test(name) && name !== '__proto__' ? `.${name}` : `[${jsString(name)}]`;
}

function isProtoName(name: string): boolean {
  return name in Object.prototype || name === '__proto__';
}

function mergeSorted(a: Candidates, b: Candidates): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

/** Builds the code of one policy set; the emitter state is per compile. */
class Generator {
  /** Runtime table entries; generated code refers to them as `rt.k[i]` hoisted to `K<i>`. */
  readonly constants: unknown[] = [];
  private readonly constIndex = new Map<unknown, number>();
  private temps = 0;
  /** The value of each let that is the same for every request (folded), else undefined. */
  private readonly letConst: (Value | undefined)[] = [];
  /** An evaluation context without a request, its let memo holding the constant lets. */
  private readonly constCtx: EvalContext;

  constructor(
    readonly ps: IrPolicySet,
    readonly indexAction: boolean,
    readonly indexType: boolean,
  ) {
    this.constCtx = newContext(ps, null);
    // Lets come in dependency order, so one pass folds lets built from constant lets too.
    for (let i = 0; i < ps.lets.length; i++) {
      const expr = ps.lets[i]!.expr;
      if (this.isFoldable(expr)) {
        const v = this.evalFoldable(expr);
        this.letConst[i] = v;
        this.constCtx.letDone[i] = true;
        this.constCtx.letValue[i] = v;
      }
    }
  }

  /** Starts a new generated function: temporaries are per function. */
  beginFunction(): void {
    this.temps = 0;
  }

  tempDecl(): string {
    if (this.temps === 0) return '';
    const names = Array.from({ length: this.temps }, (_, i) => `t${i}`);
    return `let ${names.join(', ')};`;
  }

  private temp(): string {
    return `t${this.temps++}`;
  }

  hoist(value: unknown): string {
    let i = this.constIndex.get(value);
    if (i === undefined) {
      i = this.constants.length;
      this.constants.push(value);
      this.constIndex.set(value, i);
    }
    return `K${i}`;
  }

  literal(v: Value): string {
    if (typeof v === 'string') return jsString(v);
    if (typeof v === 'number') return jsNumber(v);
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    return this.hoist(v);
  }

  isConstantLet(index: number): boolean {
    return this.letConst[index] !== undefined;
  }

  /** The same for every request, counting constant lets as constants. */
  private isFoldable(e: IrExpr): boolean {
    return isConstant(e, (i) => this.letConst[i] !== undefined);
  }

  /** Evaluates a foldable expression with the interpreter (one semantics, not two). */
  private evalFoldable(e: IrExpr): Value {
    return evalExpr(e, this.constCtx);
  }

  access(path: readonly string[]): string {
    return 'r' + path.map(member).join('');
  }

  /** Presence of an optional attribute: every optional step (and the last) is checked. */
  hasCode(path: readonly string[]): string {
    const checks: string[] = [];
    let t: Type | undefined = this.ps.schema.request;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      let optional = true;
      if (t && t.t === 'record') {
        const f: { optional: boolean; type: Type } | undefined = t.fields.find((x) => x.name === seg);
        optional = f ? f.optional : true;
        t = f?.type;
      } else {
        t = undefined;
      }
      if (!optional && i < path.length - 1) continue;
      const parent = this.access(path.slice(0, i));
      const cur = this.access(path.slice(0, i + 1));
      checks.push(isProtoName(seg) ? `(HASOWN(${parent}, ${jsString(seg)}) && ${cur} !== undefined)` : `${cur} !== undefined`);
    }
    return `(${checks.join(' && ')})`;
  }

  expr(e: IrExpr): string {
    if (e.op !== 'lit' && this.isFoldable(e)) return this.literal(this.evalFoldable(e));
    switch (e.op) {
      case 'lit':
        return this.literal(e.value);
      case 'attr':
        return this.access(e.path);
      case 'has':
        return this.hasCode(e.path);
      case 'let': {
        const c = this.letConst[e.index];
        if (c !== undefined) return this.literal(c);
        return `(LS[${e.index}] === G ? LV[${e.index}] : L${e.index}(r))`;
      }
      case 'risk':
        return 'RISK';
      case 'granted':
        // Request-constant, so memoized per request like a let.
        return `(GS === G ? GV : (GV = GRANTED(r.grants, r.action, ${this.access(['resource', 'type'])}, ${this.access(['resource', 'id'])}, r.now), GS = G, GV))`;
      case 'not':
        return `!${this.expr(e.arg)}`;
      case 'and':
      case 'or': {
        const isAnd = e.op === 'and';
        const parts: string[] = [];
        for (const a of e.args) {
          if (this.isFoldable(a)) {
            const v = this.evalFoldable(a);
            // Evaluation is pure: a constant that decides the result decides it alone.
            if (v === !isAnd) return isAnd ? 'false' : 'true';
            continue;
          }
          parts.push(this.expr(a));
        }
        if (parts.length === 0) return isAnd ? 'true' : 'false';
        return `(${parts.join(isAnd ? ' && ' : ' || ')})`;
      }
      case 'cmp': {
        const op = e.cmp === '==' ? '===' : e.cmp === '!=' ? '!==' : e.cmp;
        return `(${this.expr(e.left)} ${op} ${this.expr(e.right)})`;
      }
      case 'in':
        return this.inCode(e.elem, e.coll);
      case 'like': {
        const g = this.hoist(compileGlob(e.pattern));
        return `${g}(${this.expr(e.arg)})`;
      }
      case 'arith': {
        const fn = { '+': 'ADD', '-': 'SUB', '*': 'MUL', '/': 'DIV', '%': 'MOD' }[e.arith];
        return `${fn}(${this.expr(e.left)}, ${this.expr(e.right)})`;
      }
      case 'concat':
        return `(${this.expr(e.left)} + ${this.expr(e.right)})`;
      case 'neg':
        return `(-${this.expr(e.arg)})`;
      case 'call': {
        const args = e.args.map((a) => this.expr(a)).join(', ');
        switch (e.fn) {
          case 'clamp':
            return `CLAMP(${args})`;
          case 'min':
            return `MIN(${args})`;
          case 'max':
            return `MAX(${args})`;
          case 'abs':
            return `ABS(${args})`;
          case 'size':
            return `SIZE(${args})`;
        }
        break;
      }
      case 'match': {
        const t = this.temp();
        let code = e.otherwise ? this.expr(e.otherwise) : null;
        for (let i = e.cases.length - 1; i >= 0; i--) {
          const c = e.cases[i]!;
          const res = this.expr(c.result);
          // An exhaustive level match: the last arm stands in for "no arm" (as the interpreter).
          if (code === null) code = res;
          else code = `(${t} === ${this.literal(c.value)} ? ${res} : ${code})`;
        }
        if (code === null) throw new Error('bug: match without arms');
        return `(${t} = ${this.expr(e.subject)}, ${code})`;
      }
      case 'cond':
        return `(${this.expr(e.cond)} ? ${this.expr(e.then)} : ${this.expr(e.else)})`;
      case 'list':
        return `[${e.items.map((a) => this.expr(a)).join(', ')}]`;
    }
    throw new Error('bug: unknown expression');
  }

  private inCode(elem: IrExpr, coll: IrExpr): string {
    if (this.isFoldable(coll)) {
      const values = this.evalFoldable(coll) as readonly Value[];
      return this.memberOf(this.expr(elem), values);
    }
    if (coll.op === 'list') {
      const t = this.temp();
      const tests = coll.items.map((it) => `${t} === ${this.expr(it)}`);
      if (tests.length === 0) return 'false';
      return `(${t} = ${this.expr(elem)}, ${tests.join(' || ')})`;
    }
    // Array.prototype.includes is SameValueZero: === on values that are never NaN.
    return `${this.expr(coll)}.includes(${this.expr(elem)})`;
  }

  /** `code ∈ values` for constant scalar values. */
  memberOf(code: string, values: readonly Value[]): string {
    if (values.length === 0) return 'false';
    if (values.length > SET_THRESHOLD) return `${this.hoist(new Set(values))}.has(${code})`;
    if (values.length === 1) return `(${code} === ${this.literal(values[0]!)})`;
    const t = this.temp();
    return `(${t} = ${code}, ${values.map((v) => `${t} === ${this.literal(v)}`).join(' || ')})`;
  }

  targetCode(test: IrTargetTest): string {
    return this.memberOf(this.access(test.path), test.values);
  }
}

function dependsOnRisk(e: IrExpr, ps: IrPolicySet, seen: Set<number>): boolean {
  switch (e.op) {
    case 'risk':
      return true;
    case 'let':
      if (seen.has(e.index)) return false;
      seen.add(e.index);
      return dependsOnRisk(ps.lets[e.index]!.expr, ps, seen);
    case 'lit':
    case 'attr':
    case 'has':
    case 'granted':
      return false;
    case 'not':
    case 'neg':
    case 'like':
      return dependsOnRisk(e.arg, ps, seen);
    case 'and':
    case 'or':
    case 'call':
      return e.args.some((a) => dependsOnRisk(a, ps, seen));
    case 'list':
      return e.items.some((a) => dependsOnRisk(a, ps, seen));
    case 'cmp':
    case 'arith':
    case 'concat':
      return dependsOnRisk(e.left, ps, seen) || dependsOnRisk(e.right, ps, seen);
    case 'in':
      return dependsOnRisk(e.elem, ps, seen) || dependsOnRisk(e.coll, ps, seen);
    case 'match':
      return (
        dependsOnRisk(e.subject, ps, seen) ||
        e.cases.some((c) => dependsOnRisk(c.result, ps, seen)) ||
        (e.otherwise !== null && dependsOnRisk(e.otherwise, ps, seen))
      );
    case 'cond':
      return dependsOnRisk(e.cond, ps, seen) || dependsOnRisk(e.then, ps, seen) || dependsOnRisk(e.else, ps, seen);
  }
}

function isRequiredString(ps: IrPolicySet, path: readonly string[]): boolean {
  let t: Type = ps.schema.request;
  for (const seg of path) {
    if (t.t !== 'record') return false;
    const f: { optional: boolean; type: Type } | undefined = t.fields.find((x) => x.name === seg);
    if (!f || f.optional) return false;
    t = f.type;
  }
  return t.t === 'string';
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const ACTION = ['action'];
const RESOURCE_TYPE = ['resource', 'type'];

interface PolicyPlan {
  policy: IrPolicy;
  actions: readonly string[] | null;
  types: readonly string[] | null;
  prefilters: IrTargetTest[];
}

function plan(p: IrPolicy, indexAction: boolean, indexType: boolean): PolicyPlan {
  let actions: string[] | null = null;
  let types: string[] | null = null;
  const prefilters: IrTargetTest[] = [];
  for (const t of p.target) {
    if (indexAction && actions === null && samePath(t.path, ACTION)) actions = t.values.map(String);
    else if (indexType && types === null && samePath(t.path, RESOURCE_TYPE)) types = t.values.map(String);
    else prefilters.push(t);
  }
  return { policy: p, actions, types, prefilters };
}

function buildTypeIndex(plans: readonly PolicyPlan[], members: readonly number[]): TypeIndex {
  const generic: number[] = [];
  const buckets = new Map<string, number[]>();
  for (const i of members) {
    const types = plans[i]!.types;
    if (types === null) {
      generic.push(i);
      continue;
    }
    for (const t of new Set(types)) {
      let b = buckets.get(t);
      if (!b) buckets.set(t, (b = []));
      b.push(i);
    }
  }
  const types = new Map<string, Candidates>();
  for (const [t, b] of buckets) types.set(t, mergeSorted(b, generic));
  return { types, other: generic };
}

/** Compiles a checked policy set into its decision function. */
export function compilePolicySet(ps: IrPolicySet): CompiledPolicySet {
  // Pass 1: order. Determining policies are reported by name, so index by name order.
  const policies = ps.policies.slice().sort((a, b) => compareNames(a.name, b.name));
  for (const f of ps.factors) {
    if (dependsOnRisk(f.expr, ps, new Set())) throw new Error(`bug: factor \`${f.name}\` depends on risk`);
  }

  // Pass 2: index targets by action and resource.type.
  const indexAction = isRequiredString(ps, ACTION);
  const indexType = isRequiredString(ps, RESOURCE_TYPE);
  const plans = policies.map((p) => plan(p, indexAction, indexType));
  const actionBuckets = new Map<string, number[]>();
  const anyAction: number[] = [];
  plans.forEach((pl, i) => {
    if (pl.actions === null) {
      anyAction.push(i);
      return;
    }
    for (const a of new Set(pl.actions)) {
      let b = actionBuckets.get(a);
      if (!b) actionBuckets.set(a, (b = []));
      b.push(i);
    }
  });
  const byAction = new Map<string, TypeIndex>();
  for (const [a, b] of actionBuckets) byAction.set(a, buildTypeIndex(plans, mergeSorted(b, anyAction)));
  const noAction = buildTypeIndex(plans, anyAction);

  // Pass 3 + 4: fold constants and generate.
  const g = new Generator(ps, indexAction, indexType);
  const parts: string[] = [];

  for (let i = 0; i < ps.lets.length; i++) {
    if (g.isConstantLet(i)) continue; // folded into its uses
    g.beginFunction();
    const body = g.expr(ps.lets[i]!.expr);
    parts.push(`function L${i}(r) { ${g.tempDecl()} const v = ${body}; LV[${i}] = v; LS[${i}] = G; return v; }`);
  }

  const branchEffect: number[] = [];
  const branchPolicy: string[] = [];
  const branchReason: (string | null)[] = [];
  const branchBase: number[] = [];
  const policyFns: string[] = [];
  const obligationFns: string[] = [];
  // Identical bodies (common in large, generated policy sets) share one function.
  const bodies = new Map<string, string>();
  const define = (prefix: string, params: string, body: string): string => {
    const key = `${prefix}(${params}) { ${body} }`;
    let name = bodies.get(key);
    if (name === undefined) {
      name = `${prefix}${bodies.size}`;
      bodies.set(key, name);
      parts.push(`function ${name}(${params}) { ${body} }`);
    }
    return name;
  };
  for (const { policy, prefilters } of plans) {
    g.beginFunction();
    const lines: string[] = [];
    for (const t of prefilters) lines.push(`if (!${g.targetCode(t)}) return 0;`);
    if (policy.when) lines.push(`if (!${g.expr(policy.when)}) return 0;`);
    branchBase.push(branchEffect.length);
    policy.branches.forEach((b, k) => {
      branchEffect.push(EFFECT_BIT[b.effect]);
      branchPolicy.push(policy.name);
      branchReason.push(b.reason);
      // Returns the branch number within the policy (1-based); 0 when the policy does not apply.
      const ret = `return ${k + 1};`;
      lines.push(b.condition === null ? ret : `if (${g.expr(b.condition)}) ${ret}`);
    });
    lines.push('return 0;');
    policyFns.push(define('P', 'r', `${g.tempDecl()} ${lines.join(' ')}`));

    for (const b of policy.branches) {
      if (b.obligations.length === 0) {
        obligationFns.push('null');
        continue;
      }
      g.beginFunction();
      const merges = b.obligations.map(
        (o) => `MERGE(acc, ${jsString(obligationOutputKey(o.key, o.kind))}, ${jsString(o.kind)}, ${g.expr(o.expr)});`,
      );
      obligationFns.push(define('O', 'r, acc', `${g.tempDecl()} ${merges.join(' ')}`));
    }
  }

  g.beginFunction();
  const factorLines: string[] = [];
  const factorProps: string[] = [];
  let riskSum = '0';
  ps.factors.forEach((f, i) => {
    factorLines.push(`const f${i} = ROUND6(${g.expr(f.expr)});`);
    riskSum = `ADD(${riskSum}, f${i})`;
    const key = IDENT.test(f.name) && f.name !== '__proto__' ? f.name : `[${jsString(f.name)}]`;
    factorProps.push(`${key}: f${i}`);
  });
  const candidateLookup = indexType
    ? `const c = am.types.get(${g.access(RESOURCE_TYPE)}) ?? am.other;`
    : 'const c = am.other;';
  const decideTemps = g.tempDecl();

  const source = `"use strict";
const { K, ACT, NOACT, BBASE, BEFF, BNAME, BREASON, REV, NO_POLICY, NLETS, MAXC,
  ROUND6, ADD, SUB, MUL, DIV, MOD, CLAMP, MIN, MAX, ABS, SIZE, GRANTED, MERGE, HASOWN } = rt;
${g.constants.map((_, i) => `const K${i} = K[${i}];`).join('\n')}
const LV = new Array(NLETS).fill(0);
const LS = new Float64Array(NLETS);
let G = 0;
let RISK = 0;
let GS = 0;
let GV = false;
const AB = new Int32Array(MAXC + 1);
${parts.join('\n')}
const POL = [${policyFns.join(', ')}];
const OBL = [${obligationFns.join(', ')}];
function decide(r) {
  ${decideTemps}
  G++;
  ${factorLines.join('\n  ')}
  RISK = ROUND6(${riskSum});
  const factors = { ${factorProps.join(', ')} };
  const am = ACT.get(r.action) ?? NOACT;
  ${candidateLookup}
  let n = 0;
  let bits = 0;
  for (let i = 0; i < c.length; i++) {
    const p = c[i];
    const b = POL[p](r);
    if (b !== 0) { const id = BBASE[p] + b - 1; AB[n++] = id; bits |= BEFF[id]; }
  }
  if (bits === 0) {
    return { effect: "deny", allowed: false, risk: RISK, factors, policies: [], reasons: [NO_POLICY], obligations: {}, revision: REV };
  }
  const eff = (bits & 4) !== 0 ? 4 : (bits & 2) !== 0 ? 2 : 1;
  const policies = [];
  const reasons = [];
  const obligations = {};
  for (let i = 0; i < n; i++) {
    const b = AB[i];
    if (BEFF[b] !== eff) continue;
    policies.push(BNAME[b]);
    const why = BREASON[b];
    if (why !== null && !reasons.includes(why)) reasons.push(why);
    const o = OBL[b];
    if (o !== null) o(r, obligations);
  }
  return { effect: eff === 4 ? "deny" : eff === 2 ? "escalate" : "permit", allowed: eff === 1, risk: RISK, factors, policies, reasons, obligations, revision: REV };
}
return decide;
`;

  let maxCandidates = noAction.other.length;
  for (const ti of [noAction, ...byAction.values()]) {
    maxCandidates = Math.max(maxCandidates, ti.other.length);
    for (const c of ti.types.values()) maxCandidates = Math.max(maxCandidates, c.length);
  }
  const rt = {
    K: g.constants,
    ACT: byAction,
    NOACT: noAction,
    BBASE: Int32Array.from(branchBase),
    BEFF: Int8Array.from(branchEffect),
    BNAME: branchPolicy,
    BREASON: branchReason,
    REV: ps.revision,
    NO_POLICY: NO_POLICY_REASON,
    NLETS: ps.lets.length,
    MAXC: maxCandidates,
    ROUND6: round6,
    ADD: addSat,
    SUB: subSat,
    MUL: mulSat,
    DIV: divSat,
    MOD: modSat,
    CLAMP: clamp,
    MIN: Math.min,
    MAX: Math.max,
    ABS: Math.abs,
    SIZE: size,
    GRANTED: granted,
    MERGE: mergeObligation,
    HASOWN: (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k),
  };
  // The generated code is built only from checked IR (see the header on injection safety).
  const factory = new Function('rt', source) as (runtime: typeof rt) => DecideFn;
  const decide = factory(rt);
  return {
    decide,
    source,
    candidates(action: string, resourceType: string): readonly string[] {
      const am = byAction.get(action) ?? noAction;
      const c = indexType ? (am.types.get(resourceType) ?? am.other) : am.other;
      return c.map((i) => policies[i]!.name);
    },
  };
}
