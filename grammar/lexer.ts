// The .agp lexer: token definitions (Chevrotain 11) and `lex`, which turns source text into
// tokens, comments and `agp_lex_error` diagnostics. It never throws on user input.
import { createToken, Lexer } from 'chevrotain';
import type { IToken, TokenType } from 'chevrotain';
import type { Comment, Span } from './ast.js';
import { diagnostic } from '../engine/diagnostics.js';
import type { Diagnostic } from '../engine/diagnostics.js';

// ---------------------------------------------------------------- categories

/** Anything usable as a name after `.`, as a schema field name or a record key. */
export const AnyName = createToken({ name: 'AnyName', pattern: Lexer.NA, label: 'a name' });
/** `== != < <= > >= in contains like`: the non-associative comparison operators. */
export const CompareOperator = createToken({ name: 'CompareOperator', pattern: Lexer.NA, label: 'a comparison' });
/** `== != < <= > >=`: the operators an `expect risk`/`expect factor` item accepts. */
export const NumericCompare = createToken({ name: 'NumericCompare', pattern: Lexer.NA, label: 'a comparison' });
export const Effect = createToken({ name: 'Effect', pattern: Lexer.NA, label: '`permit`, `deny` or `escalate`' });
/** Every infix operator except `has` (which takes a name, not an operand). */
export const BinaryOperator = createToken({ name: 'BinaryOperator', pattern: Lexer.NA, label: 'an operator' });
/** Tokens that are a whole expression: literals, `true`, `false`, `risk`, `granted`. */
export const LiteralToken = createToken({ name: 'LiteralToken', pattern: Lexer.NA, label: 'a literal' });
/** `not` and unary `-`. */
export const PrefixOperator = createToken({ name: 'PrefixOperator', pattern: Lexer.NA, label: '`not` or `-`' });

// ---------------------------------------------------------------- trivia

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v]+/, group: Lexer.SKIPPED, line_breaks: true });
export const LineComment = createToken({ name: 'LineComment', pattern: /\/\/[^\r\n]*/, group: 'comments' });
export const BlockComment = createToken({ name: 'BlockComment', pattern: /\/\*[\s\S]*?\*\//, group: 'comments', line_breaks: true });
/** A `/*` with no closing `*\/`: reported as a lex error rather than a stray `/`. */
export const UnterminatedBlockComment = createToken({ name: 'UnterminatedBlockComment', pattern: /\/\*[\s\S]*/, group: 'bad', line_breaks: true });

// ---------------------------------------------------------------- literals

/** Strings stay on one line; escapes are checked (and decoded) by `decodeString`. */
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"/, label: 'a string', categories: [LiteralToken] });
/** Reported, then handed to the parser as a string so one typo gives one diagnostic. */
export const UnterminatedString = createToken({ name: 'UnterminatedString', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*\\?/ });
// A number-like run must not be glued to letters, digits or a further `.digit`: `5min`,
// `1.2.3.4` and `12abc` are one bad token each instead of a confusing token pair.
export const VersionLiteral = createToken({ name: 'VersionLiteral', pattern: /\d+\.\d+\.\d+(?![A-Za-z0-9_]|\.\d)/, label: 'a version', categories: [LiteralToken] });
export const DurationLiteral = createToken({ name: 'DurationLiteral', pattern: /\d+(?:\.\d+)?(?:ms|s|m|h|d)(?![A-Za-z0-9_]|\.\d)/, label: 'a duration', categories: [LiteralToken] });
export const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_]|\.\d)/, label: 'a number', categories: [LiteralToken] });
/** Reported, then handed to the parser as a number. */
export const BadNumber = createToken({ name: 'BadNumber', pattern: /\d[A-Za-z0-9_.]*/ });

// ---------------------------------------------------------------- names and keywords

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, categories: [AnyName], label: 'a name' });

function keyword(word: string, categories: TokenType[] = []): TokenType {
  return createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    longer_alt: Identifier,
    categories: [AnyName, ...categories],
    label: `\`${word}\``,
  });
}

export const Schema = keyword('schema');
export const Let = keyword('let');
export const Risk = keyword('risk', [LiteralToken]);
export const Policy = keyword('policy');
export const Forbid = keyword('forbid');
export const On = keyword('on');
export const When = keyword('when');
export const Permit = keyword('permit', [Effect]);
export const Deny = keyword('deny', [Effect]);
export const Escalate = keyword('escalate', [Effect]);
export const If = keyword('if');
export const With = keyword('with');
export const Because = keyword('because');
export const And = keyword('and', [BinaryOperator]);
export const Or = keyword('or', [BinaryOperator]);
export const Not = keyword('not', [PrefixOperator]);
export const In = keyword('in', [CompareOperator, BinaryOperator]);
export const Contains = keyword('contains', [CompareOperator, BinaryOperator]);
export const Has = keyword('has');
export const Like = keyword('like', [CompareOperator, BinaryOperator]);
export const True = keyword('true', [LiteralToken]);
export const False = keyword('false', [LiteralToken]);
export const Match = keyword('match');
export const Else = keyword('else');
export const Granted = keyword('granted', [LiteralToken]);
export const Test = keyword('test');
export const Expect = keyword('expect');

