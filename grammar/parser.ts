// The .agp parser: one Chevrotain EmbeddedActionsParser with error recovery, reused for
// every file (`parser.input = tokens` resets it), which builds the AST directly through
// grammar/to-ast.ts; plus the token pre-scan for nesting limits and the syntax-error
// messages users read.
import { EmbeddedActionsParser, EOF, tokenMatcher } from 'chevrotain';
import type { IOrAlt, IParserErrorMessageProvider, IRecognitionException, IToken, TokenType } from 'chevrotain';
import type * as A from './ast.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import * as T from './lexer.js';
import { AstBuilder } from './to-ast.js';
import type { Expectation, Operand, OperatorItem } from './to-ast.js';

/** Prefix operators and brackets may nest this deep (checked on tokens before parsing). */
export const MAX_NESTING = 64;
/** Backstop inside the parser: Chevrotain rule nesting that can only be reached if the
 *  token pre-scan missed something. Well below what overflows the JS stack. */
const MAX_RULE_DEPTH = MAX_NESTING * 8 + 64;

/** Thrown out of the parser by the backstop guard; turned into `agp_limit_error`. */
export class NestingLimitError extends Error {
  constructor(readonly token: IToken) {
    super('nesting limit');
  }
}

// ---------------------------------------------------------------- messages

/** What the current parse needs to explain bracket errors ("opened at 3:1"). */
interface MessageContext {
  /** The parser pads this array with EOF sentinels while it runs: use `count`. */
  tokens: IToken[];
  count: number;
  /** Start offsets, computed on the first error. */
  offsets?: number[];
  /** For each token index i: the innermost bracket still open before token i, or -1. */
  openBefore: Int32Array;
  /** For each opening bracket: the bracket that encloses it, or -1. */
  parentOpen: Int32Array;
}

let current: MessageContext | null = null;

const HINT = '\u0000';

const CLOSERS = new Map<TokenType, TokenType>([
  [T.RBrace, T.LBrace],
  [T.RParen, T.LParen],
  [T.RBracket, T.LBracket],
]);

const RULE_WHAT: Record<string, string> = {
  schemaDecl: 'schema',
  recordType: 'record type',
  riskDecl: 'risk block',
  policyDecl: 'policy',
  forbidDecl: 'forbid',
  testDecl: 'test',
  recordLit: 'record',
  listLit: 'list',
  matchExpr: 'match',
  parenExpr: 'parenthesis',
  callArgs: 'argument list',
  expectation: 'list',
};

const DECL_KEYWORDS: TokenType[] = [T.Schema, T.Risk, T.Policy, T.Forbid, T.Test];

export function describeToken(t: IToken | undefined): string {
  if (t === undefined || t.tokenType === EOF) return 'end of file';
  const image = t.image.length > 30 ? `${t.image.slice(0, 27)}...` : t.image;
  return `\`${image}\``;
}

