import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { astEqual, formatFile, formatSource, lex, parseFile, stripSpans } from '../../grammar/index.js';
import type { Diagnostic } from '../../engine/diagnostics.js';
import { compareDiagnostics } from '../../engine/diagnostics.js';
import { policyFile } from './arbitrary.js';

const POLICY_DIR = new URL('../../policies/', import.meta.url);
const examples: string[] = readdirSync(POLICY_DIR)
  .filter((f) => f.endsWith('.agp'))
  .map((f) => readFileSync(new URL(f, POLICY_DIR), 'utf8'));

const FRONT_END_CODES = new Set(['agp_lex_error', 'agp_parse_error', 'agp_limit_error']);

/** What every parse result must look like, whatever the input. */
function assertWellFormed(path: string, r: { file: { kind: string; path: string; decls: unknown[] }; diagnostics: Diagnostic[] }): void {
  expect(r.file.kind).toBe('file');
  expect(r.file.path).toBe(path);
  for (const d of r.diagnostics) {
    expect(FRONT_END_CODES.has(d.code)).toBe(true);
    expect(d.file).toBe(path);
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.col).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(d.endLine) && Number.isInteger(d.endCol)).toBe(true);
    expect(d.message).toMatch(/^[a-z`]/);
    expect(d.message).not.toMatch(/\.$/);
    expect(d.message).not.toMatch(/undefined|NaN|\[object/);
  }
  for (let i = 1; i < r.diagnostics.length; i++) expect(compareDiagnostics(r.diagnostics[i - 1]!, r.diagnostics[i]!)).toBeLessThanOrEqual(0);
}

const agpChars = fc.constantFrom(
  ...'{}()[]<>=!:,.?+-*/%"\\ \n\t#&|\'abcxyz_019eE'.split(''),
  'policy ', 'forbid ', 'schema ', 'let ', 'risk ', 'test ', 'permit ', 'deny ', 'if ', 'with ', 'because ', 'on ', 'when ',
  'match ', 'else', 'not ', 'and ', 'or ', 'in ', 'has ', 'expect ', '//', '/*', '*/', '2.4.1', '5m', '1e3', '"s"',
);

describe('the parser never throws or hangs', () => {
  it('on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: agpChars, maxLength: 80 })), (s) => {
        assertWellFormed('fuzz.agp', parseFile('fuzz.agp', s));
      }),
      { numRuns: 1500 },
    );
  });

  it('on shuffled, duplicated and dropped token streams of real policies', () => {
    const streams = examples.map((e) => lex('x.agp', e).tokens.map((t) => t.image));
    const mutate = fc.record({
      file: fc.nat({ max: streams.length - 1 }),
      start: fc.nat(),
      length: fc.integer({ min: 1, max: 120 }),
      edits: fc.array(fc.record({ kind: fc.constantFrom('drop', 'dup', 'swap', 'shuffle'), at: fc.nat(), to: fc.nat() }), { maxLength: 8 }),
    });
    fc.assert(
      fc.property(mutate, ({ file, start, length, edits }) => {
        const all = streams[file]!;
        const from = all.length === 0 ? 0 : start % all.length;
        const toks = all.slice(from, from + length);
        for (const ed of edits) {
          if (toks.length === 0) break;
          const i = ed.at % toks.length;
          const j = ed.to % toks.length;
          if (ed.kind === 'drop') toks.splice(i, 1);
          else if (ed.kind === 'dup') toks.splice(i, 0, toks[i]!);
          else if (ed.kind === 'swap') [toks[i], toks[j]] = [toks[j]!, toks[i]!];
          else toks.splice(Math.min(i, j), Math.abs(i - j), ...toks.slice(Math.min(i, j), Math.max(i, j)).reverse());
        }
        const text = toks.join(' ');
        const r = parseFile('mut.agp', text);
        assertWellFormed('mut.agp', r);
      }),
      { numRuns: 1500 },
    );
  });
});

describe('printing and parsing', () => {
  it('parse(print(ast)) == ast for generated files', () => {
    fc.assert(
      fc.property(policyFile, (ast) => {
        const text = formatFile(ast, '');
        const r = parseFile('gen.agp', text);
        expect(r.diagnostics).toEqual([]);
        expect(stripSpans(r.file.decls)).toEqual(stripSpans(ast.decls));
      }),
      { numRuns: 400 },
    );
  });

  it('fmt is idempotent on generated files and on the policies in the repository', () => {
    fc.assert(
      fc.property(policyFile, (ast) => {
        const once = formatFile(ast, '');
        const twice = formatSource('gen.agp', once);
        expect(twice.diagnostics).toEqual([]);
        expect(twice.text).toBe(once);
      }),
      { numRuns: 300 },
    );
    for (const e of examples) {
      const once = formatSource('ex.agp', e);
      expect(once.diagnostics).toEqual([]);
      expect(formatSource('ex.agp', once.text!).text).toBe(once.text);
    }
  });
});

/** Inserts comments at line boundaries of `text`: own-line comments before a line, a block
 *  comment at the start of a line, a trailing comment at the end of a line. */
function injectComments(text: string, plan: { line: number; kind: 'own' | 'ownBlock' | 'lead' | 'trail' | 'trailBlock'; blank: boolean }[]): { text: string; comments: string[] } {
  const lines = text.split('\n');
  const comments: string[] = [];
  const trailed = new Set<number>();
  plan.forEach((p, n) => {
    const i = lines.length === 0 ? 0 : p.line % lines.length;
    const c = p.kind === 'own' || p.kind === 'trail' ? `// note ${n}` : `/* note ${n}${n % 3 === 0 ? '\n   more */' : ' */'}`;
    const line = lines[i] ?? '';
    if (p.kind === 'own' || p.kind === 'ownBlock') lines.splice(i, 0, ...(p.blank ? [''] : []), `  ${c}`);
    else if (p.kind === 'lead') lines[i] = line.replace(/^(\s*)/, `$1${c} `);
    else {
      // one trailing comment per line, and never after a line comment
      if (trailed.has(i) || line.includes('//')) return;
      trailed.add(i);
      lines[i] = `${line} ${c}`;
    }
    comments.push(c);
  });
  return { text: lines.join('\n'), comments };
}