export const KEYWORDS: readonly TokenType[] = [
  Schema, Let, Risk, Policy, Forbid, On, When, Permit, Deny, Escalate, If, With, Because, And, Or,
  Not, In, Contains, Has, Like, True, False, Match, Else, Granted, Test, Expect,
];
export const KEYWORD_NAMES: ReadonlySet<string> = new Set(KEYWORDS.map((k) => k.name.toLowerCase()));

// ---------------------------------------------------------------- punctuation

function punct(name: string, text: string, categories: TokenType[] = []): TokenType {
  return createToken({ name, pattern: text, categories, label: `\`${text}\`` });
}

export const LBrace = punct('LBrace', '{');
export const RBrace = punct('RBrace', '}');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LessEq = punct('LessEq', '<=', [CompareOperator, NumericCompare, BinaryOperator]);
export const GreaterEq = punct('GreaterEq', '>=', [CompareOperator, NumericCompare, BinaryOperator]);
export const EqEq = punct('EqEq', '==', [CompareOperator, NumericCompare, BinaryOperator]);
export const NotEq = punct('NotEq', '!=', [CompareOperator, NumericCompare, BinaryOperator]);
export const Less = punct('Less', '<', [CompareOperator, NumericCompare, BinaryOperator]);
export const Greater = punct('Greater', '>', [CompareOperator, NumericCompare, BinaryOperator]);
export const Equals = punct('Equals', '=');
export const Colon = punct('Colon', ':');
export const Comma = punct('Comma', ',');
export const Dot = punct('Dot', '.');
export const Question = punct('Question', '?');
export const Plus = punct('Plus', '+', [BinaryOperator]);
export const Minus = punct('Minus', '-', [BinaryOperator, PrefixOperator]);
export const Star = punct('Star', '*', [BinaryOperator]);
export const Slash = punct('Slash', '/', [BinaryOperator]);
export const Percent = punct('Percent', '%', [BinaryOperator]);

/** Token types in match order (first match wins, so longer forms come first). */
export const ALL_TOKENS: TokenType[] = [
  WhiteSpace,
  LineComment,
  BlockComment,
  UnterminatedBlockComment,
  StringLiteral,
  UnterminatedString,
  VersionLiteral,
  DurationLiteral,
  NumberLiteral,
  BadNumber,
  ...KEYWORDS,
  Identifier,
  LBrace, RBrace, LParen, RParen, LBracket, RBracket,
  LessEq, GreaterEq, EqEq, NotEq, Less, Greater, Equals,
  Colon, Comma, Dot, Question, Plus, Minus, Star, Slash, Percent,
  AnyName, CompareOperator, NumericCompare, Effect, BinaryOperator, PrefixOperator, LiteralToken,
];

const agpLexer = new Lexer(ALL_TOKENS, {
  positionTracking: 'full',
  ensureOptimizations: true,
  // Errors are reported by `lex`; Chevrotain's console output would only be noise.
  skipValidations: false,
});

// ---------------------------------------------------------------- spans

/** The span of one token (Chevrotain ends are inclusive; our `endOffset` is exclusive). */
export function tokenSpan(file: string, t: IToken): Span {
  return {
    file,
    line: t.startLine ?? 1,
    col: t.startColumn ?? 1,
    endLine: t.endLine ?? t.startLine ?? 1,
    endCol: t.endColumn ?? t.startColumn ?? 1,
    offset: t.startOffset,
    endOffset: (t.endOffset ?? t.startOffset) + 1,
  };
}

/** The position just past the end of `text` (where "end of file" errors point). */
export function endOfFileSpan(file: string, text: string): Span {
  let line = 1;
  let lineStart = 0;
  if (!text.includes('\r')) {
    // the common case, with the native search instead of a loop over every character
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
  } else {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
        line++;
        lineStart = i + 1;
      }
    }
  }
  const col = text.length - lineStart + 1;
  return { file, line, col, endLine: line, endCol: col, offset: text.length, endOffset: text.length };
}

// ---------------------------------------------------------------- string and number values

