// The checker: golden diagnostics for every code, lowering to the IR, the optional-attribute
// flow rule, the example policy set, and robustness on random input.

import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseFile } from '../../grammar/index.js';
import { checkPolicySet, parseRfc3339, type CheckResult } from '../../engine/checker.js';
import { loadPolicySet } from '../../engine/load.js';
import type { Diagnostic } from '../../engine/diagnostics.js';
import { encodeVersion, type IrExpr, type IrPolicy } from '../../engine/ir.js';
import { readPolicySources } from '../../server/policy-files.js';
import { formatDiagnostic } from '../../cli/output.js';

const here = dirname(fileURLToPath(import.meta.url));
const goldenDir = join(here, 'golden');
const policiesDir = join(here, '..', '..', 'policies');

const SCHEMA = readFileSync(join(goldenDir, 'schema.agp'), 'utf8');

/** Checks sources (path → text) through the parser and the checker. */
function check(sources: Record<string, string>): CheckResult {
  const files = Object.entries(sources).map(([path, text]) => {
    const parsed = parseFile(path, text);
    expect(parsed.diagnostics, `parse diagnostics in ${path}`).toEqual([]);
    return parsed.file;
  });
  return checkPolicySet(files, { sources: new Map(Object.entries(sources)), revision: 'sha256:test' });
}

/** Checks one policy file against the shared golden schema. */
function checkWithSchema(text: string, path = 'p.agp'): CheckResult {
  return check({ 'schema.agp': SCHEMA, [path]: text });
}

function errors(r: CheckResult): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'error');
}

function codes(r: CheckResult): string[] {
  return r.diagnostics.map((d) => d.code);
}

/** The IR of `let x = <expr>` checked against the shared schema. */
function lowerLet(expr: string, extra = ''): IrExpr {
  const r = checkWithSchema(`${extra}\nlet x = ${expr}\n`);
  expect(errors(r)).toEqual([]);
  const x = r.ir!.lets.find((l) => l.name === 'x');
  return x!.expr;
}

function policy(r: CheckResult, name: string): IrPolicy {
  const p = r.ir?.policies.find((q) => q.name === name);
  if (!p) throw new Error(`no policy ${name}: ${JSON.stringify(r.diagnostics)}`);
  return p;
}

// ---------------------------------------------------------------- golden diagnostics

interface GoldenCase {
  name: string;
  files: string[];
}

function goldenCases(): GoldenCase[] {
  const byCase = new Map<string, string[]>();
  for (const f of readdirSync(goldenDir).sort()) {
    if (!f.endsWith('.agp') || f === 'schema.agp') continue;
    const name = f.replace(/(\.test)?\.agp$/, '');
    byCase.set(name, [...(byCase.get(name) ?? []), f]);
  }
  return [...byCase.entries()].map(([name, files]) => ({ name, files }));
}

function runGolden(c: GoldenCase): Diagnostic[] {
  const texts = c.files.map((f) => ({ path: f, text: readFileSync(join(goldenDir, f), 'utf8') }));
  const standalone = texts.some((t) => t.text.startsWith('// golden: standalone'));
  const sources = standalone ? texts : [{ path: 'schema.agp', text: SCHEMA }, ...texts];
  return loadPolicySet(sources).diagnostics;
}

describe('golden diagnostics', () => {
  const cases = goldenCases();
  it('covers every diagnostic code the checker produces', () => {
    const seen = new Set<string>();
    for (const c of cases) for (const d of runGolden(c)) seen.add(d.code);
    for (const code of [
      'agp_schema_error',
      'agp_name_error',
      'agp_type_error',
      'agp_optional_error',
      'agp_level_error',
      'agp_version_error',
      'agp_duplicate_error',
      'agp_cycle_error',
      'agp_target_error',
      'agp_risk_error',
      'agp_obligation_error',
      'agp_unreachable_warning',
      'agp_test_error',
    ]) {
      expect(seen, code).toContain(code);
    }
  });

  for (const c of cases) {
    it(`${c.name}: ${c.files.join(', ')}`, () => {
      const actual = runGolden(c);
      const path = join(goldenDir, `${c.name}.json`);
      const text = `${JSON.stringify(actual, null, 2)}\n`;
      if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(path)) {
        if (process.env['UPDATE_GOLDEN'] !== '1') throw new Error(`missing golden ${path}: run with UPDATE_GOLDEN=1 and review it`);
        writeFileSync(path, text);
      }
      expect(text).toBe(readFileSync(path, 'utf8'));
    });
  }
});

