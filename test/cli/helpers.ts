// Shared by the CLI tests: runs the real `agp` (node bin/agp.js) as a child process from the
// repository root, rebuilds dist/ first when a source is newer than it, makes scratch copies
// of the example policies, and checks XML well-formedness strictly (for --junit reports).

import { execFile, execFileSync } from 'node:child_process';
import { afterEach } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = join(ROOT, 'dist', 'cli', 'main.js');
const SOURCE_DIRS = ['cli', 'engine', 'grammar', 'server'];

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

function builtAt(): number {
  try {
    return statSync(ENTRY).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Makes sure dist/ holds the current CLI. `npm test` compiles before vitest, so this is
 * normally a no-op; when run alone after an edit it compiles once (test files run in
 * parallel, so a lock directory keeps it to one compiler; the others wait for it).
 */
export function ensureBuilt(): void {
  const newest = Math.max(...SOURCE_DIRS.map((d) => newestSource(join(ROOT, d))));
  if (builtAt() >= newest) return;
  const lock = join(ROOT, 'dist', '.cli-test-build.lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // another test file is compiling: wait for it, then look again (a lock left by a
      // killed run is taken over once it is old)
      let stale = Date.now() > deadline;
      try {
        stale ||= Date.now() - statSync(lock).mtimeMs > 300_000;
      } catch {
        continue;
      }
      if (stale) rmSync(lock, { recursive: true, force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
      if (builtAt() >= newest) return;
    }
  }
  try {
    if (builtAt() >= newest) return;
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
    } catch {
      // type errors elsewhere in the tree still emit JavaScript; the entry check below decides
    }
    if (builtAt() === 0) throw new Error('tsc did not produce dist/cli/main.js');
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/agp.js ...args` from the repository root, without colour. */
export function agp(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  const merged: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, AGP_DEBUG: undefined, ...options.env };
  const env = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'agp.js'), ...args], { cwd: options.cwd ?? ROOT, env, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A fresh copy of policies/ in a temporary directory (removed by the returned function). */
export function copyPolicies(): { dir: string; cleanup: () => void } {
  const base = mkdtempSync(join(tmpdir(), 'agp-cli-'));
  const dir = join(base, 'policies');
  cpSync(join(ROOT, 'policies'), dir, { recursive: true });
  return { dir, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/**
 * For a test file: fresh directories for one test — a copy of policies/, or an empty one —
 * each removed after its test.
 */
export function scratchSpace(): { policies(): string; dir(): string } {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });
  const keep = ({ dir, cleanup }: { dir: string; cleanup: () => void }): string => {
    cleanups.push(cleanup);
    return dir;
  };
  return { policies: () => keep(copyPolicies()), dir: () => keep(scratchDir()) };
}

/** Replaces `from` in a test's copy of a file; a missing `from` is a bug in the test. */
export function edit(file: string, from: string | RegExp, to: string): void {
  const text = readFileSync(file, 'utf8');
  const next = text.replace(from, to);
  if (next === text) throw new Error(`test setup: \`${String(from)}\` not found in ${file}`);
  writeFileSync(file, next);
}

export function scratchDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'agp-cli-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** No line of a message looks like a stack frame. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+[(:]\d+/m.test(text) || /\bnode:internal\b/.test(text);
}

// ---------------------------------------------------------------- strict XML

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_][\w.-]*/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(raw: string, where: string): string {
  if (raw.includes('<')) throw new Error(`raw \`<\` in ${where}`);
  return raw.replace(/&([^;]*);?/g, (m, ref: string) => {
    if (!m.endsWith(';')) throw new Error(`unterminated entity in ${where}`);
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const num = /^#(\d+)$/.exec(ref) ?? /^#x([0-9a-fA-F]+)$/.exec(ref);
    if (num) return String.fromCodePoint(parseInt(num[1]!, ref.startsWith('#x') ? 16 : 10));
    throw new Error(`unknown entity \`&${ref};\` in ${where}`);
  });
}

/**
 * Parses an XML document strictly enough to reject what CI parsers reject: one root,
 * balanced and properly nested tags, quoted and unique attributes, only the predefined or
 * numeric entities, no raw `<` or `&` in text, only an XML declaration as prolog. Throws
 * with the reason; returns the root element.
 */
export function parseXml(doc: string): XmlElement {
  let i = 0;
  const rest = (): string => doc.slice(i);
  const skipSpace = (): void => {
    while (i < doc.length && /\s/.test(doc[i]!)) i++;
  };
  if (doc.startsWith('<?xml')) {
    const end = doc.indexOf('?>');
    if (end < 0) throw new Error('unterminated XML declaration');
    if (!/^<\?xml version="1\.[01]"( encoding="[\w-]+")?( standalone="(yes|no)")?\s*\?>$/.test(doc.slice(0, end + 2))) throw new Error('malformed XML declaration');
    i = end + 2;
  }
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  for (;;) {
    if (stack.length === 0) skipSpace();
    if (i >= doc.length) break;
    if (doc[i] !== '<') {
      const next = doc.indexOf('<', i);
      const raw = next < 0 ? doc.slice(i) : doc.slice(i, next);
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`text outside the root element at offset ${i}`);
      top.text += decode(raw, `<${top.name}>`);
      i = next < 0 ? doc.length : next;
      continue;
    }
    if (rest().startsWith('<!--')) {
      const end = doc.indexOf('-->', i + 4);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    if (rest().startsWith('<![CDATA[')) {
      const end = doc.indexOf(']]>', i);
      const top = stack[stack.length - 1];
      if (end < 0 || !top) throw new Error('misplaced or unterminated CDATA');
      top.text += doc.slice(i + 9, end);
      i = end + 3;
      continue;
    }
    if (rest().startsWith('</')) {
      i += 2;
      const name = NAME.exec(rest())?.[0];
      if (!name) throw new Error(`bad closing tag at offset ${i}`);
      i += name.length;
      skipSpace();
      if (doc[i] !== '>') throw new Error(`bad closing tag </${name}`);
      i++;
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    i++;
    const name = NAME.exec(rest())?.[0];
    if (!name) throw new Error(`bad tag at offset ${i}`);
    i += name.length;
    const el: XmlElement = { name, attrs: {}, children: [], text: '' };
    for (;;) {
      const before = i;
      skipSpace();
      if (rest().startsWith('/>') || doc[i] === '>') break;
      if (i === before) throw new Error(`attributes of <${name}> must be separated by space`);
      const attr = NAME.exec(rest())?.[0];
      if (!attr) throw new Error(`bad attribute in <${name}> at offset ${i}`);
      i += attr.length;
      if (doc[i] !== '=') throw new Error(`attribute \`${attr}\` of <${name}> has no value`);
      i++;
      const quote = doc[i];
      if (quote !== '"' && quote !== "'") throw new Error(`attribute \`${attr}\` of <${name}> is not quoted`);
      const end = doc.indexOf(quote, i + 1);
      if (end < 0) throw new Error(`unterminated attribute \`${attr}\``);
      if (attr in el.attrs) throw new Error(`duplicate attribute \`${attr}\` in <${name}>`);
      el.attrs[attr] = decode(doc.slice(i + 1, end), `attribute ${attr}`);
      i = end + 1;
    }
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else if (root) throw new Error('more than one root element');
    else root = el;
    if (rest().startsWith('/>')) {
      i += 2;
    } else {
      i++;
      stack.push(el);
    }
  }
  if (stack.length > 0) throw new Error(`<${stack[stack.length - 1]!.name}> is never closed`);
  if (!root) throw new Error('no root element');
  return root;
}
