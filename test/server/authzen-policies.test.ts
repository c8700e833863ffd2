import { describe, it, expect } from 'vitest';
import { readPolicySources } from '../../server/policy-files.js';
import { loadPolicySet } from '../../engine/load.js';
import { runPolicyTests } from '../../engine/testing.js';

// The example AuthZEN-style policy set (examples/authzen): it must check clean and its own
// `.test.agp` tests must pass, as `agp check` and `agp test` would report.
describe('examples/authzen policy set', () => {
  it('checks without diagnostics and passes its tests', async () => {
    const read = await readPolicySources(['examples/authzen']);
    expect(read.diagnostics).toEqual([]);
    expect(read.sources.map((s) => s.path)).toEqual([
      'examples/authzen/authzen.test.agp',
      'examples/authzen/documents.agp',
      'examples/authzen/records.agp',
      'examples/authzen/schema.agp',
    ]);
    const loaded = loadPolicySet(read.sources);
    expect(loaded.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.code} ${d.message}`)).toEqual([]);
    expect(loaded.policySet).toBeDefined();
    const run = runPolicyTests(loaded.policySet!, loaded.tests);
    const failures = run.results.filter((r) => !r.passed).map((r) => `${r.name}: ${r.error ?? JSON.stringify(r.failures)}`);
    expect(failures).toEqual([]);
    expect(run.passed).toBe(15);
    // Every policy and branch of the example is exercised by its tests.
    const uncovered = run.coverage.files.flatMap((f) => f.items.filter((i) => !i.covered).map((i) => `${i.kind} ${i.name}`));
    expect(uncovered).toEqual([]);
  });
});
