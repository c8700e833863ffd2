// The checker: from parsed files to the checked IR. A list of named passes, each a function
// from one representation to the next:
//   collectDeclarations → resolveSchema → checkLets → checkFactors → checkPolicies
//   (with buildTarget) → assembleIr → checkTests
// Type-checking and lowering happen together (an expression is checked by building its
// typed IR), because resolving a bare name needs the type of the other operand. Every pass
// keeps going after an error; everything found is reported, sorted by position.
//
// Optional attributes (`x has f` flow rule): a read of an optional attribute `p` is allowed
// only where the fact "p is present" holds. Facts come from positive `has` tests:
// - `a and b`: facts proven by `a` hold in `b` (and in every later conjunct);
// - `a or b`: facts proven by `a` being false (`not x has f`) hold in `b`;
// - `not a`: what `a` proves when false holds when `not a` is true, and vice versa;
// - a policy's `when` proves its facts in every outcome's `if` and `with`; an outcome's `if`
//   proves its facts in its own `with`; an outcome is only tried when the earlier ones' `if`
//   were false, so what their falsity proves holds too;
// - a risk factor `value if cond`: facts of `cond` hold in `value`;
// - a `let` whose value is a `has` test (or a conjunction of them) proves what the test
//   proves, wherever it is used; a let's own value starts with no facts.
// `has` on a required attribute is an agp_type_error: the test is always true.
//
// `risk` inside a risk factor, directly or through a let, is an agp_cycle_error (a factor
// would depend on the total it is part of); `risk` anywhere in a set without factors is an
// agp_risk_error.
//
// Names: a bare name is a request root (`agent`, `resource`, `task`, `action`); else, where
// a level is expected (compared with a level, in a list compared with one), a member of that
// level; else a `let`.

import type {
  Binary,
  Call,
  Decl,
  Expr,
  Has,
  LetDecl,
  Match,
  Member,
  Outcome,
  PolicyDecl,
  PolicyFile,
  RecordLit,
  RiskFactorDecl,
  SchemaDecl,
  Span,
  TestDecl,
} from '../grammar/ast.js';
import { closest, diagnostic, sortDiagnostics, type Diagnostic, type DiagnosticCode } from './diagnostics.js';
import {
  parseVersion,
  type BuiltinFn,
  type CmpOp,
  type IrBranch,
  type IrExpectation,
  type IrExpr,
  type IrFactor,
  type IrLet,
  type IrObligation,
  type IrPolicy,
  type IrPolicySet,
  type IrTargetTest,
  type IrTest,
  type IrTestGrant,
  type Json,
  type ObligationKind,
  type Schema,
  type Type,
  type Value,
} from './ir.js';
import {
  BOOL,
  DURATION,
  NUMBER,
  ROOTS,
  STRING,
  VERSION,
  fieldOf,
  isOrdered,
  isScalar,
  levelsOf,
  lookupPath,
  schemaFromAst,
  typeEquals,
  typeShort,
  type LevelT,
  type RecordT,
} from './types.js';

export interface CheckOptions {
  /** Source text by path: messages quote operands and policies keep their `when` text. */
  sources?: ReadonlyMap<string, string>;
  /** The revision to stamp on the IR (load.ts computes it from the sources). */
  revision?: string;
}

export interface CheckResult {
  /** Present when the policy files have no error (warnings, and errors in tests, allowed). */
  ir?: IrPolicySet;
  tests: IrTest[];
  /** Every error and warning, sorted by position. */
  diagnostics: Diagnostic[];
}

export const DEFAULT_TEST_NOW = Date.UTC(2026, 0, 1, 0, 0, 0);

/** Checks a policy set (policy files and `.test.agp` files) and lowers it to the IR. */
export function checkPolicySet(files: readonly PolicyFile[], options: CheckOptions = {}): CheckResult {
  const diagnostics: Diagnostic[] = [];
  const decls = collectDeclarations(files, diagnostics);
  const schema = resolveSchema(decls, diagnostics);
  const env = createEnv(decls, schema, diagnostics, options.sources);
  checkLets(env);
  const factors = checkFactors(env);
  const policies = checkPolicies(env);
  const tests = checkTests(env);
  const sorted = dedupe(sortDiagnostics(diagnostics));
  const result: CheckResult = { tests, diagnostics: sorted };
  // Errors in test files do not block the policy set: they cannot change a decision.
  const policyErrors = sorted.some((d) => d.severity === 'error' && !isTestFile(d.file));
  if (!policyErrors && decls.schemas.length === 1) {
    result.ir = assembleIr(env, factors, policies, options.revision ?? '');
  }
  return result;
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const key = `${d.code}\0${d.file}\0${d.line}\0${d.col}\0${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function isTestFile(path: string): boolean {
  return path.endsWith('.test.agp');
}

// ================================================================ pass 1: declarations

export interface Declarations {
  /** Every schema declaration found (more than one is an error). */
  schemas: SchemaDecl[];
  /** Unique by name, in declaration order (files sorted by path). */
  lets: LetDecl[];
  factors: RiskFactorDecl[];
  policies: PolicyDecl[];
  tests: TestDecl[];
  /** Paths of the policy (non-test) files, sorted. */
  policyFiles: string[];
  /** Paths of every file, sorted. */
  files: string[];
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function declName(d: Decl): string {
  switch (d.kind) {
    case 'schema':
      return 'a schema';
    case 'let':
      return `let \`${d.name}\``;
    case 'risk':
      return 'a risk block';
    case 'policy':
      return `${d.forbid ? 'forbid' : 'policy'} \`${d.name}\``;
    case 'test':
      return 'a test';
  }
}

/** Gathers declarations across files; reports duplicates and misplaced declarations. */
export function collectDeclarations(files: readonly PolicyFile[], diagnostics: Diagnostic[]): Declarations {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  const out: Declarations = { schemas: [], lets: [], factors: [], policies: [], tests: [], policyFiles: [], files: [] };
  const lets = new Map<string, LetDecl>();
  const factors = new Map<string, RiskFactorDecl>();
  const policies = new Map<string, PolicyDecl>();
  for (const file of sorted) {
    out.files.push(file.path);
    const testFile = isTestFile(file.path);
    if (!testFile) out.policyFiles.push(file.path);
    const testNames = new Map<string, TestDecl>();
    for (const d of file.decls) {
      if (testFile && d.kind !== 'test') {
        const where = d.kind === 'policy' ? d.nameSpan : d.span;
        diagnostics.push(
          diagnostic('agp_test_error', headSpan(where, d), `a \`.test.agp\` file holds only tests, not ${declName(d)}`, 'move it to a policy file (a name ending in `.agp` but not `.test.agp`)'),
        );
        continue;
      }
      if (!testFile && d.kind === 'test') {
        diagnostics.push(
          diagnostic(
            'agp_test_error',
            d.name.span,
            `test ${quoteName(d.name.value)} is in a policy file`,
            `move it to a test file such as \`${file.path.replace(/\.agp$/, '')}.test.agp\``,
          ),
        );
        continue;
      }
      switch (d.kind) {
        case 'schema':
          if (out.schemas.length > 0) {
            const first = out.schemas[0]!;
            diagnostics.push(
              diagnostic('agp_schema_error', headSpan(d.span, d), 'a policy set has one schema, and this is a second one', `merge it into the schema at ${where(first.span)}`),
            );
          }
          out.schemas.push(d);
          break;
        case 'let': {
          const first = lets.get(d.name);
          if (first) {
            diagnostics.push(diagnostic('agp_duplicate_error', d.nameSpan, `let \`${d.name}\` is declared twice`, `the first is at ${where(first.nameSpan)}; rename one`));
          } else if ((ROOTS as readonly string[]).includes(d.name)) {
            diagnostics.push(diagnostic('agp_name_error', d.nameSpan, `\`${d.name}\` is a request root and cannot name a let`, 'choose another name'));
          } else {
            lets.set(d.name, d);
            out.lets.push(d);
          }
          break;
        }
        case 'risk':
          for (const f of d.factors) {
            const first = factors.get(f.name);
            if (first) {
              diagnostics.push(diagnostic('agp_duplicate_error', f.nameSpan, `risk factor \`${f.name}\` is declared twice`, `the first is at ${where(first.nameSpan)}; rename one`));
            } else {
              factors.set(f.name, f);
              out.factors.push(f);
            }
          }
          break;
        case 'policy': {
          const first = policies.get(d.name);
          if (first) {
            diagnostics.push(
              diagnostic('agp_duplicate_error', d.nameSpan, `policy \`${d.name}\` is declared twice`, `the first is at ${where(first.nameSpan)}; policy names are unique across the set`),
            );
          } else {
            policies.set(d.name, d);
            out.policies.push(d);
          }
          break;
        }
        case 'test': {
          const first = testNames.get(d.name.value);
          if (first) {
            diagnostics.push(
              diagnostic('agp_duplicate_error', d.name.span, `test ${quoteName(d.name.value)} is declared twice in this file`, `the first is on line ${first.name.span.line}; rename one`),
            );
          } else {
            testNames.set(d.name.value, d);
          }
          out.tests.push(d);
          break;
        }
      }
    }
  }
  return out;
}

