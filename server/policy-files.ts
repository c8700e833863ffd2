// Reading policy sources from disk: the one place the CLI and the server turn paths into
// `{ path, text }` sources for engine/load.ts. Directories are walked for `*.agp` files.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, isAbsolute } from 'node:path';
import { diagnostic, type Diagnostic } from '../engine/diagnostics.js';
import type { PolicySource } from '../engine/load.js';

/** Larger files are refused before reading (the language's limit is 1 MiB). */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

export interface ReadOptions {
  /** Include `*.test.agp` files found in directories (default true; named files always are). */
  includeTests?: boolean;
  /** Paths in diagnostics and sources are shown relative to this directory (default cwd). */
  cwd?: string;
}

export interface ReadResult {
  /** Sorted by path, each file once. */
  sources: PolicySource[];
  /** `agp_io_error` for unreadable paths, `agp_limit_error` for files over 1 MiB. */
  diagnostics: Diagnostic[];
}

const SKIPPED_DIRS = new Set(['node_modules', '.git']);

function at(file: string): { file: string; line: number; col: number; endLine: number; endCol: number } {
  return { file, line: 1, col: 1, endLine: 1, endCol: 1 };
}

/** An errno code as words, for one-line I/O errors (shared with the CLI). */
export function ioReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'not a directory';
    default:
      return code !== undefined ? code.toLowerCase() : error instanceof Error ? error.message.split('\n')[0]! : 'unreadable';
  }
}

/**
 * Reads the `.agp` files at `paths`: a file is read as given; a directory is walked
 * recursively (hidden directories and node_modules skipped, symbolic links to directories
 * not followed) for files ending in `.agp`.
 */
export async function readPolicySources(paths: readonly string[], options: ReadOptions = {}): Promise<ReadResult> {
  const cwd = options.cwd ?? process.cwd();
  const includeTests = options.includeTests ?? true;
  const show = (p: string): string => {
    const abs = isAbsolute(p) ? p : join(cwd, p);
    const rel = relative(cwd, abs);
    return rel === '' ? '.' : rel.startsWith('..') ? abs : rel;
  };
  const diagnostics: Diagnostic[] = [];
  const files = new Map<string, string>(); // shown path → absolute path

  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      diagnostics.push(diagnostic('agp_io_error', at(show(dir)), `cannot read directory \`${show(dir)}\`: ${ioReason(error)}`));
      return;
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && !SKIPPED_DIRS.has(entry.name)) await walk(full);
        continue;
      }
      if (!entry.name.endsWith('.agp')) continue;
      if (!includeTests && entry.name.endsWith('.test.agp')) continue;
      if (entry.isFile()) files.set(show(full), full);
      else if (entry.isSymbolicLink()) {
        try {
          if ((await stat(full)).isFile()) files.set(show(full), full);
        } catch (error) {
          diagnostics.push(diagnostic('agp_io_error', at(show(full)), `cannot read \`${show(full)}\`: ${ioReason(error)}`));
        }
      }
    }
  };

  for (const p of paths) {
    const abs = isAbsolute(p) ? p : join(cwd, p);
    let info;
    try {
      info = await stat(abs);
    } catch (error) {
      diagnostics.push(diagnostic('agp_io_error', at(show(abs)), `cannot read \`${show(abs)}\`: ${ioReason(error)}`));
      continue;
    }
    if (info.isDirectory()) await walk(abs);
    else files.set(show(abs), abs);
  }

  const sources: PolicySource[] = [];
  for (const path of [...files.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const abs = files.get(path)!;
    try {
      const info = await stat(abs);
      if (info.size > MAX_POLICY_FILE_BYTES) {
        diagnostics.push(
          diagnostic('agp_limit_error', at(path), `\`${path}\` is ${info.size} bytes, more than the 1 MiB limit for a policy file`, 'split it into several files'),
        );
        continue;
      }
      sources.push({ path, text: await readFile(abs, 'utf8') });
    } catch (error) {
      diagnostics.push(diagnostic('agp_io_error', at(path), `cannot read \`${path}\`: ${ioReason(error)}`));
    }
  }
  return { sources, diagnostics };
}
