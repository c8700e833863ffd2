// Bounded audit lines: whatever an entry holds, its line stays within MAX_LINE_BYTES. An
// entry that would not fit is cut — long strings keep a prefix and a marker, long arrays
// their first items and a count, large objects their first members and a count — and
// carries `truncated: true`. The work is bounded too: an oversized value is never walked
// past what could fit, so a 12 MB rejected request costs a line's worth of work.

import type { JsonValue, LogRecord } from './entries.js';
import { canonicalJson, scrubSecrets, scrubString, SECRET_KEY } from './format.js';

/** The largest audit line, newline included. */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * The budget of an entry's canonical JSON: the line adds `prev` (64 hex), `seq`, `hash`
 * (64 hex) and a newline, 171 bytes at most; `time` and `truncated` may be added too.
 */
export const MAX_BODY_BYTES = MAX_LINE_BYTES - 256;

/** How much of a value one cut keeps. */
interface Cut {
  /** UTF-16 code units kept of a string (and of a member name). */
  chars: number;
  /** Items kept of an array, members of an object. */
  items: number;
  /** Containers below this depth become a marker string. */
  depth: number;
  /** Values kept in all (after that, containers are cut to nothing but their count). */
  nodes: number;
}

// Tried in order until the line fits; the last one always does (64 nodes of at most
// 2 x (16 x 6 + 24) bytes each is under 16 KiB even if every character must be escaped).
const CUTS: readonly Cut[] = [
  { chars: 1024, items: 32, depth: 8, nodes: 1024 },
  { chars: 256, items: 16, depth: 6, nodes: 256 },
  { chars: 64, items: 8, depth: 4, nodes: 128 },
  { chars: 16, items: 4, depth: 3, nodes: 64 },
];

/** Member names of one object sorted to choose which to keep, at most. */
const SORTED_NAMES = 4096;

// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A bound on the size of `value`'s canonical JSON: `low` (never more than the real size)
 * and `high` (never less), the walk stopping once `low` passes `budget`.
 */
function sizeBounds(value: unknown, budget: number, acc: { low: number; high: number }, depth: number): void {
  if (acc.low > budget) return;
  if (typeof value === 'string') {
    acc.low += value.length + 2;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; an escape at most 6 characters.
    acc.high += value.length * (ESCAPED.test(value) ? 6 : 3) + 2;
    return;
  }
  if (value === null || typeof value !== 'object') {
    // Numbers, booleans, null: what `String` gives is what JSON gives (at most 24 chars).
    acc.low += 1;
    acc.high += 24;
    return;
  }
  if (depth > 16) {
    acc.high += 4;
    return;
  }
  if (Array.isArray(value)) {
    acc.low += 1 + value.length;
    acc.high += 2 + value.length;
    for (let i = 0; i < value.length && acc.low <= budget; i++) sizeBounds(value[i], budget, acc, depth + 1);
    return;
  }
  acc.high += 2;
  for (const k in value) {
    acc.low += k.length + 3;
    acc.high += k.length * 6 + 4;
    // A secret member becomes `"[redacted]"`, longer than a short value.
    acc.high += 12;
    sizeBounds((value as Record<string, unknown>)[k], budget, acc, depth + 1);
    if (acc.low > budget) return;
  }
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Cuts a value by one `Cut`, scrubbing as it goes (a cut must not keep half a secret). */
class Cutter {
  nodes = 0;
  constructor(private readonly cut: Cut) {}

  value(v: unknown, depth: number): JsonValue {
    this.nodes++;
    if (typeof v === 'string') return this.string(scrubString(v));
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'boolean' || v === null) return v;
    if (typeof v !== 'object') return null;
    if (Array.isArray(v)) {
      if (depth >= this.cut.depth) return `…[cut: an array of ${v.length} items]`;
      return this.array(v, depth);
    }
    const keys = Object.keys(v);
    if (depth >= this.cut.depth) return `…[cut: an object of ${keys.length} members]`;
    return this.object(v as Record<string, unknown>, keys, depth);
  }

  string(s: string): string {
    if (s.length <= this.cut.chars) return s;
    let keep = this.cut.chars;
    // Never half a surrogate pair.
    const last = s.charCodeAt(keep - 1);
    if (last >= 0xd800 && last <= 0xdbff) keep--;
    return `${s.slice(0, keep)}…[+${s.length - keep} chars]`;
  }

  private array(v: readonly unknown[], depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    const n = Math.min(v.length, this.cut.items);
    let i = 0;
    for (; i < n && this.nodes < this.cut.nodes; i++) out.push(this.value(v[i], depth + 1));
    if (i < v.length) out.push(`…[+${v.length - i} items]`);
    return out;
  }

  private object(v: Record<string, unknown>, all: readonly string[], depth: number): { [k: string]: JsonValue } {
    const out: { [k: string]: JsonValue } = {};
    let kept = 0;
    // The members kept are the first in canonical order; past a few thousand names, the
    // first few thousand given (sorting a million names would be work a caller could buy).
    const keys = (all.length > SORTED_NAMES ? all.slice(0, SORTED_NAMES) : [...all]).sort();
    let skipped = all.length - keys.length;
    // Scalars first: a large member must not crowd out its small siblings (`kind`, `time`).
    for (const pass of [false, true]) {
      for (const k of keys) {
        const m = v[k];
        if (m === undefined || typeof m === 'function') continue;
        if ((typeof m === 'object' && m !== null) !== pass) continue;
        if (kept >= this.cut.items || this.nodes >= this.cut.nodes) {
          skipped++;
          continue;
        }
        const name = this.string(k);
        if (name in out) {
          skipped++;
          continue;
        }
        kept++;
        out[name] = SECRET_KEY.test(k) ? '[redacted]' : this.value(m, depth + 1);
      }
    }
    if (skipped > 0) out['…'] = `[+${skipped} members]`;
    return out;
  }
}

/** Whether `record`'s canonical JSON (with a `time` it may get) fits `MAX_BODY_BYTES`. */
function fits(record: unknown): boolean {
  const acc = { low: 0, high: 0 };
  sizeBounds(record, MAX_BODY_BYTES, acc, 0);
  if (acc.high <= MAX_BODY_BYTES) return true;
  if (acc.low > MAX_BODY_BYTES) return false;
  // Between the bounds the value is small: its exact size is cheap to know.
  return byteLength(canonicalJson(scrubSecrets(record))) + TIME_MEMBER_BYTES <= MAX_BODY_BYTES;
}

/** `,"time":"2026-01-01T00:00:00.000Z"` */
const TIME_MEMBER_BYTES = 34;

/**
 * `record` as it is written: itself when its line fits, else a scrubbed copy cut to fit,
 * with `truncated: true` (its `kind` and `time` kept).
 */
export function boundRecord(record: LogRecord): LogRecord {
  if (fits(record)) return record;
  const kind = record.kind;
  const given = (record as { time?: unknown }).time;
  const time = typeof given === 'string' && given.length <= 64 ? given : undefined;
  for (const cut of CUTS) {
    const out = new Cutter(cut).value(record, 0) as { [k: string]: JsonValue };
    out['kind'] = kind;
    if (time !== undefined) out['time'] = time;
    out['truncated'] = true;
    if (byteLength(canonicalJson(out)) + TIME_MEMBER_BYTES <= MAX_BODY_BYTES) return out as unknown as LogRecord;
  }
  // Unreachable by the arithmetic of the last cut; kept so that no input can break the bound.
  return { kind, ...(time !== undefined ? { time } : {}), truncated: true } as unknown as LogRecord;
}
