// Human-readable rendering of a decision (effect, risk, determining policies, reasons,
// obligations), shared by `agp eval` and `agp test`; the explanation is cli/explain.ts.

import type { Decision } from '../engine/decision.js';
import { paint } from './output.js';

function effectColor(effect: string): 'green' | 'red' | 'yellow' {
  return effect === 'permit' ? 'green' : effect === 'deny' ? 'red' : 'yellow';
}

export function renderDecision(d: Decision, color: boolean, indent = ''): string {
  const lines: string[] = [];
  lines.push(`decision:    ${paint(color, effectColor(d.effect), d.effect)} (${d.allowed ? 'allowed' : 'not allowed'})`);
  const entries = Object.entries(d.factors);
  const nonZero = entries.filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`);
  const zeros = entries.length - nonZero.length;
  const detail = [...nonZero, ...(zeros > 0 ? [`${zeros} other${zeros === 1 ? '' : 's'} 0`] : [])].join(', ');
  lines.push(`risk:        ${d.risk}${detail ? ` (${detail})` : ''}`);
  lines.push(`policies:    ${d.policies.join(', ') || '(none)'}`);
  if (d.reasons.length > 0) lines.push(`reasons:     ${d.reasons.map((r) => JSON.stringify(r)).join(', ')}`);
  const obligations = Object.entries(d.obligations).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  if (obligations) lines.push(`obligations: ${obligations}`);
  lines.push(`revision:    ${d.revision}`);
  return lines.map((l) => `${indent}${l}`).join('\n') + '\n';
}
