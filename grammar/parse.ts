// Parsing one .agp file: source text → PolicyFile AST + diagnostics, with the documented
// size and nesting limits. Never throws on user input.
import type { IRecognitionException, IToken } from 'chevrotain';
import { EOF } from 'chevrotain';
import type { PolicyFile, Span } from './ast.js';
import { diagnostic, sortDiagnostics } from '../engine/diagnostics.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import { endOfFileSpan, lex, tokenSpan } from './lexer.js';
import { MAX_NESTING, NestingLimitError, parseTokens, scanNesting, splitMessage } from './parser.js';
import { MAX_EXPRESSION_DEPTH, tooDeep } from './to-ast.js';
import { declExpressions } from './ast-util.js';


/** A file larger than this many bytes (UTF-8) is rejected. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** A file with more tokens than this (comments included) is rejected. */
export const MAX_TOKENS = 200_000;

export interface ParseResult {
  /** Always present; after errors it holds what could be recovered. */
  file: PolicyFile;
  /** Sorted by position. */
  diagnostics: Diagnostic[];
}

function fileSpan(path: string, text: string): Span {
  const end = endOfFileSpan(path, text);
  return { file: path, line: 1, col: 1, endLine: end.line, endCol: Math.max(1, end.col - 1), offset: 0, endOffset: text.length };
}

function emptyFile(path: string, text: string): PolicyFile {
  return { kind: 'file', path, decls: [], comments: [], span: fileSpan(path, text) };
}

/** The character offset at which the UTF-8 size of `text` first exceeds `limit` bytes. */
function byteLimitOffset(text: string, limit: number): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
    if (bytes > limit) return i;
  }
  return -1;
}

function positionOf(path: string, text: string, offset: number): Span {
  const s = endOfFileSpan(path, text.slice(0, offset));
  return { ...s, endCol: s.col, offset, endOffset: offset + 1 };
}

function limitResult(path: string, text: string, span: Span, message: string, hint: string): ParseResult {
  return { file: emptyFile(path, text), diagnostics: [diagnostic('agp_limit_error', span, message, hint)] };
}

function syntaxDiagnostic(path: string, text: string, e: IRecognitionException): Diagnostic {
  const t: IToken = e.token;
  const span = t.tokenType === EOF || Number.isNaN(t.startOffset) ? endOfFileSpan(path, text) : tokenSpan(path, t);
  const { message, hint } = splitMessage(e.message);
  return diagnostic('agp_parse_error', span, message, hint);
}

/**
 * Parses one `.agp` file. Always returns a PolicyFile (empty or partial after errors) and
 * every lexical, syntax and limit diagnostic, sorted by position.
 */
export function parseFile(path: string, text: string): ParseResult {
  try {
    return parseUnchecked(path, text);
  } catch (e) {
    // Only a bug in the front end gets here; the caller still gets a result.
    const reason = e instanceof RangeError ? 'the file is nested too deeply to parse' : `internal parser error: ${e instanceof Error ? e.message : String(e)}`;
    const code = e instanceof RangeError ? 'agp_limit_error' : 'agp_parse_error';
    return { file: emptyFile(path, text), diagnostics: [diagnostic(code, { file: path, line: 1, col: 1, endLine: 1, endCol: 1 }, reason)] };
  }
}

/** `parseFile` with a default path, for tests and tools that hold text only. */
export function parseSource(text: string, path = '<input>'): ParseResult {
  return parseFile(path, text);
}

function parseUnchecked(path: string, text: string): ParseResult {
  if (text.length > MAX_FILE_BYTES / 4 && Buffer.byteLength(text, 'utf8') > MAX_FILE_BYTES) {
    const at = byteLimitOffset(text, MAX_FILE_BYTES);
    if (at >= 0)
      return limitResult(path, text, positionOf(path, text, at), `file is larger than 1 MiB (${MAX_FILE_BYTES} bytes)`, 'split the policies into several files');
  }
  const lexed = lex(path, text);
  const tokenCount = lexed.tokens.length + lexed.comments.length;
  if (tokenCount > MAX_TOKENS) {
    const all = [...lexed.tokens.map((t) => tokenSpan(path, t)), ...lexed.comments.map((c) => c.span)].sort((a, b) => a.offset - b.offset);
    const at = all[MAX_TOKENS]!;
    return limitResult(path, text, at, `file has more than ${MAX_TOKENS} tokens`, 'split the policies into several files');
  }
  const scan = scanNesting(lexed.tokens);
  if (scan.tooDeep) {
    return limitResult(path, text, tokenSpan(path, scan.tooDeep), `nesting deeper than ${MAX_NESTING} levels`, 'brackets and `not`/`-` prefixes nest at most 64 deep; name parts of the expression with `let`');
  }
  let parsed;
  try {
    parsed = parseTokens(path, lexed.tokens, scan);
  } catch (e) {
    if (e instanceof NestingLimitError) {
      const span = e.token.tokenType === EOF ? endOfFileSpan(path, text) : tokenSpan(path, e.token);
      return limitResult(path, text, span, `nesting deeper than ${MAX_NESTING} levels`, 'name parts of the expression with `let`');
    }
    throw e;
  }
  const diagnostics: Diagnostic[] = [...lexed.diagnostics];
  const seen = new Set<string>();
  for (const e of parsed.errors) {
    const d = syntaxDiagnostic(path, text, e);
    const key = `${d.line}:${d.col}`;
    if (seen.has(key)) continue;
    seen.add(key);
    diagnostics.push(d);
  }
  for (const decl of parsed.decls) {
    for (const root of declExpressions(decl)) {
      const deep = tooDeep(root);
      if (deep) {
        return limitResult(path, text, deep.span, `expression nested deeper than ${MAX_EXPRESSION_DEPTH} levels`, 'every operator of a chain like `a or b or c` is a level; use `in [...]` or name parts with `let`');
      }
    }
  }
  diagnostics.push(...parsed.diagnostics);
  const file: PolicyFile = { kind: 'file', path, decls: parsed.decls, comments: lexed.comments, span: fileSpan(path, text) };
  return { file, diagnostics: sortDiagnostics(diagnostics) };
}