describe('diagnostics', () => {
  it('reports three separate mistakes in one policy, sorted by position', () => {
    const r = checkWithSchema(
      [
        'policy three {',
        '  on action == "read"',
        '  when agent.confidnce > 0.9',
        '  permit if resource.sensitivity == "internal"',
        '  deny if agent.model.version < 2.3',
        '}',
      ].join('\n'),
    );
    expect(r.diagnostics.map((d) => [d.code, d.line, d.col])).toEqual([
      ['agp_name_error', 3, 14],
      ['agp_level_error', 4, 13],
      ['agp_version_error', 5, 11],
    ]);
    expect(r.diagnostics[0]!.hint).toBe('did you mean `confidence`?');
    expect(r.diagnostics[1]!.hint).toBe('write the level member without quotes: `internal`');
    expect(r.diagnostics[2]!.hint).toBe('write a version as MAJOR.MINOR.PATCH, e.g. `2.3.0`');
    expect(r.ir).toBeUndefined();
  });

  it('writes every message lowercase, without a final period', () => {
    for (const c of goldenCases()) {
      for (const d of runGolden(c)) {
        expect(d.message[0], d.message).toBe(d.message[0]!.toLowerCase());
        expect(d.message.endsWith('.'), d.message).toBe(false);
        expect(d.line).toBeGreaterThan(0);
        expect(d.col).toBeGreaterThan(0);
      }
    }
  });

  it('keeps the policy set when only a test file has errors', () => {
    const r = check({ 'schema.agp': SCHEMA, 'a.agp': 'policy a { permit }', 'a.test.agp': 'test "t" { expect permit }' });
    expect(codes(r)).toEqual(['agp_test_error']);
    expect(r.ir?.policies.map((p) => p.name)).toEqual(['a']);
  });

  it('does not cascade: one unknown let is one diagnostic wherever it is used', () => {
    const r = checkWithSchema('let a = nope > 1\npolicy p { when a and a permit }');
    expect(r.diagnostics.map((d) => d.message)).toEqual(['unknown name `nope`']);
  });

  it('suggests a quoted string for a bare word compared with a string', () => {
    const r = checkWithSchema('let a = action == read');
    expect(r.diagnostics[0]).toMatchObject({ code: 'agp_name_error', message: 'unknown name `read`', hint: 'write a string in quotes: `"read"`' });
  });

  it('lists the members of a level for an unknown member', () => {
    const r = checkWithSchema('let a = agent.trust > verifed');
    expect(r.diagnostics[0]).toMatchObject({
      code: 'agp_name_error',
      message: '`verifed` is not a member of level `agent.trust`',
      hint: 'did you mean `verified`? the members of `agent.trust` are `untrusted`, `basic`, `verified`, `privileged`',
    });
  });
});

// ---------------------------------------------------------------- lowering

