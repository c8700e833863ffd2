// The one decision pipeline behind every protocol (native HTTP, Connect, AuthZEN): agent
// context from the store, the merge rule, schema validation, the engine, behaviour
// counters, metrics, audit. Protocol adapters only translate shapes around `decide`.

import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Decision, Grant, PolicySet, ValidationIssue } from '../engine/decision.js';
import type { Json } from '../engine/ir.js';
import type { AgentContext, ContextStore, GrantRecord } from './context/types.js';

// ---------------------------------------------------------------- contract

export interface DecideMeta {
  requestId: string;
  traceId?: string;
  /** Run the reference interpreter and attach each policy's trace. */
  explain?: boolean;
  /** Who called: the API key's label, `anonymous` on loopback without keys. */
  caller?: string;
  /** Which adapter asked: `http`, `connect`, `authzen` (for the audit line). */
  protocol?: string;
}

export type DecideErrorCode = 'invalid_request' | 'policies_unavailable';

export interface DecideError {
  code: DecideErrorCode;
  message: string;
  /** For `invalid_request`: each bad attribute by dotted path. */
  issues?: ValidationIssue[];
}

export type DecidedDecision = Decision & { decision_id: string };

export type DecideOutcome =
  | { ok: true; decision: DecidedDecision }
  | { ok: false; status: 400 | 503; error: DecideError };

export interface Decider {
  /** Synchronous when the store answers from its cache; a promise only on a store miss. */
  decide(raw: unknown, meta: DecideMeta): DecideOutcome | Promise<DecideOutcome>;
  readonly policies: PolicySource;
  readonly store: ContextStore;
}

/** What the decider needs of the policy holder: the current set, swapped atomically. */
export interface PolicySource {
  readonly current: PolicySet | undefined;
}

// ---------------------------------------------------------------- audit contract

/** One decision (also synthetic denies: unknown, deactivated agent, store unavailable). */
export interface DecisionAuditEntry {
  kind: 'decision';
  decision_id: string;
  /** RFC 3339 time of the decision. */
  time: string;
  agent: string;
  /** The delegating user (`task.on_behalf_of`), when the request names one. */
  on_behalf_of?: string;
  action: string;
  resource: { type: string; id: string };
  effect: Decision['effect'];
  allowed: boolean;
  risk: number;
  policies: string[];
  reasons: string[];
  revision: string;
  /** Milliseconds spent in the decider (store + engine). */
  latency_ms: number;
  request_id: string;
  trace_id?: string;
  caller?: string;
  protocol?: string;
}

/** A request the decider refused (400 or 503). */
export interface RejectedAuditEntry {
  kind: 'rejected';
  time: string;
  status: number;
  code: string;
  message: string;
  agent?: string;
  action?: string;
  request_id: string;
  trace_id?: string;
  caller?: string;
  protocol?: string;
}

/** A change made through the admin API (agents, grants, policy reloads). */
export interface AdminAuditEntry {
  kind: 'admin';
  time: string;
  /** e.g. `agent.put`, `agent.deactivate`, `grant.create`, `grant.revoke`, `policies.reload`. */
  operation: string;
  agent?: string;
  grant?: string;
  detail?: { [k: string]: Json };
  request_id: string;
  caller?: string;
}

export type AuditEntry = DecisionAuditEntry | RejectedAuditEntry | AdminAuditEntry;

/** The audit log as the decider sees it: `write` never blocks and never throws. */
export interface AuditSink {
  write(entry: AuditEntry): void;
}

/** The counters the decider feeds (implemented by server/metrics.ts). */
export interface DecisionObserver {
  decision(effect: Decision['effect'], seconds: number): void;
  rejected(code: DecideErrorCode): void;
  /** A deny because of the agent's registry state (`unknown`, `inactive`, `unavailable`). */
  contextDeny(status: 'unknown' | 'inactive' | 'unavailable'): void;
}

export interface DeciderOptions {
  policies: PolicySource;
  store: ContextStore;
  audit?: AuditSink;
  metrics?: DecisionObserver;
  /** Epoch milliseconds; injectable for tests (grant expiry). */
  clock?: () => number;
  /**
   * Deny agents the registry does not hold (reason `unknown agent`). When false, the
   * request's own attributes are used for unregistered agents.
   */
  requireRegisteredAgents: boolean;
}

export const REASON_UNKNOWN_AGENT = 'unknown agent';
export const REASON_DEACTIVATED = 'agent deactivated';
export const REASON_STORE_UNAVAILABLE = 'context store unavailable';

// ---------------------------------------------------------------- decision ids

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/**
 * A ULID: 10 Crockford base32 characters of epoch milliseconds then 16 of randomness, so
 * ids sort by time. Randomness comes from a pooled CSPRNG buffer (one syscall per 400 ids).
 */
