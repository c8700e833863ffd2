// The .agp parser: one Chevrotain CstParser with error recovery, reused for every file
// (`parser.input = tokens` resets it), plus the syntax-error messages users read.
import { CstParser, EOF, tokenMatcher } from 'chevrotain';
import type { CstNode, IParserErrorMessageProvider, IRecognitionException, IToken, TokenType } from 'chevrotain';
import * as T from './lexer.js';

/** Prefix operators and brackets may nest this deep (checked on tokens before parsing). */
export const MAX_NESTING = 64;
/** An expression tree (every operator of a chain is a level) may be this deep. */
export const MAX_EXPRESSION_DEPTH = 256;
/** Backstop inside the parser: Chevrotain rule nesting that can only be reached if the
 *  token pre-scan missed something. Well below what overflows the JS stack. */
const MAX_RULE_DEPTH = MAX_NESTING * 14 + 64;

/** Thrown out of the parser by the backstop guard; turned into `agp_limit_error`. */
export class NestingLimitError extends Error {
  constructor(readonly token: IToken) {
    super('nesting limit');
  }
}

// ---------------------------------------------------------------- messages

/** What the current parse needs to explain bracket errors ("opened at 3:1"). */
interface MessageContext {
  tokens: IToken[];
  offsets: number[];
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
  if (t.tokenType === EOF || Number.isNaN(t.startOffset)) return ctx.tokens.length;
  // binary search on start offsets
  let lo = 0;
  let hi = ctx.offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ctx.offsets[mid]! < t.startOffset) lo = mid + 1;
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

const EXPRESSION_RULES = new Set([
  'expression', 'orExpr', 'andExpr', 'notExpr', 'compareExpr', 'additiveExpr', 'multExpr', 'unaryExpr',
  'postfixExpr', 'primary', 'letDecl', 'factor', 'outcome', 'policyDecl', 'forbidDecl',
]);

function hintFor(actual: IToken, ruleName: string): string {
  if (actual.tokenType === T.Equals && EXPRESSION_RULES.has(ruleName)) return `${HINT}compare with \`==\``;
  if (tokenMatcher(actual, T.CompareOperator) && EXPRESSION_RULES.has(ruleName))
    return `${HINT}comparisons do not chain: combine them with \`and\`, or add parentheses`;
  return '';
}

const DECLARATION = 'a declaration (`schema`, `let`, `risk`, `policy`, `forbid` or `test`)';

