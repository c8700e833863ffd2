// AST helpers shared by tests, the formatter's self-check and the limit checks:
// span-free deep copies, structural equality, and a walk over every expression root.
import type { Decl, Expr, TestItem } from './ast.js';
import { assertNever } from './ast.js';

const SPAN_KEYS = new Set(['span', 'nameSpan', 'labelSpan', 'calleeSpan']);

/** A deep copy of `node` without `span`, `nameSpan`, `labelSpan` or `calleeSpan` fields.
 *  Iterative, so it is safe on any depth the parser accepts and beyond. */
export function stripSpans<T>(node: T): T {
  const root: { v?: unknown } = {};
  const stack: [unknown, Record<string, unknown> | unknown[], string | number][] = [[node, root as Record<string, unknown>, 'v']];
  while (stack.length > 0) {
    const [value, parent, key] = stack.pop()!;
    let copy: unknown;
    if (Array.isArray(value)) {
      const arr: unknown[] = new Array<unknown>(value.length);
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], arr, i]);
      copy = arr;
    } else if (value !== null && typeof value === 'object') {
      const obj: Record<string, unknown> = {};
      const entries = Object.entries(value);
      // keys are created in the original order so copies print like the original
      for (const [k] of entries) if (!SPAN_KEYS.has(k)) obj[k] = undefined;
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, v] = entries[i]!;
        if (!SPAN_KEYS.has(k)) stack.push([v, obj, k]);
      }
      copy = obj;
    } else {
      copy = value;
    }
    (parent as Record<string | number, unknown>)[key] = copy;
  }
  return root.v as T;
}

/** Structural equality of two JSON-like values (numbers by value, so `-0` equals `0`). */
export function astEqual(a: unknown, b: unknown): boolean {
  const stack: [unknown, unknown][] = [[a, b]];
  while (stack.length > 0) {
    const [x, y] = stack.pop()!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') {
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
      return false;
    }
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') return false;
    if (Array.isArray(x) !== Array.isArray(y)) return false;
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) stack.push([x[i], y[i]]);
      continue;
    }
    const xo = x as Record<string, unknown>;
    const yo = y as Record<string, unknown>;
    const xk = Object.keys(xo).filter((k) => xo[k] !== undefined);
    const yk = Object.keys(yo).filter((k) => yo[k] !== undefined);
    if (xk.length !== yk.length) return false;
    for (const k of xk) {
      if (!Object.prototype.hasOwnProperty.call(yo, k)) return false;
      stack.push([xo[k], yo[k]]);
    }
  }
  return true;
}

/** Every top-level expression of a declaration (conditions, values, obligations, test records). */
export function declExpressions(d: Decl): Expr[] {
  switch (d.kind) {
    case 'schema':
      return [];
    case 'let':
      return [d.value];
    case 'risk':
      return d.factors.flatMap((f) => (f.condition ? [f.value, f.condition] : [f.value]));
    case 'policy': {
      const out: Expr[] = [];
      if (d.target) out.push(d.target);
      if (d.when) out.push(d.when);
      for (const o of d.outcomes) {
        if (o.condition) out.push(o.condition);
        if (o.obligations) out.push(o.obligations);
        if (o.reason) out.push(o.reason);
      }
      if (d.description) out.push(d.description);
      return out;
    }
    case 'test':
      return d.items.flatMap(testItemExpressions);
    default:
      return assertNever(d);
  }
}

function testItemExpressions(i: TestItem): Expr[] {
  switch (i.kind) {
    case 'test_input':
    case 'test_grant':
    case 'test_action':
    case 'test_now':
    case 'expect_reason':
    case 'expect_risk':
    case 'expect_factor':
      return [i.value];
    case 'expect_effect':
      return i.obligations ? [i.obligations] : [];
    case 'expect_policies':
      return [];
    default:
      return assertNever(i);
  }
}