/** The span of a declaration's first line: diagnostics about a whole block point at its head. */
function headSpan(span: Span, d: Decl): Span {
  if (d.kind === 'policy') return d.nameSpan;
  if (d.kind === 'let') return d.nameSpan;
  if (d.kind === 'test') return d.name.span;
  return { ...span, endLine: span.line, endCol: span.col + (d.kind === 'schema' ? 5 : 3), endOffset: span.offset + (d.kind === 'schema' ? 6 : 4) };
}

function where(span: Span): string {
  return `${span.file}:${span.line}:${span.col}`;
}

function quoteName(s: string): string {
  return `\`${s}\``;
}

// ================================================================ pass 2: schema

export interface ResolvedSchema {
  schema: Schema;
  /** Roots whose attributes cannot be checked (no schema, or the root has errors). */
  uncheckedRoots: ReadonlySet<string>;
}

export function resolveSchema(decls: Declarations, diagnostics: Diagnostic[]): ResolvedSchema {
  const decl = decls.schemas[0];
  if (decl === undefined) {
    const file = decls.policyFiles[0] ?? decls.files[0] ?? '(policy set)';
    diagnostics.push(
      diagnostic('agp_schema_error', { file, line: 1, col: 1, endLine: 1, endCol: 1 }, 'the policy set has no schema', 'declare the request shape in a `schema { ... }` block'),
    );
    return { schema: { request: { t: 'record', fields: [] } }, uncheckedRoots: new Set(ROOTS) };
  }
  const { schema } = schemaFromAst(decl, diagnostics);
  const unchecked = new Set<string>(ROOTS.filter((r) => !schema.request.fields.some((f) => f.name === r)));
  return { schema, uncheckedRoots: unchecked };
}

// ================================================================ the expression checker

interface Typed {
  ir: IrExpr;
  type: Type;
}

interface LetState {
  decl: LetDecl;
  status: 'pending' | 'visiting' | 'done' | 'failed';
  index: number;
  type: Type | null;
  ir: IrExpr | null;
  usesRisk: boolean;
  cyclic: boolean;
}

/** What an expression may assume and what it records while being checked. */
interface Scope {
  /** Dotted paths of optional attributes proven present. */
  facts: ReadonlySet<string>;
  /** The risk factor being checked, if any (for cycle detection). */
  factor: string | null;
  /** Set when the expression reads `risk`, directly or through a let. */
  risk: { used: boolean };
}

export interface Env {
  schema: Schema;
  uncheckedRoots: ReadonlySet<string>;
  levels: Map<string, LevelT>;
  lets: Map<string, LetState>;
  /** Checked lets in dependency order: the IR's `lets`. */
  letOrder: IrLet[];
  visiting: LetState[];
  decls: Declarations;
  hasFactors: boolean;
  /** Obligation kinds by key across the set: a key must mean one thing everywhere. */
  obligationKinds: Map<string, { kind: ObligationKind; span: Span }>;
  diagnostics: Diagnostic[];
  sources: ReadonlyMap<string, string> | undefined;
}

export function createEnv(decls: Declarations, resolved: ResolvedSchema, diagnostics: Diagnostic[], sources?: ReadonlyMap<string, string>): Env {
  const lets = new Map<string, LetState>();
  for (const d of decls.lets) lets.set(d.name, { decl: d, status: 'pending', index: -1, type: null, ir: null, usesRisk: false, cyclic: false });
  return {
    schema: resolved.schema,
    uncheckedRoots: resolved.uncheckedRoots,
    levels: levelsOf(resolved.schema),
    lets,
    letOrder: [],
    visiting: [],
    decls,
    hasFactors: decls.factors.length > 0,
    obligationKinds: new Map(),
    diagnostics,
    sources,
  };
}

function rootScope(): Scope {
  return { facts: new Set(), factor: null, risk: { used: false } };
}

function withFacts(scope: Scope, more: ReadonlySet<string>): Scope {
  if (more.size === 0) return scope;
  return { ...scope, facts: new Set([...scope.facts, ...more]) };
}

const BUILTINS: Record<BuiltinFn, { min: number; max: number }> = {
  clamp: { min: 3, max: 3 },
  min: { min: 1, max: Infinity },
  max: { min: 1, max: Infinity },
  abs: { min: 1, max: 1 },
  size: { min: 1, max: 1 },
};

function isBuiltin(name: string): name is BuiltinFn {
  return Object.prototype.hasOwnProperty.call(BUILTINS, name);
}

function lit(type: Type, value: Value): IrExpr {
  return { op: 'lit', type, value };
}

class ExprChecker {
  constructor(private readonly env: Env) {}

  report(code: DiagnosticCode, span: Span, message: string, hint?: string): undefined {
    this.env.diagnostics.push(diagnostic(code, span, message, hint));
    return undefined;
  }

  /** The expression as the user wrote it, for messages (one line, shortened). */
  text(e: Expr): string {
    const src = this.env.sources?.get(e.span.file);
    if (src !== undefined && e.span.endOffset > e.span.offset && e.span.endOffset <= src.length) {
      const t = src.slice(e.span.offset, e.span.endOffset).replace(/\s+/g, ' ');
      return t.length > 60 ? `${t.slice(0, 57)}...` : t;
    }
    return printExpr(e);
  }

  /** `number \`agent.confidence\`` */
  describe(e: Expr, t: Type): string {
    const text = this.text(e);
    if (t.t === 'level' && text === t.name) return `level \`${text}\``;
    return `${typeShort(t)} \`${text}\``;
  }

  check(e: Expr, scope: Scope, expected?: Type): Typed | undefined {
    switch (e.kind) {
      case 'string':
        return { ir: lit(STRING, e.value), type: STRING };
      case 'number':
        return { ir: lit(NUMBER, e.value), type: NUMBER };
      case 'bool':
        return { ir: lit(BOOL, e.value), type: BOOL };
      case 'version': {
        const v = parseVersion(e.raw);
        if (v === undefined) {
          return this.report(
            'agp_version_error',
            e.span,
            `invalid version \`${e.raw}\``,
            'write a version as MAJOR.MINOR.PATCH without leading zeros, each part at most 65535, e.g. `2.4.1`',
          );
        }
        return { ir: lit(VERSION, v), type: VERSION };
      }
      case 'duration':
        return { ir: lit(DURATION, e.seconds), type: DURATION };
      case 'ident':
        return this.ident(e.name, e.span, scope, expected);
      case 'member':
        return this.member(e, scope);
      case 'call':
        return this.call(e, scope);
      case 'list':
        return this.list(e.items, scope, expected);
      case 'record':
        return this.report('agp_type_error', e.span, 'a record can only appear after `with`', 'compare attributes one by one instead');
      case 'unary': {
        const arg = this.check(e.arg, scope);
        if (!arg) return undefined;
        if (e.op === 'not') {
          if (arg.type.t !== 'bool') return this.report('agp_type_error', e.arg.span, `\`not\` needs a bool, got ${this.describe(e.arg, arg.type)}`);
          return { ir: { op: 'not', arg: arg.ir }, type: BOOL };
        }
        if (arg.type.t !== 'number') return this.report('agp_type_error', e.arg.span, `\`-\` needs a number, got ${this.describe(e.arg, arg.type)}`);
        if (arg.ir.op === 'lit' && typeof arg.ir.value === 'number') return { ir: lit(NUMBER, -arg.ir.value), type: NUMBER };
        return { ir: { op: 'neg', arg: arg.ir }, type: NUMBER };
      }
      case 'binary':
        return this.binary(e, scope, expected);
      case 'has':
        return this.has(e, scope);
      case 'match':
        return this.match(e, scope, expected);
      case 'risk':
        return this.risk(e.span, scope);
      case 'granted':
        return { ir: { op: 'granted' }, type: BOOL };
      case 'error':
        return undefined;
    }
  }

  /** Checks a condition: a bool, or a diagnostic naming `what` (`when`, `if`, ...). */
  condition(e: Expr, scope: Scope, what: string): Typed | undefined {
    const t = this.check(e, scope);
    if (!t) return undefined;
    if (t.type.t !== 'bool') {
      const hint =
        t.type.t === 'number' ? `compare it, e.g. \`${this.text(e)} > 0\`` : t.type.t === 'string' ? `compare it, e.g. \`${this.text(e)} == "..."\`` : undefined;
      return this.report('agp_type_error', e.span, `${what} needs a bool, got ${this.describe(e, t.type)}`, hint);
    }
    return t;
  }