describe('lowering to the IR', () => {
  it('turns level members into their index, typed with the level', () => {
    const e = lowerLet('resource.sensitivity >= confidential');
    expect(e).toMatchObject({
      op: 'cmp',
      cmp: '>=',
      left: { op: 'attr', path: ['resource', 'sensitivity'], type: { t: 'level', name: 'resource.sensitivity' } },
      right: { op: 'lit', value: 2, type: { t: 'level', name: 'resource.sensitivity', members: ['public', 'internal', 'confidential', 'restricted'] } },
    });
    // the member may come first
    expect(lowerLet('internal == resource.sensitivity')).toMatchObject({ left: { op: 'lit', value: 1 }, right: { op: 'attr' } });
  });

  it('encodes versions and converts durations to seconds', () => {
    expect(lowerLet('agent.model.version < 2.3.0')).toMatchObject({ right: { op: 'lit', value: encodeVersion(2, 3, 0), type: { t: 'version' } } });
    expect(lowerLet('agent.model.version >= 65535.0.1')).toMatchObject({ right: { value: 65535 * 2 ** 32 + 1 } });
    expect(lowerLet('match task.flagged { true: 5m, false: 250ms }')).toMatchObject({
      op: 'match',
      cases: [
        { value: true, result: { op: 'lit', value: 300, type: { t: 'duration' } } },
        { value: false, result: { op: 'lit', value: 0.25 } },
      ],
      otherwise: null,
    });
  });

  it('lowers level matches to member indexes and string matches to values', () => {
    expect(lowerLet('match resource.sensitivity { restricted: 70, public: 0, else: 10 }')).toEqual({
      op: 'match',
      subject: { op: 'attr', path: ['resource', 'sensitivity'], type: expect.objectContaining({ t: 'level' }) },
      cases: [
        { value: 3, result: { op: 'lit', type: { t: 'number' }, value: 70 } },
        { value: 0, result: { op: 'lit', type: { t: 'number' }, value: 0 } },
      ],
      otherwise: { op: 'lit', type: { t: 'number' }, value: 10 },
      type: { t: 'number' },
    });
    expect(lowerLet('match task.kind { "a": 1, else: 2 }')).toMatchObject({ cases: [{ value: 'a' }] });
  });

  it('lowers contains to in, string + to concat, and flattens and/or chains', () => {
    expect(lowerLet('agent.roles contains "admin"')).toEqual({
      op: 'in',
      elem: { op: 'lit', type: { t: 'string' }, value: 'admin' },
      coll: { op: 'attr', path: ['agent', 'roles'], type: { t: 'set', elem: { t: 'string' } } },
    });
    expect(lowerLet('"a:" + resource.id')).toMatchObject({ op: 'concat', left: { op: 'lit', value: 'a:' }, right: { op: 'attr', path: ['resource', 'id'] } });
    expect(lowerLet('1 + agent.confidence')).toMatchObject({ op: 'arith', arith: '+' });
    const chain = lowerLet('task.flagged and (task.flagged and task.flagged) and not task.flagged');
    expect(chain.op).toBe('and');
    expect(chain.op === 'and' && chain.args.length).toBe(4);
    const ors = lowerLet('task.flagged or task.flagged or task.flagged');
    expect(ors.op === 'or' && ors.args.length).toBe(3);
  });

  it('turns list literals into literal arrays, level members included', () => {
    expect(lowerLet('resource.sensitivity in [internal, restricted]')).toMatchObject({
      op: 'in',
      coll: { op: 'lit', value: [1, 3], type: { t: 'list', elem: { t: 'level', name: 'resource.sensitivity' } } },
    });
    expect(lowerLet('action in [resource.id, "x"]')).toMatchObject({ coll: { op: 'list', items: [{ op: 'attr' }, { op: 'lit' }] } });
  });

  it('refers to lets by index, in dependency order', () => {
    const r = checkWithSchema('let b = a and task.flagged\nlet a = action == "read"\nlet c = b or a');
    expect(errors(r)).toEqual([]);
    const lets = r.ir!.lets;
    expect(lets.map((l) => l.name)).toEqual(['a', 'b', 'c']);
    expect(lets[1]!.expr).toMatchObject({ op: 'and', args: [{ op: 'let', index: 0, type: { t: 'bool' } }, { op: 'attr' }] });
    expect(lets[2]!.expr).toMatchObject({ op: 'or', args: [{ op: 'let', index: 1 }, { op: 'let', index: 0 }] });
  });

  it('keeps a let that aliases a record as an attribute path', () => {
    const r = checkWithSchema('let m = agent.model\nlet x = m.version > 1.0.0');
    expect(errors(r)).toEqual([]);
    expect(r.ir!.lets.find((l) => l.name === 'x')!.expr).toMatchObject({ left: { op: 'attr', path: ['agent', 'model', 'version'] } });
  });

  it('lowers risk factors in file then declaration order, `x if c` as cond with 0', () => {
    const r = check({
      'schema.agp': SCHEMA,
      'b.agp': 'risk { late: 1 }',
      'a.agp': 'risk { zed: 25 if task.flagged, alpha: clamp(agent.behavior.rate_z, 0, 5) }',
    });
    expect(errors(r)).toEqual([]);
    const f = r.ir!.factors;
    expect(f.map((x) => x.name)).toEqual(['zed', 'alpha', 'late']);
    expect(f[0]!.expr).toEqual({
      op: 'cond',
      cond: { op: 'attr', path: ['task', 'flagged'], type: { t: 'bool' } },
      then: { op: 'lit', type: { t: 'number' }, value: 25 },
      else: { op: 'lit', type: { t: 'number' }, value: 0 },
    });
    expect(f[1]!.expr).toMatchObject({ op: 'call', fn: 'clamp' });
  });

  it('builds policies: sorted by name, targets normalized, branches, obligations and when text', () => {
    const r = checkWithSchema(
      [
        'risk { doubt: 1 - agent.confidence }',
        'policy zeta "z" {',
        '  on action in ["freeze", "read", "freeze"] and resource.type == "account" and confidential == resource.sensitivity',
        '  when task.flagged and  risk < 40',
        '  permit if granted with { ttl: 10m, scopes: ["a:" + resource.id], approver: "ops", n: 2, ok: true }',
        '  deny because "too risky"',
        '}',
        'forbid alpha "old" {',
        '  when agent.model.version < 2.0.0',
        '  because "retired"',
        '}',
      ].join('\n'),
    );
    expect(errors(r)).toEqual([]);
    expect(r.ir!.policies.map((p) => p.name)).toEqual(['alpha', 'zeta']);
    expect(r.ir!.revision).toBe('sha256:test');
    const z = policy(r, 'zeta');
    expect(z.description).toBe('z');
    expect(z.file).toBe('p.agp');
    expect(z.target.map((t) => [t.path, t.values])).toEqual([
      [['action'], ['freeze', 'read']],
      [['resource', 'type'], ['account']],
      [['resource', 'sensitivity'], [2]],
    ]);
    expect(z.whenText).toBe('task.flagged and  risk < 40');
    expect(z.when).toMatchObject({ op: 'and', args: [{ op: 'attr' }, { op: 'cmp', left: { op: 'risk' } }] });
    expect(z.branches.map((b) => [b.effect, b.condition?.op ?? null, b.reason])).toEqual([
      ['permit', 'granted', null],
      ['deny', null, 'too risky'],
    ]);
    expect(z.branches[0]!.obligations.map((o) => [o.key, o.kind, o.expr.op])).toEqual([
      ['ttl', 'duration', 'lit'],
      ['scopes', 'strings', 'list'],
      ['approver', 'scalar', 'lit'],
      ['n', 'scalar', 'lit'],
      ['ok', 'scalar', 'lit'],
    ]);
    expect(z.branches[0]!.obligations[0]!.expr).toMatchObject({ value: 600 });
    const a = policy(r, 'alpha');
    expect(a.forbid).toBe(true);
    expect(a.target).toEqual([]);
    expect(a.branches).toMatchObject([{ effect: 'deny', condition: null, reason: 'retired', obligations: [] }]);
  });

  it('folds a negative number literal and lowers unary minus on attributes to neg', () => {
    expect(lowerLet('agent.confidence > -1')).toMatchObject({ right: { op: 'lit', value: -1 } });
    expect(lowerLet('-agent.confidence < 0')).toMatchObject({ left: { op: 'neg', arg: { op: 'attr' } } });
  });
});

