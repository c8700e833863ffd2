import { describe, it, expect } from 'vitest';
import { parseFile, parseSource, stripSpans } from '../../grammar/index.js';
import type { Decl, Expr, PolicyDecl, TestDecl } from '../../grammar/ast.js';

function ok(text: string): Decl[] {
  const r = parseFile('t.agp', text);
  expect(r.diagnostics).toEqual([]);
  return r.file.decls;
}

/** The expression of `let x = <src>`, without spans. */
function expr(src: string): unknown {
  const [d] = ok(`let x = ${src}`);
  if (d?.kind !== 'let') throw new Error('not a let');
  return stripSpans(d.value);
}

/** A compact rendering of an expression tree: fully parenthesised. */
function shape(e: Expr): string {
  switch (e.kind) {
    case 'binary':
      return `(${shape(e.left)} ${e.op} ${shape(e.right)})`;
    case 'unary':
      return `(${e.op === 'not' ? 'not ' : '-'}${shape(e.arg)})`;
    case 'member':
      return `${shape(e.object)}.${e.name}`;
    case 'has':
      return `(${shape(e.object)} has ${e.name})`;
    case 'ident':
      return e.name;
    case 'number':
      return String(e.value);
    case 'string':
      return JSON.stringify(e.value);
    case 'bool':
      return String(e.value);
    case 'call':
      return `${e.callee}(${e.args.map(shape).join(', ')})`;
    case 'list':
      return `[${e.items.map(shape).join(', ')}]`;
    default:
      return e.kind;
  }
}

function shapeOf(src: string): string {
  const [d] = ok(`let x = ${src}`);
  if (d?.kind !== 'let') throw new Error('not a let');
  return shape(d.value);
}

describe('expressions', () => {
  it('parses literals of every kind', () => {
    expect(expr('"a\\"b\\\\c\\n\\t\\r\\u00e9"')).toEqual({ kind: 'string', value: 'a"b\\c\n\t\ré' });
    expect(expr('12')).toEqual({ kind: 'number', value: 12 });
    expect(expr('0.93')).toEqual({ kind: 'number', value: 0.93 });
    expect(expr('1.5e3')).toEqual({ kind: 'number', value: 1500 });
    expect(expr('2E-2')).toEqual({ kind: 'number', value: 0.02 });
    expect(expr('2.4.1')).toEqual({ kind: 'version', raw: '2.4.1' });
    expect(expr('2.4')).toEqual({ kind: 'number', value: 2.4 });
    expect(expr('250ms')).toEqual({ kind: 'duration', raw: '250ms', seconds: 0.25 });
    expect(expr('30s')).toEqual({ kind: 'duration', raw: '30s', seconds: 30 });
    expect(expr('5m')).toEqual({ kind: 'duration', raw: '5m', seconds: 300 });
    expect(expr('1.5h')).toEqual({ kind: 'duration', raw: '1.5h', seconds: 5400 });
    expect(expr('1d')).toEqual({ kind: 'duration', raw: '1d', seconds: 86400 });
    expect(expr('true')).toEqual({ kind: 'bool', value: true });
    expect(expr('false')).toEqual({ kind: 'bool', value: false });
    expect(expr('risk')).toEqual({ kind: 'risk' });
    expect(expr('granted')).toEqual({ kind: 'granted' });
  });

  it('follows the documented precedence, loosest first: or, and, not, comparison, + -, * / %, unary -', () => {
    expect(shapeOf('a or b and c')).toBe('(a or (b and c))');
    expect(shapeOf('a and b or c')).toBe('((a and b) or c)');
    expect(shapeOf('not a and b')).toBe('((not a) and b)');
    expect(shapeOf('not a == b')).toBe('(not (a == b))');
    expect(shapeOf('not not a')).toBe('(not (not a))');
    expect(shapeOf('a + b * c == d - e / f')).toBe('((a + (b * c)) == (d - (e / f)))');
    expect(shapeOf('a - b - c')).toBe('((a - b) - c)');
    expect(shapeOf('a / b % c * d')).toBe('(((a / b) % c) * d)');
    expect(shapeOf('-a * b')).toBe('((-a) * b)');
    expect(shapeOf('- -a')).toBe('(-(-a))');
    expect(shapeOf('-a.b')).toBe('(-a.b)');
    expect(shapeOf('(a or b) and c')).toBe('((a or b) and c)');
    expect(shapeOf('a.b.c + 1 > 2 and x has owner')).toBe('(((a.b.c + 1) > 2) and (x has owner))');
    expect(shapeOf('"x" in agent.roles or agent.roles contains "y"')).toBe('(("x" in agent.roles) or (agent.roles contains "y"))');
    expect(shapeOf('s like "a*"')).toBe('(s like "a*")');
    for (const op of ['==', '!=', '<', '<=', '>', '>=']) expect(shapeOf(`a ${op} b`)).toBe(`(a ${op} b)`);
  });

  it('reads keywords as names after `.`, after `has` and as record keys', () => {
    expect(shapeOf('x.in.if.policy')).toBe('x.in.if.policy');
    expect(shapeOf('x has deny')).toBe('(x has deny)');
    expect(expr('{ if: 1, with: 2 }')).toEqual({
      kind: 'record',
      fields: [
        { name: 'if', value: { kind: 'number', value: 1 } },
        { name: 'with', value: { kind: 'number', value: 2 } },
      ],
    });
  });

  it('keeps identifiers that start with a keyword whole', () => {
    expect(shapeOf('permitted and android or index')).toBe('((permitted and android) or index)');
  });

  it('parses calls, lists and records with optional trailing commas', () => {
    expect(shapeOf('clamp(x - 2, 0, 5)')).toBe('clamp((x - 2), 0, 5)');
    expect(shapeOf('size([])')).toBe('size([])');
    expect(shapeOf('[1, 2, 3,]')).toBe('[1, 2, 3]');
    expect(expr('{ a: 1 b: 2, }')).toEqual({
      kind: 'record',
      fields: [
        { name: 'a', value: { kind: 'number', value: 1 } },
        { name: 'b', value: { kind: 'number', value: 2 } },
      ],
    });
    expect(expr('{}')).toEqual({ kind: 'record', fields: [] });
  });

  it('parses match with name, string and bool labels and else', () => {
    expect(expr('match s { low: 1, "mid": 2 true: 3, else: 0 }')).toEqual({
      kind: 'match',
      subject: { kind: 'ident', name: 's' },
      arms: [
        { label: 'low', labelKind: 'name', value: { kind: 'number', value: 1 } },
        { label: 'mid', labelKind: 'string', value: { kind: 'number', value: 2 } },
        { label: 'true', labelKind: 'bool', value: { kind: 'number', value: 3 } },
      ],
      otherwise: { kind: 'number', value: 0 },
    });
    expect(expr('match s { a: 1 }')).toMatchObject({ otherwise: null });
  });
});