  private risk(span: Span, scope: Scope): Typed | undefined {
    scope.risk.used = true;
    if (scope.factor !== null) {
      return this.report('agp_cycle_error', span, `risk factor \`${scope.factor}\` uses \`risk\`, the total it is part of`, 'a factor cannot depend on the risk total; use the attributes it is computed from');
    }
    if (!this.env.hasFactors) {
      return this.report('agp_risk_error', span, 'risk threshold on a policy set with no risk factors', 'declare factors in a `risk { name: expr }` block, or remove the `risk` test');
    }
    return { ir: { op: 'risk' }, type: NUMBER };
  }

  // ------------------------------------------------------------ names and attributes

  private ident(name: string, span: Span, scope: Scope, expected?: Type): Typed | undefined {
    if ((ROOTS as readonly string[]).includes(name)) {
      const root = fieldOf(this.env.schema.request, name);
      if (!root) return undefined; // no schema, or a broken root: reported already
      return { ir: { op: 'attr', path: [name], type: root.type }, type: root.type };
    }
    if (expected?.t === 'level') {
      const index = expected.members.indexOf(name);
      if (index >= 0) return { ir: lit(expected, index), type: expected };
    }
    const state = this.env.lets.get(name);
    if (state) return this.letRef(state, span, scope);
    if (expected?.t === 'level') {
      const guess = closest(name, expected.members);
      const list = `the members of \`${expected.name}\` are ${expected.members.map((m) => `\`${m}\``).join(', ')}`;
      return this.report('agp_name_error', span, `\`${name}\` is not a member of level \`${expected.name}\``, guess !== undefined ? `did you mean \`${guess}\`? ${list}` : list);
    }
    if (expected?.t === 'string') {
      return this.report('agp_name_error', span, `unknown name \`${name}\``, `write a string in quotes: \`"${name}"\``);
    }
    const owner = [...this.env.levels.values()].find((l) => l.members.includes(name));
    if (owner) {
      return this.report('agp_name_error', span, `unknown name \`${name}\``, `\`${name}\` is a member of level \`${owner.name}\`: compare it with that attribute, e.g. \`${owner.name} == ${name}\``);
    }
    const guess = closest(name, [...this.env.lets.keys(), ...ROOTS]);
    return this.report('agp_name_error', span, `unknown name \`${name}\``, guess !== undefined ? `did you mean \`${guess}\`?` : 'declare it with `let` or use an attribute such as `agent.id`');
  }

  private letRef(state: LetState, span: Span, scope: Scope): Typed | undefined {
    ensureLet(this.env, state);
    if (state.status === 'visiting') {
      if (state.cyclic) return undefined;
      const start = this.env.visiting.indexOf(state);
      const cycle = this.env.visiting.slice(start);
      for (const s of cycle) s.cyclic = true;
      const names = [...cycle.map((s) => s.decl.name), state.decl.name].map((n) => `\`${n}\``).join(' → ');
      return this.report('agp_cycle_error', span, `let \`${state.decl.name}\` depends on itself: ${names}`, 'break the cycle: a let may only use lets that do not use it');
    }
    if (state.status !== 'done' || state.type === null || state.ir === null) return undefined;
    if (state.usesRisk) {
      scope.risk.used = true;
      if (scope.factor !== null) {
        return this.report(
          'agp_cycle_error',
          span,
          `risk factor \`${scope.factor}\` uses \`risk\` through let \`${state.decl.name}\``,
          'a factor cannot depend on the risk total; use the attributes it is computed from',
        );
      }
    }
    // A let that is an attribute (an alias of a record or value) stays an attribute, so
    // `.name` and `has` work through it.
    if (state.ir.op === 'attr') return { ir: state.ir, type: state.type };
    return { ir: { op: 'let', index: state.index, type: state.type }, type: state.type };
  }

  /** The attribute path of a typed expression that denotes one, else undefined. */
  private pathOf(t: Typed): readonly string[] | undefined {
    return t.ir.op === 'attr' ? t.ir.path : undefined;
  }

  private member(e: Member, scope: Scope): Typed | undefined {
    const obj = this.check(e.object, scope);
    if (!obj) return undefined;
    const path = this.pathOf(obj);
    if (obj.type.t !== 'record' || path === undefined) {
      return this.report('agp_type_error', e.nameSpan, `\`${this.text(e.object)}\` is a ${typeShort(obj.type)} and has no attribute \`${e.name}\``);
    }
    const full = [...path, e.name];
    const field = fieldOf(obj.type, e.name);
    if (!field) {
      if (this.env.uncheckedRoots.has(path[0]!)) return undefined;
      return this.unknownAttribute(obj.type, path, e.name, e.nameSpan);
    }
    if (field.optional && !scope.facts.has(full.join('.'))) {
      const p = path.join('.');
      return this.report(
        'agp_optional_error',
        e.span,
        `\`${full.join('.')}\` is optional and may be absent here`,
        `test it first: \`${p} has ${e.name} and ...\``,
      );
    }
    return { ir: { op: 'attr', path: full, type: field.type }, type: field.type };
  }

  private unknownAttribute(record: RecordT, path: readonly string[], name: string, span: Span): undefined {
    const names = record.fields.map((f) => f.name);
    const guess = closest(name, names);
    const p = path.join('.');
    return this.report(
      'agp_name_error',
      span,
      `unknown attribute \`${p}.${name}\``,
      guess !== undefined
        ? `did you mean \`${guess}\`?`
        : names.length > 0
          ? `\`${p}\` has ${names.map((n) => `\`${n}\``).join(', ')}`
          : `\`${p}\` has no attributes in the schema`,
    );
  }

  private has(e: Has, scope: Scope): Typed | undefined {
    const obj = this.check(e.object, scope);
    if (!obj) return undefined;
    const path = this.pathOf(obj);
    if (obj.type.t !== 'record' || path === undefined) {
      return this.report('agp_type_error', e.object.span, `\`has\` needs a record attribute on the left, got ${this.describe(e.object, obj.type)}`);
    }
    const field = fieldOf(obj.type, e.name);
    if (!field) {
      if (this.env.uncheckedRoots.has(path[0]!)) return undefined;
      return this.unknownAttribute(obj.type, path, e.name, e.nameSpan);
    }
    const full = [...path, e.name].join('.');
    if (!field.optional) {
      return this.report('agp_type_error', e.span, `\`${full}\` is not optional, so \`has\` is always true`, 'remove the `has` test, or mark the attribute optional in the schema with `?`');
    }
    return { ir: { op: 'has', path: [...path, e.name] }, type: BOOL };
  }

  // ------------------------------------------------------------ operators

  private binary(e: Binary, scope: Scope, expected?: Type): Typed | undefined {
    switch (e.op) {
      case 'and':
      case 'or':
        return this.logical(e, scope);
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.compare(e, e.op, scope);
      case 'in':
        return this.membership(e, e.left, e.right, scope);
      case 'contains':
        return this.membership(e, e.right, e.left, scope);
      case 'like':
        return this.like(e, scope);
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.arith(e, e.op, scope, expected);
    }
  }

  private logical(e: Binary, scope: Scope): Typed | undefined {
    const op = e.op as 'and' | 'or';
    const operands = flatten(e, op);
    const args: IrExpr[] = [];
    let facts = new Set(scope.facts);
    let ok = true;
    for (const operand of operands) {
      const t = this.check(operand, { ...scope, facts });
      if (!t) {
        ok = false;
        continue;
      }
      if (t.type.t !== 'bool') {
        this.report('agp_type_error', operand.span, `\`${op}\` needs bools, got ${this.describe(operand, t.type)}`);
        ok = false;
        continue;
      }
      args.push(t.ir);
      const more = op === 'and' ? proves(t.ir, this.env) : disproves(t.ir, this.env);
      if (more.size > 0) facts = new Set([...facts, ...more]);
    }
    if (!ok) return undefined;
    return { ir: { op, args }, type: BOOL };
  }

  /** Checks both operands; a bare name is resolved against the other side's type. */
  private operands(left: Expr, right: Expr, scope: Scope, rightExpected?: (l: Type) => Type | undefined): [Typed | undefined, Typed | undefined] {
    if (isBareName(left) && !isBareName(right)) {
      const r = this.check(right, scope);
      const l = this.check(left, scope, r?.type);
      return [l, r];
    }
    const l = this.check(left, scope);
    const want = l === undefined ? undefined : rightExpected ? rightExpected(l.type) : l.type;
    const r = this.check(right, scope, want);
    return [l, r];
  }

  private compare(e: Binary, op: CmpOp, scope: Scope): Typed | undefined {
    const [l, r] = this.operands(e.left, e.right, scope);
    if (!l || !r) return undefined;
    if (!this.sameScalar(e, op, e.left, l.type, e.right, r.type)) return undefined;
    if (op !== '==' && op !== '!=' && !isOrdered(l.type)) {
      return this.report(
        'agp_type_error',
        e.span,
        `\`${op}\` orders numbers, versions, durations and levels, not ${typeShort(l.type)}s`,
        l.type.t === 'string' ? 'use `==`, `!=` or `like` on strings' : 'use `==` or `!=`',
      );
    }
    return { ir: { op: 'cmp', cmp: op, left: l.ir, right: r.ir }, type: BOOL };
  }

  /** Reports why two operand types cannot meet under `op`; true when they can. */
  private sameScalar(e: Binary, op: string, le: Expr, lt: Type, re: Expr, rt: Type): boolean {
    for (const [x, xt] of [
      [le, lt],
      [re, rt],
    ] as const) {
      if (!isScalar(xt)) {
        this.report('agp_type_error', x.span, `\`${op}\` compares single values, not ${this.describe(x, xt)}`, xt.t === 'set' || xt.t === 'list' ? 'test membership with `in` or `contains`' : undefined);
        return false;
      }
    }
    if (typeEquals(lt, rt)) return true;
    // Levels and versions have their own codes: these are the mistakes authors make most.
    if (lt.t === 'level' || rt.t === 'level') {
      const [level, levelExpr, other, otherExpr] = lt.t === 'level' ? [lt, le, rt, re] : [rt as LevelT, re, lt, le];
      if (other.t === 'string') {
        const member = otherExpr.kind === 'string' ? otherExpr.value : undefined;
        const hint =
          member !== undefined && level.members.includes(member)
            ? `write the level member without quotes: \`${member}\``
            : `compare with a member name without quotes: one of ${level.members.map((m) => `\`${m}\``).join(', ')}`;
        this.report('agp_level_error', e.span, `cannot compare level \`${this.text(levelExpr)}\` with a string`, hint);
        return false;
      }
      if (other.t === 'level') {
        this.report(
          'agp_level_error',
          e.span,
          `cannot compare level \`${level.name}\` with level \`${other.name}\``,
          'two levels compare only when they are declared by the same attribute',
        );
        return false;
      }
    }
    if ((lt.t === 'version' && rt.t === 'number') || (lt.t === 'number' && rt.t === 'version')) {
      const numExpr = lt.t === 'number' ? le : re;
      this.report('agp_version_error', e.span, `cannot compare a version with the number \`${this.text(numExpr)}\``, `write a version as MAJOR.MINOR.PATCH, e.g. \`${versionGuess(this.text(numExpr))}\``);
      return false;
    }
    this.report('agp_type_error', e.span, `cannot compare ${this.describe(le, lt)} with ${this.describe(re, rt)}`, hintForMismatch(lt, rt));
    return false;
  }

  private membership(e: Binary, elemExpr: Expr, collExpr: Expr, scope: Scope): Typed | undefined {
    const op = e.op;
    let elem: Typed | undefined;
    let coll: Typed | undefined;
    if (isBareName(elemExpr) && !isBareName(collExpr)) {
      coll = this.check(collExpr, scope);
      elem = this.check(elemExpr, scope, coll && (coll.type.t === 'set' || coll.type.t === 'list') ? coll.type.elem : undefined);
    } else {
      elem = this.check(elemExpr, scope);
      coll = this.check(collExpr, scope, elem ? { t: 'list', elem: elem.type } : undefined);
    }
    if (!elem || !coll) return undefined;
    if (coll.type.t !== 'set' && coll.type.t !== 'list') {
      const side = op === 'in' ? 'on the right' : 'on the left';
      return this.report(
        'agp_type_error',
        collExpr.span,
        `\`${op}\` needs a set or list ${side}, got ${this.describe(collExpr, coll.type)}`,
        coll.type.t === 'string' && elem.type.t === 'string' ? 'to find text inside a string, use `like "*text*"`' : undefined,
      );
    }
    if (!isScalar(elem.type)) {
      return this.report('agp_type_error', elemExpr.span, `\`${op}\` looks for a single value, got ${this.describe(elemExpr, elem.type)}`);
    }
    if (!typeEquals(elem.type, coll.type.elem)) {
      if (!this.sameScalar(e, op, elemExpr, elem.type, collExpr, coll.type.elem)) return undefined;
    }
    return { ir: { op: 'in', elem: elem.ir, coll: coll.ir }, type: BOOL };
  }

  private like(e: Binary, scope: Scope): Typed | undefined {
    const subject = this.check(e.left, scope);
    let ok = subject !== undefined;
    if (subject && subject.type.t !== 'string') {
      this.report('agp_type_error', e.left.span, `\`like\` matches strings, got ${this.describe(e.left, subject.type)}`);
      ok = false;
    }
    if (e.right.kind !== 'string') {
      if (e.right.kind !== 'error') {
        this.report('agp_type_error', e.right.span, 'the pattern of `like` must be a string literal', 'write the pattern in quotes, e.g. `like "report-*"`');
      }
      return undefined;
    }
    if (!ok || !subject) return undefined;
    return { ir: { op: 'like', arg: subject.ir, pattern: e.right.value }, type: BOOL };
  }

  private arith(e: Binary, op: '+' | '-' | '*' | '/' | '%', scope: Scope, expected?: Type): Typed | undefined {
    const l = this.check(e.left, scope, expected);
    const r = this.check(e.right, scope, expected);
    if (!l || !r) return undefined;
    if (l.type.t === 'number' && r.type.t === 'number') return { ir: { op: 'arith', arith: op, left: l.ir, right: r.ir }, type: NUMBER };
    if (op === '+' && l.type.t === 'string' && r.type.t === 'string') return { ir: { op: 'concat', left: l.ir, right: r.ir }, type: STRING };
    const wants = op === '+' ? 'two numbers or two strings' : 'two numbers';
    return this.report('agp_type_error', e.span, `\`${op}\` needs ${wants}, got ${this.describe(e.left, l.type)} and ${this.describe(e.right, r.type)}`);
  }

  private call(e: Call, scope: Scope): Typed | undefined {
    if (!isBuiltin(e.callee)) {
      const guess = closest(e.callee, Object.keys(BUILTINS));
      for (const a of e.args) this.check(a, scope);
      return this.report(
        'agp_name_error',
        e.calleeSpan,
        `unknown function \`${e.callee}\``,
        guess !== undefined ? `did you mean \`${guess}\`?` : `the functions are ${Object.keys(BUILTINS).map((n) => `\`${n}\``).join(', ')}`,
      );
    }
    const fn = e.callee;
    const { min, max } = BUILTINS[fn];
    const args = e.args.map((a) => this.check(a, scope));
    if (e.args.length < min || e.args.length > max) {
      const want = min === max ? `${min} argument${min === 1 ? '' : 's'}` : `at least ${min} argument${min === 1 ? '' : 's'}`;
      return this.report('agp_type_error', e.span, `\`${fn}\` takes ${want}, got ${e.args.length}`);
    }
    let ok = true;
    const irs: IrExpr[] = [];
    e.args.forEach((a, i) => {
      const t = args[i];
      if (!t) {
        ok = false;
        return;
      }
      irs.push(t.ir);
      const good = fn === 'size' ? t.type.t === 'set' || t.type.t === 'list' || t.type.t === 'string' : t.type.t === 'number';
      if (!good) {
        ok = false;
        this.report('agp_type_error', a.span, `\`${fn}\` needs ${fn === 'size' ? 'a set, list or string' : 'numbers'}, got ${this.describe(a, t.type)}`);
      }
    });
    if (!ok) return undefined;
    return { ir: { op: 'call', fn, args: irs }, type: NUMBER };
  }

  private list(items: readonly Expr[], scope: Scope, expected?: Type): Typed | undefined {
    const want = expected && (expected.t === 'list' || expected.t === 'set') ? expected.elem : undefined;
    const typed: Typed[] = [];
    let elem: Type | undefined = want;
    let ok = true;
    for (const item of items) {
      // Resolve bare names against the first item's type when nothing else says.
      const t = this.check(item, scope, elem);
      if (!t) {
        ok = false;
        continue;
      }
      if (!isScalar(t.type)) {
        this.report('agp_type_error', item.span, `list items must be single values, got ${this.describe(item, t.type)}`);
        ok = false;
        continue;
      }
      if (typed.length === 0 && elem === undefined) elem = t.type;
      const first = typed[0];
      if (first && !typeEquals(first.type, t.type)) {
        this.report('agp_type_error', item.span, `list items must have one type: the first is ${typeShort(first.type)}, this is ${this.describe(item, t.type)}`);
        ok = false;
        continue;
      }
      typed.push(t);
    }
    if (!ok) return undefined;
    const elemType = typed[0]?.type ?? want ?? STRING;
    const type: Type = { t: 'list', elem: elemType };
    if (typed.every((t) => t.ir.op === 'lit')) {
      return { ir: lit(type, typed.map((t) => (t.ir as { value: Value }).value)), type };
    }
    return { ir: { op: 'list', items: typed.map((t) => t.ir), type }, type };
  }

  private match(e: Match, scope: Scope, expected?: Type): Typed | undefined {
    const subject = this.check(e.subject, scope);
    const st = subject?.type;
    if (st && st.t !== 'level' && st.t !== 'string' && st.t !== 'bool') {
      this.report('agp_type_error', e.subject.span, `\`match\` needs a level, string or bool, got ${this.describe(e.subject, st)}`);
    }
    const cases: { value: string | number | boolean; result: IrExpr }[] = [];
    const seen = new Map<string, Span>();
    let resultType: Type | undefined;
    let firstArm: Expr | undefined;
    let ok = subject !== undefined && st !== undefined && (st.t === 'level' || st.t === 'string' || st.t === 'bool');
    const arm = (value: Expr): Typed | undefined => {
      const t = this.check(value, scope, resultType ?? expected);
      if (!t) return undefined;
      if (resultType === undefined) {
        resultType = t.type;
        firstArm = value;
      } else if (!typeEquals(resultType, t.type)) {
        return this.report(
          'agp_type_error',
          value.span,
          `match arms have different types: ${firstArm ? this.describe(firstArm, resultType) : typeShort(resultType)} and ${this.describe(value, t.type)}`,
          'every arm of a `match` gives a value of one type',
        );
      }
      return t;
    };
    for (const a of e.arms) {
      const key = `${a.labelKind}:${a.label}`;
      const first = seen.get(key);
      if (first) {
        this.report('agp_duplicate_error', a.labelSpan, `match arm \`${a.label}\` is listed twice`, `the first is on line ${first.line}; remove one`);
        ok = false;
      }
      seen.set(key, a.labelSpan);
      const value = this.labelValue(a.label, a.labelKind, a.labelSpan, st);
      const t = arm(a.value);
      if (value === undefined || !t) {
        ok = false;
        continue;
      }
      cases.push({ value, result: t.ir });
    }
    let otherwise: IrExpr | null = null;
    if (e.otherwise) {
      const t = arm(e.otherwise);
      if (!t) ok = false;
      else otherwise = t.ir;
    }
    if (st && e.otherwise === null) {
      if (st.t === 'level') {
        const missing = st.members.filter((m) => !seen.has(`name:${m}`));
        if (missing.length > 0) {
          this.report(
            'agp_type_error',
            e.span,
            `\`match\` on \`${this.text(e.subject)}\` does not cover ${missing.map((m) => `\`${m}\``).join(', ')}`,
            'add an arm for each member, or an `else` arm',
          );
          ok = false;
        }
      } else if (st.t === 'bool') {
        const missing = ['true', 'false'].filter((m) => !seen.has(`bool:${m}`));
        if (missing.length > 0) {
          this.report('agp_type_error', e.span, `\`match\` on \`${this.text(e.subject)}\` does not cover \`${missing[0]!}\``, 'add the missing arm, or an `else` arm');
          ok = false;
        }
      } else if (st.t === 'string') {
        this.report('agp_type_error', e.span, `\`match\` on the string \`${this.text(e.subject)}\` needs an \`else\` arm`, 'add `else: <value>` for the strings no arm names');
        ok = false;
      }
    }
    if (!ok || !subject || resultType === undefined) return undefined;
    return { ir: { op: 'match', subject: subject.ir, cases, otherwise, type: resultType }, type: resultType };
  }

  private labelValue(label: string, kind: 'name' | 'string' | 'bool', span: Span, st: Type | undefined): string | number | boolean | undefined {
    if (!st) return undefined;
    if (st.t === 'level') {
      if (kind === 'string') {
        const hint = st.members.includes(label) ? `write the level member without quotes: \`${label}\`` : `the members are ${st.members.map((m) => `\`${m}\``).join(', ')}`;
        return this.report('agp_level_error', span, `a level \`match\` takes member names, not the string \`"${label}"\``, hint);
      }
      const index = st.members.indexOf(label);
      if (kind === 'bool' || index < 0) {
        const guess = closest(label, st.members);
        const list = `the members of \`${st.name}\` are ${st.members.map((m) => `\`${m}\``).join(', ')}`;
        return this.report('agp_name_error', span, `\`${label}\` is not a member of level \`${st.name}\``, guess !== undefined ? `did you mean \`${guess}\`? ${list}` : list);
      }
      return index;
    }
    if (st.t === 'string') {
      if (kind !== 'string') return this.report('agp_type_error', span, `a \`match\` on a string takes string labels, not \`${label}\``, `write the label in quotes: \`"${label}"\``);
      return label;
    }
    if (st.t === 'bool') {
      if (kind !== 'bool') return this.report('agp_type_error', span, `a \`match\` on a bool takes \`true\` and \`false\`, not \`${label}\``);
      return label === 'true';
    }
    return undefined;
  }
}