describe('comments survive formatting', () => {
  const plan = fc.array(
    fc.record({ line: fc.nat(), kind: fc.constantFrom('own', 'ownBlock', 'lead', 'trail', 'trailBlock' as const), blank: fc.boolean() }),
    { minLength: 1, maxLength: 12 },
  );

  it('keeps every injected comment, the AST, and idempotence', () => {
    fc.assert(
      fc.property(policyFile, plan, (ast, p) => {
        const base = formatFile(ast, '');
        const { text, comments } = injectComments(base, p);
        const parsed = parseFile('c.agp', text);
        expect(parsed.diagnostics).toEqual([]);
        expect(astEqual(stripSpans(parsed.file.decls), stripSpans(ast.decls))).toBe(true);
        const out = formatSource('c.agp', text);
        expect(out.diagnostics).toEqual([]);
        const after = parseFile('c.agp', out.text!);
        expect(after.file.comments.map((c) => c.text).sort()).toEqual([...comments].sort());
        expect(stripSpans(after.file.decls)).toEqual(stripSpans(ast.decls));
        expect(formatSource('c.agp', out.text!).text).toBe(out.text);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps comments in the repository policies with injected ones', () => {
    fc.assert(
      fc.property(fc.nat({ max: examples.length - 1 }), plan, (i, p) => {
        const { text, comments } = injectComments(examples[i]!, p);
        const before = parseFile('c.agp', text);
        expect(before.diagnostics).toEqual([]);
        const out = formatSource('c.agp', text);
        expect(out.diagnostics).toEqual([]);
        const kept = parseFile('c.agp', out.text!).file.comments.map((c) => c.text);
        for (const c of comments) expect(kept).toContain(c);
        expect(kept.length).toBe(before.file.comments.length);
        expect(formatSource('c.agp', out.text!).text).toBe(out.text);
      }),
      { numRuns: 200 },
    );
  });
});
