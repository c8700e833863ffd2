// "Why was this denied?": turns a decision and the engine's trace into a readable account —
// the verdict and which policies decided it, each risk factor's value, every candidate
// policy with the `when` conjunct that failed or the outcome that fired (with the values
// the condition read, so a risk threshold shows the risk it compared), and every policy
// whose target did not match with the attribute value that missed. Shared by `agp eval
// --explain` and `agp test` failures so an author reads "why" the same way everywhere.

import type { Decision, NormalizedRequest, PolicyTrace } from '../engine/decision.js';
import type { IrExpr, IrPolicy, IrPolicySet } from '../engine/ir.js';
import { computeFactors, evalExpr, newContext, readPath, targetTestHolds, type EvalContext } from '../engine/interpreter.js';
import { renderExpr, renderTargetTest, renderValue, schemaTypeAt } from '../engine/render.js';
import { paint } from './output.js';

const MAX_BINDINGS = 6;
const MAX_VALUE_CHARS = 60;

function effectColor(effect: string): 'green' | 'red' | 'yellow' {
  return effect === 'permit' ? 'green' : effect === 'deny' ? 'red' : 'yellow';
}

function clip(text: string): string {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

/**
 * The values an expression read: attributes, lets (and what they read in turn), `risk` and
 * `granted`, as `name = value`, in first-use order.
 */
export function bindings(e: IrExpr, ctx: EvalContext, max = MAX_BINDINGS): string[] {
  const out = new Map<string, string>();
  const req = ctx.req;
  const visit = (x: IrExpr, depth: number): void => {
    if (out.size >= max) return;
    switch (x.op) {
      case 'attr': {
        const key = x.path.join('.');
        if (out.has(key) || req === null) return;
        const v = readPath(req, x.path);
        out.set(key, v === undefined ? 'absent' : clip(renderValue(v, x.type)));
        return;
      }
      case 'let': {
        const l = ctx.ps.lets[x.index];
        if (!l || out.has(l.name)) return;
        try {
          out.set(l.name, clip(renderValue(evalExpr(x, ctx), l.type)));
        } catch {
          return;
        }
        if (depth < 2) visit(l.expr, depth + 1);
        return;
      }
      case 'risk':
        if (ctx.risk !== null) out.set('risk', String(ctx.risk));
        return;
      case 'granted':
        try {
          out.set('granted', String(evalExpr(x, ctx)));
        } catch {
          // an explanation never fails a command
        }
        return;
      case 'lit':
      case 'has':
        return;
      case 'not':
      case 'neg':
        visit(x.arg, depth);
        return;
      case 'and':
      case 'or':
      case 'call':
        for (const a of x.args) visit(a, depth);
        return;
      case 'list':
        for (const a of x.items) visit(a, depth);
        return;
      case 'cmp':
      case 'arith':
      case 'concat':
        visit(x.left, depth);
        visit(x.right, depth);
        return;
      case 'in':
        visit(x.elem, depth);
        visit(x.coll, depth);
        return;
      case 'like':
        visit(x.arg, depth);
        return;
      case 'match':
        visit(x.subject, depth);
        return;
      case 'cond':
        visit(x.cond, depth);
        return;
    }
  };
  visit(e, 0);
  return [...out.entries()].map(([k, v]) => `${k} = ${v}`);
}

/** The conjunct of `when` that the trace says failed, as an expression. */
function failedConjunct(p: IrPolicy, trace: PolicyTrace, ps: IrPolicySet): IrExpr | null {
  if (!p.when) return null;
  if (p.when.op !== 'and') return p.when;
  return p.when.args.find((c) => renderExpr(c, ps.lets) === trace.whenFailed) ?? p.when;
}

function verdict(d: Decision, traces: readonly PolicyTrace[]): string {
  const applied = traces.filter((t) => t.effect !== null);
  if (applied.length === 0) return 'deny by default: no policy applies';
  const names = d.policies.join(', ');
  const others = applied.filter((t) => t.effect !== d.effect).map((t) => `${t.policy} → ${t.effect ?? ''}`);
  const also = others.length > 0 ? `; overrides ${others.join(', ')}` : '';
  switch (d.effect) {
    case 'deny':
      return `deny: ${names} ${plural(d.policies.length, 'denies', 'deny')}, and any applicable deny decides${also}`;
    case 'escalate':
      return `escalate: ${names} ${plural(d.policies.length, 'escalates', 'escalate')}, and no policy denies${also}`;
    case 'permit':
      return `permit: ${names} ${plural(d.policies.length, 'permits', 'permit')}, and no policy denies or escalates`;
  }
}

function riskLine(d: Decision): string {
  const entries = Object.entries(d.factors);
  if (entries.length === 0) return `risk ${d.risk} (no risk factors)`;
  const nonZero = entries.filter(([, v]) => v !== 0);
  const zero = entries.filter(([, v]) => v === 0).map(([k]) => k);
  const sum = nonZero.map(([k, v], i) => `${i === 0 ? (v < 0 ? '-' : '') : v < 0 ? '- ' : '+ '}${k} ${Math.abs(v)}`).join(' ');
  return `risk ${d.risk}${nonZero.length > 0 ? ` = ${sum}` : ''}${zero.length > 0 ? `  (0: ${zero.join(', ')})` : ''}`;
}

/**
 * The explanation of `decision` (which must carry the interpreter's `explanation`) for the
 * normalized `request` it was made on. Every line starts with `indent`.
 */
export function renderWhy(ps: IrPolicySet, request: NormalizedRequest, decision: Decision, color: boolean, indent = ''): string {
  const traces = decision.explanation ?? [];
  const byName = new Map(ps.policies.map((p) => [p.name, p]));
  const ctx = newContext(ps, request);
  try {
    computeFactors(ctx);
  } catch {
    ctx.risk = decision.risk;
  }
  const lines: string[] = [];
  const mark = (ok: boolean | null): string => (ok === null ? paint(color, 'dim', '·') : ok ? paint(color, 'green', '✓') : paint(color, 'red', '✗'));
  const where = (e: IrExpr): string => {
    const b = bindings(e, ctx);
    return b.length > 0 ? paint(color, 'dim', `   (${b.join(', ')})`) : '';
  };

  lines.push(`why: ${verdict(decision, traces)}`);
  lines.push(`  ${riskLine(decision)}`);

  // The policies that decided come first, then the other applicable ones, then the rest.
  const rank = (t: PolicyTrace): number => (t.effect === null ? 2 : t.effect === decision.effect ? 0 : 1);
  const candidates = traces.filter((t) => t.target).sort((a, b) => rank(a) - rank(b));
  const others = traces.filter((t) => !t.target);
  lines.push(candidates.length === 0 ? '  no candidate policy (no target matched)' : `  candidates (target matched): ${candidates.length}`);
  for (const t of candidates) {
    const p = byName.get(t.policy);
    const kind = p?.forbid ? ' (forbid)' : '';
    const outcome = t.effect !== null ? paint(color, effectColor(t.effect), `→ ${t.effect}`) : t.when === false ? paint(color, 'dim', '→ does not apply') : paint(color, 'dim', '→ does not apply (no outcome fired)');
    lines.push(`    ${paint(color, 'bold', t.policy)}${kind}  ${paint(color, 'dim', `${t.file}:${t.line}`)}  ${outcome}`);
    if (!p) continue;
    if (p.when) {
      if (t.when === false) {
        const failed = failedConjunct(p, t, ps);
        lines.push(`      ${mark(false)} when ${t.whenFailed ?? renderExpr(p.when, ps.lets)}${failed ? where(failed) : ''}`);
        continue;
      }
      lines.push(`      ${mark(true)} when ${renderExpr(p.when, ps.lets)}`);
    }
    const fired = t.branches.findIndex((b) => b.condition === true);
    p.branches.forEach((b, i) => {
      const tb = t.branches[i];
      const evaluated = tb?.condition ?? null;
      const head = p.forbid ? 'forbid' : b.effect;
      const text = `${head}${b.condition ? ` if ${renderExpr(b.condition, ps.lets)}` : ''}${b.reason !== null ? ` because ${JSON.stringify(b.reason)}` : ''}`;
      const state = i === fired ? paint(color, effectColor(b.effect), '  ← fired') : evaluated === null ? paint(color, 'dim', '  (not reached)') : '';
      lines.push(`      ${mark(evaluated)} ${text}${b.condition && evaluated !== null ? where(b.condition) : ''}${state}`);
    });
  }
  if (others.length > 0) {
    lines.push(`  not candidates (target did not match): ${others.length}`);
    const width = Math.max(...others.map((t) => t.policy.length));
    for (const t of others) {
      const p = byName.get(t.policy);
      const missed = p?.target.find((test) => !targetTestHolds(test, request));
      let actual = '';
      if (missed) {
        const v = readPath(request, missed.path);
        const type = schemaTypeAt(ps.schema, missed.path);
        actual = `   (${missed.path.join('.')} = ${v === undefined || type === undefined ? 'absent' : clip(renderValue(v, type))})`;
      }
      const test = t.targetFailed ?? (missed ? renderTargetTest(missed, ps.schema) : 'did not match');
      lines.push(`    ${t.policy.padEnd(width)}  ${mark(false)} ${test}${paint(color, 'dim', actual)}`);
    }
  }
  return lines.map((l) => `${indent}${l}`).join('\n') + '\n';
}