// ---------------------------------------------------------------- the optional flow rule

describe('optional attributes need a `has` proof', () => {
  const ok = (src: string): void => {
    const r = checkWithSchema(src);
    expect(r.diagnostics).toEqual([]);
  };
  const bad = (src: string, path: string): void => {
    const r = checkWithSchema(src);
    expect(r.diagnostics.map((d) => [d.code, d.message])).toEqual([['agp_optional_error', `\`${path}\` is optional and may be absent here`]]);
  };

  it('holds on the right of `and` after the test', () => {
    ok('let a = resource has owner and resource.owner == agent.id');
    ok('let a = task.flagged and resource has owner and task.flagged and resource.owner == "x"');
    bad('let a = resource.owner == agent.id and resource has owner', 'resource.owner');
  });

  it('holds on the right of `or` after a negated test', () => {
    ok('let a = not resource has owner or resource.owner == agent.id');
    bad('let a = resource has owner or resource.owner == agent.id', 'resource.owner');
  });

  it('does not hold inside `not` or after `or` of a positive test', () => {
    bad('let a = not (resource has owner) and resource.owner == "x"', 'resource.owner');
  });

  it('holds in a policy after a `when` that tests it, in conditions and obligations', () => {
    ok('policy p { when resource has owner and task.flagged permit if resource.owner == "x" with { owner: resource.owner } }');
    ok('policy p { permit if task has on_behalf_of with { user: task.on_behalf_of } }');
    bad('policy p { permit if task.flagged with { user: task.on_behalf_of } }', 'task.on_behalf_of');
    bad('policy p { when task.flagged or resource has owner permit if resource.owner == "x" }', 'resource.owner');
  });

  it('holds in later outcomes after an earlier outcome failed on its absence', () => {
    ok('policy p { deny if not resource has owner because "unowned" permit if resource.owner == agent.id }');
    bad('policy p { deny if resource has owner permit if resource.owner == agent.id }', 'resource.owner');
  });

  it('holds in a factor guarded by its `if` and through a let that is a `has` test', () => {
    ok('risk { tagged: size(resource.tags) if resource has tags }');
    bad('risk { tagged: size(resource.tags) }', 'resource.tags');
    ok('let owned = resource has owner\npolicy p { when owned and resource.owner == agent.id permit }');
  });

  it('rejects `has` on a required attribute and on a non-record', () => {
    const r = checkWithSchema('let a = resource has id\nlet b = agent.id has x');
    expect(r.diagnostics.map((d) => [d.code, d.message])).toEqual([
      ['agp_type_error', '`resource.id` is not optional, so `has` is always true'],
      ['agp_type_error', '`has` needs a record attribute on the left, got string `agent.id`'],
    ]);
  });
});

