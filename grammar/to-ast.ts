// CST → AST: turns the parser's concrete tree into grammar/ast.ts nodes with spans. It keeps
// going after syntax errors (missing pieces become ErrorExpr or empty names) and reports
// the few structural errors the grammar leaves open (unknown test items, bad level members).
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type * as A from './ast.js';
import { decodeString, durationSeconds, tokenSpan } from './lexer.js';
import * as T from './lexer.js';
import { closest, diagnostic } from '../engine/diagnostics.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import { MAX_EXPRESSION_DEPTH } from './parser.js';

function isToken(e: CstElement): e is IToken {
  return 'tokenType' in e;
}

function toks(n: CstNode | undefined, key: string): IToken[] {
  const c = n?.children[key];
  return c ? (c.filter(isToken)) : [];
}

function tok(n: CstNode | undefined, key: string, i = 0): IToken | undefined {
  const c = n?.children[key]?.[i];
  return c && isToken(c) && !c.isInsertedInRecovery ? c : undefined;
}

function nodes(n: CstNode | undefined, key: string): CstNode[] {
  const c = n?.children[key];
  return c ? (c.filter((e): e is CstNode => !isToken(e))) : [];
}

function node(n: CstNode | undefined, key: string, i = 0): CstNode | undefined {
  const c = n?.children[key]?.[i];
  return c && !isToken(c) ? c : undefined;
}

function join(a: A.Span, b: A.Span): A.Span {
  return {
    file: a.file,
    line: a.line,
    col: a.col,
    endLine: b.endLine,
    endCol: b.endCol,
    offset: a.offset,
    endOffset: b.endOffset,
  };
}

const INPUT_ROOTS = new Set(['agent', 'resource', 'task', 'registered', 'behavior']);
const TEST_ITEMS = ['agent', 'resource', 'task', 'registered', 'behavior', 'action', 'grant', 'now', 'expect'];

export interface AstResult {
  decls: A.Decl[];
  diagnostics: Diagnostic[];
}

/** Converts a `file` CST to declarations. `hasSyntaxErrors` suppresses follow-up
 *  structural errors (like "no outcome") that a recovered parse would make up. */
export function cstToAst(cst: CstNode, file: string, hasSyntaxErrors: boolean): AstResult {
  const b = new AstBuilder(file, hasSyntaxErrors);
  const decls: A.Decl[] = [];
  for (const d of nodes(cst, 'declaration')) {
    const decl = b.declaration(d);
    if (decl) decls.push(decl);
  }
  return { decls, diagnostics: b.diagnostics };
}

