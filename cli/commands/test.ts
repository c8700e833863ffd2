// `agp test`: runs the `test` blocks of the .test.agp files against the compiled policy
// set; prints failures with the expected and actual decision and its explanation, a
// summary line, JUnit XML and coverage on request.

import { writeFile } from 'node:fs/promises';
import type { Command } from '../command.js';
import { hasErrors, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';
import { paint, progress, UsageError } from '../output.js';
import { renderDecision, renderExplanation } from '../render.js';
import { runPolicyTests, type Coverage, type TestRun } from '../../engine/testing.js';

export const testCommand: Command = {
  name: 'test',
  summary: 'run the policy tests in .test.agp files',
  help: `Usage: agp test [options] <paths...>

Loads the policy set under the paths and runs every \`test\` block of its .test.agp files
against the compiled policies. Each failing test is printed with the expected and actual
decision and the explanation of the actual one; the last line is "N passed, N failed".

Options:
  --format text|json   output format (default text)
  --junit FILE         also write a JUnit XML report to FILE
  --coverage           report, per policy file, which policies, outcome branches and risk
                       factors the tests exercised
  --threshold P        with --coverage: exit 1 when total coverage is below P percent
  --run PATTERN        run only the tests whose name matches the regular expression
  --verbose            print passing tests too
  -h, --help

Exit codes: 0 all passed, 1 a test failed (or coverage below the threshold, or the
policies have errors), 2 usage or I/O error.

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
      if (!Number.isFinite(threshold) || threshold < 0 || threshold > 100) throw new UsageError(`--threshold must be a number from 0 to 100 (got \`${values.threshold}\`)`);
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
    const loaded = await loadPaths(positionals);
    if (hasErrors(loaded.diagnostics) || !loaded.policySet) {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      streams.err('the policy set has errors: no test was run\n');
      return 1;
    }
    const bar = progress(streams);
    bar.update(`running ${loaded.tests.length} tests...`);
    const started = process.hrtime.bigint();
    const run = runPolicyTests(loaded.policySet, loaded.tests, pattern ? { filter: (n) => pattern.test(n) } : {});
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    bar.done();

    if (values.junit !== undefined) {
      try {
        await writeFile(values.junit, junitXml(run, elapsedMs), 'utf8');
      } catch (error) {
        throw new UsageError(`cannot write \`${values.junit}\`: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    const belowThreshold = threshold !== undefined && run.coverage.percent < threshold;
    if (format === 'json') {
      const results = run.results.map((r) => ({ ...r, decision: r.decision ?? null }));
      streams.out(`${JSON.stringify({ passed: run.passed, failed: run.failed, results, ...(values.coverage ? { coverage: run.coverage } : {}) }, null, 2)}\n`);
    } else {
      printText(streams, run, Boolean(values.verbose));
      if (values.coverage) streams.out(renderCoverage(run.coverage, threshold));
      if (run.results.length === 0) streams.out(pattern ? `no test matches \`${values.run}\`\n` : 'no tests found\n');
      streams.out(`${run.passed} passed, ${run.failed} failed\n`);
    }
    if (belowThreshold) streams.err(`coverage ${run.coverage.percent}% is below the threshold ${threshold}%\n`);
    return run.failed > 0 || belowThreshold ? 1 : 0;
  },
};

function printText(streams: TestStreams, run: TestRun, verbose: boolean): void {
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
      streams.out(`  ${r.file}:${f.line}:${f.col}: expected ${f.expected}\n`);
      streams.out(`  ${' '.repeat(`${r.file}:${f.line}:${f.col}`.length)}       got ${f.actual}\n`);
    }
    if (r.decision) {
      streams.out(renderDecision(r.decision, c, '    '));
      streams.out(`    why:\n${renderExplanation(r.decision.explanation ?? [], c, '      ')}`);
    }
  }
}

type TestStreams = Parameters<Command['run']>[1];

export function renderCoverage(coverage: Coverage, threshold?: number): string {
  const lines = ['coverage:'];
  for (const f of coverage.files) {
    lines.push(`  ${f.file}  ${f.percent}% (${f.covered}/${f.total})`);
    for (const item of f.items.filter((i) => !i.covered)) lines.push(`    not exercised: ${item.kind} ${item.name} (line ${item.line})`);
  }
  lines.push(`  total  ${coverage.percent}% (${coverage.covered}/${coverage.total})${threshold !== undefined ? `, threshold ${threshold}%` : ''}`);
  return `${lines.join('\n')}\n`;
}

function xml(text: string): string {
  return text
    .replace(/[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd]/gu, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** JUnit XML as CI systems read it: one testsuite per .test.agp file. */
export function junitXml(run: TestRun, elapsedMs: number): string {
  const byFile = new Map<string, TestRun['results']>();
  for (const r of run.results) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="agp" tests="${run.results.length}" failures="${run.failed}" time="${(elapsedMs / 1000).toFixed(3)}">`];
  for (const [file, results] of byFile) {
    const failures = results.filter((r) => !r.passed).length;
    out.push(`  <testsuite name="${xml(file)}" tests="${results.length}" failures="${failures}" errors="0" skipped="0">`);
    for (const r of results) {
      const head = `    <testcase classname="${xml(file)}" name="${xml(r.name)}" file="${xml(file)}" line="${r.line}"`;
      if (r.passed) {
        out.push(`${head}/>`);
        continue;
      }
      const message = r.error ?? r.failures.map((f) => `expected ${f.expected}, got ${f.actual}`).join('; ');
      const body = [message, r.decision ? renderDecision(r.decision, false) : '', r.decision ? renderExplanation(r.decision.explanation ?? [], false) : ''].join('\n');
      out.push(`${head}>`, `      <failure message="${xml(message)}" type="${r.error ? 'invalid_request' : 'expectation'}">${xml(body)}</failure>`, '    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
