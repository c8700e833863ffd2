// Runs `.test.agp` tests against a compiled policy set and measures what they exercised.
// Pure: the caller supplies the policy set and the checked tests; the CLI prints results.

import type { Decision, Grant, PolicySet, PolicyTrace } from './decision.js';
import type { CmpOp, IrExpectation, IrPolicySet, IrTest, Json } from './ir.js';
import { mergeAgent, type JsonObject } from './agent-context.js';
import { parseDuration } from './validate.js';

export interface TestFailure {
  /** What was expected, as the test wrote it. */
  expected: string;
  /** What the decision said. */
  actual: string;
  line: number;
  col: number;
}

export interface TestResult {
  name: string;
  file: string;
  line: number;
  col: number;
  passed: boolean;
  failures: TestFailure[];
  /** The request was rejected by schema validation: the test could not run. */
  error?: string;
  /** The decision with its explanation (absent when the request was rejected). */
  decision?: Decision;
}

export interface CoverageItem {
  kind: 'policy' | 'branch' | 'factor';
  /** `policy`, `policy#2 (escalate)`, or the factor name. */
  name: string;
  file: string;
  line: number;
  covered: boolean;
}

export interface FileCoverage {
  file: string;
  items: CoverageItem[];
  covered: number;
  total: number;
  percent: number;
}

export interface Coverage {
  files: FileCoverage[];
  covered: number;
  total: number;
  percent: number;
}

export interface TestRun {
  results: TestResult[];
  passed: number;
  failed: number;
  coverage: Coverage;
}

export function compareNumbers(actual: number, op: CmpOp, expected: number): boolean {
  switch (op) {
    case '==': return actual === expected;
    case '!=': return actual !== expected;
    case '<': return actual < expected;
    case '<=': return actual <= expected;
    case '>': return actual > expected;
    case '>=': return actual >= expected;
  }
}

/** Builds the request the server would evaluate for this test. */
export function testRequest(test: IrTest): { body: JsonObject; now: number; grants: Grant[] } {
  const registered = test.registered;
  const agent = mergeAgent(test.request['agent'], registered, test.behavior);
  const body: JsonObject = { ...test.request, agent };
  const grants = test.grants.map((g) => ({ actions: g.actions, resource: g.resource, expiresAt: test.now + g.expiresIn * 1000 }));
  return { body, now: test.now, grants };
}

export function runPolicyTests(
  policySet: PolicySet,
  tests: readonly IrTest[],
  options: { filter?: (name: string) => boolean; onResult?: (result: TestResult, done: number, total: number) => void } = {},
): TestRun {
  const selected = options.filter ? tests.filter((t) => options.filter!(t.name)) : [...tests];
  const traces: PolicyTrace[][] = [];
  const decisions: Decision[] = [];
  const results = selected.map((test, i) => {
    const result = runOne(policySet, test);
    if (result.decision) {
      decisions.push(result.decision);
      traces.push(result.decision.explanation ?? []);
    }
    options.onResult?.(result, i + 1, selected.length);
    return result;
  });
  const passed = results.filter((r) => r.passed).length;
  return { results, passed, failed: results.length - passed, coverage: measureCoverage(policySet.ir, traces, decisions) };
}

function runOne(policySet: PolicySet, test: IrTest): TestResult {
  const base = { name: test.name, file: test.file, line: test.span.line, col: test.span.col };
  const { body, now, grants } = testRequest(test);
  const validated = policySet.validate(body, { now, grants });
  if (!validated.ok) {
    const error = validated.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    return { ...base, passed: false, failures: [], error: `the test's request is invalid: ${error}` };
  }
  const decision = policySet.decide(validated.request);
  const explained = policySet.explain(validated.request);
  const shown: Decision = { ...decision, explanation: explained.explanation ?? [] };
  const failures: TestFailure[] = [];
  for (const e of test.expectations) {
    const failure = check(e, decision);
    if (failure) failures.push({ ...failure, line: e.span.line, col: e.span.col });
  }
  return { ...base, passed: failures.length === 0, failures, decision: shown };
}