function isBareName(e: Expr): boolean {
  return e.kind === 'ident' && !(ROOTS as readonly string[]).includes(e.name);
}

function flatten(e: Expr, op: 'and' | 'or'): Expr[] {
  if (e.kind === 'binary' && e.op === op) return [...flatten(e.left, op), ...flatten(e.right, op)];
  return [e];
}

/** Optional-attribute paths that are present when `ir` is true. */
function proves(ir: IrExpr, env: Env, depth = 0): Set<string> {
  if (depth > 64) return new Set();
  switch (ir.op) {
    case 'has':
      return new Set([ir.path.join('.')]);
    case 'and':
      return new Set(ir.args.flatMap((a) => [...proves(a, env, depth + 1)]));
    case 'not':
      return disproves(ir.arg, env, depth + 1);
    case 'let': {
      const l = env.letOrder[ir.index];
      return l ? proves(l.expr, env, depth + 1) : new Set();
    }
    default:
      return new Set();
  }
}

/** Optional-attribute paths that are present when `ir` is false. */
function disproves(ir: IrExpr, env: Env, depth = 0): Set<string> {
  if (depth > 64) return new Set();
  switch (ir.op) {
    case 'or':
      return new Set(ir.args.flatMap((a) => [...disproves(a, env, depth + 1)]));
    case 'not':
      return proves(ir.arg, env, depth + 1);
    case 'let': {
      const l = env.letOrder[ir.index];
      return l ? disproves(l.expr, env, depth + 1) : new Set();
    }
    default:
      return new Set();
  }
}

