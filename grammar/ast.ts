// The .agp abstract syntax tree: what the parser produces and the formatter prints.
// Every node is a member of a discriminated union on `kind` and carries a source span.
// Spans are never part of meaning: compare ASTs with `stripSpans` (grammar/ast-util.ts).

export interface Span {
  file: string;
  /** 1-based line and column of the first character. */
  line: number;
  col: number;
  /** 1-based line and column of the last character (inclusive). */
  endLine: number;
  endCol: number;
  /** 0-based character offsets: [offset, endOffset). */
  offset: number;
  endOffset: number;
}

export interface Comment {
  kind: 'comment';
  /** The comment text exactly as written, including `//` or the block delimiters. */
  text: string;
  block: boolean;
  span: Span;
}

// ---------------------------------------------------------------- expressions

export type BinaryOp =
  | 'or'
  | 'and'
  | '=='
  | '!='
  | '<'
  | '<='
  | '>'
  | '>='
  | 'in'
  | 'contains'
  | 'like'
  | '+'
  | '-'
  | '*'
  | '/'
  | '%';

export type UnaryOp = 'not' | '-';

export interface StringLit { kind: 'string'; value: string; span: Span }
export interface NumberLit { kind: 'number'; value: number; span: Span }
export interface BoolLit { kind: 'bool'; value: boolean; span: Span }
/** `2.4.1`: kept as written; the checker validates and encodes it. */
export interface VersionLit { kind: 'version'; raw: string; span: Span }
/** `5m`, `30s`, `250ms`, `2h`, `1d`: `seconds` is the value, `raw` as written. */
export interface DurationLit { kind: 'duration'; raw: string; seconds: number; span: Span }
/** A bare name: a `let`, a schema root (`agent`, `resource`, `task`, `action`), or a level member. */
export interface Ident { kind: 'ident'; name: string; span: Span }
/** `object.name` */
export interface Member { kind: 'member'; object: Expr; name: string; nameSpan: Span; span: Span }
/** `clamp(x, 0, 5)`: only built-in functions exist. */
export interface Call { kind: 'call'; callee: string; calleeSpan: Span; args: Expr[]; span: Span }
export interface ListLit { kind: 'list'; items: Expr[]; span: Span }
export interface RecordField { name: string; nameSpan: Span; value: Expr; span: Span }
export interface RecordLit { kind: 'record'; fields: RecordField[]; span: Span }
export interface Unary { kind: 'unary'; op: UnaryOp; arg: Expr; span: Span }
export interface Binary { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr; span: Span }
/** `resource has owner` — true when the optional attribute is present. */
export interface Has { kind: 'has'; object: Expr; name: string; nameSpan: Span; span: Span }
/** One arm of a `match`: a level member name, a string literal, or `true`/`false`. */
export interface MatchArm { label: string; labelKind: 'name' | 'string' | 'bool'; labelSpan: Span; value: Expr; span: Span }
/** `match e { a: 1, b: 2, else: 0 }` */
export interface Match { kind: 'match'; subject: Expr; arms: MatchArm[]; otherwise: Expr | null; span: Span }
/** `risk`: the total risk score of the request. */
export interface RiskRef { kind: 'risk'; span: Span }
/** `granted`: an active elevation grant covers this action on this resource. */
export interface GrantedRef { kind: 'granted'; span: Span }
/** Stands in for an expression that failed to parse (error recovery). */
export interface ErrorExpr { kind: 'error'; span: Span }

export type Expr =
  | StringLit
  | NumberLit
  | BoolLit
  | VersionLit
  | DurationLit
  | Ident
  | Member
  | Call
  | ListLit
  | RecordLit
  | Unary
  | Binary
  | Has
  | Match
  | RiskRef
  | GrantedRef
  | ErrorExpr;

// ---------------------------------------------------------------- types (schema)

export interface TypeName { kind: 'type_name'; name: string; args: TypeExpr[]; span: Span }
export interface LevelType { kind: 'type_level'; members: { name: string; span: Span }[]; span: Span }
export interface RecordType { kind: 'type_record'; fields: SchemaField[]; span: Span }
export type TypeExpr = TypeName | LevelType | RecordType;

export interface SchemaField {
  kind: 'field';
  name: string;
  nameSpan: Span;
  optional: boolean;
  type: TypeExpr;
  span: Span;
}

// ---------------------------------------------------------------- declarations

export interface SchemaDecl { kind: 'schema'; roots: SchemaField[]; span: Span }
export interface LetDecl { kind: 'let'; name: string; nameSpan: Span; value: Expr; span: Span }

export interface RiskFactorDecl {
  kind: 'factor';
  name: string;
  nameSpan: Span;
  value: Expr;
  /** `value if condition`: the factor is 0 when the condition is false. */
  condition: Expr | null;
  span: Span;
}
export interface RiskDecl { kind: 'risk'; factors: RiskFactorDecl[]; span: Span }

export type Effect = 'permit' | 'deny' | 'escalate';

export interface Outcome {
  kind: 'outcome';
  effect: Effect;
  condition: Expr | null;
  obligations: RecordLit | null;
  reason: StringLit | null;
  span: Span;
}

export interface PolicyDecl {
  kind: 'policy';
  /** `forbid` policies have a single implicit deny outcome. */
  forbid: boolean;
  name: string;
  nameSpan: Span;
  description: StringLit | null;
  target: Expr | null;
  when: Expr | null;
  /** For `forbid`: exactly one deny outcome, built from its `because`. */
  outcomes: Outcome[];
  span: Span;
}

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

export type TestItem =
  /** `agent {...}`, `resource {...}`, `task {...}`: the request as the PEP sends it;
   *  `registered {...}`: agent attributes held by the context store;
   *  `behavior {...}`: behaviour figures AGP computed for the agent. */
  | { kind: 'test_input'; root: 'agent' | 'resource' | 'task' | 'registered' | 'behavior'; value: RecordLit; span: Span }
  | { kind: 'test_action'; value: StringLit; span: Span }
  /** `grant { actions: [...], resource: "account:991", expires_in: 10m }` */
  | { kind: 'test_grant'; value: RecordLit; span: Span }
  /** `now "2026-11-28T10:00:00Z"`: pins the clock. */
  | { kind: 'test_now'; value: StringLit; span: Span }
  | { kind: 'expect_effect'; effect: Effect; obligations: RecordLit | null; span: Span }
  | { kind: 'expect_risk'; op: CompareOp; value: NumberLit; span: Span }
  | { kind: 'expect_factor'; name: string; nameSpan: Span; op: CompareOp; value: NumberLit; span: Span }
  | { kind: 'expect_policies'; names: { name: string; span: Span }[]; span: Span }
  | { kind: 'expect_reason'; value: StringLit; span: Span };

export interface TestDecl { kind: 'test'; name: StringLit; items: TestItem[]; span: Span }

export type Decl = SchemaDecl | LetDecl | RiskDecl | PolicyDecl | TestDecl;

export interface PolicyFile {
  kind: 'file';
  path: string;
  decls: Decl[];
  /** Every comment in the file, in source order; the formatter places them. */
  comments: Comment[];
  span: Span;
}

export function assertNever(x: never): never {
  throw new Error(`unhandled node: ${JSON.stringify(x)}`);
}
