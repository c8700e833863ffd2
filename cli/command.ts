// The shape of a CLI subcommand, and the helpers every command shares: argument parsing,
// loading a policy set from paths with its diagnostics printed.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFile } from 'node:fs/promises';
import type { Streams } from './output.js';
import { formatDiagnostic, progress, summarizeDiagnostics, UsageError } from './output.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import { hasErrors, sortDiagnostics } from '../engine/diagnostics.js';
import { loadPolicySet } from '../engine/load.js';
import { ioReason, readPolicySources } from '../server/policy-files.js';

export interface Command {
  name: string;
  summary: string;
  /** Full help text: usage, every flag, an example (lazy when it lives in a heavy module). */
  help: string | (() => Promise<string>);
  run(argv: string[], streams: Streams): Promise<number>;
}

export async function helpText(command: Command): Promise<string> {
  const text = typeof command.help === 'string' ? command.help : await command.help();
  return text.endsWith('\n') ? text : `${text}\n`;
}

export { ioReason };

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = true) {
  return parseArgs({ args: argv, options, allowPositionals, strict: true });
}

export function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got \`${value}\`)`);
}

export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${what} \`${path}\`: ${ioReason(error)}`);
  }
  return parseJson(text, `${what} \`${path}\``);
}

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Several problems on one line: the first three, then a count. */
export function oneLine(messages: readonly string[]): string {
  const shown = messages.slice(0, 3).join('; ');
  return messages.length > 3 ? `${shown}; and ${messages.length - 3} more` : shown;
}

export type Loaded = Awaited<ReturnType<typeof loadPolicySet>> & { sources: Map<string, string> };

/**
 * Reads every `.agp` file under `paths` and loads them as one policy set (diagnostics are
 * the caller's to print, as text or JSON). I/O problems are usage errors (exit 2). With
 * `streams`, a slow load shows a progress line on a terminal.
 */
export async function loadPaths(paths: string[], streams?: Streams): Promise<Loaded> {
  if (paths.length === 0) throw new UsageError('no policy paths given');
  const bar = streams === undefined ? undefined : progress(streams);
  bar?.update('reading policy files');
  const read = await readPolicySources(paths);
  const ioErrors = read.diagnostics.filter((d) => d.code === 'agp_io_error');
  if (ioErrors.length > 0) {
    bar?.done();
    throw new UsageError(oneLine(ioErrors.map((d) => d.message)));
  }
  if (read.sources.length === 0) {
    bar?.done();
    throw new UsageError(`no .agp files under ${paths.map((p) => `\`${p}\``).join(', ')}`);
  }
  const loaded = bar === undefined ? loadPolicySet(read.sources) : loadPolicySet(read.sources, { onProgress: (step) => bar.update(step) });
  bar?.done();
  const sources = new Map(read.sources.map((s) => [s.path, s.text]));
  return { ...loaded, diagnostics: sortDiagnostics([...read.diagnostics, ...loaded.diagnostics]), sources };
}

export function printDiagnostics(streams: Streams, diagnostics: readonly Diagnostic[], sources: Map<string, string>): void {
  for (const d of diagnostics) streams.err(formatDiagnostic(d, sources.get(d.file), streams.errColor));
  if (diagnostics.length > 0) streams.err(`${summarizeDiagnostics(diagnostics)}\n`);
}

export { hasErrors };
