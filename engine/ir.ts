// The checked intermediate representation: what the checker produces from the AST and what
// both the reference interpreter and the compiler consume. Every name is resolved, every
// expression typed, every literal normalized (levels are member indexes, versions encoded
// numbers, durations seconds), so evaluation needs no further lookups or checks.

import type { Effect, Span } from '../grammar/ast.js';

// ---------------------------------------------------------------- types

export type Type =
  | { t: 'string' }
  | { t: 'number' }
  | { t: 'bool' }
  | { t: 'version' }
  | { t: 'duration' }
  /** An ordered enum. Two level types are the same type only when `name` is equal. */
  | { t: 'level'; name: string; members: readonly string[] }
  | { t: 'set'; elem: Type }
  | { t: 'list'; elem: Type }
  | { t: 'record'; fields: readonly FieldType[] };

export interface FieldType {
  name: string;
  type: Type;
  optional: boolean;
}

/** The request shape declared by `schema { ... }`: roots agent, resource, task, action. */
export interface Schema {
  /** Always a record type whose fields are the roots. */
  request: { t: 'record'; fields: readonly FieldType[] };
}

// ---------------------------------------------------------------- values

/**
 * A normalized runtime value. Levels are member indexes (0-based), versions are encoded as
 * major * 2^32 + minor * 2^16 + patch (each component 0..65535), durations are seconds,
 * sets and lists are arrays (sets deduplicated), records are plain objects.
 */
export type Value = string | number | boolean | readonly Value[] | { readonly [k: string]: Value };

export const VERSION_COMPONENT_MAX = 65535;

export function encodeVersion(major: number, minor: number, patch: number): number {
  return major * 4294967296 + minor * 65536 + patch;
}

export function decodeVersion(v: number): string {
  const major = Math.floor(v / 4294967296);
  const minor = Math.floor(v / 65536) % 65536;
  const patch = v % 65536;
  return `${major}.${minor}.${patch}`;
}

/** Parses `MAJOR.MINOR.PATCH` (no leading zeros, each part 0..65535); undefined if invalid. */
export function parseVersion(raw: string): number | undefined {
  const m = /^(0|[1-9]\d{0,4})\.(0|[1-9]\d{0,4})\.(0|[1-9]\d{0,4})$/.exec(raw);
  if (!m) return undefined;
  const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (a > VERSION_COMPONENT_MAX || b > VERSION_COMPONENT_MAX || c > VERSION_COMPONENT_MAX) return undefined;
  return encodeVersion(a, b, c);
}

// ---------------------------------------------------------------- expressions

export type CmpOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type ArithOp = '+' | '-' | '*' | '/' | '%';
export type BuiltinFn = 'clamp' | 'min' | 'max' | 'abs' | 'size';

/**
 * Typed, resolved expressions. Comparison operands are always scalars of one type
 * (string, number, bool, version, duration, or one level type), so `==` and `<` are the
 * plain JS operators on normalized values.
 */
export type IrExpr =
  | { op: 'lit'; type: Type; value: Value }
  /** A required attribute, or an optional one proven present by `has`. Path starts at a root. */
  | { op: 'attr'; path: readonly string[]; type: Type }
  /** True when the optional attribute at `path` is present. */
  | { op: 'has'; path: readonly string[] }
  /** The value of a `let` (index into IrPolicySet.lets); computed at most once per request. */
  | { op: 'let'; index: number; type: Type }
  /** The total risk (sum of every factor). */
  | { op: 'risk' }
  /** An active grant covers this request's action and `resource.type:resource.id`. */
  | { op: 'granted' }
  | { op: 'not'; arg: IrExpr }
  | { op: 'and'; args: readonly IrExpr[] }
  | { op: 'or'; args: readonly IrExpr[] }
  | { op: 'cmp'; cmp: CmpOp; left: IrExpr; right: IrExpr }
  /** elem ∈ coll (coll a list or set). */
  | { op: 'in'; elem: IrExpr; coll: IrExpr }
  /** Glob match: `*` any run of characters, `\*` a literal star. Pattern is a literal. */
  | { op: 'like'; arg: IrExpr; pattern: string }
  /** Number arithmetic; `/` and `%` by zero give 0; results saturate to ±Number.MAX_VALUE. */
  | { op: 'arith'; arith: ArithOp; left: IrExpr; right: IrExpr }
  /** String concatenation (`+` on strings). */
  | { op: 'concat'; left: IrExpr; right: IrExpr }
  | { op: 'neg'; arg: IrExpr }
  | { op: 'call'; fn: BuiltinFn; args: readonly IrExpr[] }
  /** Level subject: arms indexed by member index. String/bool subject: `cases` by value. */
  | { op: 'match'; subject: IrExpr; cases: readonly { value: string | number | boolean; result: IrExpr }[]; otherwise: IrExpr | null; type: Type }
  /** `then if cond` (risk factors): `else` when cond is false (0 for factors). */
  | { op: 'cond'; cond: IrExpr; then: IrExpr; else: IrExpr }
  | { op: 'list'; items: readonly IrExpr[]; type: Type };

