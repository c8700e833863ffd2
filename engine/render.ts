// IR → .agp source text, for explanations (`targetFailed`, `whenFailed`) and messages.
// Values are printed in source form: levels by member name, versions as `2.4.1`,
// durations with a unit, strings quoted with the language's escapes.

import { decodeVersion } from './ir.js';
import type { IrExpr, IrTargetTest, Schema, Type, Value } from './ir.js';

/** The lowest precedence level at which an expression prints without parentheses. */
function prec(e: IrExpr): number {
  switch (e.op) {
    case 'or':
      return 1;
    case 'and':
      return 2;
    case 'not':
      return 3;
    case 'cmp':
    case 'in':
    case 'like':
    case 'has':
      return 4;
    case 'arith':
      return e.arith === '+' || e.arith === '-' ? 5 : 6;
    case 'concat':
      return 5;
    case 'neg':
      return 7;
    case 'cond':
      return 0;
    default:
      return 9;
  }
}

export function renderString(s: string): string {
  return JSON.stringify(s);
}

export function renderDuration(seconds: number): string {
  const units: [number, string][] = [
    [86400, 'd'],
    [3600, 'h'],
    [60, 'm'],
    [1, 's'],
  ];
  for (const [size, unit] of units) {
    if (seconds !== 0 && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  const ms = seconds * 1000;
  return Number.isInteger(ms) ? `${ms}ms` : `${seconds}s`;
}

export function renderValue(value: Value, type: Type): string {
  switch (type.t) {
    case 'string':
      return renderString(String(value));
    case 'number':
    case 'bool':
      return String(value);
    case 'version':
      return decodeVersion(value as number);
    case 'duration':
      return renderDuration(value as number);
    case 'level':
      return type.members[value as number] ?? String(value);
    case 'set':
    case 'list':
      return `[${(value as readonly Value[]).map((v) => renderValue(v, type.elem)).join(', ')}]`;
    case 'record': {
      const rec = value as { readonly [k: string]: Value };
      const parts = type.fields
        .filter((f) => Object.prototype.hasOwnProperty.call(rec, f.name))
        .map((f) => `${f.name}: ${renderValue(rec[f.name]!, f.type)}`);
      return `{ ${parts.join(', ')} }`;
    }
  }
}

/** The static type of an expression, where the IR records or implies one. */
export function typeOf(e: IrExpr): Type {
  switch (e.op) {
    case 'lit':
    case 'attr':
    case 'let':
    case 'match':
    case 'list':
      return e.type;
    case 'cond':
      return typeOf(e.then);
    case 'concat':
      return { t: 'string' };
    case 'call':
      return e.fn === 'size' ? { t: 'number' } : e.args[0] ? typeOf(e.args[0]) : { t: 'number' };
    case 'risk':
    case 'arith':
    case 'neg':
      return { t: 'number' };
    default:
      return { t: 'bool' };
  }
}

export function renderExpr(e: IrExpr, lets: readonly { name: string }[] = []): string {
  const sub = (x: IrExpr, min: number): string => {
    const s = renderExpr(x, lets);
    return prec(x) < min ? `(${s})` : s;
  };
  switch (e.op) {
    case 'lit':
      return renderValue(e.value, e.type);
    case 'attr':
      return e.path.join('.');
    case 'has':
      return `${e.path.slice(0, -1).join('.')} has ${e.path[e.path.length - 1] ?? ''}`;
    case 'let':
      return lets[e.index]?.name ?? `let#${e.index}`;
    case 'risk':
      return 'risk';
    case 'granted':
      return 'granted';
    case 'not':
      return `not ${sub(e.arg, 3)}`;
    case 'and':
      return e.args.map((a) => sub(a, 3)).join(' and ');
    case 'or':
      return e.args.map((a) => sub(a, 2)).join(' or ');
    case 'cmp':
      return `${sub(e.left, 5)} ${e.cmp} ${sub(e.right, 5)}`;
    case 'in':
      return `${sub(e.elem, 5)} in ${sub(e.coll, 5)}`;
    case 'like':
      return `${sub(e.arg, 5)} like ${renderString(e.pattern)}`;
    case 'arith': {
      const p = prec(e);
      return `${sub(e.left, p)} ${e.arith} ${sub(e.right, p + 1)}`;
    }
    case 'concat':
      return `${sub(e.left, 5)} + ${sub(e.right, 6)}`;
    case 'neg':
      return `-${sub(e.arg, 7)}`;
    case 'call':
      return `${e.fn}(${e.args.map((a) => renderExpr(a, lets)).join(', ')})`;
    case 'match': {
      const st = typeOf(e.subject);
      const arms = e.cases.map((c) => {
        const label =
          st.t === 'level' && typeof c.value === 'number'
            ? (st.members[c.value] ?? String(c.value))
            : typeof c.value === 'string'
              ? renderString(c.value)
              : String(c.value);
        return `${label}: ${renderExpr(c.result, lets)}`;
      });
      if (e.otherwise) arms.push(`else: ${renderExpr(e.otherwise, lets)}`);
      return `match ${sub(e.subject, 8)} { ${arms.join(', ')} }`;
    }
    case 'cond':
      return `${sub(e.then, 1)} if ${sub(e.cond, 1)}`;
    case 'list':
      return `[${e.items.map((a) => renderExpr(a, lets)).join(', ')}]`;
  }
}

/** The declared type at `path` in the request schema, if any. */
export function schemaTypeAt(schema: Schema, path: readonly string[]): Type | undefined {
  let t: Type = schema.request;
  for (const seg of path) {
    if (t.t !== 'record') return undefined;
    const f: { type: Type } | undefined = t.fields.find((x) => x.name === seg);
    if (!f) return undefined;
    t = f.type;
  }
  return t;
}

/** A target test as source text: `action == "read"` or `action in ["read", "list"]`. */
export function renderTargetTest(test: IrTargetTest, schema: Schema): string {
  const t = schemaTypeAt(schema, test.path) ?? { t: 'string' };
  const vals = test.values.map((v) => renderValue(v, t));
  const lhs = test.path.join('.');
  return vals.length === 1 ? `${lhs} == ${vals[0]!}` : `${lhs} in [${vals.join(', ')}]`;
}