function versionGuess(numberText: string): string {
  const parts = numberText.split('.').filter((p) => /^\d+$/.test(p));
  while (parts.length < 3) parts.push('0');
  return parts.slice(0, 3).map((p) => String(Number(p))).join('.');
}

function hintForMismatch(a: Type, b: Type): string | undefined {
  const ts = [a.t, b.t];
  if (ts.includes('number') && ts.includes('string')) return 'compare a number with a number (no quotes) or a string with a string';
  if (ts.includes('bool') && ts.includes('string')) return 'write `true` or `false` without quotes';
  if (ts.includes('duration') && ts.includes('number')) return 'write a duration with a unit, e.g. `30s` or `5m`';
  return undefined;
}

/** A fallback rendering of an expression when no source text is at hand. */
function printExpr(e: Expr): string {
  switch (e.kind) {
    case 'string':
      return JSON.stringify(e.value);
    case 'number':
      return String(e.value);
    case 'bool':
      return String(e.value);
    case 'version':
    case 'duration':
      return e.raw;
    case 'ident':
      return e.name;
    case 'member':
      return `${printExpr(e.object)}.${e.name}`;
    case 'call':
      return `${e.callee}(${e.args.map(printExpr).join(', ')})`;
    case 'list':
      return `[${e.items.map(printExpr).join(', ')}]`;
    case 'record':
      return `{ ${e.fields.map((f) => `${f.name}: ${printExpr(f.value)}`).join(', ')} }`;
    case 'unary':
      return e.op === 'not' ? `not ${printExpr(e.arg)}` : `-${printExpr(e.arg)}`;
    case 'binary':
      return `${printExpr(e.left)} ${e.op} ${printExpr(e.right)}`;
    case 'has':
      return `${printExpr(e.object)} has ${e.name}`;
    case 'match':
      return `match ${printExpr(e.subject)} { ... }`;
    case 'risk':
      return 'risk';
    case 'granted':
      return 'granted';
    case 'error':
      return '...';
  }
}

