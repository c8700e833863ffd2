// Reading a decision request for `agp eval` and `agp bench`: the body a PEP posts to
// /v1/decide, plus optional context the server would add (registered attributes,
// behaviour figures, grants, the clock).

import type { Grant, NormalizedRequest, PolicySet, ValidationIssue } from '../engine/decision.js';
import { mergeAgent, type JsonObject } from '../engine/agent-context.js';
import { parseJson, readJsonFile } from './command.js';
import { UsageError } from './output.js';

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function readRequestInput(input: string | undefined, request: string | undefined): Promise<JsonObject> {
  if ((input === undefined) === (request === undefined)) throw new UsageError('give exactly one of --input FILE or --request JSON');
  const raw = input !== undefined ? await readJsonFile(input, 'request file') : parseJson(request!, '--request');
  if (!isObject(raw)) throw new UsageError('the request must be a JSON object with agent, action, resource and task');
  return raw;
}

export function parseNow(now: string | undefined): number {
  if (now === undefined) return Date.now();
  const t = Date.parse(now);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(now) || Number.isNaN(t)) throw new UsageError(`--now must be an RFC 3339 time such as 2026-11-28T10:00:00Z (got \`${now}\`)`);
  return t;
}

/**
 * Validates the body as the server would after merging context. Context keys next to the
 * request: `registered` (agent attributes from the registry), `behavior`, and `grants`
 * (`[{actions, resource, expires_in_s}]`, relative to now).
 */
export function prepareRequest(
  policySet: PolicySet,
  body: JsonObject,
  now: number,
): { ok: true; request: NormalizedRequest } | { ok: false; message: string; issues: ValidationIssue[] } {
  const registered = isObject(body['registered']) ? body['registered'] : null;
  const behavior = isObject(body['behavior']) ? body['behavior'] : null;
  const grants: Grant[] = [];
  const rawGrants = body['grants'];
  if (rawGrants !== undefined) {
    if (!Array.isArray(rawGrants)) return invalid([{ path: 'grants', message: 'expected an array' }]);
    for (const [i, g] of rawGrants.entries()) {
      if (!isObject(g) || !Array.isArray(g['actions']) || typeof g['resource'] !== 'string' || typeof g['expires_in_s'] !== 'number') {
        return invalid([{ path: `grants[${i}]`, message: 'expected {actions: string[], resource: string, expires_in_s: number}' }]);
      }
      grants.push({ actions: g['actions'].map(String), resource: g['resource'], expiresAt: now + g['expires_in_s'] * 1000 });
    }
  }
  const agent = mergeAgent(body['agent'], registered, behavior);
  const validated = policySet.validate({ agent, action: body['action'], resource: body['resource'], task: body['task'] }, { now, grants });
  if (!validated.ok) return invalid(validated.issues);
  return validated;
}

function invalid(issues: ValidationIssue[]): { ok: false; message: string; issues: ValidationIssue[] } {
  return { ok: false, message: issues.map((i) => `${i.path}: ${i.message}`).join('\n'), issues };
}