describe('declarations', () => {
  it('parses a schema with roots, optional fields, generic, level and record types', () => {
    const [s] = ok(`schema {
  agent {
    id: string
    roles: set<string>,
    model: { name: string, version: version }
    trust: level<low, high>
    tags?: list<set<string>>
  }
  action: string
}`);
    expect(stripSpans(s)).toEqual({
      kind: 'schema',
      roots: [
        {
          kind: 'field',
          name: 'agent',
          optional: false,
          type: {
            kind: 'type_record',
            fields: [
              { kind: 'field', name: 'id', optional: false, type: { kind: 'type_name', name: 'string', args: [] } },
              {
                kind: 'field',
                name: 'roles',
                optional: false,
                type: { kind: 'type_name', name: 'set', args: [{ kind: 'type_name', name: 'string', args: [] }] },
              },
              {
                kind: 'field',
                name: 'model',
                optional: false,
                type: {
                  kind: 'type_record',
                  fields: [
                    { kind: 'field', name: 'name', optional: false, type: { kind: 'type_name', name: 'string', args: [] } },
                    { kind: 'field', name: 'version', optional: false, type: { kind: 'type_name', name: 'version', args: [] } },
                  ],
                },
              },
              { kind: 'field', name: 'trust', optional: false, type: { kind: 'type_level', members: [{ name: 'low' }, { name: 'high' }] } },
              {
                kind: 'field',
                name: 'tags',
                optional: true,
                type: {
                  kind: 'type_name',
                  name: 'list',
                  args: [{ kind: 'type_name', name: 'set', args: [{ kind: 'type_name', name: 'string', args: [] }] }],
                },
              },
            ],
          },
        },
        { kind: 'field', name: 'action', optional: false, type: { kind: 'type_name', name: 'string', args: [] } },
      ],
    });
  });

  it('accepts keywords as schema field names', () => {
    const [s] = ok('schema { task { if: bool, policy?: string } }');
    expect(s?.kind === 'schema' && s.roots[0]?.type.kind === 'type_record' && s.roots[0].type.fields.map((f) => f.name)).toEqual(['if', 'policy']);
  });

  it('parses lets and risk factors with and without conditions', () => {
    const decls = ok('let big = resource.amount > 1000\nrisk {\n  a: 10 if big,\n  b: 30 * (1 - agent.confidence)\n}');
    expect(stripSpans(decls)).toEqual([
      {
        kind: 'let',
        name: 'big',
        value: {
          kind: 'binary',
          op: '>',
          left: { kind: 'member', object: { kind: 'ident', name: 'resource' }, name: 'amount' },
          right: { kind: 'number', value: 1000 },
        },
      },
      {
        kind: 'risk',
        factors: [
          { kind: 'factor', name: 'a', value: { kind: 'number', value: 10 }, condition: { kind: 'ident', name: 'big' } },
          {
            kind: 'factor',
            name: 'b',
            value: {
              kind: 'binary',
              op: '*',
              left: { kind: 'number', value: 30 },
              right: {
                kind: 'binary',
                op: '-',
                left: { kind: 'number', value: 1 },
                right: { kind: 'member', object: { kind: 'ident', name: 'agent' }, name: 'confidence' },
              },
            },
            condition: null,
          },
        ],
      },
    ]);
  });

  it('parses a policy with target, when and outcomes in order', () => {
    const [p] = ok(`policy freeze "needs a flagged task" {
  on action == "freeze"
  when task.flagged
  permit if risk < 40 with { ttl: 5m } because "ok"
  escalate with { approver: "ops" }
  deny because "no"
}`);
    expect(stripSpans(p)).toEqual({
      kind: 'policy',
      forbid: false,
      name: 'freeze',
      description: { kind: 'string', value: 'needs a flagged task' },
      target: { kind: 'binary', op: '==', left: { kind: 'ident', name: 'action' }, right: { kind: 'string', value: 'freeze' } },
      when: { kind: 'member', object: { kind: 'ident', name: 'task' }, name: 'flagged' },
      outcomes: [
        {
          kind: 'outcome',
          effect: 'permit',
          condition: { kind: 'binary', op: '<', left: { kind: 'risk' }, right: { kind: 'number', value: 40 } },
          obligations: { kind: 'record', fields: [{ name: 'ttl', value: { kind: 'duration', raw: '5m', seconds: 300 } }] },
          reason: { kind: 'string', value: 'ok' },
        },
        {
          kind: 'outcome',
          effect: 'escalate',
          condition: null,
          obligations: { kind: 'record', fields: [{ name: 'approver', value: { kind: 'string', value: 'ops' } }] },
          reason: null,
        },
        { kind: 'outcome', effect: 'deny', condition: null, obligations: null, reason: { kind: 'string', value: 'no' } },
      ],
    });
  });

  it('turns a forbid into a policy with one deny outcome carrying its reason and span', () => {
    const [f] = ok('forbid old "old models" {\n  when agent.model.version < 2.0.0\n  because "retired"\n}') as PolicyDecl[];
    expect(f!.forbid).toBe(true);
    expect(f!.target).toBeNull();
    expect(stripSpans(f!.outcomes)).toEqual([
      { kind: 'outcome', effect: 'deny', condition: null, obligations: null, reason: { kind: 'string', value: 'retired' } },
    ]);
    expect(f!.outcomes[0]!.span).toEqual(f!.span);
    expect(f!.span).toMatchObject({ line: 1, col: 1, endLine: 4, endCol: 1 });
  });

  it('parses every kind of test item', () => {
    const [t] = ok(`test "a case" {
  agent { id: "a1", roles: ["x"] }
  registered { trust: verified }
  behavior { rate_z: 0 }
  resource { type: "account" }
  task { kind: "k" }
  action "read"
  grant { actions: ["read"], resource: "account:*", expires_in: 10m }
  now "2026-11-28T10:00:00Z"
  expect permit with { ttl: 5m }
  expect deny
  expect risk < 40
  expect factor doubt >= -1.5
  expect policy p1
  expect policies [p1, p2]
  expect reason "why"
}`) as TestDecl[];
    const items = stripSpans(t!.items);
    expect(items.map((i) => i.kind)).toEqual([
      'test_input', 'test_input', 'test_input', 'test_input', 'test_input', 'test_action', 'test_grant', 'test_now',
      'expect_effect', 'expect_effect', 'expect_risk', 'expect_factor', 'expect_policies', 'expect_policies', 'expect_reason',
    ]);
    expect(items.slice(0, 5).map((i) => (i.kind === 'test_input' ? i.root : ''))).toEqual(['agent', 'registered', 'behavior', 'resource', 'task']);
    expect(items[10]).toEqual({ kind: 'expect_risk', op: '<', value: { kind: 'number', value: 40 } });
    expect(items[11]).toEqual({ kind: 'expect_factor', name: 'doubt', op: '>=', value: { kind: 'number', value: -1.5 } });
    expect(items[12]).toEqual({ kind: 'expect_policies', names: [{ name: 'p1' }] });
    expect(items[13]).toEqual({ kind: 'expect_policies', names: [{ name: 'p1' }, { name: 'p2' }] });
    expect(items[9]).toEqual({ kind: 'expect_effect', effect: 'deny', obligations: null });
  });
});