/** Decodes a string token's escapes; `error` names the first invalid escape, if any. */
export function decodeString(image: string): { value: string; error?: { index: number; text: string } } {
  const body = image.endsWith('"') && image.length >= 2 ? image.slice(1, -1) : image.slice(1);
  if (!body.includes('\\')) return { value: body };
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[i + 1];
    switch (e) {
      case '"': out += '"'; i++; break;
      case '\\': out += '\\'; i++; break;
      case 'n': out += '\n'; i++; break;
      case 't': out += '\t'; i++; break;
      case 'r': out += '\r'; i++; break;
      case 'u': {
        const hex = body.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return { value: out, error: { index: i + 1, text: body.slice(i, i + 2 + hex.length) } };
        out += String.fromCharCode(parseInt(hex, 16));
        i += 5;
        break;
      }
      default:
        return { value: out, error: { index: i + 1, text: e === undefined ? '\\' : `\\${e}` } };
    }
  }
  return { value: out };
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds in a duration literal such as `250ms` or `1.5h`. */
export function durationSeconds(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw);
  if (!m) return NaN;
  return Number(m[1]) * UNIT_SECONDS[m[2]!]!;
}

// ---------------------------------------------------------------- lex

export interface LexResult {
  /** Tokens the parser sees: no whitespace or comments; malformed strings and numbers are reported and retyped. */
  tokens: IToken[];
  comments: Comment[];
  diagnostics: Diagnostic[];
}

function describeChar(text: string): string {
  const cp = text.codePointAt(0) ?? 0;
  if (cp < 0x20 || cp === 0x7f) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return String.fromCodePoint(cp);
}

const CHAR_HINTS: Record<string, string> = {
  '&': 'use `and` to combine conditions',
  '|': 'use `or` to combine conditions',
  '!': 'use `not` to negate a condition, or `!=` to compare',
  "'": 'strings use double quotes: `"text"`',
  ';': 'statements end at the end of the line; remove the `;`',
};

export function lex(file: string, text: string): LexResult {
  const result = agpLexer.tokenize(text);
  const diagnostics: Diagnostic[] = [];
  for (const e of result.errors) {
    const ch = text.slice(e.offset, e.offset + e.length);
    const first = describeChar(ch);
    const span: Span = {
      file,
      line: e.line ?? 1,
      col: e.column ?? 1,
      endLine: e.line ?? 1,
      endCol: (e.column ?? 1) + Math.max(0, e.length - 1),
      offset: e.offset,
      endOffset: e.offset + e.length,
    };
    const message = e.length > 1 ? `unexpected characters \`${truncate(ch)}\`` : `unexpected character \`${first}\``;
    diagnostics.push(diagnostic('agp_lex_error', span, message, CHAR_HINTS[ch[0] ?? '']));
  }
  for (const t of result.groups['bad'] ?? []) {
    const span = tokenSpan(file, t);
    diagnostics.push(diagnostic('agp_lex_error', { ...span, endLine: span.line, endCol: span.col + 1 }, 'unterminated block comment', 'close it with `*/`'));
  }
  for (const t of result.tokens) {
    if (t.tokenType === UnterminatedString) {
      diagnostics.push(diagnostic('agp_lex_error', tokenSpan(file, t), 'unterminated string', 'close the string with `"` on the same line; write a newline as `\\n`'));
      retype(t, StringLiteral);
    } else if (t.tokenType === BadNumber) {
      diagnostics.push(diagnostic('agp_lex_error', tokenSpan(file, t), `invalid number \`${truncate(t.image)}\``, /^\d+(?:\.\d+)?[a-z]+$/.test(t.image) ? 'durations end in `ms`, `s`, `m`, `h` or `d`, e.g. `5m`' : undefined));
      retype(t, NumberLiteral);
    } else if (t.tokenType === StringLiteral) {
      const d = decodeString(t.image);
      if (d.error) {
        const col = (t.startColumn ?? 1) + d.error.index;
        diagnostics.push(diagnostic('agp_lex_error', { file, line: t.startLine ?? 1, col, endLine: t.startLine ?? 1, endCol: col + d.error.text.length - 1 }, `invalid escape \`${d.error.text}\` in string`, 'valid escapes are `\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\uXXXX`'));
      }
    } else if (t.tokenType === NumberLiteral && !Number.isFinite(Number(t.image))) {
      diagnostics.push(diagnostic('agp_lex_error', tokenSpan(file, t), `number \`${truncate(t.image)}\` is too large`, 'numbers must be at most 1.7976931348623157e308'));
    }
  }
  const comments: Comment[] = (result.groups['comments'] ?? []).map((t) => ({
    kind: 'comment',
    text: t.image,
    block: t.tokenType === BlockComment,
    span: tokenSpan(file, t),
  }));
  return { tokens: result.tokens, comments, diagnostics };
}

function retype(t: IToken, type: TokenType): void {
  t.tokenType = type;
  t.tokenTypeIdx = type.tokenTypeIdx!;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