// ================================================================ pass 3: lets

/** Checks a let (and, first, the lets it uses); gives it its place in dependency order. */
function ensureLet(env: Env, state: LetState): void {
  if (state.status !== 'pending') return;
  state.status = 'visiting';
  env.visiting.push(state);
  const scope = rootScope();
  const t = new ExprChecker(env).check(state.decl.value, scope);
  env.visiting.pop();
  if (!t || state.cyclic) {
    state.status = 'failed';
    return;
  }
  state.status = 'done';
  state.type = t.type;
  state.ir = t.ir;
  state.usesRisk = scope.risk.used;
  state.index = env.letOrder.length;
  env.letOrder.push({ name: state.decl.name, expr: t.ir, type: t.type, span: state.decl.span });
}

/** Checks every let in declaration order; `env.letOrder` ends in dependency order. */
export function checkLets(env: Env): IrLet[] {
  for (const state of env.lets.values()) ensureLet(env, state);
  return env.letOrder;
}

// ================================================================ pass 4: risk factors

export function checkFactors(env: Env): IrFactor[] {
  const checker = new ExprChecker(env);
  const out: IrFactor[] = [];
  for (const f of env.decls.factors) {
    const scope: Scope = { ...rootScope(), factor: f.name };
    let cond: Typed | undefined;
    let condOk = true;
    if (f.condition) {
      cond = checker.condition(f.condition, scope, `the \`if\` of risk factor \`${f.name}\``);
      condOk = cond !== undefined;
    }
    const valueScope = cond ? withFacts(scope, proves(cond.ir, env)) : scope;
    const value = checker.check(f.value, valueScope);
    if (value && value.type.t !== 'number') {
      checker.report(
        'agp_type_error',
        f.value.span,
        `risk factor \`${f.name}\` must be a number, got ${typeShort(value.type)} \`${checker.text(f.value)}\``,
        value.type.t === 'bool' ? `to count a condition, write \`<points> if ${checker.text(f.value)}\`` : undefined,
      );
      continue;
    }
    if (!value || !condOk) continue;
    const expr: IrExpr = cond ? { op: 'cond', cond: cond.ir, then: value.ir, else: lit(NUMBER, 0) } : value.ir;
    out.push({ name: f.name, expr, span: f.span });
  }
  return out;
}

// ================================================================ pass 5: policies

export function checkPolicies(env: Env): IrPolicy[] {
  const out: IrPolicy[] = [];
  for (const p of env.decls.policies) {
    const policy = checkPolicy(env, p);
    if (policy) out.push(policy);
  }
  return out.sort((a, b) => comparePaths(a.name, b.name));
}

function checkPolicy(env: Env, p: PolicyDecl): IrPolicy | undefined {
  const checker = new ExprChecker(env);
  let ok = true;
  const target = p.target ? buildTarget(env, p.target) : [];
  if (target === undefined) ok = false;
  let when: IrExpr | null = null;
  let facts: ReadonlySet<string> = new Set();
  if (p.when) {
    const t = checker.condition(p.when, rootScope(), '`when`');
    if (!t) ok = false;
    else {
      when = t.ir;
      facts = proves(t.ir, env);
    }
    if (p.when.kind === 'bool' && !p.when.value) {
      env.diagnostics.push(diagnostic('agp_unreachable_warning', p.when.span, `policy \`${p.name}\` never applies: its \`when\` is \`false\``, 'remove the policy, or write the condition it needs'));
    }
  }
  const branches: IrBranch[] = [];
  let unconditional: Outcome | undefined;
  let before: ReadonlySet<string> = facts;
  for (const o of p.outcomes) {
    if (unconditional) {
      env.diagnostics.push(
        diagnostic(
          'agp_unreachable_warning',
          outcomeHead(o),
          `this \`${o.effect}\` never fires: the \`${unconditional.effect}\` on line ${unconditional.span.line} has no \`if\` and always fires first`,
          `remove it, or add an \`if\` to the \`${unconditional.effect}\` before it`,
        ),
      );
    } else if (o.condition === null) {
      unconditional = o;
    }
    if (o.condition?.kind === 'bool' && !o.condition.value) {
      env.diagnostics.push(diagnostic('agp_unreachable_warning', o.condition.span, `this \`${o.effect}\` never fires: its condition is \`false\``, 'remove the outcome, or write the condition it needs'));
    }
    const scope: Scope = { ...rootScope(), facts: before };
    let condition: IrExpr | null = null;
    let branchFacts: ReadonlySet<string> = before;
    if (o.condition) {
      const t = checker.condition(o.condition, scope, `the \`if\` of \`${o.effect}\``);
      if (!t) ok = false;
      else {
        condition = t.ir;
        branchFacts = new Set([...before, ...proves(t.ir, env)]);
        const negative = disproves(t.ir, env);
        if (negative.size > 0) before = new Set([...before, ...negative]);
      }
    }
    const obligations = o.obligations ? checkObligations(env, o.obligations, { ...rootScope(), facts: branchFacts }) : [];
    if (obligations === undefined) ok = false;
    branches.push({ effect: o.effect, condition, obligations: obligations ?? [], reason: o.reason?.value ?? null, span: o.span });
  }
  if (!ok || target === undefined) return undefined;
  let whenText: string | null = null;
  if (p.when) {
    const src = env.sources?.get(p.when.span.file);
    whenText = src !== undefined ? src.slice(p.when.span.offset, p.when.span.endOffset) : printExpr(p.when);
  }
  return {
    name: p.name,
    description: p.description?.value ?? null,
    forbid: p.forbid,
    file: p.span.file,
    span: p.span,
    target,
    when,
    branches,
    whenText,
  };
}

function outcomeHead(o: Outcome): Span {
  const len = o.effect.length;
  return { ...o.span, endLine: o.span.line, endCol: o.span.col + len - 1, endOffset: o.span.offset + len };
}

/** The attribute path an expression names syntactically (`resource.type`), if any. */
function syntacticPath(e: Expr): string[] | undefined {
  if (e.kind === 'ident') return (ROOTS as readonly string[]).includes(e.name) ? [e.name] : undefined;
  if (e.kind === 'member') {
    const p = syntacticPath(e.object);
    return p ? [...p, e.name] : undefined;
  }
  return undefined;
}

/**
 * Builds an indexable target from `on`: a conjunction of `attr == literal`,
 * `literal == attr` and `attr in [literals]` on required scalar attributes.
 * Returns undefined when some test is not indexable (with diagnostics).
 */
