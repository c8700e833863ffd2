// The shared run-time semantics of .agp: the one definition of glob matching, saturating
// arithmetic, rounding, built-ins, grant matching, obligation merging and effect combining.
// The reference interpreter and the generated decision functions both call these, so the
// two evaluators cannot drift apart on any rule written here.

import type { Effect, Grant, ObligationValue, Obligations } from './decision.js';
import type { ArithOp, BuiltinFn, ObligationKind, Value } from './ir.js';

// ---------------------------------------------------------------- globs

const STAR = 42; // '*'
const BACKSLASH = 92; // '\\'

/**
 * Glob match: `*` matches any run of characters (including none), `\*` is a literal star,
 * every other character (a lone `\` included) matches itself; the match is anchored.
 * Greedy with backtracking to the last star only: O(pattern × subject) in the worst case,
 * never exponential (a RegExp built from `a*a*a*b` can be), and it allocates nothing.
 */
export function globMatch(pattern: string, subject: string): boolean {
  const m = pattern.length;
  const n = subject.length;
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < n) {
    if (p < m) {
      const c = pattern.charCodeAt(p);
      if (c === STAR) {
        p++;
        starP = p;
        starS = s;
        continue;
      }
      let lit = c;
      let adv = 1;
      if (c === BACKSLASH && p + 1 < m && pattern.charCodeAt(p + 1) === STAR) {
        lit = STAR;
        adv = 2;
      }
      if (subject.charCodeAt(s) === lit) {
        s++;
        p += adv;
        continue;
      }
    }
    if (starP < 0) return false;
    starS++;
    s = starS;
    p = starP;
  }
  while (p < m && pattern.charCodeAt(p) === STAR) p++;
  return p === m;
}

/** The pattern split at unescaped stars into literal segments (escapes resolved). */
export function globSegments(pattern: string): string[] {
  const segs: string[] = [];
  let cur = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && pattern[i + 1] === '*') {
      cur += '*';
      i++;
    } else if (c === '*') {
      segs.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  segs.push(cur);
  return segs;
}

/**
 * A glob compiled once: a specialised matcher for the common shapes (exact, prefix,
 * suffix, contains), falling back to `globMatch`. Always agrees with `globMatch`.
 */
export function compileGlob(pattern: string): (subject: string) => boolean {
  const segs = globSegments(pattern);
  if (segs.length === 1) {
    const lit = segs[0]!;
    return (s) => s === lit;
  }
  if (segs.length === 2) {
    const pre = segs[0]!;
    const suf = segs[1]!;
    if (suf === '') return pre === '' ? () => true : (s) => s.startsWith(pre);
    if (pre === '') return (s) => s.endsWith(suf);
    const min = pre.length + suf.length;
    return (s) => s.length >= min && s.startsWith(pre) && s.endsWith(suf);
  }
  if (segs.length === 3 && segs[0] === '' && segs[2] === '') {
    const mid = segs[1]!;
    return (s) => s.includes(mid);
  }
  return (s) => globMatch(pattern, s);
}

/**
 * An anchored RegExp equivalent to the glob (every character escaped except `*`), for
 * callers that need a RegExp, e.g. to hand to another system. Evaluation uses `globMatch`.
 */