class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];
  /** The last good position seen: where nodes that failed to parse are placed. */
  private last: A.Span;

  constructor(
    private readonly file: string,
    private readonly hasSyntaxErrors: boolean,
  ) {
    this.last = { file, line: 1, col: 1, endLine: 1, endCol: 1, offset: 0, endOffset: 0 };
  }

  private error(span: A.Span, message: string, hint?: string): void {
    this.diagnostics.push(diagnostic('agp_parse_error', span, message, hint));
  }

  private tspan(t: IToken | undefined): A.Span {
    if (t === undefined || t.isInsertedInRecovery || Number.isNaN(t.startOffset)) return this.last;
    const s = tokenSpan(this.file, t);
    this.last = s;
    return s;
  }

  private nspan(n: CstNode | undefined): A.Span {
    const l = n?.location;
    if (!l || Number.isNaN(l.startOffset) || Number.isNaN(l.endOffset ?? NaN)) return this.last;
    return {
      file: this.file,
      line: l.startLine ?? 1,
      col: l.startColumn ?? 1,
      endLine: l.endLine ?? 1,
      endCol: l.endColumn ?? 1,
      offset: l.startOffset,
      endOffset: (l.endOffset ?? l.startOffset) + 1,
    };
  }

  private errorExpr(): A.ErrorExpr {
    return { kind: 'error', span: this.last };
  }

  private string(t: IToken | undefined): A.StringLit {
    return { kind: 'string', value: t ? decodeString(t.image).value : '', span: this.tspan(t) };
  }

  // ------------------------------------------------------------ declarations

  declaration(n: CstNode): A.Decl | undefined {
    const c = n.children;
    if (c['schemaDecl']) return this.schema(node(n, 'schemaDecl')!);
    if (c['letDecl']) return this.let(node(n, 'letDecl')!);
    if (c['riskDecl']) return this.risk(node(n, 'riskDecl')!);
    if (c['policyDecl']) return this.policy(node(n, 'policyDecl')!);
    if (c['forbidDecl']) return this.forbid(node(n, 'forbidDecl')!);
    if (c['testDecl']) return this.test(node(n, 'testDecl')!);
    return undefined;
  }

  private schema(n: CstNode): A.SchemaDecl {
    const span = this.nspan(n);
    return { kind: 'schema', roots: nodes(n, 'field').map((f) => this.field(f)), span };
  }

  private field(n: CstNode): A.SchemaField {
    const nameTok = tok(n, 'name');
    const nameSpan = this.tspan(nameTok);
    const optional = tok(n, 'Question') !== undefined;
    const rt = node(n, 'recordType');
    const te = node(n, 'typeExpr');
    const type: A.TypeExpr = rt ? this.recordType(rt) : te ? this.typeExpr(te) : { kind: 'type_name', name: '', args: [], span: this.last };
    return { kind: 'field', name: nameTok?.image ?? '', nameSpan, optional, type, span: join(nameSpan, type.span) };
  }

  private recordType(n: CstNode): A.RecordType {
    const span = this.nspan(n);
    return { kind: 'type_record', fields: nodes(n, 'field').map((f) => this.field(f)), span };
  }

  private typeExpr(n: CstNode): A.TypeExpr {
    const rt = node(n, 'recordType');
    if (rt) return this.recordType(rt);
    const span = this.nspan(n);
    const id = tok(n, 'Identifier');
    const name = id?.image ?? '';
    this.tspan(id);
    const args = nodes(n, 'args').map((a) => this.typeExpr(a));
    if (name === 'level' && n.children['Less']) {
      const members: { name: string; span: A.Span }[] = [];
      for (const a of args) {
        if (a.kind === 'type_name' && a.args.length === 0) members.push({ name: a.name, span: a.span });
        else this.error(a.span, 'a level member must be a plain name', 'write the members in order, e.g. `level<low, medium, high>`');
      }
      return { kind: 'type_level', members, span };
    }
    return { kind: 'type_name', name, args, span };
  }

  private let(n: CstNode): A.LetDecl {
    const span = this.nspan(n);
    const id = tok(n, 'Identifier');
    const nameSpan = this.tspan(id);
    return { kind: 'let', name: id?.image ?? '', nameSpan, value: this.expression(node(n, 'expression')), span };
  }

  private risk(n: CstNode): A.RiskDecl {
    const span = this.nspan(n);
    const factors = nodes(n, 'factor').map((f): A.RiskFactorDecl => {
      const id = tok(f, 'Identifier');
      const nameSpan = this.tspan(id);
      const value = this.expression(node(f, 'value'));
      const condNode = node(f, 'condition');
      const condition = condNode || f.children['If'] ? this.expression(condNode) : null;
      return { kind: 'factor', name: id?.image ?? '', nameSpan, value, condition, span: join(nameSpan, (condition ?? value).span) };
    });
    return { kind: 'risk', factors, span };
  }

  private optionalExpr(n: CstNode, keyword: string, label: string): A.Expr | null {
    const e = node(n, label);
    if (e) return this.expression(e);
    return n.children[keyword] ? this.errorExpr() : null;
  }

  private policy(n: CstNode): A.PolicyDecl {
    const span = this.nspan(n);
    const id = tok(n, 'Identifier');
    const nameSpan = this.tspan(id);
    const desc = tok(n, 'StringLiteral');
    const description = desc ? this.string(desc) : null;
    const target = this.optionalExpr(n, 'On', 'target');
    const when = this.optionalExpr(n, 'When', 'when');
    const outcomes = nodes(n, 'outcome').map((o) => this.outcome(o));
    if (outcomes.length === 0 && !this.hasSyntaxErrors)
      this.error(nameSpan, `policy \`${id?.image ?? ''}\` has no outcome`, 'add `permit`, `deny` or `escalate`, e.g. `permit if risk < 40`');
    return { kind: 'policy', forbid: false, name: id?.image ?? '', nameSpan, description, target, when, outcomes, span };
  }

  private outcome(n: CstNode): A.Outcome {
    const span = this.nspan(n);
    const effect = tok(n, 'Effect')?.image as A.Effect | undefined;
    const condition = this.optionalExpr(n, 'If', 'expression');
    const rec = node(n, 'recordLit');
    const obligations = rec ? this.record(rec) : n.children['With'] ? { kind: 'record' as const, fields: [], span: this.last } : null;
    const reasonTok = tok(n, 'StringLiteral');
    const reason = reasonTok || n.children['Because'] ? this.string(reasonTok) : null;
    return { kind: 'outcome', effect: effect ?? 'deny', condition, obligations, reason, span };
  }

  private forbid(n: CstNode): A.PolicyDecl {
    const span = this.nspan(n);
    const id = tok(n, 'Identifier');
    const nameSpan = this.tspan(id);
    const desc = tok(n, 'description');
    const description = desc ? this.string(desc) : null;
    const target = this.optionalExpr(n, 'On', 'target');
    const when = this.optionalExpr(n, 'When', 'when');
    const reasonTok = tok(n, 'reason');
    const reason = reasonTok || n.children['Because'] ? this.string(reasonTok) : null;
    const outcome: A.Outcome = { kind: 'outcome', effect: 'deny', condition: null, obligations: null, reason, span };
    return { kind: 'policy', forbid: true, name: id?.image ?? '', nameSpan, description, target, when, outcomes: [outcome], span };
  }

  private test(n: CstNode): A.TestDecl {
    const span = this.nspan(n);
    const name = this.string(tok(n, 'StringLiteral'));
    const items: A.TestItem[] = [];
    for (const i of nodes(n, 'testItem')) {
      const item = this.testItem(i);
      if (item) items.push(item);
    }
    return { kind: 'test', name, items, span };
  }

  private testItem(n: CstNode): A.TestItem | undefined {
    const span = this.nspan(n);
    const exp = node(n, 'expectation');
    if (exp) return this.expectation(exp, span);
    const id = tok(n, 'Identifier');
    if (!id) return undefined;
    const what = id.image;
    const idSpan = this.tspan(id);
    const rec = node(n, 'recordLit');
    const str = tok(n, 'StringLiteral');
    if (INPUT_ROOTS.has(what) || what === 'grant') {
      if (rec) {
        const value = this.record(rec);
        return what === 'grant' ? { kind: 'test_grant', value, span } : { kind: 'test_input', root: what as 'agent', value, span };
      }
      this.error(idSpan, `\`${what}\` takes a record`, `write \`${what} { ... }\``);
      return undefined;
    }
    if (what === 'action' || what === 'now') {
      if (str) {
        const value = this.string(str);
        return what === 'action' ? { kind: 'test_action', value, span } : { kind: 'test_now', value, span };
      }
      this.error(idSpan, `\`${what}\` takes a string`, what === 'now' ? 'write `now "2026-01-01T00:00:00Z"`' : 'write `action "read"`');
      return undefined;
    }
    const guess = closest(what, TEST_ITEMS);
    this.error(idSpan, `unknown test item \`${what}\``, guess ? `did you mean \`${guess}\`?` : `a test item is one of ${TEST_ITEMS.map((x) => `\`${x}\``).join(', ')}`);
    return undefined;
  }

  private expectation(n: CstNode, span: A.Span): A.TestItem | undefined {
    const eff = tok(n, 'Effect');
    if (eff) {
      const rec = node(n, 'recordLit');
      return { kind: 'expect_effect', effect: eff.image as A.Effect, obligations: rec ? this.record(rec) : null, span };
    }
    const names = toks(n, 'names').filter((t) => !t.isInsertedInRecovery).map((t) => ({ name: t.image, span: this.tspan(t) }));
    if (n.children['Risk']) {
      const op = tok(n, 'NumericCompare')?.image as A.CompareOp | undefined;
      return { kind: 'expect_risk', op: op ?? '==', value: this.signedNumber(node(n, 'signedNumber')), span };
    }
    if (n.children['Policy']) return { kind: 'expect_policies', names, span };
    const what = tok(n, 'what');
    if (!what) return undefined;
    const whatSpan = this.tspan(what);
    const shapes: Record<string, string> = {
      factor: '`expect factor <name> <comparison> <number>`',
      policies: '`expect policies [a, b]`',
      reason: '`expect reason "text"`',
    };
    const shape = n.children['LBracket'] ? 'policies' : n.children['StringLiteral'] ? 'reason' : 'factor';
    if (what.image !== shape) {
      if (shapes[what.image]) this.error(whatSpan, `\`expect ${what.image}\` is written ${shapes[what.image]}`);
      else {
        const guess = closest(what.image, ['permit', 'deny', 'escalate', 'risk', 'factor', 'policy', 'policies', 'reason']);
        this.error(whatSpan, `unknown expectation \`${what.image}\``, guess ? `did you mean \`expect ${guess}\`?` : 'write `expect permit`, `expect risk < 40`, `expect factor f >= 10`, `expect policy p` or `expect reason "text"`');
      }
      return undefined;
    }
    if (shape === 'policies') return { kind: 'expect_policies', names, span };
    if (shape === 'reason') return { kind: 'expect_reason', value: this.string(tok(n, 'StringLiteral')), span };
    const factor = names[0];
    const op = tok(n, 'NumericCompare')?.image as A.CompareOp | undefined;
    return {
      kind: 'expect_factor',
      name: factor?.name ?? '',
      nameSpan: factor?.span ?? this.last,
      op: op ?? '==',
      value: this.signedNumber(node(n, 'signedNumber')),
      span,
    };
  }

  private signedNumber(n: CstNode | undefined): A.NumberLit {
    const num = tok(n, 'NumberLiteral');
    const minus = tok(n, 'Minus');
    const v = num ? Number(num.image) : 0;
    const value = Number.isNaN(v) ? 0 : v;
    const numSpan = this.tspan(num);
    return minus ? { kind: 'number', value: -value, span: join(tokenSpan(this.file, minus), numSpan) } : { kind: 'number', value, span: numSpan };
  }

  // ------------------------------------------------------------ expressions

  expression(n: CstNode | undefined): A.Expr {
    const or = node(n, 'orExpr');
    return or ? this.chain(or, (x) => this.chain(x, (y) => this.not(y))) : this.errorExpr();
  }

  /** A left-associative chain `operands[0] op operands[1] op ...`. */
  private chain(n: CstNode, operand: (x: CstNode) => A.Expr): A.Expr {
    const ops = toks(n, 'op');
    const operands = nodes(n, 'operands');
    let left = operands[0] ? operand(operands[0]) : this.errorExpr();
    for (let i = 0; i < ops.length; i++) {
      const next = operands[i + 1];
      const right = next ? operand(next) : this.errorExpr();
      left = { kind: 'binary', op: ops[i]!.image as A.BinaryOp, left, right, span: join(left.span, right.span) };
    }
    return left;
  }

  private not(n: CstNode): A.Expr {
    const notTok = tok(n, 'Not');
    if (n.children['Not']) {
      const start = this.tspan(notTok);
      const inner = node(n, 'notExpr');
      const arg = inner ? this.not(inner) : this.errorExpr();
      return { kind: 'unary', op: 'not', arg, span: join(start, arg.span) };
    }
    const cmp = node(n, 'compareExpr');
    return cmp ? this.compare(cmp) : this.errorExpr();
  }

  private compare(n: CstNode): A.Expr {
    const operands = nodes(n, 'operands');
    const left = operands[0] ? this.additive(operands[0]) : this.errorExpr();
    if (n.children['Has']) {
      const nameTok = tok(n, 'name');
      const nameSpan = this.tspan(nameTok);
      return { kind: 'has', object: left, name: nameTok?.image ?? '', nameSpan, span: join(left.span, nameSpan) };
    }
    const op = toks(n, 'op')[0];
    if (!op) return left;
    const right = operands[1] ? this.additive(operands[1]) : this.errorExpr();
    return { kind: 'binary', op: op.image as A.BinaryOp, left, right, span: join(left.span, right.span) };
  }

  private additive(n: CstNode): A.Expr {
    return this.chain(n, (x) => this.chain(x, (y) => this.unary(y)));
  }

  private unary(n: CstNode): A.Expr {
    if (n.children['Minus']) {
      const start = this.tspan(tok(n, 'Minus'));
      const inner = node(n, 'unaryExpr');
      const arg = inner ? this.unary(inner) : this.errorExpr();
      return { kind: 'unary', op: '-', arg, span: join(start, arg.span) };
    }
    const pf = node(n, 'postfixExpr');
    if (!pf) return this.errorExpr();
    const prim = node(pf, 'primary');
    let e = prim ? this.primary(prim) : this.errorExpr();
    for (const nameTok of toks(pf, 'names')) {
      if (nameTok.isInsertedInRecovery) continue;
      const nameSpan = this.tspan(nameTok);
      e = { kind: 'member', object: e, name: nameTok.image, nameSpan, span: join(e.span, nameSpan) };
    }
    return e;
  }

  private primary(n: CstNode): A.Expr {
    const c = n.children;
    const first = Object.values(c)[0]?.[0];
    if (first && isToken(first) && c['Identifier'] === undefined) {
      const span = this.tspan(first);
      switch (first.tokenType) {
        case T.StringLiteral:
          return { kind: 'string', value: decodeString(first.image).value, span };
        case T.NumberLiteral: {
          const v = Number(first.image);
          return { kind: 'number', value: Number.isNaN(v) ? 0 : v, span };
        }
        case T.VersionLiteral:
          return { kind: 'version', raw: first.image, span };
        case T.DurationLiteral:
          return { kind: 'duration', raw: first.image, seconds: durationSeconds(first.image), span };
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
    const id = tok(n, 'Identifier');
    if (c['Identifier']) {
      const idSpan = this.tspan(id);
      const args = node(n, 'callArgs');
      if (!args) return id ? { kind: 'ident', name: id.image, span: idSpan } : this.errorExpr();
      const argExprs = nodes(args, 'args').map((a) => this.expression(a));
      const span = join(idSpan, this.nspan(args));
      return { kind: 'call', callee: id?.image ?? '', calleeSpan: idSpan, args: argExprs, span };
    }
    const list = node(n, 'listLit');
    if (list) {
      const span = this.nspan(list);
      return { kind: 'list', items: nodes(list, 'items').map((i) => this.expression(i)), span };
    }
    const rec = node(n, 'recordLit');
    if (rec) return this.record(rec);
    const m = node(n, 'matchExpr');
    if (m) return this.match(m);
    const p = node(n, 'parenExpr');
    if (p) return this.expression(node(p, 'expression'));
    return this.errorExpr();
  }

  private record(n: CstNode): A.RecordLit {
    const span = this.nspan(n);
    const fields = nodes(n, 'recordField').map((f): A.RecordField => {
      const nameTok = tok(f, 'name');
      const nameSpan = this.tspan(nameTok);
      const value = this.expression(node(f, 'expression'));
      return { name: nameTok?.image ?? '', nameSpan, value, span: join(nameSpan, value.span) };
    });
    return { kind: 'record', fields, span };
  }

  private match(n: CstNode): A.Match {
    const span = this.nspan(n);
    const subject = this.expression(node(n, 'subject'));
    const arms = nodes(n, 'matchArm').map((a): A.MatchArm => {
      const l = tok(a, 'label');
      const labelSpan = this.tspan(l);
      const labelKind = l?.tokenType === T.StringLiteral ? 'string' : l?.tokenType === T.True || l?.tokenType === T.False ? 'bool' : 'name';
      const label = l === undefined ? '' : labelKind === 'string' ? decodeString(l.image).value : l.image;
      const value = this.expression(node(a, 'expression'));
      return { label, labelKind, labelSpan, value, span: join(labelSpan, value.span) };
    });
    const otherwise = this.optionalExpr(n, 'Else', 'otherwise');
    return { kind: 'match', subject, arms, otherwise, span };
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

/** The first node deeper than `MAX_EXPRESSION_DEPTH` levels below `root`, if any. */
export function tooDeep(root: A.Expr): A.Expr | undefined {
  const stack: [A.Expr, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [e, d] = stack.pop()!;
    if (d > MAX_EXPRESSION_DEPTH) return e;
    for (const c of exprChildren(e)) stack.push([c, d + 1]);
  }
  return undefined;
}
