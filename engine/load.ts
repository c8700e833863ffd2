// Loading a policy set from source texts: parse every file, check the set, stamp its
// revision and compile it. Pure (the caller reads the files; see server/policy-files.ts).

import { createHash } from 'node:crypto';
import { parseFile } from '../grammar/index.js';
import type { PolicyFile } from '../grammar/ast.js';
import { checkPolicySet, isTestFile } from './checker.js';
import type { PolicySet } from './decision.js';
import { sortDiagnostics, type Diagnostic } from './diagnostics.js';
import type { IrPolicySet, IrTest } from './ir.js';
import { createPolicySet } from './policy-set.js';

export interface PolicySource {
  path: string;
  text: string;
}

export interface LoadResult {
  /** The compiled set: present when the policy files have no errors. */
  policySet?: PolicySet;
  ir?: IrPolicySet;
  /** The tests of the `.test.agp` files (run them only when `diagnostics` has no error). */
  tests: IrTest[];
  /** Every parse and check diagnostic, sorted by position. */
  diagnostics: Diagnostic[];
}

/**
 * The revision of a policy set: `sha256:<hex>` over its policy files (not its tests, which
 * cannot change a decision), sorted by path, each as path NUL text NUL.
 */
export function policySetRevision(sources: readonly PolicySource[]): string {
  const hash = createHash('sha256');
  const files = sources.filter((s) => !isTestFile(s.path)).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const s of files) {
    hash.update(s.path);
    hash.update('\0');
    hash.update(s.text);
    hash.update('\0');
  }
  return `sha256:${hash.digest('hex')}`;
}

export interface LoadOptions {
  /** Told what the load is doing (`parsing 3/20 files`, `type-checking`, `compiling`), for a progress line. */
  onProgress?: (step: string) => void;
}

/** Parses, checks and compiles a policy set. Files ending `.test.agp` hold its tests. */
export function loadPolicySet(sources: readonly PolicySource[], options: LoadOptions = {}): LoadResult {
  const progress = options.onProgress;
  const diagnostics: Diagnostic[] = [];
  const files: PolicyFile[] = [];
  const texts = new Map<string, string>();
  for (const s of sources) {
    progress?.(`parsing ${files.length + 1}/${sources.length} files`);
    const parsed = parseFile(s.path, s.text);
    files.push(parsed.file);
    diagnostics.push(...parsed.diagnostics);
    texts.set(s.path, s.text);
  }
  progress?.(`type-checking ${sources.length} files`);
  const checked = checkPolicySet(files, { sources: texts, revision: policySetRevision(sources) });
  // A line with a syntax error was recovered by guessing; what the checker says about that
  // line is most likely an echo of the syntax error (`'a'` lexed as the name `a`), so the
  // syntax error speaks for it.
  const broken = new Set<string>();
  for (const d of diagnostics) {
    if (d.code !== 'agp_lex_error' && d.code !== 'agp_parse_error') continue;
    for (let line = d.line; line <= d.endLine; line++) broken.add(`${d.file}\0${line}`);
  }
  diagnostics.push(...checked.diagnostics.filter((d) => !broken.has(`${d.file}\0${d.line}`)));
  const sorted = sortDiagnostics(diagnostics);
  const result: LoadResult = { tests: checked.tests, diagnostics: sorted };
  // A parse error leaves holes in the AST, so the checker alone cannot vouch for the set.
  const policyErrors = sorted.some((d) => d.severity === 'error' && !isTestFile(d.file));
  if (checked.ir && !policyErrors) {
    result.ir = checked.ir;
    progress?.(`compiling ${checked.ir.policies.length} policies`);
    result.policySet = createPolicySet(checked.ir);
  }
  return result;
}