export function decisionId(now: number): string {
  let time = '';
  let t = Math.floor(now);
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  // 80 random bits = 16 characters of 5 bits, taken from 10 bytes.
  let rand = '';
  for (let i = 0; i < 2; i++) {
    const o = poolOffset + i * 5;
    // 40 bits: fits a double exactly.
    let v = pool[o]! * 4294967296 + ((pool[o + 1]! << 24) >>> 0) + (pool[o + 2]! << 16) + (pool[o + 3]! << 8) + pool[o + 4]!;
    let chunk = '';
    for (let j = 0; j < 8; j++) {
      chunk = CROCKFORD[v % 32]! + chunk;
      v = Math.floor(v / 32);
    }
    rand += chunk;
  }
  poolOffset += 10;
  return time + rand;
}

// ---------------------------------------------------------------- the pipeline

type RawObject = { [k: string]: unknown };

function isObject(v: unknown): v is RawObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}

function toGrants(records: readonly GrantRecord[]): Grant[] {
  const out: Grant[] = new Array<Grant>(records.length);
  for (let i = 0; i < records.length; i++) {
    const g = records[i]!;
    out[i] = { actions: g.actions, resource: g.resource, expiresAt: g.expiresAt };
  }
  return out;
}

const EMPTY_GRANTS: readonly Grant[] = Object.freeze([]);
const KEY_POLLUTERS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The merge rule: start from the request's agent attributes, then every top-level
 * attribute the registry holds replaces the request's whole value (a registered
 * `model` record replaces the request's `model`, so an agent cannot claim a newer
 * version). `id` is the requested id; `behavior` is always AGP's own figures.
 */
export function mergeAgent(
  requested: RawObject,
  registered: { readonly [k: string]: Json } | undefined,
  behavior: unknown,
): RawObject {
  const agent: RawObject = {};
  for (const k of Object.keys(requested)) {
    if (!KEY_POLLUTERS.has(k)) agent[k] = requested[k];
  }
  if (registered !== undefined) {
    for (const k of Object.keys(registered)) {
      if (!KEY_POLLUTERS.has(k)) agent[k] = registered[k];
    }
  }
  agent['id'] = requested['id'];
  agent['behavior'] = behavior;
  return agent;
}

