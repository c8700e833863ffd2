// A small hand-written PolicySet for server tests that must not depend on the compiler:
// `read` is permitted, `delete` is escalated unless a grant covers it, anything else denied.
// Requests need agent.id, action, resource.type/id (strings) and resource.level (a number).

import type { Decision, Grant, NormalizedRequest, PolicySet, ValidationIssue, ValidationResult } from '../../engine/decision.js';
import type { IrPolicySet } from '../../engine/ir.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function covered(grants: readonly Grant[], r: NormalizedRequest): boolean {
  const key = `${String(r.resource['type'])}:${String(r.resource['id'])}`;
  return grants.some(
    (g) => r.now < g.expiresAt && (g.actions.includes(r.action) || g.actions.includes('*')) && new RegExp(`^${g.resource.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(key),
  );
}

export function fakePolicySet(revision = 'sha256:fake-1'): PolicySet & { calls: NormalizedRequest[] } {
  const calls: NormalizedRequest[] = [];
  const decide = (r: NormalizedRequest): Decision => {
    calls.push(r);
    const level = r.resource['level'] as number;
    const factors = { level: level * 10 };
    const base = { risk: level * 10, factors, revision, obligations: {} as Decision['obligations'] };
    if (r.action === 'read') return { ...base, effect: 'permit', allowed: true, policies: ['reads'], reasons: [] };
    if (r.action === 'delete') {
      if (covered(r.grants, r)) return { ...base, effect: 'permit', allowed: true, policies: ['deletes'], reasons: [], obligations: { ttl_s: 600 } };
      return { ...base, effect: 'escalate', allowed: false, policies: ['deletes'], reasons: [], obligations: { approver: 'ops', ttl_s: 600 } };
    }
    return { ...base, effect: 'deny', allowed: false, policies: [], reasons: ['no policy applies'] };
  };
  return {
    revision,
    ir: { policies: [], lets: [], factors: [], revision, schema: { request: { t: 'record', fields: [] } } } as unknown as IrPolicySet,
    calls,
    validate(input: unknown, env: { now?: number; grants?: readonly Grant[] } = {}): ValidationResult {
      const issues: ValidationIssue[] = [];
      const i = isObject(input) ? input : {};
      const agent = isObject(i['agent']) ? i['agent'] : {};
      const resource = isObject(i['resource']) ? i['resource'] : {};
      if (typeof agent['id'] !== 'string') issues.push({ path: 'agent.id', message: 'expected a string' });
      if (typeof i['action'] !== 'string') issues.push({ path: 'action', message: 'expected a string' });
      if (typeof resource['type'] !== 'string') issues.push({ path: 'resource.type', message: 'expected a string' });
      if (typeof resource['id'] !== 'string') issues.push({ path: 'resource.id', message: 'expected a string' });
      if (typeof resource['level'] !== 'number') issues.push({ path: 'resource.level', message: 'expected a number' });
      if (issues.length > 0) return { ok: false, issues };
      return {
        ok: true,
        request: {
          agent: agent as NormalizedRequest['agent'],
          action: i['action'] as string,
          resource: resource as NormalizedRequest['resource'],
          task: (isObject(i['task']) ? i['task'] : {}) as NormalizedRequest['task'],
          grants: env.grants ?? [],
          now: env.now ?? 0,
        },
      };
    },
    validateAgentAttributes(attributes: unknown): ValidationIssue[] {
      if (!isObject(attributes)) return [{ path: 'agent', message: 'expected an object' }];
      if ('tier' in attributes && typeof attributes['tier'] !== 'string') return [{ path: 'agent.tier', message: 'expected a string' }];
      return [];
    },
    decide,
    explain: (r) => ({ ...decide(r), explanation: [] }),
    interpret: decide,
  };
}

export function fakeRequest(action: string, extra: { agent?: Record<string, unknown>; level?: number; id?: string } = {}): Record<string, unknown> {
  return {
    agent: { id: 'bot-1', ...extra.agent },
    action,
    resource: { type: 'doc', id: extra.id ?? 'd1', level: extra.level ?? 1 },
    task: { kind: 'test' },
  };
}
