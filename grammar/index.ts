// The .agp front end's public entry point: parse, format, AST helpers and limits.
export { parseFile, parseSource, MAX_FILE_BYTES, MAX_TOKENS } from './parse.js';
export type { ParseResult } from './parse.js';
export { formatSource, formatFile } from './format.js';
export { stripSpans, astEqual, declExpressions } from './ast-util.js';
export { MAX_NESTING } from './parser.js';
export { MAX_EXPRESSION_DEPTH } from './to-ast.js';
export { lex, tokenSpan, decodeString, durationSeconds, KEYWORD_NAMES } from './lexer.js';
export type { LexResult } from './lexer.js';
