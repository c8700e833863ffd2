import { describe, it, expect } from 'vitest';
import { parseFile } from '../../grammar/index.js';

/** Diagnostics as one line each: `line:col-endLine:endCol code message [hint]`. */
function diags(text: string): string[] {
  return parseFile('bad.agp', text).diagnostics.map(
    (d) => `${d.line}:${d.col}-${d.endLine}:${d.endCol} ${d.code} ${d.message}${d.hint ? ` [${d.hint}]` : ''}`,
  );
}

describe('agp_lex_error', () => {
  it('reports an unexpected character with a hint', () => {
    expect(diags('let a = x && y\n')).toEqual([
      '1:11-1:12 agp_lex_error unexpected characters `&&` [use `and` to combine conditions]',
      '1:14-1:14 agp_parse_error expected a declaration (`schema`, `let`, `risk`, `policy`, `forbid` or `test`), found `y`',
    ]);
    expect(diags('let a = #\n')[0]).toBe('1:9-1:9 agp_lex_error unexpected character `#`');
  });

  it('reports an unterminated string once, at the string', () => {
    expect(diags('let a = "abc\nlet b = 1\n')).toEqual([
      '1:9-1:12 agp_lex_error unterminated string [close the string with `"` on the same line; write a newline as `\\n`]',
    ]);
  });

  it('reports an unterminated block comment at its opening', () => {
    expect(diags('let a = 1\n/* never\nclosed')).toEqual(['2:1-2:2 agp_lex_error unterminated block comment [close it with `*/`]']);
  });

  it('reports an invalid escape at the escape', () => {
    expect(diags('let a = "x\\qy"')).toEqual([
      '1:11-1:12 agp_lex_error invalid escape `\\q` in string [valid escapes are `\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\uXXXX`]',
    ]);
    expect(diags('let a = "\\u12"')[0]).toBe(
      '1:10-1:13 agp_lex_error invalid escape `\\u12` in string [valid escapes are `\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\uXXXX`]',
    );
  });

  it('reports malformed numbers, durations and versions as one token', () => {
    expect(diags('let a = 5min')).toEqual(['1:9-1:12 agp_lex_error invalid number `5min` [durations end in `ms`, `s`, `m`, `h` or `d`, e.g. `5m`]']);
    expect(diags('let a = 1.2.3.4')).toEqual(['1:9-1:15 agp_lex_error invalid number `1.2.3.4`']);
    expect(diags('let a = 1e999')).toEqual(['1:9-1:13 agp_lex_error number `1e999` is too large [numbers must be at most 1.7976931348623157e308]']);
  });
});

