// `agp test`, run as a child process: the example tests pass with the summary line; a test
// expecting the wrong effect fails with expected vs actual and the explanation; JSON,
// JUnit XML (checked by a strict XML parser), coverage with thresholds, and --run.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { agp, edit, ensureBuilt, parseXml, ROOT, scratchSpace, type XmlElement } from './helpers.js';

beforeAll(() => ensureBuilt(), 300_000);

const space = scratchSpace();
const scratch = space.policies;

/** The number of `test "..."` blocks in the example .test.agp files. */
function exampleTestCount(): number {
  let n = 0;
  for (const f of ['analytics', 'coding', 'fleet', 'fraud', 'support']) {
    n += (readFileSync(join(ROOT, 'policies', `${f}.test.agp`), 'utf8').match(/^test "/gm) ?? []).length;
  }
  return n;
}

/** A copy where story 1 (fraudbot reads transactions: permit) expects deny instead. */
function wrongEffectCopy(): string {
  const dir = scratch();
  edit(join(dir, 'fraud.test.agp'), 'expect permit with { ttl: 15m, scopes: ["transactions:read"] }', 'expect deny');
  return dir;
}

describe('agp test', { timeout: 120_000 }, () => {
  it('passes every example test and ends with the summary line', async () => {
    const r = await agp(['test', 'policies']);
    expect(r.code).toBe(0);
    const total = exampleTestCount();
    expect(total).toBeGreaterThan(20);
    const last = r.stdout.trimEnd().split('\n').pop();
    expect(last).toMatch(new RegExp(`^${total} passed, 0 failed\\b`));
    expect(r.stdout).not.toMatch(/FAIL/);
  });

  it('a test expecting the wrong effect fails: exit 1, expected vs actual, and the explanation', async () => {
    const dir = wrongEffectCopy();
    const r = await agp(['test', dir]);
    expect(r.code).toBe(1);
    const out = r.stdout;
    expect(out).toMatch(new RegExp(`^FAIL ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/fraud\\.test\\.agp:\\d+:\\d+ story 1: fraudbot reads transactions all day`, 'm'));
    expect(out).toMatch(/fraud\.test\.agp:\d+:\d+: expected deny\n\s+got permit\n/);
    // the actual decision and why it was made
    expect(out).toMatch(/decision: +permit \(allowed\)/);
    expect(out).toMatch(/why: permit: fraud_read permits, and no policy denies or escalates/);
    expect(out).toMatch(/risk 12 = sensitivity 10 \+ doubt 2/);
    expect(out).toMatch(/fraud_read .*fraud\.agp:\d+ +→ permit\n +✓ when fraud_agent\n +✓ permit if risk < 40 +\(risk = 12\) +← fired/);
    expect(out).toMatch(/retired_fraud_models \(forbid\).*→ does not apply\n +✗ when agent\.model\.version < 2\.0\.0 +\(agent\.model\.version = 2\.4\.1\)/);
    expect(out).toMatch(/fraud_freeze +✗ action == "freeze_account" +\(action = "read"\)/);
    expect(out.trimEnd().split('\n').pop()).toMatch(new RegExp(`^${exampleTestCount() - 1} passed, 1 failed\\b`));
  });

  it('--format json lists every result, the failure with expected and actual', async () => {
    const dir = wrongEffectCopy();
    const r = await agp(['test', '--format', 'json', dir]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      passed: number;
      failed: number;
      results: { name: string; passed: boolean; failures: { expected: string; actual: string }[]; decision: { effect: string; explanation?: unknown[] } | null }[];
    };
    expect(out.failed).toBe(1);
    expect(out.passed).toBe(exampleTestCount() - 1);
    expect(out.results).toHaveLength(exampleTestCount());
    const failed = out.results.filter((x) => !x.passed);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.failures).toEqual([expect.objectContaining({ expected: 'deny', actual: 'permit' })]);
    expect(failed[0]!.decision?.effect).toBe('permit');
    expect(failed[0]!.decision?.explanation?.length).toBeGreaterThan(0);
  });

  it('--junit writes well-formed JUnit XML with a testsuite per file and the failure', async () => {
    const dir = wrongEffectCopy();
    const out = space.dir();
    const file = join(out, 'report.xml');
    const r = await agp(['test', dir, '--junit', file]);
    expect(r.code).toBe(1);
    const root = parseXml(readFileSync(file, 'utf8'));
    expect(root.name).toBe('testsuites');
    const total = exampleTestCount();
    expect(root.attrs).toMatchObject({ tests: String(total), failures: '1', errors: '0' });
    const suites = root.children;
    expect(suites.every((s) => s.name === 'testsuite')).toBe(true);
    expect(suites.map((s) => s.attrs['name']!.slice(dir.length + 1)).sort()).toEqual(
      ['analytics.test.agp', 'coding.test.agp', 'fleet.test.agp', 'fraud.test.agp', 'support.test.agp'],
    );
    const cases: XmlElement[] = suites.flatMap((s) => s.children);
    expect(cases).toHaveLength(total);
    expect(cases.every((c) => c.name === 'testcase' && c.attrs['name'] && c.attrs['classname'])).toBe(true);
    for (const s of suites) {
      expect(Number(s.attrs['tests'])).toBe(s.children.length);
      expect(Number(s.attrs['failures'])).toBe(s.children.filter((c) => c.children.some((f) => f.name === 'failure')).length);
    }
    const failing = cases.filter((c) => c.children.length > 0);
    expect(failing).toHaveLength(1);
    const failure = failing[0]!.children[0]!;
    expect(failure.name).toBe('failure');
    expect(failing[0]!.attrs['name']).toMatch(/^story 1: /);
    expect(failure.attrs['message']).toBe('expected deny, got permit');
    expect(failure.text).toContain('why: permit: fraud_read permits');
    expect(failure.text).toMatch(/permit if risk < 40 +\(risk = 12\)/);
  });

  it('--junit on the examples: every testcase passes', async () => {
    const out = space.dir();
    const file = join(out, 'junit.xml');
    const r = await agp(['test', 'policies', '--junit', file]);
    expect(r.code).toBe(0);
    const root = parseXml(readFileSync(file, 'utf8'));
    expect(root.attrs).toMatchObject({ tests: String(exampleTestCount()), failures: '0' });
    expect(root.children.flatMap((s) => s.children).every((c) => c.children.length === 0)).toBe(true);
  });

  it('the strict XML check rejects what a CI parser would', () => {
    expect(() => parseXml('<a><b></a></b>')).toThrow(/closes/);
    expect(() => parseXml('<a x=1/>')).toThrow(/not quoted/);
    expect(() => parseXml('<a>1 < 2</a>')).toThrow(/bad tag/);
    expect(() => parseXml('<a t="<"/>')).toThrow(/raw `<`/);
    expect(() => parseXml('<a>AT&T</a>')).toThrow(/entity/);
    expect(() => parseXml('<a/><b/>')).toThrow(/more than one root/);
    expect(() => parseXml('<a x="1" x="2"/>')).toThrow(/duplicate/);
    expect(parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<a t="&lt;&amp;"><b/>x &gt; y</a>\n')).toMatchObject({ name: 'a', attrs: { t: '<&' }, text: 'x > y' });
  });

  it('--coverage --threshold 90 passes on the examples and reports policies, branches and factors per file', async () => {
    const r = await agp(['test', 'policies', '--coverage', '--threshold', '90']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^coverage \(/m);
    expect(r.stdout).toMatch(/^ {2}policies\/fraud\.agp +\d+(\.\d)?% +policies \d+\/\d+, branches \d+\/\d+/m);
    expect(r.stdout).toMatch(/^ {2}policies\/schema\.agp +\d+(\.\d)?% +factors \d+\/\d+/m);
    expect(r.stdout).toMatch(/^ {2}total +\d+(\.\d)?% +\d+\/\d+, threshold 90% met$/m);
  });

  it('--threshold above what is reachable fails with exit 1', async () => {
    const r = await agp(['test', 'policies', '--coverage', '--threshold', '100.1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/coverage [\d.]+% is below the threshold 100\.1%/);
  });

  it('a policy with an untested branch lowers coverage below 100 and is named', async () => {
    const dir = scratch();
    edit(
      join(dir, 'fraud.agp'),
      'permit if risk < 60 with { ttl: 5m, audit: "full" }',
      'permit if risk < 60 with { ttl: 5m, audit: "full" }\n  deny if risk > 1000 because "absurd risk"',
    );
    const r = await agp(['test', dir, '--coverage', '--threshold', '100']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/not exercised: branch fraud_flag#2 \(deny\) \(.*fraud\.agp:\d+\)/);
    expect(r.stdout).toMatch(/\d+ passed, 0 failed/);
    expect(r.stdout).toMatch(/below the threshold 100%/);
    const json = await agp(['test', dir, '--coverage', '--format', 'json']);
    expect(json.code).toBe(0);
    const cov = (JSON.parse(json.stdout) as { coverage: { percent: number; files: { file: string; kinds: Record<string, { covered: number; total: number }> }[] } }).coverage;
    expect(cov.percent).toBeLessThan(100);
    const fraud = cov.files.find((f) => f.file.endsWith('fraud.agp'))!;
    expect(fraud.kinds['branches']!.covered).toBe(fraud.kinds['branches']!.total - 1);
  });

  it('--run runs only matching tests', async () => {
    const r = await agp(['test', 'policies', '--run', '^story [12]:', '--verbose']);
    expect(r.code).toBe(0);
    const passes = r.stdout.split('\n').filter((l) => l.startsWith('PASS '));
    expect(passes).toHaveLength(2);
    expect(passes.every((l) => /fraud\.test\.agp:\d+:\d+ story [12]: /.test(l))).toBe(true);
    expect(r.stdout).toMatch(/^2 passed, 0 failed\b/m);

    const none = await agp(['test', 'policies', '--run', 'no test is called this']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no test matches `no test is called this`/);
    // the failing test is filtered out: the run passes
    expect((await agp(['test', wrongEffectCopy(), '--run', '^story 2'])).code).toBe(0);
  });

  it('usage errors exit 2 with one line', async () => {
    for (const [args, message] of [
      [['test', 'policies', '--threshold', '90'], '--threshold needs --coverage'],
      [['test', 'policies', '--coverage', '--threshold', 'lots'], '--threshold must be a percentage'],
      [['test', 'policies', '--run', '('], '--run is not a valid regular expression'],
      [['test'], 'no policy paths given'],
      [['test', 'policies', '--junit'], 'option `--junit` needs a value'],
    ] as const) {
      const r = await agp(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toContain(message);
    }
  });

  it('a policy set with errors runs no test (exit 1)', async () => {
    const dir = scratch();
    edit(join(dir, 'fraud.agp'), 'in agent.roles', 'in agent.rolez');
    const out = space.dir();
    const r = await agp(['test', dir, '--junit', join(out, 'j.xml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error\[agp_name_error\]/);
    expect(r.stderr).toMatch(/no test was run/);
    // CI still gets a well-formed report naming the error
    const root = parseXml(readFileSync(join(out, 'j.xml'), 'utf8'));
    expect(root.attrs).toMatchObject({ tests: '1', errors: '1' });
    const error = root.children[0]!.children[0]!.children[0]!;
    expect(error.name).toBe('error');
    expect(error.text).toMatch(/fraud\.agp:5:\d+: error\[agp_name_error\]: unknown attribute `agent\.rolez`/);
    const json = await agp(['test', dir, '--format', 'json']);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as { diagnostics: { code: string }[] }).diagnostics.map((d) => d.code)).toContain('agp_name_error');
  });

  it('a test whose request the schema rejects fails with the attribute path, and is a JUnit <error>', async () => {
    const dir = scratch();
    edit(join(dir, 'fraud.test.agp'), 'task { kind: "monitoring", flagged: false }', 'task { kind: "monitoring" }');
    const out = space.dir();
    const r = await agp(['test', dir, '--junit', join(out, 'j.xml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/the test's request is invalid: task\.flagged: required attribute is missing/);
    const root = parseXml(readFileSync(join(out, 'j.xml'), 'utf8'));
    expect(root.attrs['errors']).toBe('1');
    expect(root.children.flatMap((s) => s.children).flatMap((c) => c.children).map((e) => e.name)).toEqual(['error']);
  });
});
