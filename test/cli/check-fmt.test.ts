// `agp check` and `agp fmt`, run as a child process on the example policies and on broken
// or mangled copies of them.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { agp, edit, scratchSpace, ensureBuilt, hasStackTrace, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 300_000);

const space = scratchSpace();
const scratch = space.policies;

/** A copy with three separate mistakes in three files. */
function brokenCopy(): string {
  const dir = scratch();
  edit(join(dir, 'fraud.agp'), 'in agent.roles', 'in agent.rolez'); // unknown attribute
  edit(join(dir, 'coding.agp'), /permit if risk < 50/, 'permit if risk < "high"'); // type mismatch
  edit(join(dir, 'support.agp'), 'policy support_pii ', 'policy support_tickets '); // duplicate name
  return dir;
}

describe('agp check', { timeout: 120_000 }, () => {
  it('exits 0 on the example policies and says what it loaded', async () => {
    const r = await agp(['check', 'policies']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^ok: \d+ files, \d+ policies, \d+ tests$/m);
    expect(r.stdout).toBe('');
  });

  it('reports all three mistakes of a broken copy as file:line:col: error[code] with the source line and a caret, exit 1', async () => {
    const dir = brokenCopy();
    const r = await agp(['check', dir]);
    expect(r.code).toBe(1);
    const heads = r.stderr.split('\n').filter((l) => / error\[/.test(l));
    const fraud = heads.find((l) => l.startsWith(`${join(dir, 'fraud.agp')}:5:`));
    const coding = heads.find((l) => l.startsWith(`${join(dir, 'coding.agp')}:`));
    const support = heads.find((l) => l.startsWith(`${join(dir, 'support.agp')}:`) && l.includes('agp_duplicate_error'));
    expect(fraud).toMatch(/^\S+:5:\d+: error\[agp_name_error\]: unknown attribute `agent\.rolez`$/);
    expect(coding).toMatch(/^\S+:\d+:\d+: error\[agp_type_error\]: .*`"high"`/);
    expect(support).toMatch(/^\S+:\d+:\d+: error\[agp_duplicate_error\]: policy `support_tickets` is declared twice$/);
    // the source line, then a caret under the offending span, then the hint
    const lines = r.stderr.split('\n');
    const at = lines.indexOf(fraud!);
    expect(lines[at + 1]).toMatch(/^5 \| let fraud_agent = "fraud-detector" in agent\.rolez$/);
    const caretCol = lines[at + 2]!.indexOf('^');
    expect(lines[at + 1]!.slice(caretCol, caretCol + 'rolez'.length)).toBe('rolez');
    expect(lines[at + 2]).toMatch(/^\s+\| +\^{5}$/);
    expect(lines[at + 3]).toMatch(/hint: did you mean `roles`\?/);
    expect(r.stderr).toMatch(/^\d+ errors, \d+ warnings?$/m);
    expect(hasStackTrace(r.stderr)).toBe(false);
  });

  it('--format json prints every diagnostic with its code and position on stdout', async () => {
    const dir = brokenCopy();
    const r = await agp(['check', '--format', 'json', dir]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { ok: boolean; files: string[]; diagnostics: { code: string; severity: string; file: string; line: number; col: number; message: string }[] };
    expect(out.ok).toBe(false);
    expect(out.files).toContain(join(dir, 'fraud.agp'));
    const codes = out.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.file.slice(dir.length + 1)}:${d.code}`);
    expect(codes).toEqual(expect.arrayContaining(['fraud.agp:agp_name_error', 'coding.agp:agp_type_error', 'support.agp:agp_duplicate_error']));
    const name = out.diagnostics.find((d) => d.code === 'agp_name_error' && d.file.endsWith('fraud.agp'))!;
    expect([name.line, name.col]).toEqual([5, 45]);
  });

  it('--format json on the examples is ok with no errors', async () => {
    const r = await agp(['check', '--format', 'json', 'policies']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; diagnostics: { severity: string }[] };
    expect(out.ok).toBe(true);
    expect(out.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });

  it('a missing path is one line on stderr, exit 2, no stack trace', async () => {
    const r = await agp(['check', 'no/such/dir']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('agp check: cannot read `no/such/dir`: no such file or directory\n');
    expect(r.stdout).toBe('');
  });

  it('no path, an unknown flag or a bad --format value is a usage error (exit 2)', async () => {
    for (const args of [['check'], ['check', '--strict', 'policies'], ['check', '--format', 'xml', 'policies'], ['check', '--format']]) {
      const r = await agp(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^agp check: /);
    }
    expect((await agp(['check', '--strict', 'policies'])).stderr).toBe('agp check: unknown option `--strict` (see `agp check --help`)\n');
  });
});

describe('agp fmt', { timeout: 120_000 }, () => {
  it('--check exits 0 on the example policies', async () => {
    const r = await agp(['fmt', '--check', 'policies']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('--check exits 1 naming the mangled file; --write fixes its layout and keeps comments', async () => {
    const dir = scratch();
    const file = join(dir, 'fraud.agp');
    const original = readFileSync(file, 'utf8');
    edit(file, /^ {2}permit if risk < 40 with \{ ttl: 15m, scopes: \[resource\.type \+ ":read"\] \}$/m, 'permit   if risk<40 with {ttl:15m,scopes:[resource.type+":read"]}');
    edit(file, /^ {2}deny because "risk too high to read"$/m, '      deny    because "risk too high to read"   // trailing note kept');

    const check = await agp(['fmt', '--check', dir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toBe(`${file}\n`);
    expect(check.stderr).toMatch(/1 file is not formatted/);

    const write = await agp(['fmt', '--write', dir]);
    expect(write.code).toBe(0);
    expect(write.stderr).toMatch(/formatted 1 file/);
    const fixed = readFileSync(file, 'utf8');
    expect(fixed).toContain('  permit if risk < 40 with { ttl: 15m, scopes: [resource.type + ":read"] }\n');
    expect(fixed).toContain('// trailing note kept');
    expect(fixed).toContain("// The fraud-detection agents (VISION.md's story)");
    // apart from the added comment, the file is back to the canonical original
    expect(fixed.replace(/\s*\/\/ trailing note kept/, '')).toBe(original);
    expect((await agp(['fmt', '--check', dir])).code).toBe(0);
    // and the policy set still checks and passes its tests
    expect((await agp(['test', dir])).code).toBe(0);
  });

  it('without a flag prints the canonical text of a file', async () => {
    const r = await agp(['fmt', 'policies/fraud.agp']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(ROOT, 'policies', 'fraud.agp'), 'utf8'));
  });

  it('--check with --write, or no path, is a usage error', async () => {
    expect((await agp(['fmt', '--check', '--write', 'policies'])).code).toBe(2);
    const none = await agp(['fmt']);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe('agp fmt: no paths given\n');
  });

  it('a file with a syntax error is reported with its position and exit 1', async () => {
    const dir = scratch();
    edit(join(dir, 'fraud.agp'), 'when fraud_agent\n', 'when fraud_agent and (\n');
    const r = await agp(['fmt', '--check', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fraud\.agp:\d+:\d+: error\[agp_parse_error\]/);
  });
});