function check(e: IrExpectation, d: Decision): { expected: string; actual: string } | undefined {
  switch (e.kind) {
    case 'effect': {
      if (d.effect !== e.effect) return { expected: e.effect, actual: d.effect };
      if (e.obligations === null) return undefined;
      for (const [key, want] of Object.entries(e.obligations)) {
        const problem = checkObligation(key, want, d.obligations);
        if (problem) return { expected: `${e.effect} with ${problem.expected}`, actual: `${d.effect} with ${problem.actual}` };
      }
      return undefined;
    }
    case 'risk':
      return compareNumbers(d.risk, e.op, e.value) ? undefined : { expected: `risk ${e.op} ${e.value}`, actual: `risk ${d.risk}` };
    case 'factor': {
      const value = d.factors[e.name];
      if (value === undefined) return { expected: `factor ${e.name} ${e.op} ${e.value}`, actual: `no factor \`${e.name}\`` };
      return compareNumbers(value, e.op, e.value) ? undefined : { expected: `factor ${e.name} ${e.op} ${e.value}`, actual: `factor ${e.name} = ${value}` };
    }
    case 'policies': {
      const missing = e.names.filter((n) => !d.policies.includes(n));
      if (missing.length === 0) return undefined;
      return { expected: `determining policies include ${e.names.join(', ')}`, actual: `determining policies: ${d.policies.join(', ') || '(none)'}` };
    }
    case 'reason':
      return d.reasons.includes(e.value) ? undefined : { expected: `reason "${e.value}"`, actual: `reasons: ${d.reasons.map((r) => `"${r}"`).join(', ') || '(none)'}` };
  }
}

function show(v: unknown): string {
  return JSON.stringify(v);
}

function checkObligation(key: string, want: Json, got: Decision['obligations']): { expected: string; actual: string } | undefined {
  const seconds = got[`${key}_s`];
  if (seconds !== undefined) {
    // A duration as the test wrote it (`5m`) or a number of seconds, read as requests are.
    const wantSeconds = parseDuration(want);
    if (wantSeconds === seconds) return undefined;
    return { expected: `${key}: ${show(want)}`, actual: `${key}_s: ${show(seconds)}` };
  }
  const value = got[key];
  if (value === undefined) return { expected: `${key}: ${show(want)}`, actual: `no obligation \`${key}\`` };
  if (Array.isArray(want) && Array.isArray(value)) {
    const a = [...want].map(String).sort();
    const b = [...value].sort();
    if (a.length === b.length && a.every((x, i) => x === b[i])) return undefined;
  } else if (value === want) {
    return undefined;
  }
  return { expected: `${key}: ${show(want)}`, actual: `${key}: ${show(value)}` };
}

/** Which policies applied, which outcome branches fired and which factors were non-zero. */
function measureCoverage(ir: IrPolicySet, traces: readonly PolicyTrace[][], decisions: readonly Decision[]): Coverage {
  const appliedPolicies = new Set<string>();
  const firedBranches = new Set<string>();
  const byName = new Map(ir.policies.map((p) => [p.name, p]));
  for (const trace of traces) {
    for (const t of trace) {
      if (t.effect === null) continue;
      appliedPolicies.add(t.policy);
      const policy = byName.get(t.policy);
      if (!policy) continue;
      const fired = policy.branches.findIndex((b, i) => b.condition === null || t.branches[i]?.condition === true);
      if (fired >= 0) firedBranches.add(`${t.policy}#${fired}`);
    }
  }
  const usedFactors = new Set<string>();
  for (const d of decisions) for (const [name, value] of Object.entries(d.factors)) if (value !== 0) usedFactors.add(name);

  const items: CoverageItem[] = [];
  for (const p of ir.policies) {
    items.push({ kind: 'policy', name: p.name, file: p.file, line: p.span.line, covered: appliedPolicies.has(p.name) });
    if (p.branches.length > 1) {
      p.branches.forEach((b, i) => {
        items.push({ kind: 'branch', name: `${p.name}#${i + 1} (${b.effect})`, file: p.file, line: b.span.line, covered: firedBranches.has(`${p.name}#${i}`) });
      });
    }
  }
  for (const f of ir.factors) items.push({ kind: 'factor', name: f.name, file: f.span.file, line: f.span.line, covered: usedFactors.has(f.name) });

  const files = new Map<string, CoverageItem[]>();
  for (const item of items) {
    const list = files.get(item.file) ?? [];
    list.push(item);
    files.set(item.file, list);
  }
  const fileCoverage = [...files.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([file, list]) => {
      const covered = list.filter((i) => i.covered).length;
      return { file, items: list, covered, total: list.length, percent: percent(covered, list.length) };
    });
  const covered = items.filter((i) => i.covered).length;
  return { files: fileCoverage, covered, total: items.length, percent: percent(covered, items.length) };
}

function percent(covered: number, total: number): number {
  return total === 0 ? 100 : Math.round((covered / total) * 1000) / 10;
}