// ---------------------------------------------------------------- declarations

export interface IrLet {
  name: string;
  expr: IrExpr;
  type: Type;
  span: Span;
}

export interface IrFactor {
  name: string;
  /** Always of type number. */
  expr: IrExpr;
  span: Span;
}

/** One conjunct of a target: the attribute at `path` equals one of `values` (normalized). */
export interface IrTargetTest {
  path: readonly string[];
  values: readonly (string | number | boolean)[];
  span: Span;
}

export type ObligationKind = 'duration' | 'strings' | 'scalar';

export interface IrObligation {
  key: string;
  /** duration → output as `<key>_s` seconds, min wins; strings → union; scalar → see docs. */
  kind: ObligationKind;
  expr: IrExpr;
  span: Span;
}

export interface IrBranch {
  effect: Effect;
  condition: IrExpr | null;
  obligations: readonly IrObligation[];
  reason: string | null;
  span: Span;
}

export interface IrPolicy {
  name: string;
  description: string | null;
  forbid: boolean;
  file: string;
  span: Span;
  /** Conjunction; empty means the policy is a candidate for every request. */
  target: readonly IrTargetTest[];
  when: IrExpr | null;
  /** First branch whose condition holds decides the policy's effect; none → not applicable. */
  branches: readonly IrBranch[];
  /** Source text of each top-level `and` conjunct of `when`, for explanations. */
  whenText: string | null;
}

export interface IrPolicySet {
  schema: Schema;
  /** In dependency order: a let only refers to lets before it. */
  lets: readonly IrLet[];
  /** In declaration order (files sorted by path). */
  factors: readonly IrFactor[];
  /** Sorted by name (names are unique). */
  policies: readonly IrPolicy[];
  /** `sha256:<hex>` of the sorted (path, text) sources. */
  revision: string;
}

// ---------------------------------------------------------------- tests (.test.agp)

/** JSON as the PEP would send it (versions as "2.4.1", levels by name, durations "5m"). */
export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export interface IrTestGrant {
  actions: string[];
  resource: string;
  /** Seconds after `now` at which the grant expires. */
  expiresIn: number;
}

export type IrExpectation =
  | { kind: 'effect'; effect: Effect; obligations: Record<string, Json> | null; span: Span }
  | { kind: 'risk'; op: CmpOp; value: number; span: Span }
  | { kind: 'factor'; name: string; op: CmpOp; value: number; span: Span }
  | { kind: 'policies'; names: string[]; span: Span }
  | { kind: 'reason'; value: string; span: Span };

export interface IrTest {
  name: string;
  file: string;
  span: Span;
  /** The request body: { agent, action, resource, task }. */
  request: { [k: string]: Json };
  /** Agent attributes as the context store holds them (store wins on merge). */
  registered: { [k: string]: Json } | null;
  behavior: { [k: string]: Json } | null;
  grants: IrTestGrant[];
  /** Epoch milliseconds; default 2026-01-01T00:00:00Z when the test does not pin it. */
  now: number;
  expectations: IrExpectation[];
}