function readString(o: unknown, key: string): string | undefined {
  if (!isObject(o)) return undefined;
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

export function createDecider(options: DeciderOptions): Decider {
  const { policies, store, audit, metrics, requireRegisteredAgents } = options;
  const clock = options.clock ?? Date.now;

  function reject(
    status: 400 | 503,
    error: DecideError,
    meta: DecideMeta,
    now: number,
    agent: string | undefined,
    action: string | undefined,
  ): DecideOutcome {
    metrics?.rejected(error.code);
    if (audit !== undefined) {
      const entry: RejectedAuditEntry = {
        kind: 'rejected',
        time: new Date(now).toISOString(),
        status,
        code: error.code,
        message: error.message,
        request_id: meta.requestId,
      };
      if (agent !== undefined) entry.agent = agent;
      if (action !== undefined) entry.action = action;
      if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
      if (meta.caller !== undefined) entry.caller = meta.caller;
      if (meta.protocol !== undefined) entry.protocol = meta.protocol;
      audit.write(entry);
    }
    return { ok: false, status, error };
  }

  function finish(
    decision: Decision,
    meta: DecideMeta,
    now: number,
    started: number,
    agentId: string,
    action: string,
    resourceType: string,
    resourceId: string,
    onBehalfOf: string | undefined,
  ): DecideOutcome {
    const id = decisionId(now);
    // The engine returns a fresh decision; copy only if some evaluator ever freezes it.
    const out = (Object.isExtensible(decision) ? decision : { ...decision }) as DecidedDecision;
    out.decision_id = id;
    const seconds = (performance.now() - started) / 1000;
    metrics?.decision(decision.effect, seconds);
    if (audit !== undefined) {
      const entry: DecisionAuditEntry = {
        kind: 'decision',
        decision_id: id,
        time: new Date(now).toISOString(),
        agent: agentId,
        action,
        resource: { type: resourceType, id: resourceId },
        effect: decision.effect,
        allowed: decision.allowed,
        risk: decision.risk,
        policies: decision.policies,
        reasons: decision.reasons,
        revision: decision.revision,
        latency_ms: Math.round(seconds * 1e6) / 1e3,
        request_id: meta.requestId,
      };
      if (onBehalfOf !== undefined) entry.on_behalf_of = onBehalfOf;
      if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
      if (meta.caller !== undefined) entry.caller = meta.caller;
      if (meta.protocol !== undefined) entry.protocol = meta.protocol;
      audit.write(entry);
    }
    return { ok: true, decision: out };
  }

  function contextDeny(
    set: PolicySet,
    status: 'unknown' | 'inactive' | 'unavailable',
    reason: string,
    raw: RawObject,
    meta: DecideMeta,
    now: number,
    started: number,
    agentId: string,
  ): DecideOutcome {
    metrics?.contextDeny(status);
    const decision: Decision = {
      effect: 'deny',
      allowed: false,
      risk: 0,
      factors: {},
      policies: [],
      reasons: [reason],
      obligations: {},
      revision: set.revision,
    };
    const resource = raw['resource'];
    return finish(
      decision,
      meta,
      now,
      started,
      agentId,
      typeof raw['action'] === 'string' ? raw['action'] : '',
      readString(resource, 'type') ?? '',
      readString(resource, 'id') ?? '',
      readString(raw['task'], 'on_behalf_of'),
    );
  }

  function evaluate(
    set: PolicySet,
    ctx: AgentContext,
    raw: RawObject,
    requestedAgent: RawObject,
    agentId: string,
    meta: DecideMeta,
    now: number,
    started: number,
  ): DecideOutcome {
    let registered: { readonly [k: string]: Json } | undefined;
    let grants: readonly Grant[] = EMPTY_GRANTS;
    switch (ctx.status) {
      case 'ok':
        registered = ctx.agent.attributes;
        if (ctx.grants.length > 0) grants = toGrants(ctx.grants);
        break;
      case 'unknown':
        if (requireRegisteredAgents) {
          return contextDeny(set, 'unknown', REASON_UNKNOWN_AGENT, raw, meta, now, started, agentId);
        }
        break;
      case 'inactive':
        return contextDeny(set, 'inactive', REASON_DEACTIVATED, raw, meta, now, started, agentId);
      case 'unavailable':
        return contextDeny(set, 'unavailable', REASON_STORE_UNAVAILABLE, raw, meta, now, started, agentId);
    }

    const resource = raw['resource'];
    const resourceType = readString(resource, 'type');
    const resourceId = readString(resource, 'id');
    const resourceKey = `${resourceType ?? ''}:${resourceId ?? ''}`;
    const behavior = store.behavior(agentId, resourceKey, now);
    const input = {
      agent: mergeAgent(requestedAgent, registered, behavior),
      action: raw['action'],
      resource,
      task: raw['task'],
    };
    const validation = set.validate(input, { now, grants });
    if (!validation.ok) {
      const first = validation.issues[0];
      const message = first === undefined ? 'invalid request' : `${first.path}: ${first.message}`;
      return reject(
        400,
        { code: 'invalid_request', message, issues: validation.issues },
        meta,
        now,
        agentId,
        typeof raw['action'] === 'string' ? raw['action'] : undefined,
      );
    }
    const request = validation.request;
    const decision = meta.explain === true ? set.explain(request) : set.decide(request);
    store.recordDecision(agentId, resourceKey, decision.allowed, now);
    const onBehalf = request.task['on_behalf_of'];
    return finish(
      decision,
      meta,
      now,
      started,
      agentId,
      request.action,
      resourceType ?? '',
      resourceId ?? '',
      typeof onBehalf === 'string' ? onBehalf : undefined,
    );
  }

  function decide(raw: unknown, meta: DecideMeta): DecideOutcome | Promise<DecideOutcome> {
    const started = performance.now();
    const now = clock();
    const set = policies.current;
    if (set === undefined) {
      return reject(
        503,
        { code: 'policies_unavailable', message: 'no valid policy set is loaded' },
        meta,
        now,
        undefined,
        undefined,
      );
    }
    if (!isObject(raw)) {
      return reject(
        400,
        { code: 'invalid_request', message: 'the request body must be a JSON object', issues: [{ path: '', message: 'expected an object' }] },
        meta,
        now,
        undefined,
        undefined,
      );
    }
    const requestedAgent = raw['agent'];
    const agentId = readString(requestedAgent, 'id');
    if (!isObject(requestedAgent) || agentId === undefined || agentId.length === 0) {
      const issue: ValidationIssue = isObject(requestedAgent)
        ? { path: 'agent.id', message: 'expected a non-empty string' }
        : { path: 'agent', message: 'expected an object with at least `id`' };
      return reject(
        400,
        { code: 'invalid_request', message: `${issue.path}: ${issue.message}`, issues: [issue] },
        meta,
        now,
        undefined,
        typeof raw['action'] === 'string' ? raw['action'] : undefined,
      );
    }

    let ctx: AgentContext | Promise<AgentContext>;
    try {
      ctx = store.agentContext(agentId, now);
    } catch (err) {
      ctx = { status: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
    }
    if (isThenable(ctx)) {
      return ctx.then(
        (c) => evaluate(set, c, raw, requestedAgent, agentId, meta, now, started),
        (err: unknown) =>
          evaluate(
            set,
            { status: 'unavailable', reason: err instanceof Error ? err.message : String(err) },
            raw,
            requestedAgent,
            agentId,
            meta,
            now,
            started,
          ),
      );
    }
    return evaluate(set, ctx, raw, requestedAgent, agentId, meta, now, started);
  }

  return { decide, policies, store };
}
