import { describe, it, expect } from 'vitest';
import { formatFile, formatSource, parseFile, stripSpans } from '../../grammar/index.js';

function fmt(text: string): string {
  const r = formatSource('f.agp', text);
  expect(r.diagnostics).toEqual([]);
  expect(formatSource('f.agp', r.text!).text).toBe(r.text);
  return r.text!;
}

describe('canonical layout', () => {
  it('indents by two, puts one item per line and one blank line between declarations', () => {
    expect(fmt('schema{agent{id:string roles:set<string>}action:string}let a=1 risk{x:1 if a,y:2}')).toBe(
      [
        'schema {',
        '  agent {',
        '    id: string',
        '    roles: set<string>',
        '  }',
        '  action: string',
        '}',
        '',
        'let a = 1',
        '',
        'risk {',
        '  x: 1 if a',
        '  y: 2',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('prints policies, forbids and tests with single spaces', () => {
    const src = `policy  p   "d" { on action=="x"   when a
      permit   if risk<40 with {ttl:5m,scopes:["a"]} because "ok"
      deny }
forbid f { because "no" }
test "t" { action "x" expect  policies [p] expect factor a >= -1 expect permit with {ttl: 5m} }`;
    expect(fmt(src)).toBe(
      [
        'policy p "d" {',
        '  on action == "x"',
        '  when a',
        '  permit if risk < 40 with { ttl: 5m, scopes: ["a"] } because "ok"',
        '  deny',
        '}',
        '',
        'forbid f {',
        '  because "no"',
        '}',
        '',
        'test "t" {',
        '  action "x"',
        '  expect policy p',
        '  expect factor a >= -1',
        '  expect permit with { ttl: 5m }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('uses the fewest parentheses that keep the meaning', () => {
    expect(fmt('let a = ((x + y)) * (z - (w - v)) - (-(1))')).toBe('let a = (x + y) * (z - (w - v)) - -1\n');
    expect(fmt('let a = (not (a == b)) and (c or d) and ((e has f) == true)')).toBe('let a = not a == b and (c or d) and (e has f) == true\n');
    expect(fmt('let a = (a.b).c + (f(x)).y')).toBe('let a = a.b.c + f(x).y\n');
  });

  it('prints numbers canonically, strings re-escaped, versions and durations as written', () => {
    expect(fmt('let a = [1.50, 1e3, 0.000, 2.4.10, 1.5h, 250ms, "tab\\there \\u00e9 \\u0001"]')).toBe(
      'let a = [1.5, 1000, 0, 2.4.10, 1.5h, 250ms, "tab\\there é \\u0001"]\n',
    );
  });

  it('breaks a record, list or match that does not fit in 100 columns, one element per line', () => {
    const long = 'test "t" { registered { owner: "risk-team", roles: ["fraud-detector"], model: { name: "fraudnet", version: 2.4.1 }, trust: verified } }';
    expect(fmt(long)).toBe(
      [
        'test "t" {',
        '  registered {',
        '    owner: "risk-team",',
        '    roles: ["fraud-detector"],',
        '    model: { name: "fraudnet", version: 2.4.1 },',
        '    trust: verified,',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('keeps nested record types inline when they fit, as blocks otherwise', () => {
    const wide = `schema { agent { m: { ${Array.from({ length: 12 }, (_, i) => `field_${i}: string`).join(', ')} }, n: { a: number } } }`;
    const out = fmt(wide);
    expect(out).toContain('    m {\n      field_0: string\n');
    expect(out).toContain('    n: { a: number }\n');
  });

  it('keeps at most one blank line between items inside blocks where the author left one', () => {
    expect(fmt('risk {\n  a: 1\n\n\n\n  b: 2\n  c: 3\n}\n\n\n\nlet x = 1\nlet y = 2\n')).toBe('risk {\n  a: 1\n\n  b: 2\n  c: 3\n}\n\nlet x = 1\n\nlet y = 2\n');
  });

  it('formats an empty file to nothing', () => {
    expect(fmt('\n\n')).toBe('');
  });
});

describe('comments', () => {
  it('keeps leading, trailing, header and dangling comments in place', () => {
    const src = [
      '// file header',
      '',
      '// about the schema',
      'schema { // the request',
      '  agent {',
      '    id: string // who',
      '    /* the roles */ roles: set<string>',
      '    // nothing after this',
      '  }',
      '}',
      'policy p {',
      '  permit /* inline */',
      '  // last words',
      '} // end of p',
      '// the end',
    ].join('\n');
    expect(fmt(src)).toBe(
      [
        '// file header',
        '',
        '// about the schema',
        'schema { // the request',
        '  agent {',
        '    id: string // who',
        '    /* the roles */',
        '    roles: set<string>',
        '    // nothing after this',
        '  }',
        '}',
        '',
        'policy p {',
        '  permit /* inline */',
        '  // last words',
        '} // end of p',
        '// the end',
        '',
      ].join('\n'),
    );
  });

  it('moves comments inside an expression before its statement', () => {
    expect(fmt('policy p {\n  permit if a /* why a */ and\n    b // and b\n    with { ttl: /* short */ 5m }\n}\n')).toBe(
      'policy p {\n  /* why a */\n  // and b\n  /* short */\n  permit if a and b with { ttl: 5m }\n}\n',
    );
  });

  it('aligns trailing comments of consecutive one-line items', () => {
    expect(fmt('schema {\n  task {\n    kind: string // what\n    flagged: bool   // raised\n\n    ticket?: string // other group\n  }\n}\n')).toBe(
      'schema {\n  task {\n    kind: string  // what\n    flagged: bool // raised\n\n    ticket?: string // other group\n  }\n}\n',
    );
  });

  it('keeps multi-line block comments verbatim', () => {
    const out = fmt('/* one\n   two */\nlet a = 1\n');
    expect(out).toBe('/* one\n   two */\nlet a = 1\n');
  });
});

describe('formatSource', () => {
  it('returns no text and the diagnostics of a file with errors', () => {
    const r = formatSource('bad.agp', 'let a = (1\n');
    expect(r.text).toBeUndefined();
    expect(r.diagnostics.map((d) => d.code)).toEqual(['agp_parse_error']);
  });
});

describe('signed expectation values', () => {
  it('keep negative zero through a round trip (found by the print/parse property)', () => {
    const src = 'test "t" {\n  action "read"\n  expect risk < -0\n  expect factor doubt >= -0.5\n}\n';
    const parsed = parseFile('t.test.agp', src);
    const printed = formatFile(parsed.file, src);
    expect(printed).toContain('expect risk < -0\n');
    const again = parseFile('t.test.agp', printed);
    expect(stripSpans(again.file.decls)).toEqual(stripSpans(parsed.file.decls));
  });
});
