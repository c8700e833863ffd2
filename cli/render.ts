// Human-readable rendering of decisions and their explanations, shared by `agp eval`
// and `agp test` so an author reads "why" the same way everywhere.

import type { Decision, PolicyTrace } from '../engine/decision.js';
import { paint } from './output.js';

function effectColor(effect: string): 'green' | 'red' | 'yellow' {
  return effect === 'permit' ? 'green' : effect === 'deny' ? 'red' : 'yellow';
}

export function renderDecision(d: Decision, color: boolean, indent = ''): string {
  const lines: string[] = [];
  lines.push(`${indent}decision:    ${paint(color, effectColor(d.effect), d.effect)} (${d.allowed ? 'allowed' : 'not allowed'})`);
  const factors = Object.entries(d.factors).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`${indent}risk:        ${d.risk}${factors ? ` (${factors})` : ''}`);
  lines.push(`${indent}policies:    ${d.policies.join(', ') || '(none)'}`);
  if (d.reasons.length > 0) lines.push(`${indent}reasons:     ${d.reasons.map((r) => `"${r}"`).join(', ')}`);
  const obligations = Object.entries(d.obligations).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  if (obligations) lines.push(`${indent}obligations: ${obligations}`);
  lines.push(`${indent}revision:    ${d.revision}`);
  return `${lines.join('\n')}\n`;
}

const mark = (color: boolean, ok: boolean | null): string =>
  ok === null ? paint(color, 'dim', '·') : ok ? paint(color, 'green', '✓') : paint(color, 'red', '✗');

/** One line per policy: where it stopped, and why. */
export function renderExplanation(trace: readonly PolicyTrace[], color: boolean, indent = ''): string {
  if (trace.length === 0) return `${indent}(no policies)\n`;
  const width = Math.max(...trace.map((t) => t.policy.length));
  const lines = trace.map((t) => {
    const head = `${indent}${t.policy.padEnd(width)}  `;
    if (!t.target) return `${head}${mark(color, false)} target: ${t.targetFailed ?? 'did not match'}`;
    if (t.when === false) return `${head}${mark(color, true)} target  ${mark(color, false)} when: ${t.whenFailed ?? 'false'}`;
    const branches = t.branches
      .map((b) => `${b.effect}${b.condition === null ? '' : ` ${mark(color, b.condition)}`}`)
      .join(', ');
    const outcome = t.effect === null ? paint(color, 'dim', 'no outcome fired') : paint(color, effectColor(t.effect), t.effect);
    return `${head}${mark(color, true)} target  ${mark(color, true)} when  outcomes: ${branches} → ${outcome}`;
  });
  return `${lines.join('\n')}\n`;
}
