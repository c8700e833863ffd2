// fast-check arbitraries producing well-formed .agp ASTs (spans are placeholders: compare
// with stripSpans). Every construct of the language appears, with every operator.
import fc from 'fast-check';
import type * as A from '../../grammar/ast.js';
import { KEYWORD_NAMES } from '../../grammar/index.js';

export const Z: A.Span = { file: 'gen.agp', line: 1, col: 1, endLine: 1, endCol: 1, offset: 0, endOffset: 0 };

const KEYWORDS = [...KEYWORD_NAMES];

/** A name that is not a keyword (for lets, policies, identifiers, ...). */
export const name: fc.Arbitrary<string> = fc
  .stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,7}$/)
  .filter((s) => !KEYWORD_NAMES.has(s));

/** Where the grammar accepts keywords too: after `.`, `has`, record keys, field names. */
export const anyName: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: name }, { weight: 1, arbitrary: fc.constantFrom(...KEYWORDS) });

/** Strings over every UTF-16 code unit (lone surrogates and control characters included). */
export const text: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 8 }),
  fc.constantFrom('', '"', '\\', '\\n', 'a*b', '\n\t\r', '\u2028', '//', '/*'),
);

const UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

const stringLit: fc.Arbitrary<A.StringLit> = text.map((value) => ({ kind: 'string', value, span: Z }));

const numberLit: fc.Arbitrary<A.NumberLit> = fc
  .oneof(fc.nat({ max: 1000 }), fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0.1, 1e21, 1e-7, 5e-324))
  .map((value) => ({ kind: 'number', value, span: Z }));

const versionLit: fc.Arbitrary<A.VersionLit> = fc
  .tuple(fc.nat({ max: 65535 }), fc.nat({ max: 65535 }), fc.nat({ max: 65535 }))
  .map(([a, b, c]) => ({ kind: 'version', raw: `${a}.${b}.${c}`, span: Z }));

const durationLit: fc.Arbitrary<A.DurationLit> = fc
  .tuple(fc.nat({ max: 10000 }), fc.option(fc.stringMatching(/^[0-9]{1,3}$/), { nil: undefined }), fc.constantFrom('ms', 's', 'm', 'h', 'd'))
  .map(([whole, frac, unit]) => {
    const num = frac === undefined ? `${whole}` : `${whole}.${frac}`;
    return { kind: 'duration', raw: `${num}${unit}`, seconds: Number(num) * UNIT[unit]!, span: Z };
  });

const leaf: fc.Arbitrary<A.Expr> = fc.oneof(
  stringLit,
  numberLit,
  versionLit,
  durationLit,
  fc.boolean().map((value): A.Expr => ({ kind: 'bool', value, span: Z })),
  name.map((n): A.Expr => ({ kind: 'ident', name: n, span: Z })),
  fc.constant<A.Expr>({ kind: 'risk', span: Z }),
  fc.constant<A.Expr>({ kind: 'granted', span: Z }),
);

const BINARY_OPS: A.BinaryOp[] = ['or', 'and', '==', '!=', '<', '<=', '>', '>=', 'in', 'contains', 'like', '+', '-', '*', '/', '%'];

const recordOf = (value: fc.Arbitrary<A.Expr>): fc.Arbitrary<A.RecordLit> =>
  fc
    .array(fc.record({ name: anyName, value }), { maxLength: 3 })
    .map((fields) => ({ kind: 'record', fields: fields.map((f) => ({ name: f.name, nameSpan: Z, value: f.value, span: Z })), span: Z }));

const exprCache = new Map<number, fc.Arbitrary<A.Expr>>();