export function globToRegExp(pattern: string): RegExp {
  const body = globSegments(pattern)
    .map((seg) => seg.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&'))
    .join('[\\s\\S]*');
  return new RegExp(`^${body}$`, 'u');
}

// ---------------------------------------------------------------- numbers

const MAX = Number.MAX_VALUE;

/** Clamps a float64 result to ±Number.MAX_VALUE (inputs are finite, so NaN cannot arise). */
export function saturate(x: number): number {
  return x > MAX ? MAX : x < -MAX ? -MAX : x;
}

/** `+ - * / %` on numbers: division or modulo by zero gives 0; overflow saturates. */
export function arith(op: ArithOp, a: number, b: number): number {
  switch (op) {
    case '+':
      return saturate(a + b);
    case '-':
      return saturate(a - b);
    case '*':
      return saturate(a * b);
    case '/':
      return b === 0 ? 0 : saturate(a / b);
    case '%':
      return b === 0 ? 0 : a % b;
  }
}

export function addSat(a: number, b: number): number {
  return saturate(a + b);
}
export function subSat(a: number, b: number): number {
  return saturate(a - b);
}
export function mulSat(a: number, b: number): number {
  return saturate(a * b);
}
export function divSat(a: number, b: number): number {
  return b === 0 ? 0 : saturate(a / b);
}
export function modSat(a: number, b: number): number {
  return b === 0 ? 0 : a % b;
}

/**
 * Rounds to 6 decimals, half toward +∞; never returns -0. Beyond 2^53 / 10^6 a float64 has
 * no sixth decimal, so such values are returned as they are (and x·10^6 cannot overflow).
 */
export function round6(x: number): number {
  if (x > 9e9 || x < -9e9) return x;
  return Math.round(x * 1e6) / 1e6 + 0;
}

/** Number of Unicode code points: what a policy author means by the size of a string. */
export function stringSize(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

export function size(x: Value): number {
  if (typeof x === 'string') return stringSize(x);
  if (Array.isArray(x)) return x.length;
  return 0;
}

/** `clamp(x, lo, hi)`: lo when x < lo, hi when x > hi (hi wins when lo > hi). */
export function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

/** Built-ins over already-evaluated arguments (used by the interpreter and constant folding). */
export function callBuiltin(fn: BuiltinFn, args: readonly Value[]): number {
  switch (fn) {
    case 'clamp':
      return clamp(args[0] as number, args[1] as number, args[2] as number);
    case 'min': {
      let m = args[0] as number;
      for (let i = 1; i < args.length; i++) m = Math.min(m, args[i] as number);
      return m;
    }
    case 'max': {
      let m = args[0] as number;
      for (let i = 1; i < args.length; i++) m = Math.max(m, args[i] as number);
      return m;
    }
    case 'abs':
      return Math.abs(args[0] as number);
    case 'size':
      return size(args[0] as Value);
  }
}

// ---------------------------------------------------------------- grants

/**
 * Whether an active grant covers the request: its actions include the action or `*`, its
 * resource glob matches `type:id`, and `now < expiresAt`.
 */
export function granted(
  grants: readonly Grant[],
  action: string,
  resourceType: string,
  resourceId: string,
  now: number,
): boolean {
  if (grants.length === 0) return false;
  let target: string | undefined;
  for (let i = 0; i < grants.length; i++) {
    const g = grants[i]!;
    if (!(now < g.expiresAt)) continue;
    const acts = g.actions;
    let covers = false;
    for (let j = 0; j < acts.length; j++) {
      const a = acts[j];
      if (a === action || a === '*') {
        covers = true;
        break;
      }
    }
    if (!covers) continue;
    target ??= resourceType + ':' + resourceId;
    if (globMatch(g.resource, target)) return true;
  }
  return false;
}

// ---------------------------------------------------------------- effects

/** Effect bits: a set of applicable effects is their OR. */
export const EFFECT_BIT: Readonly<Record<Effect, number>> = { permit: 1, escalate: 2, deny: 4 };

/** deny > escalate > permit; 0 (nothing applies) is a default deny, see NO_POLICY_REASON. */
export function combinedEffect(bits: number): Effect {
  return bits & 4 ? 'deny' : bits & 2 ? 'escalate' : 'permit';
}

export const NO_POLICY_REASON = 'no policy applies';

/** Policies are ordered by name with plain code-unit comparison, everywhere. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- obligations

/** The output key of an obligation: durations appear in seconds as `<key>_s`. */
export function obligationOutputKey(key: string, kind: ObligationKind): string {
  return kind === 'duration' ? key + '_s' : key;
}

/** Inserts each string of `xs` into the sorted, duplicate-free array `into` (owned by the caller). */
function insertSorted(into: string[], xs: readonly string[]): string[] {
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    let j = into.length;
    while (j > 0 && into[j - 1]! > x) j--;
    if (j > 0 && into[j - 1] === x) continue;
    into.splice(j, 0, x);
  }
  return into;
}

/**
 * Merges one obligation of one determining outcome into `acc`. Callers visit determining
 * policies in name order, and a branch's obligations in declaration order:
 * - duration: `<key>_s`, the smallest wins;
 * - strings (a list or set of strings): the sorted union;
 * - scalar: the first value seen (the first determining policy by name) wins.
 * An output key already holding a value of another kind keeps it (the first policy by name
 * decides the kind); the checker rejects such sets, this only keeps evaluation total.
 */
export function mergeObligation(acc: Obligations, outKey: string, kind: ObligationKind, value: Value): void {
  const has = Object.prototype.hasOwnProperty.call(acc, outKey);
  const prev = has ? acc[outKey] : undefined;
  switch (kind) {
    case 'duration': {
      const v = value as number;
      if (!has) defineOwn<ObligationValue>(acc, outKey, v);
      else if (typeof prev === 'number' && v < prev) defineOwn<ObligationValue>(acc, outKey, v);
      return;
    }
    case 'strings': {
      const v = value as readonly string[];
      // The array in `acc` is always one this function created, so it may grow in place.
      if (!has) defineOwn<ObligationValue>(acc, outKey, insertSorted([], v));
      else if (Array.isArray(prev)) insertSorted(prev, v);
      return;
    }
    case 'scalar':
      if (!has) defineOwn<ObligationValue>(acc, outKey, value as string | number | boolean);
      return;
  }
}

/** Sets an own enumerable property even when the key is `__proto__`. */
export function defineOwn<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}
