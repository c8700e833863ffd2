// The merge rule between what a PEP sends about an agent and what AGP knows about it.
// One function, used by the server's decision pipeline and by `agp test`, so a policy test
// sees exactly the agent the server would.

import type { Json } from './ir.js';

export type JsonObject = { [k: string]: Json };

/** Keys that must never be copied from untrusted input into a new object. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Builds the agent the policies see:
 * - the registry (context store) wins for every top-level attribute it holds: model,
 *   roles, owner, trust... An agent cannot claim a newer model or more roles than
 *   registered. A registered attribute replaces the request's whole (no deep merge).
 * - attributes the registry does not hold (per-call figures such as `confidence`) come
 *   from the request;
 * - `behavior`, when AGP supplies it, always replaces whatever the request sent;
 * - `id` is the registry's when the agent is registered.
 * Returns a fresh object; the inputs are not modified.
 */
export function mergeAgent(
  requestAgent: unknown,
  registered: JsonObject | null,
  behavior: JsonObject | null,
  registeredId?: string,
): JsonObject {
  const out: JsonObject = {};
  if (isObject(requestAgent)) {
    for (const key of Object.keys(requestAgent)) {
      if (!UNSAFE_KEYS.has(key)) out[key] = requestAgent[key] as Json;
    }
  }
  if (registered !== null) {
    for (const key of Object.keys(registered)) {
      if (!UNSAFE_KEYS.has(key)) out[key] = registered[key] as Json;
    }
    if (registeredId !== undefined) out['id'] = registeredId;
  }
  if (behavior !== null) out['behavior'] = { ...behavior };
  return out;
}