/** Expressions nested at most `depth` levels of composite nodes. */
export function expr(depth = 3): fc.Arbitrary<A.Expr> {
  const cached = exprCache.get(depth);
  if (cached) return cached;
  if (depth <= 0) return leaf;
  const sub = expr(depth - 1);
  const arb: fc.Arbitrary<A.Expr> = fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 4, arbitrary: fc.record({ op: fc.constantFrom(...BINARY_OPS), left: sub, right: sub }).map((b): A.Expr => ({ kind: 'binary', ...b, span: Z })) },
    { weight: 2, arbitrary: fc.record({ op: fc.constantFrom<A.UnaryOp>('not', '-'), arg: sub }).map((u): A.Expr => ({ kind: 'unary', ...u, span: Z })) },
    { weight: 1, arbitrary: fc.record({ object: sub, name: anyName }).map((m): A.Expr => ({ kind: 'member', ...m, nameSpan: Z, span: Z })) },
    { weight: 1, arbitrary: fc.record({ object: sub, name: anyName }).map((m): A.Expr => ({ kind: 'has', ...m, nameSpan: Z, span: Z })) },
    { weight: 1, arbitrary: fc.record({ callee: name, args: fc.array(sub, { maxLength: 3 }) }).map((c): A.Expr => ({ kind: 'call', ...c, calleeSpan: Z, span: Z })) },
    { weight: 1, arbitrary: fc.array(sub, { maxLength: 3 }).map((items): A.Expr => ({ kind: 'list', items, span: Z })) },
    { weight: 1, arbitrary: recordOf(sub) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          subject: sub,
          arms: fc.array(
            fc.oneof(
              fc.record({ label: name, labelKind: fc.constant<'name'>('name') }),
              fc.record({ label: text, labelKind: fc.constant<'string'>('string') }),
              fc.record({ label: fc.constantFrom('true', 'false'), labelKind: fc.constant<'bool'>('bool') }),
            ).chain((l) => sub.map((value): A.MatchArm => ({ ...l, labelSpan: Z, value, span: Z }))),
            { maxLength: 3 },
          ),
          otherwise: fc.option(sub, { nil: null }),
        })
        .map((m): A.Expr => ({ kind: 'match', ...m, span: Z })),
    },
  );
  exprCache.set(depth, arb);
  return arb;
}

// ---------------------------------------------------------------- schema

const typeCache = new Map<number, fc.Arbitrary<A.TypeExpr>>();

function typeExpr(depth: number): fc.Arbitrary<A.TypeExpr> {
  const cached = typeCache.get(depth);
  if (cached) return cached;
  const simple = fc.oneof(
    fc.constantFrom('string', 'number', 'bool', 'version', 'duration', 'level'),
    name.filter((n) => n !== 'level'),
  ).map((n): A.TypeExpr => ({ kind: 'type_name', name: n, args: [], span: Z }));
  const level = fc.array(name, { minLength: 1, maxLength: 4 }).map((ms): A.TypeExpr => ({ kind: 'type_level', members: ms.map((m) => ({ name: m, span: Z })), span: Z }));
  if (depth <= 0) return fc.oneof(simple, level);
  const sub = typeExpr(depth - 1);
  const arb = fc.oneof(
    { weight: 3, arbitrary: simple },
    { weight: 1, arbitrary: level },
    {
      weight: 1,
      arbitrary: fc
        .record({ name: fc.constantFrom('set', 'list', 'map'), args: fc.array(sub, { minLength: 1, maxLength: 2 }) })
        .map((t): A.TypeExpr => ({ kind: 'type_name', ...t, span: Z })),
    },
    { weight: 1, arbitrary: fc.array(field(depth - 1), { maxLength: 3 }).map((fields): A.TypeExpr => ({ kind: 'type_record', fields, span: Z })) },
  );
  typeCache.set(depth, arb);
  return arb;
}

function field(depth: number): fc.Arbitrary<A.SchemaField> {
  return fc
    .record({ name: anyName, optional: fc.boolean(), type: typeExpr(depth) })
    .map((f) => ({ kind: 'field', ...f, nameSpan: Z, span: Z }));
}

// ---------------------------------------------------------------- declarations

const e = expr(3);

const schemaDecl: fc.Arbitrary<A.SchemaDecl> = fc.array(field(2), { maxLength: 4 }).map((roots) => ({ kind: 'schema', roots, span: Z }));

const letDecl: fc.Arbitrary<A.LetDecl> = fc.record({ name, value: e }).map((l) => ({ kind: 'let', ...l, nameSpan: Z, span: Z }));

