import { describe, it, expect } from 'vitest';
import { lex, parseFile, MAX_FILE_BYTES, MAX_TOKENS } from '../../grammar/index.js';
import { NestingLimitError, parseTokens } from '../../grammar/parser.js';

// Each case must finish well inside the timeout: a hang or a stack overflow fails it.
const HANG_GUARD = 20_000;

function only(text: string): { code: string; line: number; col: number; message: string } {
  const r = parseFile('deep.agp', text);
  expect(r.diagnostics).toHaveLength(1);
  expect(r.file.decls).toEqual([]);
  const d = r.diagnostics[0]!;
  return { code: d.code, line: d.line, col: d.col, message: d.message };
}

describe('hostile input', () => {
  it('100,000 open parentheses give one limit error at the 65th', () => {
    expect(only(`let x = ${'('.repeat(100_000)}`)).toEqual({ code: 'agp_limit_error', line: 1, col: 73, message: 'nesting deeper than 64 levels' });
  }, HANG_GUARD);

  it('deep lists, records, matches, calls and prefix operators are all limited', () => {
    for (const text of [
      `let x = ${'['.repeat(50_000)}`,
      `let x = ${'{a: '.repeat(50_000)}`,
      `let x = ${'match x { a: '.repeat(20_000)}`,
      `let x = ${'f('.repeat(50_000)}`,
      `let x = ${'not '.repeat(100_000)}true`,
      `let x = ${'-'.repeat(100_000)}1`,
      `schema { a: ${'list<'.repeat(50_000)}string }`,
      `schema { a ${'{ b '.repeat(50_000)}`,
    ]) {
      expect(only(text).code).toBe('agp_limit_error');
    }
  }, HANG_GUARD);

  it('a long operator chain is limited without recursion', () => {
    expect(only(`let x = a${' or a'.repeat(60_000)}`)).toMatchObject({ code: 'agp_limit_error', message: 'expression nested deeper than 256 levels' });
  }, HANG_GUARD);

  it('a 2 MiB file gives one limit error', () => {
    const line = 'let some_name = "a fairly long string value to fill the file up" // and a comment\n';
    const text = line.repeat(Math.ceil((2 * MAX_FILE_BYTES) / line.length));
    const d = only(text);
    expect(d.code).toBe('agp_limit_error');
    expect(d.message).toBe('file is larger than 1 MiB (1048576 bytes)');
    // the position is where the byte count passes 1 MiB
    const at = Math.floor(MAX_FILE_BYTES / line.length);
    expect(d.line).toBe(at + 1);
  }, HANG_GUARD);

  it('counts UTF-8 bytes, not characters', () => {
    const chars = Math.floor(MAX_FILE_BYTES / 3) + 10;
    expect(only(`// ${'€'.repeat(chars)}`).message).toBe('file is larger than 1 MiB (1048576 bytes)');
    expect(parseFile('ok.agp', `// ${'é'.repeat(Math.floor(MAX_FILE_BYTES / 2) - 10)}`).diagnostics).toEqual([]);
  }, HANG_GUARD);

  it('more than 200,000 tokens under 1 MiB is limited', () => {
    const text = `let x = [${'1,'.repeat(MAX_TOKENS / 2)}]`;
    expect(text.length).toBeLessThan(MAX_FILE_BYTES);
    expect(only(text).message).toBe('file has more than 200000 tokens');
  }, HANG_GUARD);

  it('the parser has its own depth guard behind the token pre-scan', () => {
    const tokens = lex('x.agp', `let x = ${'('.repeat(5_000)}1${')'.repeat(5_000)}`).tokens;
    const noScan = { openBefore: new Int32Array(tokens.length + 1).fill(-1), parentOpen: new Int32Array(tokens.length).fill(-1) };
    expect(() => parseTokens('x.agp', tokens, noScan)).toThrow(NestingLimitError);
    // and the parser is usable afterwards
    expect(parseFile('ok.agp', 'let x = (1)').diagnostics).toEqual([]);
  }, HANG_GUARD);
});
