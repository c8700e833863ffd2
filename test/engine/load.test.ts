// Loading a policy set from sources (parse, check, revision, compile) and reading policy
// files from disk.

import { mkdtempSync, mkdirSync, writeFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect, afterAll } from 'vitest';
import { loadPolicySet, policySetRevision } from '../../engine/load.js';
import { readPolicySources, MAX_POLICY_FILE_BYTES } from '../../server/policy-files.js';

const SCHEMA = `schema {
  agent { id: string, confidence: number, trust: level<low, high> }
  resource { type: string, id: string }
  task { kind: string }
  action: string
}`;

const POLICY = `policy read_docs "anyone reads docs" {
  on action == "read" and resource.type == "doc"
  when agent.trust >= high
  permit with { ttl: 5m }
}`;

const TESTS = `test "a trusted agent reads a doc" {
  agent { id: "a1", confidence: 1, trust: high }
  action "read"
  resource { type: "doc", id: "1" }
  task { kind: "k" }
  expect permit with { ttl: 5m }
}`;

describe('loadPolicySet', () => {
  it('parses, checks and compiles a set into a policy set that decides', () => {
    const loaded = loadPolicySet([
      { path: 'p/schema.agp', text: SCHEMA },
      { path: 'p/docs.agp', text: POLICY },
      { path: 'p/docs.test.agp', text: TESTS },
    ]);
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.tests.map((t) => t.name)).toEqual(['a trusted agent reads a doc']);
    const ps = loaded.policySet!;
    expect(ps.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(loaded.ir!.revision).toBe(ps.revision);
    const v = ps.validate({ agent: { id: 'a1', confidence: 1, trust: 'high' }, action: 'read', resource: { type: 'doc', id: '1' }, task: { kind: 'k' } }, { now: 0 });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    const d = ps.decide(v.request);
    expect(d).toMatchObject({ effect: 'permit', policies: ['read_docs'], obligations: { ttl_s: 300 }, revision: ps.revision });
  });

  it('reports parse and check errors together, sorted, and builds no policy set', () => {
    const loaded = loadPolicySet([
      { path: 'b.agp', text: 'policy broken { when agent.trust >= hihg permit' },
      { path: 'a.agp', text: SCHEMA },
      { path: 'c.agp', text: 'let x = agent.confidense > 1' },
    ]);
    expect(loaded.policySet).toBeUndefined();
    expect(loaded.ir).toBeUndefined();
    const files = loaded.diagnostics.map((d) => d.file);
    expect(files).toEqual([...files].sort());
    expect(loaded.diagnostics.some((d) => d.file === 'b.agp' && d.code === 'agp_parse_error')).toBe(true);
    expect(loaded.diagnostics.find((d) => d.file === 'c.agp')).toMatchObject({ code: 'agp_name_error', message: 'unknown attribute `agent.confidense`', hint: 'did you mean `confidence`?' });
  });

  it('still compiles the policies when only a test file is broken', () => {
    const loaded = loadPolicySet([
      { path: 'schema.agp', text: SCHEMA },
      { path: 'docs.agp', text: POLICY },
      { path: 'docs.test.agp', text: 'test "t" { action "read" expect policies [read_doc] }' },
    ]);
    expect(loaded.diagnostics.map((d) => [d.file, d.code])).toEqual([['docs.test.agp', 'agp_name_error']]);
    expect(loaded.policySet).toBeDefined();
  });

  it('computes the revision from the policy files only, independent of their order', () => {
    const a = { path: 'a.agp', text: SCHEMA };
    const b = { path: 'b.agp', text: POLICY };
    const t = { path: 'b.test.agp', text: TESTS };
    const r1 = policySetRevision([a, b]);
    expect(policySetRevision([b, a])).toBe(r1);
    expect(policySetRevision([a, b, t])).toBe(r1);
    expect(policySetRevision([a, { ...b, text: `${POLICY}\n` }])).not.toBe(r1);
    expect(policySetRevision([a, { ...b, path: 'c.agp' }])).not.toBe(r1);
    // path and text boundaries are part of the hash: moving text between them changes it
    expect(policySetRevision([{ path: 'x', text: 'yz' }])).not.toBe(policySetRevision([{ path: 'xy', text: 'z' }]));
    expect(loadPolicySet([b, a, t]).policySet!.revision).toBe(r1);
  });
});

describe('readPolicySources', () => {
  const root = mkdtempSync(join(tmpdir(), 'agp-files-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'set', 'team', 'deep'), { recursive: true });
  mkdirSync(join(root, 'set', '.hidden'));
  mkdirSync(join(root, 'set', 'node_modules'));
  writeFileSync(join(root, 'set', 'schema.agp'), SCHEMA);
  writeFileSync(join(root, 'set', 'team', 'docs.agp'), POLICY);
  writeFileSync(join(root, 'set', 'team', 'docs.test.agp'), TESTS);
  writeFileSync(join(root, 'set', 'team', 'deep', 'b.agp'), '// empty');
  writeFileSync(join(root, 'set', 'team', 'notes.md'), '# not a policy');
  writeFileSync(join(root, 'set', '.hidden', 'x.agp'), 'garbage');
  writeFileSync(join(root, 'set', 'node_modules', 'x.agp'), 'garbage');
  writeFileSync(join(root, 'big.agp'), `// ${'x'.repeat(MAX_POLICY_FILE_BYTES)}`);
  symlinkSync(join(root, 'set', 'schema.agp'), join(root, 'set', 'team', 'linked.agp'));

  it('walks directories for .agp files, sorted, with paths relative to the working directory', async () => {
    const r = await readPolicySources(['set'], { cwd: root });
    expect(r.diagnostics).toEqual([]);
    expect(r.sources.map((s) => s.path)).toEqual(['set/schema.agp', 'set/team/deep/b.agp', 'set/team/docs.agp', 'set/team/docs.test.agp', 'set/team/linked.agp']);
    expect(r.sources[0]!.text).toBe(SCHEMA);
    const loaded = loadPolicySet(r.sources.filter((s) => !s.path.endsWith('linked.agp')));
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.tests).toHaveLength(1);
  });

  it('leaves test files out when asked, and reads a named file as given', async () => {
    const r = await readPolicySources(['set', 'set/schema.agp'], { cwd: root, includeTests: false });
    expect(r.sources.map((s) => s.path)).toEqual(['set/schema.agp', 'set/team/deep/b.agp', 'set/team/docs.agp', 'set/team/linked.agp']);
    const named = await readPolicySources([join(root, 'set', 'team', 'docs.test.agp')], { cwd: root, includeTests: false });
    expect(named.sources.map((s) => s.path)).toEqual(['set/team/docs.test.agp']);
  });

  it('reports a missing path and an oversized file without reading it', async () => {
    const r = await readPolicySources(['nope', 'big.agp', 'set/schema.agp'], { cwd: root });
    expect(r.sources.map((s) => s.path)).toEqual(['set/schema.agp']);
    expect(r.diagnostics.map((d) => [d.code, d.file, d.message])).toEqual([
      ['agp_io_error', 'nope', 'cannot read `nope`: no such file or directory'],
      ['agp_limit_error', 'big.agp', `\`big.agp\` is ${MAX_POLICY_FILE_BYTES + 3} bytes, more than the 1 MiB limit for a policy file`],
    ]);
  });
});
