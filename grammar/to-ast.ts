// AST construction for the parser: the parser's embedded actions hand tokens and sub-nodes
// to an AstBuilder, which makes grammar/ast.ts nodes with spans. It keeps going after syntax
// errors (tokens the parser inserted in recovery have no position: the last good position
// stands in, missing expressions become ErrorExpr) and reports the structural errors the
// grammar leaves open (unknown test items, bad level members, a policy with no outcome).
//
// Why not a CST and a visitor: a concrete tree costs ten nodes per operand (one per
// precedence level), which made parsing 10,000 policies several times slower.
import type { IToken } from 'chevrotain';
import type * as A from './ast.js';
import { decodeString, durationSeconds, tokenSpan } from './lexer.js';
import * as T from './lexer.js';
import { closest, diagnostic } from '../engine/diagnostics.js';
import type { Diagnostic } from '../engine/diagnostics.js';

export const MAX_EXPRESSION_DEPTH = 256;

const INPUT_ROOTS = new Set(['agent', 'resource', 'task', 'registered', 'behavior']);
const TEST_ITEMS = ['agent', 'resource', 'task', 'registered', 'behavior', 'action', 'grant', 'now', 'expect'];

export function joinSpans(a: A.Span, b: A.Span): A.Span {
  return { file: a.file, line: a.line, col: a.col, endLine: b.endLine, endCol: b.endCol, offset: a.offset, endOffset: b.endOffset };
}

function real(t: IToken | undefined): t is IToken {
  return t !== undefined && !t.isInsertedInRecovery && !Number.isNaN(t.startOffset);
}

/** One operand of a flat expression: prefix operators, then a primary with its `.name`s. */
export interface Operand {
  prefixes: IToken[];
  atom: A.Expr;
}

/** An infix operator of a flat expression; `has` carries its attribute name instead of
 *  an operand. */
export interface OperatorItem {
  op: IToken;
  name: IToken | undefined;
}

/**
 * Binding strength of infix operators (higher binds tighter); `not` sits at 3, unary `-` at 7.
 * The one table: the parser builds trees with it and the formatter parenthesizes with it.
 */
export const PREC: Record<A.BinaryOp | 'has', number> = {
  or: 1,
  and: 2,
  '==': 4,
  '!=': 4,
  '<': 4,
  '<=': 4,
  '>': 4,
  '>=': 4,
  in: 4,
  contains: 4,
  like: 4,
  has: 4,
  '+': 5,
  '-': 5,
  '*': 6,
  '/': 6,
  '%': 6,
};
export const NOT_PREC = 3;
export const COMPARE_PREC = 4;
export const NEG_PREC = 7;

/** What an `expect ...` line said, before the test item wraps it with its span. */
export type Expectation =
  | { kind: 'effect'; effect: IToken; obligations: A.RecordLit | undefined }
  | { kind: 'risk'; op: IToken; value: A.NumberLit }
  | { kind: 'policy'; name: IToken }
  | { kind: 'factor'; what: IToken; name: IToken; cmp: { op: IToken; value: A.NumberLit } | undefined }
  | { kind: 'policies'; what: IToken; names: IToken[]; close: IToken }
  | { kind: 'reason'; what: IToken; value: IToken };

