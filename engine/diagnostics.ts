// Diagnostics: the one error type of the language front end and engine loader.
// Diagnostics are data, with a stable code, a position and a hint; they are sorted by position.

export type Severity = 'error' | 'warning';

/** Stable codes. Documented with an example each in docs/language.md. */
export type DiagnosticCode =
  | 'agp_io_error' // a file could not be read
  | 'agp_limit_error' // a file larger or deeper than the documented limits
  | 'agp_lex_error' // a character or token that is not part of the language
  | 'agp_parse_error' // a syntax error
  | 'agp_schema_error' // missing or duplicate schema, unknown type name, bad type arguments
  | 'agp_name_error' // an unknown attribute, let, factor, function or level member
  | 'agp_type_error' // an operand of the wrong type
  | 'agp_optional_error' // an optional attribute read without a `has` test
  | 'agp_level_error' // a level compared with another level type or with a string
  | 'agp_version_error' // an invalid version literal
  | 'agp_duplicate_error' // two policies, lets, factors or fields with one name
  | 'agp_cycle_error' // lets that refer to each other
  | 'agp_target_error' // an `on` target that cannot be indexed
  | 'agp_risk_error' // a risk threshold in a policy set with no risk factors
  | 'agp_obligation_error' // an obligation of the wrong type (ttl not a duration, ...)
  | 'agp_unreachable_warning' // an outcome branch that can never fire
  | 'agp_test_error'; // a malformed test block

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  /** Lowercase, no final period, user input in backticks. */
  message: string;
  file: string;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
  /** How to fix it, when there is something to say. */
  hint?: string;
}

export interface SpanLike {
  file: string;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

export function diagnostic(
  code: DiagnosticCode,
  span: SpanLike,
  message: string,
  hint?: string,
  severity: Severity = code.endsWith('_warning') ? 'warning' : 'error',
): Diagnostic {
  const d: Diagnostic = {
    code,
    severity,
    message,
    file: span.file,
    line: span.line,
    col: span.col,
    endLine: span.endLine,
    endCol: span.endCol,
  };
  if (hint !== undefined) d.hint = hint;
  return d;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.line - b.line || a.col - b.col || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
}

export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort(compareDiagnostics);
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** The closest candidate by edit distance, for "did you mean" hints. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.floor(name.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}