// ---------------------------------------------------------------- tests (.test.agp)

describe('test blocks', () => {
  it('converts test literals to the JSON a PEP sends', () => {
    const r = check({
      'schema.agp': SCHEMA,
      'p.agp': 'risk { doubt: 1 - agent.confidence }\npolicy p { permit with { ttl: 5m, scopes: ["a"] } }',
      'p.test.agp': [
        'test "one" {',
        '  agent { id: "a1", roles: ["x"], model: { name: "m", version: 2.4.1 }, confidence: 0.9, trust: verified }',
        '  registered { trust: basic }',
        '  behavior { rate_z: -1.5, deny_ratio: 0, new_resource: true }',
        '  action "read"',
        '  resource { type: "doc", id: "1", sensitivity: internal }',
        '  task { kind: "k", flagged: false }',
        '  grant { actions: ["read"], resource: "doc:*", expires_in: 10m }',
        '  now "2026-03-01T10:00:00+01:00"',
        '  expect permit with { ttl: 5m, scopes: ["a"] }',
        '  expect risk <= 0.1',
        '  expect factor doubt == 0.1',
        '  expect policies [p]',
        '  expect reason "r"',
        '}',
      ].join('\n'),
    });
    expect(r.diagnostics).toEqual([]);
    expect(r.tests).toHaveLength(1);
    const t = r.tests[0]!;
    expect(t.name).toBe('one');
    expect(t.file).toBe('p.test.agp');
    expect(t.request).toEqual({
      agent: { id: 'a1', roles: ['x'], model: { name: 'm', version: '2.4.1' }, confidence: 0.9, trust: 'verified' },
      action: 'read',
      resource: { type: 'doc', id: '1', sensitivity: 'internal' },
      task: { kind: 'k', flagged: false },
    });
    expect(t.registered).toEqual({ trust: 'basic' });
    expect(t.behavior).toEqual({ rate_z: -1.5, deny_ratio: 0, new_resource: true });
    expect(t.grants).toEqual([{ actions: ['read'], resource: 'doc:*', expiresIn: 600 }]);
    expect(t.now).toBe(Date.parse('2026-03-01T09:00:00Z'));
    expect(t.expectations.map((e) => e.kind)).toEqual(['effect', 'risk', 'factor', 'policies', 'reason']);
    expect(t.expectations[0]).toMatchObject({ effect: 'permit', obligations: { ttl: '5m', scopes: ['a'] } });
    expect(t.expectations[1]).toMatchObject({ op: '<=', value: 0.1 });
  });

  it('defaults the clock to 2026-01-01T00:00:00Z and missing roots to empty records', () => {
    const r = check({ 'schema.agp': SCHEMA, 'p.agp': 'policy p { permit }', 'p.test.agp': 'test "t" { action "read" expect deny }' });
    expect(r.diagnostics).toEqual([]);
    expect(r.tests[0]!.now).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(r.tests[0]!.request).toEqual({ agent: {}, action: 'read', resource: {}, task: {} });
  });

  it('accepts only RFC 3339 times for `now`', () => {
    expect(parseRfc3339('2026-01-01T00:00:00Z')).toBe(Date.UTC(2026, 0, 1));
    expect(parseRfc3339('2026-01-01t00:00:00.5z')).toBe(Date.UTC(2026, 0, 1) + 500);
    for (const bad of ['2026-01-01', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', 'now', '2026-01-01T00:00:00+25:00']) {
      expect(parseRfc3339(bad), bad).toBeUndefined();
    }
  });
});

// ---------------------------------------------------------------- the example policy set

describe('the example policies', () => {
  const files = existsSync(policiesDir) ? readdirSync(policiesDir).filter((f) => f.endsWith('.agp')) : [];
  it('check with no errors and no warnings', () => {
    expect(files.length).toBeGreaterThan(0);
    const sources = files.map((f) => ({ path: `policies/${f}`, text: readFileSync(join(policiesDir, f), 'utf8') }));
    const loaded = loadPolicySet(sources);
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.ir!.policies.length).toBeGreaterThan(0);
    expect(loaded.tests.length).toBeGreaterThan(0);
    expect(loaded.policySet).toBeDefined();
  });
});