export function buildTarget(env: Env, on: Expr): IrTargetTest[] | undefined {
  const checker = new ExprChecker(env);
  const tests: IrTargetTest[] = [];
  let ok = true;
  const fail = (span: Span, message: string, hint = 'move this test to `when`'): void => {
    env.diagnostics.push(diagnostic('agp_target_error', span, message, hint));
    ok = false;
  };
  for (const c of flatten(on, 'and')) {
    const shape = 'an `on` target tests `attribute == literal` or `attribute in [literals]`';
    if (c.kind !== 'binary' || (c.op !== '==' && c.op !== 'in')) {
      fail(c.span, `\`${checker.text(c)}\` cannot be indexed: ${shape}`);
      continue;
    }
    const attrSide = syntacticPath(c.left) ? c.left : c.op === '==' && syntacticPath(c.right) ? c.right : undefined;
    const path = attrSide ? syntacticPath(attrSide) : undefined;
    if (!attrSide || !path) {
      fail(c.span, `\`${checker.text(c)}\` cannot be indexed: ${shape}`);
      continue;
    }
    // An optional step anywhere on the path cannot be indexed (the test needs `has` first).
    let optional: string | undefined;
    for (let i = 2; i <= path.length; i++) {
      if (lookupPath(env.schema, path.slice(0, i))?.optional) {
        optional = path.slice(0, i).join('.');
        break;
      }
    }
    if (optional !== undefined) {
      fail(attrSide.span, `\`${optional}\` is optional and cannot be part of an \`on\` target`, `move this test to \`when\`, after \`${optional.replace(/\.([^.]+)$/, ' has $1')}\``);
      continue;
    }
    const t = checker.check(c, rootScope());
    if (!t) {
      ok = false;
      continue;
    }
    const ir = t.ir;
    let attr: IrExpr | undefined;
    let values: readonly Value[] | undefined;
    if (ir.op === 'cmp') {
      if (ir.left.op === 'attr' && ir.right.op === 'lit') [attr, values] = [ir.left, [ir.right.value]];
      else if (ir.right.op === 'attr' && ir.left.op === 'lit') [attr, values] = [ir.right, [ir.left.value]];
    } else if (ir.op === 'in' && ir.elem.op === 'attr' && ir.coll.op === 'lit' && Array.isArray(ir.coll.value)) {
      [attr, values] = [ir.elem, ir.coll.value as readonly Value[]];
    }
    if (attr?.op !== 'attr' || values === undefined) {
      fail(c.span, `\`${checker.text(c)}\` cannot be indexed: ${shape}`);
      continue;
    }
    const at = attr.type.t;
    if (at !== 'string' && at !== 'number' && at !== 'bool' && at !== 'level') {
      fail(attrSide.span, `\`${attr.path.join('.')}\` is a ${typeShort(attr.type)}; an \`on\` target tests string, number, bool or level attributes`);
      continue;
    }
    const scalars: (string | number | boolean)[] = [];
    for (const v of values) if ((typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && !scalars.includes(v)) scalars.push(v);
    tests.push({ path: attr.path, values: scalars, span: c.span });
  }
  return ok ? tests : undefined;
}

const STRINGS: Type = { t: 'list', elem: STRING };

function checkObligations(env: Env, record: RecordLit, scope: Scope): IrObligation[] | undefined {
  const checker = new ExprChecker(env);
  const out: IrObligation[] = [];
  const outputs = new Map<string, string>();
  let ok = true;
  const report = (span: Span, code: DiagnosticCode, message: string, hint?: string): void => {
    env.diagnostics.push(diagnostic(code, span, message, hint));
    ok = false;
  };
  for (const f of record.fields) {
    const key = f.name;
    const t = checker.check(f.value, scope, key === 'scopes' ? STRINGS : undefined);
    let kind: ObligationKind | undefined;
    if (t) {
      const ty = t.type;
      if (ty.t === 'duration') kind = 'duration';
      else if ((ty.t === 'list' || ty.t === 'set') && ty.elem.t === 'string') kind = 'strings';
      else if (ty.t === 'string' || ty.t === 'number' || ty.t === 'bool') kind = 'scalar';
      const shown = checker.describe(f.value, ty);
      if (key.endsWith('ttl') && kind !== 'duration') {
        report(f.value.span, 'agp_obligation_error', `obligation \`${key}\` must be a duration, got ${shown}`, 'write a duration with a unit, e.g. `5m` or `30s`');
        kind = undefined;
      } else if (key === 'scopes' && kind !== 'strings') {
        report(f.value.span, 'agp_obligation_error', `obligation \`scopes\` must be a list of strings, got ${shown}`, 'write e.g. `scopes: ["accounts:read"]`');
        kind = undefined;
      } else if (kind === undefined) {
        report(f.value.span, 'agp_obligation_error', `obligation \`${key}\` must be a string, number, bool, duration or list of strings, got ${shown}`);
      }
    } else {
      ok = false;
    }
    const output = kind === 'duration' ? `${key}_s` : key;
    const clash = outputs.get(output) ?? outputs.get(key);
    if (clash !== undefined) {
      const message = clash === key ? `obligation \`${key}\` is listed twice` : `obligation \`${key}\` clashes with \`${clash}\`, which is output as \`${output}\``;
      report(f.nameSpan, 'agp_duplicate_error', message, 'remove or rename one');
      continue;
    }
    outputs.set(output, key);
    if (kind === undefined || !t) continue;
    const known = env.obligationKinds.get(key);
    if (known && known.kind !== kind) {
      report(
        f.value.span,
        'agp_obligation_error',
        `obligation \`${key}\` is ${kindName(kind)} here but ${kindName(known.kind)} at ${where(known.span)}`,
        'an obligation key must have one kind across the policy set, so decisions can merge it',
      );
      continue;
    }
    if (!known) env.obligationKinds.set(key, { kind, span: f.value.span });
    out.push({ key, kind, expr: t.ir, span: f.span });
  }
  return ok ? out : undefined;
}

function kindName(k: ObligationKind): string {
  return k === 'duration' ? 'a duration' : k === 'strings' ? 'a list of strings' : 'a single value';
}

// ================================================================ pass 6: the IR

export function assembleIr(env: Env, factors: readonly IrFactor[], policies: readonly IrPolicy[], revision: string): IrPolicySet {
  return { schema: env.schema, lets: env.letOrder, factors, policies, revision };
}

// ================================================================ pass 7: tests

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Epoch milliseconds of an RFC 3339 timestamp, or undefined when it is not one. */
export function parseRfc3339(s: string): number | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 60) return undefined;
  const zone = m[8]!;
  if (zone.length === 6 && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4, 6)) > 59)) return undefined;
  const ms = Date.parse(s.replace(/t/, 'T').replace(/z$/, 'Z'));
  return Number.isFinite(ms) ? ms : undefined;
}

export function checkTests(env: Env): IrTest[] {
  return env.decls.tests.map((t) => checkTest(env, t));
}

function checkTest(env: Env, test: TestDecl): IrTest {
  const report = (span: Span, message: string, hint?: string, code: DiagnosticCode = 'agp_test_error'): void => {
    env.diagnostics.push(diagnostic(code, span, message, hint));
  };
  const request: { [k: string]: Json } = {};
  let registered: { [k: string]: Json } | null = null;
  let behavior: { [k: string]: Json } | null = null;
  const grants: IrTestGrant[] = [];
  let now = DEFAULT_TEST_NOW;
  const expectations: IrExpectation[] = [];
  const seen = new Map<string, Span>();
  const once = (what: string, span: Span): boolean => {
    const first = seen.get(what);
    if (first) {
      report(span, `\`${what}\` is given twice in this test`, `the first is on line ${first.line}; keep one`);
      return false;
    }
    seen.set(what, span);
    return true;
  };
  const agentType = fieldOf(env.schema.request, 'agent')?.type;
  const policyNames = env.decls.policies.map((p) => p.name);
  const factorNames = env.decls.factors.map((f) => f.name);
  for (const item of test.items) {
    switch (item.kind) {
      case 'test_input': {
        if (!once(item.root, item.span)) break;
        let type: Type | undefined;
        let path: string;
        if (item.root === 'registered') {
          type = agentType;
          path = 'agent';
        } else if (item.root === 'behavior') {
          const b = agentType?.t === 'record' ? fieldOf(agentType, 'behavior') : undefined;
          if (agentType && !b && !env.uncheckedRoots.has('agent')) {
            report(item.span, 'the schema has no `agent.behavior` record for `behavior` to fill', 'declare `behavior: { ... }` in the schema\'s `agent`, or remove this item');
            break;
          }
          type = b?.type;
          path = 'agent.behavior';
        } else {
          type = fieldOf(env.schema.request, item.root)?.type;
          path = item.root;
        }
        const value = testJson(env, item.value, env.uncheckedRoots.has(path.split('.')[0]!) ? undefined : type, path);
        if (value === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) break;
        if (item.root === 'registered') registered = value;
        else if (item.root === 'behavior') behavior = value;
        else request[item.root] = value;
        break;
      }
      case 'test_action':
        if (once('action', item.span)) request['action'] = item.value.value;
        break;
      case 'test_now': {
        if (!once('now', item.span)) break;
        const ms = parseRfc3339(item.value.value);
        if (ms === undefined) {
          report(item.value.span, `\`now\` needs an RFC 3339 time, got \`"${item.value.value}"\``, 'write e.g. `now "2026-01-01T09:30:00Z"`');
        } else {
          now = ms;
        }
        break;
      }
      case 'test_grant': {
        const g = testGrant(env, item.value, item.span);
        if (g) grants.push(g);
        break;
      }
      case 'expect_effect': {
        let obligations: Record<string, Json> | null = null;
        if (item.obligations) {
          obligations = {};
          for (const f of item.obligations.fields) {
            const v = obligationJson(env, f.value);
            if (v !== undefined) obligations[f.name] = v;
          }
        }
        expectations.push({ kind: 'effect', effect: item.effect, obligations, span: item.span });
        break;
      }
      case 'expect_risk':
        expectations.push({ kind: 'risk', op: item.op, value: item.value.value, span: item.span });
        break;
      case 'expect_factor':
        if (!factorNames.includes(item.name)) {
          const guess = closest(item.name, factorNames);
          report(
            item.nameSpan,
            `unknown risk factor \`${item.name}\``,
            guess !== undefined ? `did you mean \`${guess}\`?` : factorNames.length > 0 ? `the factors are ${factorNames.map((n) => `\`${n}\``).join(', ')}` : 'the policy set declares no risk factors',
            'agp_name_error',
          );
          break;
        }
        expectations.push({ kind: 'factor', name: item.name, op: item.op, value: item.value.value, span: item.span });
        break;
      case 'expect_policies': {
        let ok = true;
        for (const n of item.names) {
          if (!policyNames.includes(n.name)) {
            ok = false;
            const guess = closest(n.name, policyNames);
            report(n.span, `unknown policy \`${n.name}\``, guess !== undefined ? `did you mean \`${guess}\`?` : undefined, 'agp_name_error');
          }
        }
        if (ok) expectations.push({ kind: 'policies', names: item.names.map((n) => n.name), span: item.span });
        break;
      }
      case 'expect_reason':
        expectations.push({ kind: 'reason', value: item.value.value, span: item.span });
        break;
      default:
        assertNeverItem(item);
    }
  }
  if (!('action' in request)) report(test.name.span, `test ${quoteName(test.name.value)} has no \`action\``, 'add the action of the request, e.g. `action "read"`');
  if (!test.items.some((i) => i.kind.startsWith('expect'))) {
    report(test.name.span, `test ${quoteName(test.name.value)} expects nothing`, 'add e.g. `expect permit`, `expect deny` or `expect risk < 40`');
  }
  for (const root of ['agent', 'resource', 'task']) if (!(root in request)) request[root] = {};
  return {
    name: test.name.value,
    file: test.span.file,
    span: test.span,
    request: { agent: request['agent']!, action: request['action'] ?? '', resource: request['resource']!, task: request['task']! },
    registered,
    behavior,
    grants,
    now,
    expectations,
  };
}