describe('spans', () => {
  it('gives 1-based inclusive line/col and 0-based half-open offsets', () => {
    const text = 'let x =\n  a.b + 10';
    const [d] = ok(text);
    if (d?.kind !== 'let') throw new Error('let');
    expect(d.span).toEqual({ file: 't.agp', line: 1, col: 1, endLine: 2, endCol: 10, offset: 0, endOffset: text.length });
    expect(d.nameSpan).toMatchObject({ line: 1, col: 5, endCol: 5, offset: 4, endOffset: 5 });
    const v = d.value;
    if (v.kind !== 'binary' || v.left.kind !== 'member') throw new Error('shape');
    expect(v.span).toMatchObject({ line: 2, col: 3, endLine: 2, endCol: 10 });
    expect(v.left.nameSpan).toMatchObject({ line: 2, col: 5, endCol: 5 });
    expect(text.slice(v.right.span.offset, v.right.span.endOffset)).toBe('10');
  });

  it('covers a whole policy, its outcomes and call names', () => {
    const text = 'policy p {\n  permit if clamp(x, 0, 1) > 0 because "r"\n}\n';
    const [p] = ok(text) as PolicyDecl[];
    expect(text.slice(p!.span.offset, p!.span.endOffset)).toBe(text.trimEnd());
    const o = p!.outcomes[0]!;
    expect(text.slice(o.span.offset, o.span.endOffset)).toBe('permit if clamp(x, 0, 1) > 0 because "r"');
    const c = o.condition;
    if (c?.kind !== 'binary' || c.left.kind !== 'call') throw new Error('shape');
    expect(c.left.calleeSpan).toMatchObject({ line: 2, col: 13, endCol: 17 });
    expect(text.slice(c.left.span.offset, c.left.span.endOffset)).toBe('clamp(x, 0, 1)');
  });

  it('records every comment with its text, kind and position', () => {
    const r = parseSource('// one\nlet x = 1 /* two\nlines */\n');
    expect(r.file.comments.map((c) => [c.text, c.block, c.span.line, c.span.col, c.span.endLine])).toEqual([
      ['// one', false, 1, 1, 1],
      ['/* two\nlines */', true, 2, 11, 3],
    ]);
  });
});