export class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];
  /** The last good position seen: where nodes that failed to parse are placed. */
  private last: A.Span;
  /** Errors that a syntax error elsewhere may have caused; dropped when there is one. */
  readonly followUps: Diagnostic[] = [];

  constructor(readonly file: string) {
    this.last = { file, line: 1, col: 1, endLine: 1, endCol: 1, offset: 0, endOffset: 0 };
  }

  error(span: A.Span, message: string, hint?: string): void {
    this.diagnostics.push(diagnostic('agp_parse_error', span, message, hint));
  }

  /** The span of a token; for a token inserted by error recovery, the last good position. */
  span(t: IToken | undefined): A.Span {
    if (!real(t)) return this.last;
    const s = tokenSpan(this.file, t);
    this.last = s;
    return s;
  }

  /** From the start of `first` to the end of `last` (a token or a node's span). */
  range(first: IToken | A.Span, last: IToken | A.Span | undefined): A.Span {
    if ('tokenType' in first && last !== undefined && 'tokenType' in last && real(first) && real(last) && last.startOffset >= first.startOffset) {
      // the common case, without intermediate spans
      this.last = tokenSpan(this.file, last);
      return {
        file: this.file,
        line: first.startLine ?? 1,
        col: first.startColumn ?? 1,
        endLine: this.last.endLine,
        endCol: this.last.endCol,
        offset: first.startOffset,
        endOffset: this.last.endOffset,
      };
    }
    const a = 'tokenType' in first ? this.span(first) : first;
    const b = last === undefined ? a : 'tokenType' in last ? this.span(last) : last;
    return joinSpans(a, b.offset >= a.offset ? b : a);
  }

  errorExpr(at?: IToken): A.ErrorExpr {
    return { kind: 'error', span: real(at) ? this.span(at) : this.last };
  }

  name(t: IToken | undefined): string {
    return real(t) ? t.image : '';
  }

  stringLit(t: IToken | undefined): A.StringLit {
    return { kind: 'string', value: real(t) ? decodeString(t.image).value : '', span: this.span(t) };
  }

  // ------------------------------------------------------------ schema

  field(name: IToken, question: IToken | undefined, type: A.TypeExpr | undefined): A.SchemaField {
    const nameSpan = this.span(name);
    const t: A.TypeExpr = type ?? { kind: 'type_name', name: '', args: [], span: this.last };
    return { kind: 'field', name: this.name(name), nameSpan, optional: question !== undefined, type: t, span: joinSpans(nameSpan, t.span) };
  }

  typeName(id: IToken, less: IToken | undefined, args: A.TypeExpr[], close: IToken | undefined): A.TypeExpr {
    const span = this.range(id, close ?? args[args.length - 1]?.span ?? id);
    const name = this.name(id);
    if (name === 'level' && less) {
      const members: { name: string; span: A.Span }[] = [];
      for (const a of args) {
        if (a.kind === 'type_name' && a.args.length === 0) members.push({ name: a.name, span: a.span });
        else this.error(a.span, 'a level member must be a plain name', 'write the members in order, e.g. `level<low, medium, high>`');
      }
      return { kind: 'type_level', members, span };
    }
    return { kind: 'type_name', name, args, span };
  }

  // ------------------------------------------------------------ declarations

  policy(kw: IToken, name: IToken, desc: IToken | undefined, target: A.Expr | null, when: A.Expr | null, outcomes: A.Outcome[], close: IToken): A.PolicyDecl {
    const span = this.range(kw, close);
    const nameSpan = this.span(name);
    if (outcomes.length === 0)
      this.followUps.push(diagnostic('agp_parse_error', nameSpan, `policy \`${this.name(name)}\` has no outcome`, 'add `permit`, `deny` or `escalate`, e.g. `permit if risk < 40`'));
    return {
      kind: 'policy',
      forbid: false,
      name: this.name(name),
      nameSpan,
      description: desc ? this.stringLit(desc) : null,
      target,
      when,
      outcomes,
      span,
    };
  }

  forbid(kw: IToken, name: IToken, desc: IToken | undefined, target: A.Expr | null, when: A.Expr | null, reason: IToken | undefined, close: IToken): A.PolicyDecl {
    const span = this.range(kw, close);
    const nameSpan = this.span(name);
    const description = desc ? this.stringLit(desc) : null;
    const outcome: A.Outcome = { kind: 'outcome', effect: 'deny', condition: null, obligations: null, reason: reason ? this.stringLit(reason) : null, span };
    return { kind: 'policy', forbid: true, name: this.name(name), nameSpan, description, target, when, outcomes: [outcome], span };
  }

  testItem(id: IToken, record: A.RecordLit | undefined, str: IToken | undefined): A.TestItem | undefined {
    const what = id.image;
    const idSpan = this.span(id);
    if (INPUT_ROOTS.has(what) || what === 'grant') {
      if (record) {
        const span = joinSpans(idSpan, record.span);
        return what === 'grant' ? { kind: 'test_grant', value: record, span } : { kind: 'test_input', root: what as 'agent', value: record, span };
      }
      this.error(idSpan, `\`${what}\` takes a record`, `write \`${what} { ... }\``);
      return undefined;
    }
    if (what === 'action' || what === 'now') {
      if (str) {
        const value = this.stringLit(str);
        const span = joinSpans(idSpan, value.span);
        return what === 'action' ? { kind: 'test_action', value, span } : { kind: 'test_now', value, span };
      }
      this.error(idSpan, `\`${what}\` takes a string`, what === 'now' ? 'write `now "2026-01-01T00:00:00Z"`' : 'write `action "read"`');
      return undefined;
    }
    if (!real(id)) return undefined;
    const guess = closest(what, TEST_ITEMS);
    this.error(idSpan, `unknown test item \`${what}\``, guess ? `did you mean \`${guess}\`?` : `a test item is one of ${TEST_ITEMS.map((x) => `\`${x}\``).join(', ')}`);
    return undefined;
  }

  expectation(kw: IToken, e: Expectation | undefined): A.TestItem | undefined {
    if (!e) return undefined;
    const start = this.span(kw);
    switch (e.kind) {
      case 'effect': {
        const effSpan = this.span(e.effect);
        return { kind: 'expect_effect', effect: e.effect.image as A.Effect, obligations: e.obligations ?? null, span: joinSpans(start, e.obligations?.span ?? effSpan) };
      }
      case 'risk':
        return { kind: 'expect_risk', op: (e.op.image || '==') as A.CompareOp, value: e.value, span: joinSpans(start, e.value.span) };
      case 'policy': {
        const s = this.span(e.name);
        return { kind: 'expect_policies', names: real(e.name) ? [{ name: e.name.image, span: s }] : [], span: joinSpans(start, s) };
      }
      default:
        break;
    }
    const shapes: Record<string, string> = {
      factor: '`expect factor <name> <comparison> <number>`',
      policies: '`expect policies [a, b]`',
      reason: '`expect reason "text"`',
    };
    const whatSpan = this.span(e.what);
    if (e.what.image !== e.kind) {
      if (shapes[e.what.image]) this.error(whatSpan, `\`expect ${e.what.image}\` is written ${shapes[e.what.image]}`);
      else {
        const guess = closest(e.what.image, ['permit', 'deny', 'escalate', 'risk', 'factor', 'policy', 'policies', 'reason']);
        this.error(
          whatSpan,
          `unknown expectation \`${e.what.image}\``,
          guess ? `did you mean \`expect ${guess}\`?` : 'write `expect permit`, `expect risk < 40`, `expect factor f >= 10`, `expect policy p` or `expect reason "text"`',
        );
      }
      return undefined;
    }
    switch (e.kind) {
      case 'factor': {
        const nameSpan = this.span(e.name);
        if (!e.cmp) {
          this.error(nameSpan, `\`expect factor\` is written ${shapes['factor']!}`);
          return undefined;
        }
        return {
          kind: 'expect_factor',
          name: this.name(e.name),
          nameSpan,
          op: (e.cmp.op.image || '==') as A.CompareOp,
          value: e.cmp.value,
          span: joinSpans(start, e.cmp.value.span),
        };
      }
      case 'policies':
        return { kind: 'expect_policies', names: e.names.filter(real).map((n) => ({ name: n.image, span: this.span(n) })), span: this.range(start, e.close) };
      case 'reason': {
        const value = this.stringLit(e.value);
        return { kind: 'expect_reason', value, span: joinSpans(start, value.span) };
      }
    }
  }

  signedNumber(minus: IToken | undefined, num: IToken): A.NumberLit {
    const v = real(num) ? Number(num.image) : 0;
    const value = Number.isNaN(v) ? 0 : v;
    if (minus) return { kind: 'number', value: -value, span: this.range(minus, num) };
    return { kind: 'number', value, span: this.span(num) };
  }

  // ------------------------------------------------------------ expressions

  /**
   * Builds the tree of `operands[0] ops[0] operands[1] ...` by precedence climbing, with the
   * grammar's rules: `not x` takes a comparison or another `not`; `-x` takes an operand
   * only; comparisons (and `has`) do not chain. Recursion is bounded by the precedence
   * levels and prefix counts (both limited); chains are built by a loop.
   */
  climb(operands: Operand[], ops: OperatorItem[]): A.Expr {
    let opIdx = 0;
    // `has` takes no operand, so operands and operators are counted apart
    let operandIdx = 0;
    let preIdx = 0;
    const prefixRule = (minPrec: number, afterNot: boolean): A.Expr => {
      const o = operands[operandIdx];
      if (!o) return this.errorExpr();
      const p = o.prefixes[preIdx];
      if (!p) return o.atom;
      preIdx++;
      if (p.tokenType === T.Not) {
        if (minPrec > NOT_PREC && !afterNot)
          this.error(this.span(p), '`not` needs parentheses here', 'write `(not ...)`: `not` binds more loosely than comparisons and arithmetic');
        return this.unary(p, expr(COMPARE_PREC, true));
      }
      return this.unary(p, prefixRule(NEG_PREC, false));
    };
    const expr = (minPrec: number, afterNot: boolean): A.Expr => {
      let left = prefixRule(minPrec, afterNot);
      let compared = false;
      while (opIdx < ops.length) {
        const item = ops[opIdx]!;
        const prec = PREC[item.op.image as keyof typeof PREC] ?? 0;
        if (prec < minPrec) break;
        if (prec === COMPARE_PREC) {
          if (compared) this.error(this.span(item.op), `comparisons do not chain: \`${item.op.image}\` follows another comparison`, 'combine them with `and`, or add parentheses');
          compared = true;
        }
        if (item.name !== undefined || item.op.tokenType === T.Has) {
          // `has` consumes no operand
          opIdx++;
          left = this.has(left, item.name ?? item.op);
          continue;
        }
        opIdx++;
        operandIdx++;
        preIdx = 0;
        const right = expr(prec + 1, false);
        left = this.binary(item.op, left, right);
      }
      return left;
    };
    return expr(0, false);
  }

  binary(op: IToken, left: A.Expr, right: A.Expr): A.Expr {
    return { kind: 'binary', op: op.image as A.BinaryOp, left, right, span: joinSpans(left.span, right.span) };
  }

  unary(op: IToken, arg: A.Expr): A.Expr {
    return { kind: 'unary', op: op.tokenType === T.Not ? 'not' : '-', arg, span: this.range(op, arg.span) };
  }

  has(object: A.Expr, name: IToken): A.Expr {
    const nameSpan = this.span(name);
    return { kind: 'has', object, name: this.name(name), nameSpan, span: joinSpans(object.span, nameSpan) };
  }

  member(object: A.Expr, name: IToken): A.Expr {
    if (!real(name)) return object;
    const nameSpan = this.span(name);
    return { kind: 'member', object, name: name.image, nameSpan, span: joinSpans(object.span, nameSpan) };
  }

  literal(t: IToken): A.Expr {
    if (!real(t)) return this.errorExpr();
    const span = this.span(t);
    switch (t.tokenType) {
      case T.StringLiteral:
        return { kind: 'string', value: decodeString(t.image).value, span };
      case T.NumberLiteral: {
        const v = Number(t.image);
        return { kind: 'number', value: Number.isNaN(v) ? 0 : v, span };
      }
      case T.VersionLiteral:
        return { kind: 'version', raw: t.image, span };
      case T.DurationLiteral:
        return { kind: 'duration', raw: t.image, seconds: durationSeconds(t.image), span };
      case T.True:
        return { kind: 'bool', value: true, span };
      case T.False:
        return { kind: 'bool', value: false, span };
      case T.Risk:
        return { kind: 'risk', span };
      case T.Granted:
        return { kind: 'granted', span };
      default:
        return { kind: 'error', span };
    }
  }

  nameOrCall(id: IToken, call: { args: A.Expr[]; close: IToken } | undefined): A.Expr {
    const idSpan = this.span(id);
    if (!call) return real(id) ? { kind: 'ident', name: id.image, span: idSpan } : this.errorExpr();
    return { kind: 'call', callee: this.name(id), calleeSpan: idSpan, args: call.args, span: this.range(idSpan, call.close) };
  }

  recordField(name: IToken, value: A.Expr): A.RecordField {
    const nameSpan = this.span(name);
    return { name: this.name(name), nameSpan, value, span: joinSpans(nameSpan, value.span) };
  }

  matchArm(label: IToken, value: A.Expr): A.MatchArm {
    const labelSpan = this.span(label);
    const labelKind = label.tokenType === T.StringLiteral ? 'string' : label.tokenType === T.True || label.tokenType === T.False ? 'bool' : 'name';
    const text = !real(label) ? '' : labelKind === 'string' ? decodeString(label.image).value : label.image;
    return { label: text, labelKind, labelSpan, value, span: joinSpans(labelSpan, value.span) };
  }
}