function assertNeverItem(x: never): never {
  throw new Error(`unhandled test item: ${JSON.stringify(x)}`);
}

/**
 * A test value as the PEP would send it: versions `"2.4.1"`, level members by name,
 * durations as written. Record keys are checked against the schema type when known.
 */
function testJson(env: Env, e: Expr, type: Type | undefined, path: string): Json | undefined {
  const report = (span: Span, message: string, hint?: string, code: DiagnosticCode = 'agp_test_error'): undefined => {
    env.diagnostics.push(diagnostic(code, span, message, hint));
    return undefined;
  };
  switch (e.kind) {
    case 'string':
    case 'bool':
      return e.value;
    case 'number':
      return e.value;
    case 'unary':
      if (e.op === '-' && e.arg.kind === 'number') return -e.arg.value;
      break;
    case 'version':
      if (parseVersion(e.raw) === undefined) {
        return report(e.span, `invalid version \`${e.raw}\``, 'write a version as MAJOR.MINOR.PATCH without leading zeros, each part at most 65535, e.g. `2.4.1`', 'agp_version_error');
      }
      return e.raw;
    case 'duration':
      return e.raw;
    case 'ident': {
      const level = type?.t === 'level' ? type : (type?.t === 'set' || type?.t === 'list') && type.elem.t === 'level' ? type.elem : undefined;
      if (type !== undefined && level === undefined) {
        return report(e.span, `\`${e.name}\` is not a value for \`${path}\``, type.t === 'string' ? `write a string in quotes: \`"${e.name}"\`` : undefined);
      }
      if (level && !level.members.includes(e.name)) {
        const guess = closest(e.name, level.members);
        const list = `the members of \`${level.name}\` are ${level.members.map((m) => `\`${m}\``).join(', ')}`;
        return report(e.span, `\`${e.name}\` is not a member of level \`${level.name}\``, guess !== undefined ? `did you mean \`${guess}\`? ${list}` : list, 'agp_name_error');
      }
      return e.name;
    }
    case 'list': {
      const items: Json[] = [];
      let ok = true;
      const elem = type?.t === 'set' || type?.t === 'list' ? type.elem : undefined;
      for (const item of e.items) {
        const v = testJson(env, item, elem, `${path}[]`);
        if (v === undefined) ok = false;
        else items.push(v);
      }
      return ok ? items : undefined;
    }
    case 'record': {
      const out: { [k: string]: Json } = {};
      let ok = true;
      const record = type?.t === 'record' ? type : undefined;
      const keys = new Set<string>();
      for (const f of e.fields) {
        if (keys.has(f.name)) {
          report(f.nameSpan, `\`${path}.${f.name}\` is given twice`, 'keep one', 'agp_duplicate_error');
          ok = false;
          continue;
        }
        keys.add(f.name);
        const field = record ? fieldOf(record, f.name) : undefined;
        if (record && !field) {
          const guess = closest(f.name, record.fields.map((x) => x.name));
          report(f.nameSpan, `unknown attribute \`${path}.${f.name}\``, guess !== undefined ? `did you mean \`${guess}\`?` : undefined, 'agp_name_error');
          ok = false;
          continue;
        }
        const v = testJson(env, f.value, field?.type, `${path}.${f.name}`);
        if (v === undefined) ok = false;
        else Object.defineProperty(out, f.name, { value: v, enumerable: true, writable: true, configurable: true });
      }
      if (type !== undefined && !record) return report(e.span, `\`${path}\` is not a record`);
      return ok ? out : undefined;
    }
    case 'error':
      return undefined;
    default:
      break;
  }
  return report(e.span, `a test value must be a literal, got \`${new ExprChecker(env).text(e)}\``, 'write the value itself, e.g. `"abc"`, `0.9`, `2.4.1`, `internal` or `[...]`');
}

/** An expected obligation value, as written (durations `"5m"`); only literals. */
function obligationJson(env: Env, e: Expr): Json | undefined {
  const report = (span: Span, message: string, hint?: string): undefined => {
    env.diagnostics.push(diagnostic('agp_test_error', span, message, hint));
    return undefined;
  };
  switch (e.kind) {
    case 'string':
    case 'number':
    case 'bool':
      return e.value;
    case 'duration':
      return e.raw;
    case 'unary':
      if (e.op === '-' && e.arg.kind === 'number') return -e.arg.value;
      break;
    case 'list': {
      const out: string[] = [];
      for (const item of e.items) {
        if (item.kind !== 'string') return report(item.span, 'an expected list obligation holds string literals only', 'write e.g. `scopes: ["accounts:991:freeze"]`');
        out.push(item.value);
      }
      return out;
    }
    case 'error':
      return undefined;
    default:
      break;
  }
  return report(e.span, `an expected obligation must be a literal, got \`${new ExprChecker(env).text(e)}\``, 'write the value itself, e.g. `5m`, `"fraud-ops"` or `["a", "b"]`');
}

function testGrant(env: Env, record: RecordLit, span: Span): IrTestGrant | undefined {
  const report = (s: Span, message: string, hint?: string): undefined => {
    env.diagnostics.push(diagnostic('agp_test_error', s, message, hint));
    return undefined;
  };
  let actions: string[] | undefined;
  let resource: string | undefined;
  let expiresIn: number | undefined;
  let ok = true;
  for (const f of record.fields) {
    const v = f.value;
    if (f.name === 'actions') {
      if (v.kind === 'list' && v.items.every((i) => i.kind === 'string')) actions = v.items.map((i) => (i as { value: string }).value);
      else ok = report(v.span, '`actions` of a grant must be a list of strings', 'write e.g. `actions: ["freeze_account"]` (or `["*"]`)') ?? false;
    } else if (f.name === 'resource') {
      if (v.kind === 'string') resource = v.value;
      else ok = report(v.span, '`resource` of a grant must be a string', 'write e.g. `resource: "account:991"`') ?? false;
    } else if (f.name === 'expires_in') {
      if (v.kind === 'duration') expiresIn = v.seconds;
      else ok = report(v.span, '`expires_in` of a grant must be a duration', 'write e.g. `expires_in: 10m`') ?? false;
    } else {
      const guess = closest(f.name, ['actions', 'resource', 'expires_in']);
      ok = report(f.nameSpan, `unknown grant field \`${f.name}\``, guess !== undefined ? `did you mean \`${guess}\`?` : 'a grant has `actions`, `resource` and `expires_in`') ?? false;
    }
  }
  const missing = [
    ['actions', actions],
    ['resource', resource],
    ['expires_in', expiresIn],
  ].filter(([name, value]) => value === undefined && !record.fields.some((f) => f.name === name));
  if (missing.length > 0) {
    const names = missing.map(([n]) => `\`${String(n)}\``).join(', ');
    report(span, `grant is missing ${names}`, 'a grant needs `actions`, `resource` and `expires_in`, e.g. `grant { actions: ["freeze_account"], resource: "account:991", expires_in: 10m }`');
    return undefined;
  }
  if (!ok || actions === undefined || resource === undefined || expiresIn === undefined) return undefined;
  return { actions, resource, expiresIn };
}