describe('parse results', () => {
  it('returns an empty file for empty or comment-only text', () => {
    expect(parseFile('e.agp', '').file).toMatchObject({ kind: 'file', path: 'e.agp', decls: [] });
    expect(parseFile('e.agp', '// nothing\n').diagnostics).toEqual([]);
  });

  it('keeps the declarations around a syntax error', () => {
    const r = parseFile('e.agp', 'let a = 1\npolicy p { permit if }\nlet b = 2\n');
    expect(r.diagnostics.map((d) => d.code)).toEqual(['agp_parse_error']);
    expect(r.file.decls.map((d) => d.kind)).toEqual(['let', 'policy', 'let']);
    expect(r.diagnostics[0]).toMatchObject({ line: 2, col: 22, message: 'expected an expression, found `}`' });
    expect((r.file.decls[1] as PolicyDecl).name).toBe('p');
  });


  // A rule that recovers by re-syncing must hand its caller a value the caller can build on;
  // each case puts the failure inside a rule whose result a caller uses. The first came out
  // as "internal parser error" from the fuzz test before the fix.
  it.each([
    ['a missing level member', 'schema { resource { s: level<a, , b> } }', '1:33 expected a type, found `,`'],
    ['a missing type argument', 'schema { resource { s: set<> } }', '1:28 expected a type, found `>`'],
    ['a broken record type', 'schema { resource { m: { n: } } }', '1:29 expected a type, found `}`'],
    ['a broken call', 'let a = size(1 +) + 1', '1:17 expected an expression, found `)`'],
    ['a broken obligation record', 'policy p { permit with { ttl: } }', '1:31 expected an expression, found `}`'],
    ['a sign with no number', 'test "t" { expect risk < - }', '1:28 expected a number, found `}`'],
  ])('reports %s at its place, never an internal error', (_what, text, first) => {
    const r = parseFile('e.agp', text);
    expect(r.diagnostics.length).toBeGreaterThan(0);
    const d = r.diagnostics[0]!;
    expect(`${d.line}:${d.col} ${d.message}`).toBe(first);
    for (const x of r.diagnostics) expect(x.message).not.toMatch(/internal/);
  });
  it('reuses one parser: a failed parse does not affect the next', () => {
    parseFile('bad.agp', 'policy { ( [ ');
    expect(ok('let a = (1 + 2) * 3').length).toBe(1);
  });
});
