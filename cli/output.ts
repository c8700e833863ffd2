// Terminal output for the CLI: colour (only on a TTY, NO_COLOR respected), diagnostics
// printed as `file:line:col: error[code]: message` with the source line and a caret,
// and one-line usage errors.

import type { Diagnostic } from '../engine/diagnostics.js';

export interface Streams {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether colour may be used on stdout / stderr. */
  outColor: boolean;
  errColor: boolean;
  errIsTTY: boolean;
}

function colorAllowed(stream: NodeJS.WriteStream): boolean {
  if (process.env['NO_COLOR'] !== undefined && process.env['NO_COLOR'] !== '') return false;
  if (process.env['FORCE_COLOR'] !== undefined && process.env['FORCE_COLOR'] !== '0') return true;
  return stream.isTTY === true;
}

export function processStreams(): Streams {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    outColor: colorAllowed(process.stdout),
    errColor: colorAllowed(process.stderr),
    errIsTTY: process.stderr.isTTY === true,
  };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, cyan: 36, bold: 1, dim: 2 } as const;
export type Style = keyof typeof CODES;

export function paint(enabled: boolean, style: Style, text: string): string {
  return enabled ? `\u001b[${CODES[style]}m${text}\u001b[0m` : text;
}

/** Renders one diagnostic with its source line and a caret under the span. */
export function formatDiagnostic(d: Diagnostic, source: string | undefined, color: boolean): string {
  const sev = d.severity === 'error' ? paint(color, 'red', 'error') : paint(color, 'yellow', 'warning');
  let text = `${paint(color, 'bold', `${d.file}:${d.line}:${d.col}`)}: ${sev}[${d.code}]: ${d.message}\n`;
  const line = source?.split('\n')[d.line - 1];
  if (line !== undefined) {
    const gutter = String(d.line);
    const width = d.endLine === d.line ? Math.max(1, d.endCol - d.col + 1) : Math.max(1, line.length - d.col + 1);
    text += `${paint(color, 'dim', `${gutter} |`)} ${line.replace(/\t/g, ' ')}\n`;
    text += `${' '.repeat(gutter.length)} ${paint(color, 'dim', '|')} ${' '.repeat(Math.max(0, d.col - 1))}${paint(color, d.severity === 'error' ? 'red' : 'yellow', '^'.repeat(width))}\n`;
  }
  if (d.hint) text += `${' '.repeat(String(d.line).length)} ${paint(color, 'cyan', '= hint:')} ${d.hint}\n`;
  return text;
}

export function summarizeDiagnostics(ds: readonly Diagnostic[]): string {
  const errors = ds.filter((d) => d.severity === 'error').length;
  const warnings = ds.length - errors;
  return `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
}

/** A usage or I/O problem: exit code 2, one line, never a stack trace. */
export class UsageError extends Error {}

/**
 * A progress line on stderr for long runs: shown only on a TTY, only once the run has taken
 * more than a second, rewritten in place and erased by `done()`.
 */
export function progress(streams: Streams, clock: () => number = Date.now): { update(text: string): void; done(): void } {
  const started = clock();
  let shown = false;
  let last = 0;
  return {
    update(text: string) {
      if (!streams.errIsTTY) return;
      const now = clock();
      // redraw at most ten times a second
      if (now - started < 1000 || now - last < 100) return;
      last = now;
      shown = true;
      streams.err(`\r\u001b[2K${text}`);
    },
    done() {
      if (shown) streams.err('\r\u001b[2K');
      shown = false;
    },
  };
}