// ---------------------------------------------------------------- robustness

const TOKENS = [
  'schema', 'let', 'risk', 'policy', 'forbid', 'on', 'when', 'permit', 'deny', 'escalate', 'if', 'with', 'because',
  'and', 'or', 'not', 'in', 'contains', 'has', 'like', 'true', 'false', 'match', 'else', 'granted', 'test', 'expect',
  'agent', 'resource', 'task', 'action', '.', 'confidence', 'sensitivity', 'owner', 'internal', 'x', 'y', '{', '}', '(', ')',
  '[', ']', ',', ':', '==', '!=', '<', '>=', '+', '-', '*', '/', '"s"', '1', '0.5', '2.4.1', '5m', 'level', '<', '>',
  'string', 'number', 'set', '?', 'ttl', 'scopes', 'clamp', 'size', '\n',
];

describe('robustness', () => {
  it('never throws on any parsed file (random token soup)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 80 }), fc.boolean(), (tokens, isTest) => {
        const text = tokens.join(' ');
        const path = isTest ? 'r.test.agp' : 'r.agp';
        const parsed = parseFile(path, text);
        const schema = parseFile('schema.agp', SCHEMA).file;
        const r = checkPolicySet([schema, parsed.file], { sources: new Map([[path, text], ['schema.agp', SCHEMA]]) });
        for (const d of r.diagnostics) {
          expect(typeof d.message).toBe('string');
          expect(d.line).toBeGreaterThan(0);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('never throws on random strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const parsed = parseFile('r.agp', text);
        checkPolicySet([parsed.file], { sources: new Map([['r.agp', text]]) });
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on mutations of the example policies', () => {
    const texts = existsSync(policiesDir)
      ? readdirSync(policiesDir)
          .filter((f) => f.endsWith('.agp'))
          .map((f) => ({ path: `policies/${f}`, text: readFileSync(join(policiesDir, f), 'utf8') }))
      : [];
    const parsed = texts.map((s) => parseFile(s.path, s.text).file);
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.nat({ max: 40 }), fc.constantFrom('', ' ', 'x', '"', '}', '{', 'and', 'not', '?'), (which, at, cut, insert) => {
        const i = which % texts.length;
        const s = texts[i]!;
        const p = at % (s.text.length + 1);
        const mutated = { path: s.path, text: s.text.slice(0, p) + insert + s.text.slice(p + cut) };
        const sources = texts.map((t, j) => (j === i ? mutated : t));
        const files = parsed.map((f, j) => (j === i ? parseFile(mutated.path, mutated.text).file : f));
        const r = checkPolicySet(files, { sources: new Map(sources.map((s) => [s.path, s.text])) });
        // A cut inside a comment or string can leave the set valid; otherwise it says why.
        if (r.ir === undefined) expect(r.diagnostics.some((d) => d.severity === 'error')).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------- docs/language.md examples

const docsPath = join(here, '..', '..', 'docs', 'language.md');
const repoRoot = join(here, '..', '..');

/** What `agp check` prints for one snippet of the Diagnostics section. */
function renderSnippet(snippet: string): string {
  const path = snippet.startsWith('test "') ? 'policies/example.test.agp' : 'policies/example.agp';
  const standalone = snippet.startsWith('schema');
  const sources = standalone ? [{ path, text: snippet }] : [{ path: 'policies/schema.agp', text: SCHEMA }, { path, text: snippet }];
  const loaded = loadPolicySet(sources);
  return loaded.diagnostics.map((d) => formatDiagnostic(d, d.file === path ? snippet : undefined, false)).join('');
}

async function renderCommand(path: string): Promise<string> {
  const read = await readPolicySources([path], { cwd: repoRoot });
  return read.diagnostics.map((d) => formatDiagnostic(d, undefined, false)).join('');
}

const AGP_BLOCK = /```agp\n([\s\S]*?)```(?:\n\n```text\n[\s\S]*?```)?/g;
const COMMAND_BLOCK = /```text\n\$ agp check (\S+)\n[\s\S]*?```/g;

async function renderDiagnosticsSection(section: string): Promise<string> {
  let out = section.replace(AGP_BLOCK, (_all, snippet: string) => `\`\`\`agp\n${snippet}\`\`\`\n\n\`\`\`text\n${renderSnippet(snippet)}\`\`\``);
  const commands = [...out.matchAll(COMMAND_BLOCK)];
  for (const m of commands) {
    out = out.replace(m[0], `\`\`\`text\n$ agp check ${m[1]!}\n${await renderCommand(m[1]!)}\`\`\``);
  }
  return out;
}

describe('the Diagnostics section of docs/language.md', () => {
  it('shows exactly what the checker prints for each example, and covers every code', async () => {
    const docs = readFileSync(docsPath, 'utf8');
    const at = docs.indexOf('\n## Diagnostics\n');
    expect(at).toBeGreaterThan(0);
    const section = docs.slice(at + 1);
    const rendered = await renderDiagnosticsSection(section);
    if (process.env['UPDATE_GOLDEN'] === '1' && rendered !== section) writeFileSync(docsPath, docs.slice(0, at + 1) + rendered);
    expect(section).toBe(rendered);
    for (const code of [
      'agp_io_error', 'agp_limit_error', 'agp_lex_error', 'agp_parse_error', 'agp_schema_error', 'agp_name_error', 'agp_type_error',
      'agp_optional_error', 'agp_level_error', 'agp_version_error', 'agp_duplicate_error', 'agp_cycle_error', 'agp_target_error',
      'agp_risk_error', 'agp_obligation_error', 'agp_unreachable_warning', 'agp_test_error',
    ]) {
      expect(section, code).toContain(`[${code}]`);
    }
  });
});