const NO_VIABLE: Record<string, string> = {
  declaration: DECLARATION,
  typeExpr: 'a type',
  field: '`:` and a type',
  testItem: 'a test item (`agent`, `resource`, `task`, `registered`, `behavior`, `action`, `grant`, `now` or `expect`)',
  expectation: '`permit`, `deny`, `escalate`, `risk`, `factor`, `policy`, `policies` or `reason` after `expect`',
  matchArm: 'a match label (a name, a string, `true` or `false`)',
};

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, ruleName }) {
    const name = expected.LABEL ?? expected.name;
    return `expected ${name}${openerPhrase(expected, actual, ruleName)}, found ${describeToken(actual)}${hintFor(actual, ruleName)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    const hint = tokenMatcher(firstRedundant, T.RBrace) ? `${HINT}this \`}\` closes nothing; remove it` : '';
    return `expected ${DECLARATION}, found ${describeToken(firstRedundant)}${hint}`;
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

class AgpParser extends CstParser {
  constructor() {
    super(T.ALL_TOKENS, {
      recoveryEnabled: true,
      maxLookahead: 3,
      nodeLocationTracking: 'full',
      errorMessageProvider: messages,
    });
    this.performSelfAnalysis();
  }

  private guardDepth(): void {
    const depth = (this as unknown as { RULE_STACK_IDX?: number }).RULE_STACK_IDX ?? 0;
    if (depth > MAX_RULE_DEPTH) throw new NestingLimitError(this.LA(1));
  }

  file = this.RULE('file', () => {
    this.MANY(() => this.SUBRULE(this.declaration));
  });

  declaration = this.RULE('declaration', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.schemaDecl) },
      { ALT: () => this.SUBRULE(this.letDecl) },
      { ALT: () => this.SUBRULE(this.riskDecl) },
      { ALT: () => this.SUBRULE(this.policyDecl) },
      { ALT: () => this.SUBRULE(this.forbidDecl) },
      { ALT: () => this.SUBRULE(this.testDecl) },
    ]);
  });

  schemaDecl = this.RULE('schemaDecl', () => {
    this.CONSUME(T.Schema);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.field));
    this.CONSUME(T.RBrace);
  });

  field = this.RULE('field', () => {
    this.CONSUME(T.AnyName, { LABEL: 'name' });
    this.OPTION(() => this.CONSUME(T.Question));
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Colon);
          this.SUBRULE(this.typeExpr);
        },
      },
      { ALT: () => this.SUBRULE(this.recordType) },
    ]);
    this.OPTION2(() => this.CONSUME(T.Comma));
  });

  typeExpr = this.RULE('typeExpr', () => {
    this.guardDepth();
    this.OR([
      { ALT: () => this.SUBRULE(this.recordType) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.OPTION(() => {
            this.CONSUME(T.Less);
            this.SUBRULE(this.typeExpr, { LABEL: 'args' });
            this.MANY(() => {
              this.CONSUME(T.Comma);
              this.SUBRULE2(this.typeExpr, { LABEL: 'args' });
            });
            this.CONSUME(T.Greater);
          });
        },
      },
    ]);
  });

  recordType = this.RULE('recordType', () => {
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.field));
    this.CONSUME(T.RBrace);
  });

  letDecl = this.RULE('letDecl', () => {
    this.CONSUME(T.Let);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expression);
  });

  riskDecl = this.RULE('riskDecl', () => {
    this.CONSUME(T.Risk);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.factor));
    this.CONSUME(T.RBrace);
  });

  factor = this.RULE('factor', () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.expression, { LABEL: 'value' });
    this.OPTION(() => {
      this.CONSUME(T.If);
      this.SUBRULE2(this.expression, { LABEL: 'condition' });
    });
    this.OPTION2(() => this.CONSUME(T.Comma));
  });

  policyDecl = this.RULE('policyDecl', () => {
    this.CONSUME(T.Policy);
    this.CONSUME(T.Identifier);
    this.OPTION(() => this.CONSUME(T.StringLiteral));
    this.CONSUME(T.LBrace);
    this.OPTION2(() => {
      this.CONSUME(T.On);
      this.SUBRULE(this.expression, { LABEL: 'target' });
    });
    this.OPTION3(() => {
      this.CONSUME(T.When);
      this.SUBRULE2(this.expression, { LABEL: 'when' });
    });
    this.MANY(() => this.SUBRULE(this.outcome));
    this.CONSUME(T.RBrace);
  });

  outcome = this.RULE('outcome', () => {
    this.CONSUME(T.Effect);
    this.OPTION(() => {
      this.CONSUME(T.If);
      this.SUBRULE(this.expression);
    });
    this.OPTION2(() => {
      this.CONSUME(T.With);
      this.SUBRULE(this.recordLit);
    });
    this.OPTION3(() => {
      this.CONSUME(T.Because);
      this.CONSUME(T.StringLiteral);
    });
  });

  forbidDecl = this.RULE('forbidDecl', () => {
    this.CONSUME(T.Forbid);
    this.CONSUME(T.Identifier);
    this.OPTION(() => this.CONSUME(T.StringLiteral, { LABEL: 'description' }));
    this.CONSUME(T.LBrace);
    this.OPTION2(() => {
      this.CONSUME(T.On);
      this.SUBRULE(this.expression, { LABEL: 'target' });
    });
    this.OPTION3(() => {
      this.CONSUME(T.When);
      this.SUBRULE2(this.expression, { LABEL: 'when' });
    });
    this.OPTION4(() => {
      this.CONSUME(T.Because);
      this.CONSUME2(T.StringLiteral, { LABEL: 'reason' });
    });
    this.CONSUME(T.RBrace);
  });

  testDecl = this.RULE('testDecl', () => {
    this.CONSUME(T.Test);
    this.CONSUME(T.StringLiteral);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.testItem));
    this.CONSUME(T.RBrace);
  });

  testItem = this.RULE('testItem', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Expect);
          this.SUBRULE(this.expectation);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.OR2([
            { ALT: () => this.SUBRULE(this.recordLit) },
            { ALT: () => this.CONSUME(T.StringLiteral) },
          ]);
        },
      },
    ]);
  });

  expectation = this.RULE('expectation', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Effect);
          this.OPTION(() => {
            this.CONSUME(T.With);
            this.SUBRULE(this.recordLit);
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Risk);
          this.CONSUME(T.NumericCompare);
          this.SUBRULE(this.signedNumber);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Policy);
          this.CONSUME(T.Identifier, { LABEL: 'names' });
        },
      },
      {
        ALT: () => {
          this.CONSUME2(T.Identifier, { LABEL: 'what' });
          this.OR2([
            {
              ALT: () => {
                this.CONSUME3(T.Identifier, { LABEL: 'names' });
                this.CONSUME2(T.NumericCompare);
                this.SUBRULE2(this.signedNumber);
              },
            },
            {
              ALT: () => {
                this.CONSUME(T.LBracket);
                this.CONSUME4(T.Identifier, { LABEL: 'names' });
                this.MANY(() => {
                  this.CONSUME(T.Comma);
                  this.CONSUME5(T.Identifier, { LABEL: 'names' });
                });
                this.CONSUME(T.RBracket);
              },
            },
            { ALT: () => this.CONSUME(T.StringLiteral) },
          ]);
        },
      },
    ]);
  });

  signedNumber = this.RULE('signedNumber', () => {
    this.OPTION(() => this.CONSUME(T.Minus));
    this.CONSUME(T.NumberLiteral);
  });

  // ------------------------------------------------------------ expressions

  expression = this.RULE('expression', () => {
    this.guardDepth();
    this.SUBRULE(this.orExpr);
  });

  orExpr = this.RULE('orExpr', () => {
    this.SUBRULE(this.andExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.CONSUME(T.Or, { LABEL: 'op' });
      this.SUBRULE2(this.andExpr, { LABEL: 'operands' });
    });
  });

  andExpr = this.RULE('andExpr', () => {
    this.SUBRULE(this.notExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.CONSUME(T.And, { LABEL: 'op' });
      this.SUBRULE2(this.notExpr, { LABEL: 'operands' });
    });
  });

  notExpr = this.RULE('notExpr', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Not);
          this.SUBRULE(this.notExpr);
        },
      },
      { ALT: () => this.SUBRULE(this.compareExpr) },
    ]);
  });

  compareExpr = this.RULE('compareExpr', () => {
    this.SUBRULE(this.additiveExpr, { LABEL: 'operands' });
    this.OPTION(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(T.CompareOperator, { LABEL: 'op' });
            this.SUBRULE2(this.additiveExpr, { LABEL: 'operands' });
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.Has);
            this.CONSUME(T.AnyName, { LABEL: 'name' });
          },
        },
      ]);
    });
  });

  additiveExpr = this.RULE('additiveExpr', () => {
    this.SUBRULE(this.multExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Plus, { LABEL: 'op' }) },
        { ALT: () => this.CONSUME(T.Minus, { LABEL: 'op' }) },
      ]);
      this.SUBRULE2(this.multExpr, { LABEL: 'operands' });
    });
  });

  multExpr = this.RULE('multExpr', () => {
    this.SUBRULE(this.unaryExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Star, { LABEL: 'op' }) },
        { ALT: () => this.CONSUME(T.Slash, { LABEL: 'op' }) },
        { ALT: () => this.CONSUME(T.Percent, { LABEL: 'op' }) },
      ]);
      this.SUBRULE2(this.unaryExpr, { LABEL: 'operands' });
    });
  });

  unaryExpr = this.RULE('unaryExpr', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Minus);
          this.SUBRULE(this.unaryExpr);
        },
      },
      { ALT: () => this.SUBRULE(this.postfixExpr) },
    ]);
  });

  postfixExpr = this.RULE('postfixExpr', () => {
    this.SUBRULE(this.primary);
    this.MANY(() => {
      this.CONSUME(T.Dot);
      this.CONSUME(T.AnyName, { LABEL: 'names' });
    });
  });

  primary = this.RULE('primary', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.StringLiteral) },
      { ALT: () => this.CONSUME(T.NumberLiteral) },
      { ALT: () => this.CONSUME(T.VersionLiteral) },
      { ALT: () => this.CONSUME(T.DurationLiteral) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.CONSUME(T.Risk) },
      { ALT: () => this.CONSUME(T.Granted) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.OPTION(() => this.SUBRULE(this.callArgs));
        },
      },
      { ALT: () => this.SUBRULE(this.listLit) },
      { ALT: () => this.SUBRULE(this.recordLit) },
      { ALT: () => this.SUBRULE(this.matchExpr) },
      { ALT: () => this.SUBRULE(this.parenExpr) },
    ]);
  });

  callArgs = this.RULE('callArgs', () => {
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.expression, { LABEL: 'args' });
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.expression, { LABEL: 'args' });
      });
    });
    this.CONSUME(T.RParen);
  });

  listLit = this.RULE('listLit', () => {
    this.CONSUME(T.LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.expression, { LABEL: 'items' });
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.expression, { LABEL: 'items' });
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RBracket);
  });

  recordLit = this.RULE('recordLit', () => {
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.recordField));
    this.CONSUME(T.RBrace);
  });

  recordField = this.RULE('recordField', () => {
    this.CONSUME(T.AnyName, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.expression);
    this.OPTION(() => this.CONSUME(T.Comma));
  });

  matchExpr = this.RULE('matchExpr', () => {
    this.CONSUME(T.Match);
    this.SUBRULE(this.expression, { LABEL: 'subject' });
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.matchArm));
    this.OPTION(() => {
      this.CONSUME(T.Else);
      this.CONSUME(T.Colon);
      this.SUBRULE2(this.expression, { LABEL: 'otherwise' });
      this.OPTION2(() => this.CONSUME(T.Comma));
    });
    this.CONSUME(T.RBrace);
  });

  matchArm = this.RULE('matchArm', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Identifier, { LABEL: 'label' }) },
      { ALT: () => this.CONSUME(T.StringLiteral, { LABEL: 'label' }) },
      { ALT: () => this.CONSUME(T.True, { LABEL: 'label' }) },
      { ALT: () => this.CONSUME(T.False, { LABEL: 'label' }) },
    ]);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.expression);
    this.OPTION(() => this.CONSUME(T.Comma));
  });

  parenExpr = this.RULE('parenExpr', () => {
    this.CONSUME(T.LParen);
    this.SUBRULE(this.expression);
    this.CONSUME(T.RParen);
  });
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

export interface CstResult {
  cst: CstNode;
  errors: IRecognitionException[];
}

/** Splits a provider message into message and hint. */
export function splitMessage(message: string): { message: string; hint?: string } {
  const i = message.indexOf(HINT);
  return i < 0 ? { message } : { message: message.slice(0, i), hint: message.slice(i + 1) };
}

/** Parses tokens into a CST; `scan` must come from `scanNesting(tokens)` without `tooDeep`.
 *  May throw `NestingLimitError` (the backstop). */
export function parseTokens(tokens: IToken[], scan: NestingScan): CstResult {
  current = {
    tokens,
    offsets: tokens.map((t) => t.startOffset),
    openBefore: scan.openBefore,
    parentOpen: scan.parentOpen,
  };
  try {
    parser.input = tokens;
    const cst = parser.file();
    return { cst, errors: parser.errors };
  } finally {
    current = null;
    parser.input = [];
  }
}
