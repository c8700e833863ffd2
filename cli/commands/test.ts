// `agp test`: runs the `test` blocks of the .test.agp files against the compiled policy
// set; prints failures with the expected and actual decision and its explanation, a
// summary line, JUnit XML and coverage on request.

import { writeFile } from 'node:fs/promises';
import type { Command } from '../command.js';
import { hasErrors, ioReason, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';
import { paint, progress, UsageError } from '../output.js';
import { renderDecision } from '../render.js';
import { renderWhy } from '../explain.js';
import { runPolicyTests, testRequest, type Coverage, type TestResult, type TestRun } from '../../engine/testing.js';
import type { Decision, NormalizedRequest, PolicySet } from '../../engine/decision.js';
import type { IrTest } from '../../engine/ir.js';
import type { Diagnostic } from '../../engine/diagnostics.js';

export const testCommand: Command = {
  name: 'test',
  summary: 'run the policy tests in .test.agp files',
  help: `Usage: agp test [options] <paths...>

Loads the policy set under the paths and runs every \`test\` block of its .test.agp files
against the compiled policies. Each failing test is printed with the expected and actual
decision and the explanation of the actual one; the last line is "N passed, N failed".

Options:
  --format text|json   output format (default text; json prints {passed, failed,
                       results, coverage?})
  --junit FILE         also write a JUnit XML report to FILE (one <testsuite> per
                       .test.agp file, one <testcase> per test)
  --coverage           report, per policy file, which policies applied, which outcome
                       branches fired and which risk factors were non-zero in some test
  --threshold P        with --coverage: exit 1 when total coverage is below P percent
  --run PATTERN        run only the tests whose name matches the regular expression
                       (coverage then covers only those tests)
  --verbose            print passing tests too
  -h, --help           show this help

Exit codes: 0 all passed, 1 a test failed (or coverage is below the threshold, or the
policies have errors, or --run matched no test), 2 usage or I/O error.

Examples:
  agp test policies
  agp test policies --junit report.xml --coverage --threshold 90
  agp test policies --run "fraud"
`,
  async run(argv, streams) {
    const { values, positionals } = parse(argv, {
      format: { type: 'string' },
      junit: { type: 'string' },
      coverage: { type: 'boolean' },
      threshold: { type: 'string' },
      run: { type: 'string' },
      verbose: { type: 'boolean' },
    });
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    let threshold: number | undefined;
    if (values.threshold !== undefined) {
      threshold = Number(values.threshold);
      if (values.threshold.trim() === '' || !Number.isFinite(threshold) || threshold < 0) {
        throw new UsageError(`--threshold must be a percentage such as 90 (got \`${values.threshold}\`)`);
      }
      if (!values.coverage) throw new UsageError('--threshold needs --coverage');
    }
    let pattern: RegExp | undefined;
    if (values.run !== undefined) {
      try {
        pattern = new RegExp(values.run);
      } catch {
        throw new UsageError(`--run is not a valid regular expression: \`${values.run}\``);
      }
    }
    const loaded = await loadPaths(positionals, streams);
    if (hasErrors(loaded.diagnostics) || !loaded.policySet) {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      streams.err('the policy set has errors: no test was run\n');
      if (format === 'json') streams.out(`${JSON.stringify({ passed: 0, failed: 0, results: [], diagnostics: loaded.diagnostics }, null, 2)}\n`);
      // CI still gets a report, with the load errors as one errored test case
      if (values.junit !== undefined) await writeReport(values.junit, loadErrorXml(loaded.diagnostics));
      return 1;
    }
    if (loaded.diagnostics.length > 0) printDiagnostics(streams, loaded.diagnostics, loaded.sources);
    const policySet = loaded.policySet;
    const bar = progress(streams);
    const selected = pattern ? loaded.tests.filter((t) => pattern.test(t.name)) : loaded.tests;
    const started = process.hrtime.bigint();
    const run = runPolicyTests(policySet, selected, { onResult: (_r, done, total) => bar.update(`running tests: ${done}/${total}`) });
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    bar.done();
    const requests = new Requests(policySet, selected);

    if (values.junit !== undefined) await writeReport(values.junit, junitXml(run, elapsedMs, (r) => requests.of(r), policySet));
    // compared unrounded: 89.96% must not pass a 90% threshold
    const exactPercent = run.coverage.total === 0 ? 100 : (run.coverage.covered * 100) / run.coverage.total;
    const belowThreshold = threshold !== undefined && exactPercent < threshold;
    const noneMatched = pattern !== undefined && run.results.length === 0;
    if (format === 'json') {
      // Passing tests carry their decision without the (long) per-policy trace.
      const results = run.results.map((r) => ({ ...r, decision: r.decision ? (r.passed ? withoutTrace(r.decision) : r.decision) : null }));
      const coverage = values.coverage ? { coverage: { ...run.coverage, ...(threshold !== undefined ? { threshold } : {}), files: run.coverage.files.map((f) => ({ ...f, kinds: byKind(f.items) })) } } : {};
      streams.out(`${JSON.stringify({ passed: run.passed, failed: run.failed, results, ...coverage }, null, 2)}\n`);
    } else {
      printText(streams, run, Boolean(values.verbose), policySet, requests);
      if (values.coverage) streams.out(renderCoverage(run.coverage, threshold));
      if (run.results.length === 0) streams.out(pattern ? `no test matches \`${values.run}\`\n` : 'no tests found\n');
      const summary = `${run.passed} passed, ${run.failed} failed`;
      streams.out(`${run.failed > 0 ? paint(streams.outColor, 'red', summary) : paint(streams.outColor, 'green', summary)}${paint(streams.outColor, 'dim', ` (${elapsedMs.toFixed(0)} ms)`)}\n`);
    }
    if (belowThreshold) streams.err(`coverage ${run.coverage.percent}% is below the threshold ${threshold}%\n`);
    if (noneMatched) streams.err(`no test matches \`${values.run}\`\n`);
    return run.failed > 0 || belowThreshold || noneMatched ? 1 : 0;
  },
};

async function writeReport(file: string, text: string): Promise<void> {
  try {
    await writeFile(file, text, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot write \`${file}\`: ${ioReason(error)}`);
  }
}

/** The JUnit report of a run that could not start: the policy set's errors as one <error>. */
export function loadErrorXml(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const text = errors.map((d) => `${d.file}:${d.line}:${d.col}: error[${d.code}]: ${d.message}`).join('\n');
  const message = `the policy set has ${errors.length} error${errors.length === 1 ? '' : 's'}: no test was run`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<testsuites name="agp test" tests="1" failures="0" errors="1" skipped="0" time="0">',
    '  <testsuite name="policy set" tests="1" failures="0" errors="1" skipped="0">',
    `    <testcase classname="policy set" name="load the policy set">`,
    `      <error message="${xml(message)}" type="policy_errors">${xml(text)}</error>`,
    '    </testcase>',
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

function withoutTrace(d: Decision): Decision {
  const { explanation: _explanation, ...rest } = d;
  return rest;
}

/** The normalized request of each test, rebuilt for explanations (only failing tests need it). */
class Requests {
  private readonly byKey = new Map<string, IrTest>();
  constructor(
    private readonly policySet: PolicySet,
    tests: readonly IrTest[],
  ) {
    for (const t of tests) this.byKey.set(key(t.file, t.span.line, t.span.col), t);
  }
  of(r: TestResult): NormalizedRequest | undefined {
    const test = this.byKey.get(key(r.file, r.line, r.col));
    if (!test) return undefined;
    const { body, now, grants } = testRequest(test);
    const validated = this.policySet.validate(body, { now, grants });
    return validated.ok ? validated.request : undefined;
  }
}

function key(file: string, line: number, col: number): string {
  return `${file}:${line}:${col}`;
}

function explanation(r: TestResult, ps: PolicySet, requests: Requests, color: boolean, indent: string): string {
  if (!r.decision) return '';
  const request = requests.of(r);
  const decision = renderDecision(r.decision, color, indent);
  return request ? decision + renderWhy(ps.ir, request, r.decision, color, indent) : decision;
}

function printText(streams: TestStreams, run: TestRun, verbose: boolean, ps: PolicySet, requests: Requests): void {
  const c = streams.outColor;
  for (const r of run.results) {
    const where = `${r.file}:${r.line}:${r.col}`;
    if (r.passed) {
      if (verbose) streams.out(`${paint(c, 'green', 'PASS')} ${where} ${r.name}\n`);
      continue;
    }
    streams.out(`${paint(c, 'red', 'FAIL')} ${where} ${r.name}\n`);
    if (r.error) streams.out(`  ${r.error}\n`);
    for (const f of r.failures) {
      const at = `${r.file}:${f.line}:${f.col}:`;
      streams.out(`  ${at} expected ${paint(c, 'green', f.expected)}\n`);
      streams.out(`  ${' '.repeat(at.length)}      got ${paint(c, 'red', f.actual)}\n`);
    }
    streams.out(explanation(r, ps, requests, c, '    '));
  }
}

type TestStreams = Parameters<Command['run']>[1];

type Kind = 'policy' | 'branch' | 'factor';
const KINDS: readonly Kind[] = ['policy', 'branch', 'factor'];
const KIND_LABEL: Record<Kind, string> = { policy: 'policies', branch: 'branches', factor: 'factors' };

function byKind(items: Coverage['files'][number]['items']): Record<string, { covered: number; total: number }> {
  const out: Record<string, { covered: number; total: number }> = {};
  for (const k of KINDS) {
    const of = items.filter((i) => i.kind === k);
    out[KIND_LABEL[k]] = { covered: of.filter((i) => i.covered).length, total: of.length };
  }
  return out;
}

/** Per policy file: the share covered, by kind, and each item no test exercised. */
export function renderCoverage(coverage: Coverage, threshold?: number): string {
  const lines = ['coverage (policies applied, outcome branches fired, risk factors non-zero):'];
  const width = Math.max(5, ...coverage.files.map((f) => f.file.length));
  for (const f of coverage.files) {
    const kinds = byKind(f.items);
    const detail = Object.entries(kinds)
      .filter(([, v]) => v.total > 0)
      .map(([k, v]) => `${k} ${v.covered}/${v.total}`)
      .join(', ');
    lines.push(`  ${f.file.padEnd(width)}  ${`${f.percent}%`.padStart(6)}  ${detail}`);
    for (const item of f.items.filter((i) => !i.covered)) lines.push(`    not exercised: ${item.kind} ${item.name} (${item.file}:${item.line})`);
  }
  const exact = coverage.total === 0 ? 100 : (coverage.covered * 100) / coverage.total;
  const verdict = threshold === undefined ? '' : exact >= threshold ? `, threshold ${threshold}% met` : `, below the threshold ${threshold}%`;
  lines.push(`  ${'total'.padEnd(width)}  ${`${coverage.percent}%`.padStart(6)}  ${coverage.covered}/${coverage.total}${verdict}`);
  return `${lines.join('\n')}\n`;
}

// Escape sequences and characters XML 1.0 cannot hold are dropped, not escaped.
const ANSI = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');
// eslint-disable-next-line no-control-regex -- naming the allowed control characters is the point
const NOT_XML_CHAR = /[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

function xml(text: string): string {
  return text
    .replace(ANSI, '')
    .replace(NOT_XML_CHAR, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * JUnit XML as CI systems read it: one testsuite per .test.agp file; a failed expectation is
 * a <failure>, a test whose request the schema rejects is an <error>.
 */
export function junitXml(run: TestRun, elapsedMs: number, requestOf: (r: TestResult) => NormalizedRequest | undefined = () => undefined, ps?: PolicySet): string {
  const byFile = new Map<string, TestResult[]>();
  for (const r of run.results) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
  const errors = run.results.filter((r) => r.error !== undefined).length;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="agp test" tests="${run.results.length}" failures="${run.failed - errors}" errors="${errors}" skipped="0" time="${(elapsedMs / 1000).toFixed(3)}">`,
  ];
  for (const [file, results] of byFile) {
    const fileErrors = results.filter((r) => r.error !== undefined).length;
    const failures = results.filter((r) => !r.passed).length - fileErrors;
    out.push(`  <testsuite name="${xml(file)}" tests="${results.length}" failures="${failures}" errors="${fileErrors}" skipped="0">`);
    for (const r of results) {
      const head = `    <testcase classname="${xml(file)}" name="${xml(r.name)}" file="${xml(file)}" line="${r.line}"`;
      if (r.passed) {
        out.push(`${head}/>`);
        continue;
      }
      if (r.error !== undefined) {
        out.push(`${head}>`, `      <error message="${xml(r.error)}" type="invalid_request">${xml(r.error)}</error>`, '    </testcase>');
        continue;
      }
      const message = r.failures.map((f) => `expected ${f.expected}, got ${f.actual}`).join('; ');
      const lines = r.failures.map((f) => `${file}:${f.line}:${f.col}: expected ${f.expected}, got ${f.actual}`);
      const request = requestOf(r);
      const why = r.decision ? renderDecision(r.decision, false) + (request && ps ? renderWhy(ps.ir, request, r.decision, false) : '') : '';
      out.push(`${head}>`, `      <failure message="${xml(message)}" type="expectation">${xml([...lines, '', why].join('\n'))}</failure>`, '    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