// ---------------------------------------------------------------- depth

/** Children of an expression, for iterative walks (no recursion on untrusted depth). */
export function exprChildren(e: A.Expr): A.Expr[] {
  switch (e.kind) {
    case 'string':
    case 'number':
    case 'bool':
    case 'version':
    case 'duration':
    case 'ident':
    case 'risk':
    case 'granted':
    case 'error':
      return [];
    case 'member':
    case 'has':
      return [e.object];
    case 'call':
      return e.args;
    case 'list':
      return e.items;
    case 'record':
      return e.fields.map((f) => f.value);
    case 'unary':
      return [e.arg];
    case 'binary':
      return [e.left, e.right];
    case 'match':
      return [e.subject, ...e.arms.map((a) => a.value), ...(e.otherwise ? [e.otherwise] : [])];
    default:
      return assertNeverExpr(e);
  }
}

function assertNeverExpr(x: never): never {
  throw new Error(`unhandled expression: ${JSON.stringify(x)}`);
}

/** The first node deeper than `MAX_EXPRESSION_DEPTH` levels below `root`, if any.
 *  Iterative and allocation-light: it runs over every expression of every file. */
export function tooDeep(root: A.Expr): A.Expr | undefined {
  const nodes: A.Expr[] = [root];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const e = nodes.pop()!;
    const d = depths.pop()!;
    if (d > MAX_EXPRESSION_DEPTH) return e;
    const next = d + 1;
    switch (e.kind) {
      case 'member':
      case 'has':
        nodes.push(e.object);
        depths.push(next);
        break;
      case 'unary':
        nodes.push(e.arg);
        depths.push(next);
        break;
      case 'binary':
        nodes.push(e.left, e.right);
        depths.push(next, next);
        break;
      case 'call':
      case 'list':
      case 'record':
      case 'match':
        for (const c of exprChildren(e)) {
          nodes.push(c);
          depths.push(next);
        }
        break;
      default:
        break;
    }
  }
  return undefined;
}