describe('agp_parse_error', () => {
  it('names the unclosed block and where it was opened', () => {
    expect(diags('policy p {\n  permit\n')).toEqual([
      '3:1-3:1 agp_parse_error expected an outcome (`permit`, `deny` or `escalate`) or `}` to close the policy opened at 1:1, found end of file',
    ]);
    expect(diags('let x = [1, 2\nlet y = 3\n')).toEqual(['2:1-2:3 agp_parse_error expected `]` to close the list opened at 1:9, found `let`']);
    expect(diags('let x = f(1, 2\n')).toEqual(['2:1-2:1 agp_parse_error expected `)` to close the argument list opened at 1:10, found end of file']);
    expect(diags('let x = (1 + 2\nlet y = 1')).toEqual(['2:1-2:3 agp_parse_error expected `)` to close the parenthesis opened at 1:9, found `let`']);
  });

  it('hints at `==` for a single `=` in a condition', () => {
    expect(diags('policy p "x" {\n  when a = b\n  permit\n}\n')).toEqual([
      '2:10-2:10 agp_parse_error expected an outcome (`permit`, `deny` or `escalate`) or `}` to close the policy opened at 1:1, found `=` [compare with `==`]',
    ]);
  });

  it('rejects chained comparisons and a misplaced `not` with a hint', () => {
    expect(diags('let x = a has b == c\nlet y = a == not b\nlet z = -not a\nlet w = not not a == b')).toEqual([
      '1:17-1:18 agp_parse_error comparisons do not chain: `==` follows another comparison [combine them with `and`, or add parentheses]',
      '2:14-2:16 agp_parse_error `not` needs parentheses here [write `(not ...)`: `not` binds more loosely than comparisons and arithmetic]',
      '3:10-3:12 agp_parse_error `not` needs parentheses here [write `(not ...)`: `not` binds more loosely than comparisons and arithmetic]',
    ]);
    expect(diags('let x = 1 < 2 < 3\n')).toEqual([
      '1:15-1:15 agp_parse_error comparisons do not chain: `<` follows another comparison [combine them with `and`, or add parentheses]',
    ]);
  });

  it('points at a stray closing brace', () => {
    expect(diags('}\nlet x = 1\n')).toEqual([
      '1:1-1:1 agp_parse_error expected a declaration (`schema`, `let`, `risk`, `policy`, `forbid` or `test`), found `}` [this `}` closes nothing; remove it]',
    ]);
  });

  it('reports a policy without outcomes and a keyword used as a name', () => {
    expect(diags('policy p {}\n')).toEqual([
      '1:8-1:8 agp_parse_error policy `p` has no outcome [add `permit`, `deny` or `escalate`, e.g. `permit if risk < 40`]',
    ]);
    expect(diags('let deny = 1\n')).toEqual(['1:5-1:8 agp_parse_error expected a name, found `deny`']);
  });

  it('reports malformed test items with a suggestion', () => {
    expect(diags('test "t" {\n  expect polcy p\n}')).toEqual(['2:10-2:14 agp_parse_error unknown expectation `polcy` [did you mean `expect policy`?]']);
    expect(diags('test "t" {\n  expect factor doubt\n}')).toEqual([
      '2:17-2:21 agp_parse_error `expect factor` is written `expect factor <name> <comparison> <number>`',
    ]);
    expect(diags('test "t" {\n  agnt { id: "x" }\n  expect risky < 3\n  action { a: 1 }\n  expect policies "p"\n}\n')).toEqual([
      '2:3-2:6 agp_parse_error unknown test item `agnt` [did you mean `agent`?]',
      '3:16-3:16 agp_parse_error expected `permit`, `deny`, `escalate`, `risk`, `factor`, `policy`, `policies` or `reason` after `expect`, found `<`',
      '4:3-4:8 agp_parse_error `action` takes a string [write `action "read"`]',
      '5:10-5:17 agp_parse_error `expect policies` is written `expect policies [a, b]`',
    ]);
  });

  it('rejects a level member that is not a plain name', () => {
    expect(diags('schema { a: level<x, set<y>> }')).toEqual([
      '1:22-1:27 agp_parse_error a level member must be a plain name [write the members in order, e.g. `level<low, medium, high>`]',
    ]);
  });

  it('reports all three of three separate syntax errors, sorted', () => {
    const text = [
      'policy a {',
      '  permit if x ==',
      '}',
      '',
      'policy b {',
      '  when a b',
      '  permit',
      '}',
      '',
      'let c = (1 +',
      '',
    ].join('\n');
    expect(diags(text)).toEqual([
      '3:1-3:1 agp_parse_error expected an expression, found `}`',
      '6:10-6:10 agp_parse_error expected an outcome (`permit`, `deny` or `escalate`) or `}` to close the policy opened at 5:1, found `b`',
      '11:1-11:1 agp_parse_error expected an expression, found end of file',
    ]);
  });

  it('reports lexical and syntax errors of one file together, by position', () => {
    expect(diags('garbage here\nlet x = 1\n$$$\nlet y = \n')).toEqual([
      '1:1-1:7 agp_parse_error expected a declaration (`schema`, `let`, `risk`, `policy`, `forbid` or `test`), found `garbage`',
      '3:1-3:3 agp_lex_error unexpected characters `$$$`',
      '5:1-5:1 agp_parse_error expected an expression, found end of file',
    ]);
  });
});

describe('agp_limit_error', () => {
  it('rejects brackets nested deeper than 64 at the 65th', () => {
    const text = `let x = ${'('.repeat(65)}1${')'.repeat(65)}`;
    expect(diags(text)).toEqual([
      '1:73-1:73 agp_limit_error nesting deeper than 64 levels [brackets and `not`/`-` prefixes nest at most 64 deep; name parts of the expression with `let`]',
    ]);
    expect(diags(`let x = ${'('.repeat(64)}1${')'.repeat(64)}`)).toEqual([]);
  });

  it('counts prefix operators and type arguments as nesting', () => {
    expect(diags(`let x = ${'not '.repeat(65)}true`)[0]).toMatch(/^1:\d+-1:\d+ agp_limit_error nesting deeper than 64 levels/);
    expect(diags(`let x = ${'- '.repeat(40)}(${'- '.repeat(30)}1)`)[0]).toMatch(/agp_limit_error/);
    expect(diags(`let x = 1 ${'- 1 '.repeat(100)}`)).toEqual([]);
    expect(diags(`schema { a: ${'set<'.repeat(70)}string${'>'.repeat(70)} }`)[0]).toMatch(/^1:\d+-1:\d+ agp_limit_error nesting deeper than 64 levels/);
  });

  it('rejects an operator chain deeper than 256 levels', () => {
    expect(diags(`let x = 1${' + 1'.repeat(255)}`)).toEqual([]);
    expect(diags(`let x = 1${' + 1'.repeat(256)}`)).toEqual([
      '1:13-1:13 agp_limit_error expression nested deeper than 256 levels [every operator of a chain like `a or b or c` is a level; use `in [...]` or name parts with `let`]',
    ]);
  });

  it('rejects a file over 1 MiB and one with more than 200,000 tokens', () => {
    const big = `// ${'x'.repeat(1024 * 1024)}\n`;
    expect(diags(big)).toEqual(['1:1048577-1:1048577 agp_limit_error file is larger than 1 MiB (1048576 bytes) [split the policies into several files]']);
    const many = `let x = [${'1,'.repeat(100_000)}]`;
    expect(diags(many)).toEqual(['1:200006-1:200006 agp_limit_error file has more than 200000 tokens [split the policies into several files]']);
  });
});