function tokenIndex(ctx: MessageContext, t: IToken): number {
  if (t.tokenType === EOF || Number.isNaN(t.startOffset)) return ctx.count;
  ctx.offsets ??= ctx.tokens.slice(0, ctx.count).map((x) => x.startOffset);
  const offsets = ctx.offsets;
  let lo = 0;
  let hi = offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offsets[mid]! < t.startOffset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function openerPhrase(expected: TokenType, actual: IToken, ruleName: string): string {
  const ctx = current;
  const opener = CLOSERS.get(expected);
  if (!ctx || !opener) return '';
  let i = ctx.openBefore[tokenIndex(ctx, actual)] ?? -1;
  while (i >= 0 && ctx.tokens[i]!.tokenType !== opener) i = ctx.parentOpen[i] ?? -1;
  if (i < 0) return '';
  let at = ctx.tokens[i]!;
  if (expected === T.RBrace) {
    for (let j = i - 1; j >= Math.max(0, i - 3); j--) {
      const k = ctx.tokens[j]!;
      if (DECL_KEYWORDS.includes(k.tokenType)) {
        at = k;
        break;
      }
    }
  }
  const what = RULE_WHAT[ruleName] ?? (expected === T.RParen ? 'parenthesis' : expected === T.RBracket ? 'list' : 'block');
  return ` to close the ${what} opened at ${at.startLine ?? 1}:${at.startColumn ?? 1}`;
}

/** Rules where an expression may just have ended, so `=` or a second comparison is a slip. */
const EXPRESSION_RULES = new Set([
  'expression', 'operand', 'primary', 'outcome', 'policyDecl', 'forbidDecl', 'riskDecl',
]);

function hintFor(actual: IToken, ruleName: string): string {
  if (actual.tokenType === T.Equals && EXPRESSION_RULES.has(ruleName)) return `${HINT}compare with \`==\``;
  if (tokenMatcher(actual, T.CompareOperator) && EXPRESSION_RULES.has(ruleName))
    return `${HINT}comparisons do not chain: combine them with \`and\`, or add parentheses`;
  return '';
}

/** What may come before the `}` of each block, for "expected X or `}`" messages. */
const BLOCK_ITEMS: Record<string, string> = {
  schemaDecl: 'a field',
  recordType: 'a field',
  riskDecl: 'a risk factor',
  policyDecl: 'an outcome (`permit`, `deny` or `escalate`)',
  forbidDecl: '`because`',
  testDecl: 'a test item',
  recordLit: 'a field',
  matchExpr: 'an arm',
};

const DECLARATION = 'a declaration (`schema`, `let`, `risk`, `policy`, `forbid` or `test`)';

const NO_VIABLE: Record<string, string> = {
  declaration: DECLARATION,
  typeExpr: 'a type',
  field: '`:` and a type',
  testItem: 'a test item (`agent`, `resource`, `task`, `registered`, `behavior`, `action`, `grant`, `now` or `expect`)',
  expectation: '`permit`, `deny`, `escalate`, `risk`, `factor`, `policy`, `policies` or `reason` after `expect`',
  matchArm: 'a match label (a name, a string, `true` or `false`)',
};

function notAllInput(t: IToken): string {
  const hint = tokenMatcher(t, T.RBrace)
    ? `${HINT}this \`}\` closes nothing; remove it`
    : tokenMatcher(t, T.CompareOperator)
      ? `${HINT}comparisons do not chain: combine them with \`and\`, or add parentheses`
      : '';
  return `expected ${DECLARATION}, found ${describeToken(t)}${hint}`;
}

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, ruleName }) {
    if (expected === EOF) return notAllInput(actual);
    const item = expected === T.RBrace ? BLOCK_ITEMS[ruleName] : undefined;
    const name = item ? `${item} or \`}\`` : expected.LABEL ?? expected.name;
    return `expected ${name}${openerPhrase(expected, actual, ruleName)}, found ${describeToken(actual)}${hintFor(actual, ruleName)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return notAllInput(firstRedundant);
  },
  buildNoViableAltMessage({ actual, ruleName }) {
    const what = NO_VIABLE[ruleName] ?? 'an expression';
    return `expected ${what}, found ${describeToken(actual[0])}${hintFor(actual[0]!, ruleName)}`;
  },
  buildEarlyExitMessage({ actual, ruleName }) {
    return `expected ${NO_VIABLE[ruleName] ?? 'more input'}, found ${describeToken(actual[0])}`;
  },
};

// ---------------------------------------------------------------- grammar

/** Shared by every operand without prefix operators (most of them): one allocation less each. */
const NO_PREFIXES: IToken[] = [];

type Rule<R> = (idx?: number) => R;

class AgpParser extends EmbeddedActionsParser {
  /** The AST builder of the parse in progress. */
  b: AstBuilder = new AstBuilder('');

  constructor() {
    super(T.ALL_TOKENS, {
      recoveryEnabled: true,
      maxLookahead: 3,
      errorMessageProvider: messages,
    });
    this.performSelfAnalysis();
  }

  private guardDepth(): void {
    this.ACTION(() => {
      const depth = (this as unknown as { RULE_STACK_IDX?: number }).RULE_STACK_IDX ?? 0;
      if (depth > MAX_RULE_DEPTH) throw new NestingLimitError(this.LA(1));
    });
  }

  private readonly errorValue = (e: IRecognitionException): A.Expr => this.b.errorExpr(e.token);
  private readonly nothing = (): undefined => undefined;
  // Recovery values of rules whose callers need a node: each stands at the failing token, and
  // the syntax error there already rejects the file.
  private readonly errorOperand = (e: IRecognitionException): Operand => ({ prefixes: NO_PREFIXES, atom: this.b.errorExpr(e.token) });
  private readonly errorNumber = (e: IRecognitionException): A.NumberLit => this.b.signedNumber(undefined, e.token);
  private readonly errorArgs = (e: IRecognitionException): { args: A.Expr[]; close: IToken } => ({ args: [], close: e.token });
  private readonly errorRecord = (e: IRecognitionException): A.RecordLit => ({ kind: 'record', fields: [], span: this.b.errorExpr(e.token).span });

  /** Declarations parsed so far: kept here so that a recovery in `file` loses none. */
  decls: A.Decl[] = [];

  file: Rule<void> = this.RULE('file', () => {
    this.MANY(() => {
      const d = this.SUBRULE(this.declaration);
      this.ACTION(() => d && this.decls.push(d));
    });
  });

  declaration: Rule<A.Decl | undefined> = this.RULE(
    'declaration',
    () =>
      this.OR<A.Decl | undefined>([
        { ALT: () => this.SUBRULE(this.schemaDecl) },
        { ALT: () => this.SUBRULE(this.letDecl) },
        { ALT: () => this.SUBRULE(this.riskDecl) },
        { ALT: () => this.SUBRULE(this.policyDecl) },
        { ALT: () => this.SUBRULE(this.forbidDecl) },
        { ALT: () => this.SUBRULE(this.testDecl) },
      ]),
    { recoveryValueFunc: this.nothing },
  );

  schemaDecl: Rule<A.SchemaDecl> = this.RULE('schemaDecl', () => {
    const kw = this.CONSUME(T.Schema);
    this.CONSUME(T.LBrace);
    const roots: A.SchemaField[] = [];
    this.MANY(() => {
      const f = this.SUBRULE(this.field);
      this.ACTION(() => f && roots.push(f));
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'schema' as const, roots, span: this.b.range(kw, close) }));
  });

  field: Rule<A.SchemaField | undefined> = this.RULE(
    'field',
    (): A.SchemaField | undefined => {
      const name = this.CONSUME(T.AnyName);
      const question = this.OPTION(() => this.CONSUME(T.Question));
      const type = this.OR<A.TypeExpr | undefined>([
        {
          ALT: () => {
            this.CONSUME(T.Colon);
            return this.SUBRULE(this.typeExpr);
          },
        },
        { ALT: () => this.SUBRULE(this.recordType) },
      ]);
      this.OPTION2(() => this.CONSUME(T.Comma));
      return this.ACTION(() => this.b.field(name, question, type));
    },
    { recoveryValueFunc: this.nothing },
  );

  // A type that failed to parse yields `undefined` (recovery), never a half-built node: the
  // callers drop it, and the syntax error already says what was wrong.
  typeExpr: Rule<A.TypeExpr | undefined> = this.RULE(
    'typeExpr',
    (): A.TypeExpr | undefined => {
      this.guardDepth();
      return this.OR<A.TypeExpr | undefined>([
        { ALT: () => this.SUBRULE(this.recordType) },
        {
          ALT: () => {
            const id = this.CONSUME(T.Identifier);
            const args: A.TypeExpr[] = [];
            let less: IToken | undefined;
            let close: IToken | undefined;
            this.OPTION(() => {
              less = this.CONSUME(T.Less);
              const first = this.SUBRULE(this.typeExpr);
              this.ACTION(() => first && args.push(first));
              this.MANY(() => {
                this.CONSUME(T.Comma);
                const next = this.SUBRULE2(this.typeExpr);
                this.ACTION(() => next && args.push(next));
              });
              close = this.CONSUME(T.Greater);
            });
            return this.ACTION(() => this.b.typeName(id, less, args, close));
          },
        },
      ]);
    },
    { recoveryValueFunc: this.nothing },
  );

  recordType: Rule<A.RecordType | undefined> = this.RULE(
    'recordType',
    (): A.RecordType | undefined => {
      const open = this.CONSUME(T.LBrace);
      const fields: A.SchemaField[] = [];
      this.MANY(() => {
        const f = this.SUBRULE(this.field);
        this.ACTION(() => f && fields.push(f));
      });
      const close = this.CONSUME(T.RBrace);
      return this.ACTION(() => ({ kind: 'type_record' as const, fields, span: this.b.range(open, close) }));
    },
    { recoveryValueFunc: this.nothing },
  );

  letDecl: Rule<A.LetDecl> = this.RULE('letDecl', () => {
    const kw = this.CONSUME(T.Let);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    const value = this.SUBRULE(this.expression);
    return this.ACTION(() => ({
      kind: 'let' as const,
      name: this.b.name(name),
      nameSpan: this.b.span(name),
      value,
      span: this.b.range(kw, value.span),
    }));
  });

  riskDecl: Rule<A.RiskDecl> = this.RULE('riskDecl', () => {
    const kw = this.CONSUME(T.Risk);
    this.CONSUME(T.LBrace);
    const factors: A.RiskFactorDecl[] = [];
    this.MANY(() => {
      const f = this.SUBRULE(this.factor);
      this.ACTION(() => f && factors.push(f));
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'risk' as const, factors, span: this.b.range(kw, close) }));
  });

  factor: Rule<A.RiskFactorDecl | undefined> = this.RULE(
    'factor',
    (): A.RiskFactorDecl | undefined => {
      const name = this.CONSUME(T.Identifier);
      this.CONSUME(T.Colon);
      const value = this.SUBRULE(this.expression);
      const condition = this.OPTION(() => {
        this.CONSUME(T.If);
        return this.SUBRULE2(this.expression);
      });
      this.OPTION2(() => this.CONSUME(T.Comma));
      return this.ACTION(() => {
        const nameSpan = this.b.span(name);
        return {
          kind: 'factor' as const,
          name: this.b.name(name),
          nameSpan,
          value,
          condition: condition ?? null,
          span: this.b.range(nameSpan, (condition ?? value).span),
        };
      });
    },
    { recoveryValueFunc: this.nothing },
  );

  /** `[on expr] [when expr]` at the start of a policy or forbid body. */
  private onWhen(): { target: A.Expr | null; when: A.Expr | null } {
    const target = this.OPTION7(() => {
      this.CONSUME(T.On);
      return this.SUBRULE7(this.expression);
    });
    const when = this.OPTION8(() => {
      this.CONSUME(T.When);
      return this.SUBRULE8(this.expression);
    });
    return { target: target ?? null, when: when ?? null };
  }

  policyDecl: Rule<A.PolicyDecl> = this.RULE('policyDecl', () => {
    const kw = this.CONSUME(T.Policy);
    const name = this.CONSUME(T.Identifier);
    const desc = this.OPTION(() => this.CONSUME(T.StringLiteral));
    this.CONSUME(T.LBrace);
    const { target, when } = this.onWhen();
    const outcomes: A.Outcome[] = [];
    this.MANY(() => {
      const o = this.SUBRULE(this.outcome);
      this.ACTION(() => o && outcomes.push(o));
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => this.b.policy(kw, name, desc, target, when, outcomes, close));
  });

  outcome: Rule<A.Outcome | undefined> = this.RULE(
    'outcome',
    (): A.Outcome | undefined => {
      const effect = this.CONSUME(T.Effect);
      const condition = this.OPTION(() => {
        this.CONSUME(T.If);
        return this.SUBRULE(this.expression);
      });
      const obligations = this.OPTION2(() => {
        this.CONSUME(T.With);
        return this.SUBRULE(this.recordLit);
      });
      const reason = this.OPTION3(() => {
        this.CONSUME(T.Because);
        return this.CONSUME(T.StringLiteral);
      });
      return this.ACTION(() => {
        const start = this.b.span(effect);
        const end = reason ? this.b.span(reason) : (obligations ?? condition)?.span ?? start;
        return {
          kind: 'outcome' as const,
          effect: (effect.image || 'deny') as A.Effect,
          condition: condition ?? null,
          obligations: obligations ?? null,
          reason: reason ? this.b.stringLit(reason) : null,
          span: this.b.range(start, end),
        };
      });
    },
    { recoveryValueFunc: this.nothing },
  );

  forbidDecl: Rule<A.PolicyDecl> = this.RULE('forbidDecl', () => {
    const kw = this.CONSUME(T.Forbid);
    const name = this.CONSUME(T.Identifier);
    const desc = this.OPTION(() => this.CONSUME(T.StringLiteral));
    this.CONSUME(T.LBrace);
    const { target, when } = this.onWhen();
    const reason = this.OPTION4(() => {
      this.CONSUME(T.Because);
      return this.CONSUME2(T.StringLiteral);
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => this.b.forbid(kw, name, desc, target, when, reason, close));
  });

  testDecl: Rule<A.TestDecl> = this.RULE('testDecl', () => {
    const kw = this.CONSUME(T.Test);
    const name = this.CONSUME(T.StringLiteral);
    this.CONSUME(T.LBrace);
    const items: A.TestItem[] = [];
    this.MANY(() => {
      const i = this.SUBRULE(this.testItem);
      this.ACTION(() => i && items.push(i));
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'test' as const, name: this.b.stringLit(name), items, span: this.b.range(kw, close) }));
  });

  testItem: Rule<A.TestItem | undefined> = this.RULE(
    'testItem',
    () =>
      this.OR<A.TestItem | undefined>([
        {
          ALT: () => {
            const kw = this.CONSUME(T.Expect);
            const e = this.SUBRULE(this.expectation);
            return this.ACTION(() => this.b.expectation(kw, e));
          },
        },
        {
          ALT: () => {
            const id = this.CONSUME(T.Identifier);
            let record: A.RecordLit | undefined;
            let str: IToken | undefined;
            this.OR2([
              { ALT: () => (record = this.SUBRULE(this.recordLit)) },
              { ALT: () => (str = this.CONSUME(T.StringLiteral)) },
            ]);
            return this.ACTION(() => this.b.testItem(id, record, str));
          },
        },
      ]),
    { recoveryValueFunc: this.nothing },
  );

  expectation: Rule<Expectation | undefined> = this.RULE(
    'expectation',
    () =>
      this.OR<Expectation | undefined>([
        {
          ALT: () => {
            const effect = this.CONSUME(T.Effect);
            const obligations = this.OPTION(() => {
              this.CONSUME(T.With);
              return this.SUBRULE(this.recordLit);
            });
            return { kind: 'effect', effect, obligations };
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.Risk);
            const op = this.CONSUME(T.NumericCompare);
            const value = this.SUBRULE(this.signedNumber);
            return { kind: 'risk', op, value };
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.Policy);
            return { kind: 'policy', name: this.CONSUME(T.Identifier) };
          },
        },
        {
          ALT: () => {
            const what = this.CONSUME2(T.Identifier);
            return this.OR2<Expectation>([
              {
                // The comparison is optional here so that `expect polcy p` gets a
                // "did you mean" from the builder rather than "expected a comparison".
                ALT: () => {
                  const name = this.CONSUME3(T.Identifier);
                  const cmp = this.OPTION2(() => {
                    const op = this.CONSUME2(T.NumericCompare);
                    const value = this.SUBRULE2(this.signedNumber);
                    return { op, value };
                  });
                  return { kind: 'factor', what, name, cmp };
                },
              },
              {
                ALT: () => {
                  this.CONSUME(T.LBracket);
                  const names = [this.CONSUME4(T.Identifier)];
                  this.MANY(() => {
                    this.CONSUME(T.Comma);
                    names.push(this.CONSUME5(T.Identifier));
                  });
                  const close = this.CONSUME(T.RBracket);
                  return { kind: 'policies', what, names, close };
                },
              },
              { ALT: () => ({ kind: 'reason', what, value: this.CONSUME(T.StringLiteral) }) },
            ]);
          },
        },
      ]),
    { recoveryValueFunc: this.nothing },
  );

  signedNumber: Rule<A.NumberLit> = this.RULE(
    'signedNumber',
    () => {
      const minus = this.OPTION(() => this.CONSUME(T.Minus));
      const num = this.CONSUME(T.NumberLiteral);
      return this.ACTION(() => this.b.signedNumber(minus, num));
    },
    { recoveryValueFunc: this.errorNumber },
  );

  // ------------------------------------------------------------ expressions

  // Expressions are a flat `operand (operator operand)*` here: the builder applies the
  // documented precedence (grammar/to-ast.ts `climb`). One rule per precedence level
  // would cost ten rule invocations per operand.
  expression: Rule<A.Expr> = this.RULE(
    'expression',
    () => {
      this.guardDepth();
      const operands: Operand[] = [this.SUBRULE(this.operand)];
      const ops: OperatorItem[] = [];
      this.MANY(() => {
        const item = this.OR(this.operatorAlts);
        if (this.RECORDING_PHASE) return;
        ops.push(item);
        if (item.right) operands.push(item.right);
      });
      return this.RECORDING_PHASE ? (undefined as unknown as A.Expr) : this.b.climb(operands, ops);
    },
    { recoveryValueFunc: this.errorValue },
  );

  // Alternatives are built once: an OR given a fresh array allocates on every call.
  private readonly operatorAlts: IOrAlt<OperatorItem & { right: Operand | undefined }>[] = [
    {
      ALT: () => {
        const op = this.CONSUME(T.BinaryOperator);
        return { op, name: undefined, right: this.SUBRULE2(this.operand) };
      },
    },
    { ALT: () => ({ op: this.CONSUME(T.Has), name: this.CONSUME(T.AnyName), right: undefined }) },
  ];

  operand: Rule<Operand> = this.RULE('operand', () => {
    let prefixes: IToken[] = NO_PREFIXES;
    this.MANY(() => {
      const p = this.CONSUME(T.PrefixOperator);
      if (prefixes === NO_PREFIXES) prefixes = [];
      prefixes.push(p);
    });
    let atom = this.SUBRULE(this.primary);
    this.MANY2(() => {
      this.CONSUME(T.Dot);
      const name = this.CONSUME(T.AnyName);
      if (!this.RECORDING_PHASE) atom = this.b.member(atom, name);
    });
    return { prefixes, atom };
  }, { recoveryValueFunc: this.errorOperand });

  primary: Rule<A.Expr> = this.RULE('primary', () => this.OR(this.primaryAlts), { recoveryValueFunc: this.errorValue });

  private readonly primaryAlts: IOrAlt<A.Expr>[] = [
    {
      ALT: () => {
        const t = this.CONSUME(T.LiteralToken);
        return this.RECORDING_PHASE ? (t as unknown as A.Expr) : this.b.literal(t);
      },
    },
    {
      ALT: () => {
        const id = this.CONSUME(T.Identifier);
        const call = this.OPTION(() => this.SUBRULE(this.callArgs));
        return this.RECORDING_PHASE ? (id as unknown as A.Expr) : this.b.nameOrCall(id, call);
      },
    },
    { ALT: () => this.SUBRULE(this.listLit) },
    { ALT: () => this.SUBRULE(this.recordLit) },
    { ALT: () => this.SUBRULE(this.matchExpr) },
    { ALT: () => this.SUBRULE(this.parenExpr) },
  ];

  callArgs: Rule<{ args: A.Expr[]; close: IToken }> = this.RULE('callArgs', () => {
    this.CONSUME(T.LParen);
    const args: A.Expr[] = [];
    this.OPTION(() => {
      args.push(this.SUBRULE(this.expression));
      this.MANY(() => {
        this.CONSUME(T.Comma);
        args.push(this.SUBRULE2(this.expression));
      });
    });
    const close = this.CONSUME(T.RParen);
    return { args, close };
  }, { recoveryValueFunc: this.errorArgs });

  listLit: Rule<A.Expr> = this.RULE(
    'listLit',
    (): A.Expr => {
      const open = this.CONSUME(T.LBracket);
      const items: A.Expr[] = [];
      this.OPTION(() => {
        items.push(this.SUBRULE(this.expression));
        this.MANY(() => {
          this.CONSUME(T.Comma);
          items.push(this.SUBRULE2(this.expression));
        });
        this.OPTION2(() => this.CONSUME2(T.Comma));
      });
      const close = this.CONSUME(T.RBracket);
      return this.ACTION(() => ({ kind: 'list' as const, items, span: this.b.range(open, close) }));
    },
    { recoveryValueFunc: this.errorValue },
  );

  recordLit: Rule<A.RecordLit> = this.RULE('recordLit', () => {
    const open = this.CONSUME(T.LBrace);
    const fields: A.RecordField[] = [];
    this.MANY(() => {
      const f = this.SUBRULE(this.recordField);
      this.ACTION(() => f && fields.push(f));
    });
    const close = this.CONSUME(T.RBrace);
    return this.ACTION(() => ({ kind: 'record' as const, fields, span: this.b.range(open, close) }));
  }, { recoveryValueFunc: this.errorRecord });

  recordField: Rule<A.RecordField | undefined> = this.RULE(
    'recordField',
    (): A.RecordField | undefined => {
      const name = this.CONSUME(T.AnyName);
      this.CONSUME(T.Colon);
      const value = this.SUBRULE(this.expression);
      this.OPTION(() => this.CONSUME(T.Comma));
      return this.ACTION(() => this.b.recordField(name, value));
    },
    { recoveryValueFunc: this.nothing },
  );

  matchExpr: Rule<A.Expr> = this.RULE(
    'matchExpr',
    (): A.Expr => {
      const kw = this.CONSUME(T.Match);
      const subject = this.SUBRULE(this.expression);
      this.CONSUME(T.LBrace);
      const arms: A.MatchArm[] = [];
      this.MANY(() => {
        const a = this.SUBRULE(this.matchArm);
        this.ACTION(() => a && arms.push(a));
      });
      const otherwise = this.OPTION(() => {
        this.CONSUME(T.Else);
        this.CONSUME(T.Colon);
        const e = this.SUBRULE2(this.expression);
        this.OPTION2(() => this.CONSUME(T.Comma));
        return e;
      });
      const close = this.CONSUME(T.RBrace);
      return this.ACTION(() => ({ kind: 'match' as const, subject, arms, otherwise: otherwise ?? null, span: this.b.range(kw, close) }));
    },
    { recoveryValueFunc: this.errorValue },
  );

  matchArm: Rule<A.MatchArm | undefined> = this.RULE(
    'matchArm',
    (): A.MatchArm | undefined => {
      const label = this.OR([
        { ALT: () => this.CONSUME(T.Identifier) },
        { ALT: () => this.CONSUME(T.StringLiteral) },
        { ALT: () => this.CONSUME(T.True) },
        { ALT: () => this.CONSUME(T.False) },
      ]);
      this.CONSUME(T.Colon);
      const value = this.SUBRULE(this.expression);
      this.OPTION(() => this.CONSUME(T.Comma));
      return this.ACTION(() => this.b.matchArm(label, value));
    },
    { recoveryValueFunc: this.nothing },
  );

  parenExpr: Rule<A.Expr> = this.RULE(
    'parenExpr',
    () => {
      this.CONSUME(T.LParen);
      const e = this.SUBRULE(this.expression);
      this.CONSUME(T.RParen);
      return e;
    },
    { recoveryValueFunc: this.errorValue },
  );
}

const parser = new AgpParser();

// ---------------------------------------------------------------- nesting pre-scan

export interface NestingScan {
  /** The first token that nests deeper than `MAX_NESTING`, if any. */
  tooDeep?: IToken;
  openBefore: Int32Array;
  parentOpen: Int32Array;
}

const OPENERS = new Set<TokenType>([T.LBrace, T.LParen, T.LBracket]);
const CLOSER_OF = new Map<TokenType, TokenType>([
  [T.RBrace, T.LBrace],
  [T.RParen, T.LParen],
  [T.RBracket, T.LBracket],
]);
/** Tokens after which `-` is a binary minus (they end an operand). */
const OPERAND_END = new Set<TokenType>([
  T.Identifier, T.StringLiteral, T.NumberLiteral, T.VersionLiteral, T.DurationLiteral, T.True, T.False,
  T.Risk, T.Granted, T.RParen, T.RBracket, T.RBrace,
]);

/**
 * Bracket and prefix-operator nesting, measured on tokens so that hostile input is
 * rejected before the recursive-descent parser could run out of stack.
 */
export function scanNesting(tokens: readonly IToken[]): NestingScan {
  const n = tokens.length;
  const openBefore = new Int32Array(n + 1);
  const parentOpen = new Int32Array(n).fill(-1);
  const stack: number[] = [];
  // prefix operators pending at each open bracket, summed
  const pendingAt: number[] = [];
  let pendingBelow = 0;
  let run = 0;
  let prev: IToken | undefined;
  // Inside `schema { ... }`, type arguments `set<set<...>>` nest like brackets.
  let inSchema = false;
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    const type = t.tokenType;
    openBefore[i] = stack.length > 0 ? stack[stack.length - 1]! : -1;
    if (type === T.Schema && stack.length === 0) inSchema = true;
    if (inSchema && type === T.Less) {
      parentOpen[i] = openBefore[i]!;
      stack.push(i);
      pendingAt.push(0);
      if (stack.length + pendingBelow > MAX_NESTING) return { tooDeep: t, openBefore, parentOpen };
    } else if (inSchema && type === T.Greater) {
      if (stack.length > 0 && tokens[stack[stack.length - 1]!]!.tokenType === T.Less) {
        stack.pop();
        pendingAt.pop();
      }
    } else if (OPENERS.has(type)) {
      parentOpen[i] = openBefore[i]!;
      stack.push(i);
      pendingAt.push(run);
      pendingBelow += run;
      run = 0;
      if (stack.length + pendingBelow > MAX_NESTING) return { tooDeep: t, openBefore, parentOpen };
    } else if (CLOSER_OF.has(type)) {
      const want = CLOSER_OF.get(type);
      let k = stack.length - 1;
      while (k >= 0 && tokens[stack[k]!]!.tokenType !== want) k--;
      if (k >= 0) {
        while (stack.length > k) {
          stack.pop();
          pendingBelow -= pendingAt.pop() ?? 0;
        }
      }
      run = 0;
      if (stack.length === 0) inSchema = false;
    } else if (type === T.Not || (type === T.Minus && !(prev && (OPERAND_END.has(prev.tokenType) || afterDot(tokens, i - 1))))) {
      run++;
      if (stack.length + pendingBelow + run > MAX_NESTING) return { tooDeep: t, openBefore, parentOpen };
    } else {
      run = 0;
    }
    prev = t;
  }
  openBefore[n] = stack.length > 0 ? stack[stack.length - 1]! : -1;
  return { openBefore, parentOpen };
}

function afterDot(tokens: readonly IToken[], i: number): boolean {
  return i >= 1 && tokens[i - 1]!.tokenType === T.Dot;
}

// ---------------------------------------------------------------- parse

export interface ParsedTokens {
  decls: A.Decl[];
  errors: IRecognitionException[];
  /** Structural errors found while building the AST. */
  diagnostics: Diagnostic[];
}

/** Splits a provider message into message and hint. */
export function splitMessage(message: string): { message: string; hint?: string } {
  const i = message.indexOf(HINT);
  return i < 0 ? { message } : { message: message.slice(0, i), hint: message.slice(i + 1) };
}

/** Parses tokens into declarations; `scan` must come from `scanNesting(tokens)` without
 *  `tooDeep`. May throw `NestingLimitError` (the backstop). */
export function parseTokens(file: string, tokens: IToken[], scan: NestingScan): ParsedTokens {
  current = { tokens, count: tokens.length, openBefore: scan.openBefore, parentOpen: scan.parentOpen };
  const b = new AstBuilder(file);
  try {
    parser.b = b;
    parser.decls = [];
    parser.input = tokens;
    parser.file();
    const decls = parser.decls;
    const errors = parser.errors;
    const diagnostics = errors.length > 0 ? b.diagnostics : [...b.diagnostics, ...b.followUps];
    return { decls, errors, diagnostics };
  } finally {
    current = null;
    parser.input = [];
    parser.decls = [];
    parser.b = new AstBuilder('');
  }
}