const riskDecl: fc.Arbitrary<A.RiskDecl> = fc
  .array(fc.record({ name, value: e, condition: fc.option(e, { nil: null }) }), { maxLength: 4 })
  .map((fs) => ({ kind: 'risk', factors: fs.map((f) => ({ kind: 'factor', ...f, nameSpan: Z, span: Z })), span: Z }));

const outcome: fc.Arbitrary<A.Outcome> = fc
  .record({
    effect: fc.constantFrom<A.Effect>('permit', 'deny', 'escalate'),
    condition: fc.option(e, { nil: null }),
    obligations: fc.option(recordOf(expr(2)), { nil: null }),
    reason: fc.option(stringLit, { nil: null }),
  })
  .map((o) => ({ kind: 'outcome', ...o, span: Z }));

const policyDecl: fc.Arbitrary<A.PolicyDecl> = fc
  .record({
    name,
    description: fc.option(stringLit, { nil: null }),
    target: fc.option(e, { nil: null }),
    when: fc.option(e, { nil: null }),
    outcomes: fc.array(outcome, { minLength: 1, maxLength: 4 }),
  })
  .map((p) => ({ kind: 'policy', forbid: false, ...p, nameSpan: Z, span: Z }));

const forbidDecl: fc.Arbitrary<A.PolicyDecl> = fc
  .record({
    name,
    description: fc.option(stringLit, { nil: null }),
    target: fc.option(e, { nil: null }),
    when: fc.option(e, { nil: null }),
    reason: fc.option(stringLit, { nil: null }),
  })
  .map(({ reason, ...p }) => ({
    kind: 'policy',
    forbid: true,
    ...p,
    outcomes: [{ kind: 'outcome', effect: 'deny', condition: null, obligations: null, reason, span: Z }],
    nameSpan: Z,
    span: Z,
  }));

const cmpOp = fc.constantFrom<A.CompareOp>('==', '!=', '<', '<=', '>', '>=');
const signed: fc.Arbitrary<A.NumberLit> = fc
  .oneof(fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true }))
  .map((value) => ({ kind: 'number', value, span: Z }));
const rec = recordOf(expr(2));

const testItem: fc.Arbitrary<A.TestItem> = fc.oneof(
  fc.record({ root: fc.constantFrom<'agent' | 'resource' | 'task' | 'registered' | 'behavior'>('agent', 'resource', 'task', 'registered', 'behavior'), value: rec }).map((i): A.TestItem => ({ kind: 'test_input', ...i, span: Z })),
  stringLit.map((value): A.TestItem => ({ kind: 'test_action', value, span: Z })),
  rec.map((value): A.TestItem => ({ kind: 'test_grant', value, span: Z })),
  stringLit.map((value): A.TestItem => ({ kind: 'test_now', value, span: Z })),
  fc
    .record({ effect: fc.constantFrom<A.Effect>('permit', 'deny', 'escalate'), obligations: fc.option(rec, { nil: null }) })
    .map((i): A.TestItem => ({ kind: 'expect_effect', ...i, span: Z })),
  fc.record({ op: cmpOp, value: signed }).map((i): A.TestItem => ({ kind: 'expect_risk', ...i, span: Z })),
  fc.record({ name, op: cmpOp, value: signed }).map((i): A.TestItem => ({ kind: 'expect_factor', ...i, nameSpan: Z, span: Z })),
  fc.array(name, { minLength: 1, maxLength: 3 }).map((ns): A.TestItem => ({ kind: 'expect_policies', names: ns.map((n) => ({ name: n, span: Z })), span: Z })),
  stringLit.map((value): A.TestItem => ({ kind: 'expect_reason', value, span: Z })),
);

const testDecl: fc.Arbitrary<A.TestDecl> = fc
  .record({ name: stringLit, items: fc.array(testItem, { maxLength: 6 }) })
  .map((t) => ({ kind: 'test', ...t, span: Z }));

export const decl: fc.Arbitrary<A.Decl> = fc.oneof(schemaDecl, letDecl, riskDecl, policyDecl, forbidDecl, testDecl);

export const policyFile: fc.Arbitrary<A.PolicyFile> = fc
  .array(decl, { maxLength: 5 })
  .map((decls) => ({ kind: 'file', path: 'gen.agp', decls, comments: [], span: Z }));
