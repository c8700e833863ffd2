// The one decision pipeline behind every protocol (native HTTP, Connect, AuthZEN): agent
// context from the store, the merge rule, schema validation, the engine, behaviour
// counters, metrics, audit. Protocol adapters only translate shapes around `decide`.

import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Decision, Grant, PolicySet, ValidationIssue } from '../engine/decision.js';
import { mergeAgent } from '../engine/agent-context.js';
import type { JsonObject } from '../engine/agent-context.js';
import type { AuditEntry, DecisionAuditEntry, RejectedAuditEntry } from './audit.js';
import type { AgentContext, ContextStore, GrantRecord } from './context/types.js';
import { endDecisionSpan, startDecisionSpan, tracingActive } from './tracing.js';
import type { Span } from '@opentelemetry/api';

// ---------------------------------------------------------------- contract

export interface DecideMeta {
  requestId: string;
  traceId?: string;
  /** Run the reference interpreter and attach each policy's trace. */
  explain?: boolean;
  /** Who called: the API key's label, `anonymous` on loopback without keys. */
  caller?: string;
  /** Which adapter asked: `decide`, `connect`, `authzen` (the audit line's `api`). */
  api?: string;
  /** Incoming headers: the parent of the decision's span (`traceparent`) when tracing is on. */
  headers?: Record<string, string | string[] | undefined>;
  /**
   * The scope of the agent token the caller presented: a request it does not cover is
   * denied whatever the policies say (a narrowed token only narrows if the PDP enforces it).
   */
  scope?: ScopeCheck;
}

/** Whether a token's scope covers this action on this resource. */
export type ScopeCheck = (action: string, resource: { type: string; id: string }) => boolean;

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
  /** Many requests against one policy set and one clock reading; outcomes in input order. */
  decideMany(raws: readonly unknown[], meta: DecideMeta): DecideOutcome[] | Promise<DecideOutcome[]>;
  readonly policies: PolicySource;
  readonly store: ContextStore;
}

/** What the decider needs of the policy holder: the current set, swapped atomically. */
export interface PolicySource {
  readonly current: PolicySet | undefined;
}

// ---------------------------------------------------------------- audit

/** The audit log as the decider sees it (server/audit.ts): `write` never blocks or throws. */
export interface AuditSink {
  write(entry: AuditEntry): void;
}

/** The counters the decider feeds (implemented by server/metrics.ts). */
export interface DecisionObserver {
  decision(effect: Decision['effect'], seconds: number): void;
  rejected(code: DecideErrorCode): void;
  /** A deny because of the agent's registry state (`unknown`, `inactive`, `unavailable`). */
  contextDeny(status: ContextDenyStatus): void;
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
export const REASON_OUT_OF_SCOPE = 'the agent token does not cover this request';

export type ContextDenyStatus = 'unknown' | 'inactive' | 'unavailable' | 'out_of_scope';

// ---------------------------------------------------------------- decision ids

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const C: readonly string[] = CROCKFORD.split('');
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;
let lastMs = -1;
let lastTime = '';

/** 40 random bits (5 bytes of the pool from `o`) as 8 Crockford characters. */
function eight(o: number): string {
  const b0 = pool[o]!;
  const b1 = pool[o + 1]!;
  const b2 = pool[o + 2]!;
  const b3 = pool[o + 3]!;
  const b4 = pool[o + 4]!;
  return (
    C[b0 >> 3]! +
    C[((b0 & 7) << 2) | (b1 >> 6)]! +
    C[(b1 >> 1) & 31]! +
    C[((b1 & 1) << 4) | (b2 >> 4)]! +
    C[((b2 & 15) << 1) | (b3 >> 7)]! +
    C[(b3 >> 2) & 31]! +
    C[((b3 & 3) << 3) | (b4 >> 5)]! +
    C[b4 & 31]!
  );
}

/**
 * A ULID: 10 Crockford base32 characters of epoch milliseconds then 16 of randomness, so
 * ids sort by time. Randomness comes from a pooled CSPRNG buffer (one syscall per 400 ids);
 * the time prefix is reused within a millisecond. On the hot path: about 0.2 µs.
 */
export function decisionId(now: number): string {
  const ms = Math.floor(now);
  if (ms !== lastMs) {
    let time = '';
    let t = ms;
    for (let i = 0; i < 10; i++) {
      time = C[t % 32]! + time;
      t = Math.floor(t / 32);
    }
    lastMs = ms;
    lastTime = time;
  }
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const id = lastTime + eight(poolOffset) + eight(poolOffset + 5);
  poolOffset += 10;
  return id;
}

let isoMs = Number.NaN;
let isoText = '';

/** `new Date(ms).toISOString()`, reused within a millisecond (many decisions share one). */
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
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

function readString(o: unknown, key: string): string | null {
  if (!isObject(o)) return null;
  const v = o[key];
  return typeof v === 'string' ? v : null;
}

/** What the audit line says about a request, read from the raw body (before validation). */
interface Subject {
  agent: string | null;
  action: string | null;
  resource: { type: string; id: string } | null;
  onBehalfOf: string | null;
}

function subjectOf(raw: RawObject | null): Subject {
  if (raw === null) return { agent: null, action: null, resource: null, onBehalfOf: null };
  const type = readString(raw['resource'], 'type');
  const id = readString(raw['resource'], 'id');
  return {
    agent: readString(raw['agent'], 'id'),
    action: typeof raw['action'] === 'string' ? raw['action'] : null,
    resource: type !== null || id !== null ? { type: type ?? '', id: id ?? '' } : null,
    onBehalfOf: readString(raw['task'], 'on_behalf_of'),
  };
}

function spanFor(meta: DecideMeta): Span | undefined {
  if (!tracingActive()) return undefined;
  const start: { headers?: Record<string, string | string[] | undefined>; requestId: string; api?: string } = { requestId: meta.requestId };
  if (meta.headers !== undefined) start.headers = meta.headers;
  if (meta.api !== undefined) start.api = meta.api;
  return startDecisionSpan(start);
}

function microseconds(started: number): number {
  return Math.round((performance.now() - started) * 1000);
}

export function createDecider(options: DeciderOptions): Decider {
  const { policies, store, audit, metrics, requireRegisteredAgents } = options;
  const clock = options.clock ?? Date.now;

  function reject(
    status: 400 | 503,
    error: DecideError,
    meta: DecideMeta,
    now: number,
    started: number,
    raw: RawObject | null,
    revision: string | undefined,
    span: Span | undefined,
  ): DecideOutcome {
    metrics?.rejected(error.code);
    if (span !== undefined) {
      const s = subjectOf(raw);
      endDecisionSpan(span, { agent: s.agent, action: s.action, resourceType: s.resource?.type ?? null, status, errorCode: error.code, ...(revision !== undefined ? { revision } : {}) });
    }
    if (audit !== undefined) {
      const s = subjectOf(raw);
      const entry: RejectedAuditEntry = {
        kind: 'rejected',
        decision_id: decisionId(now),
        time: isoTime(now),
        agent: s.agent,
        action: s.action,
        resource: s.resource,
        status,
        error: error.issues === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, issues: error.issues },
        latency_us: microseconds(started),
        request_id: meta.requestId,
      };
      if (s.onBehalfOf !== null) entry.on_behalf_of = s.onBehalfOf;
      if (revision !== undefined) entry.revision = revision;
      if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
      if (meta.api !== undefined) entry.api = meta.api;
      audit.write(entry);
    }
    return { ok: false, status, error };
  }

  function finish(decision: Decision, meta: DecideMeta, now: number, started: number, raw: RawObject, span: Span | undefined): DecideOutcome {
    const id = decisionId(now);
    if (span !== undefined) {
      const s = subjectOf(raw);
      endDecisionSpan(span, { agent: s.agent, action: s.action, resourceType: s.resource?.type ?? null, effect: decision.effect, risk: decision.risk, revision: decision.revision, decisionId: id });
    }
    // The engine returns a fresh decision; copy only if some evaluator ever freezes it.
    const out = (Object.isExtensible(decision) ? decision : { ...decision }) as DecidedDecision;
    out.decision_id = id;
    const elapsed = performance.now() - started;
    metrics?.decision(decision.effect, elapsed / 1000);
    if (audit !== undefined) {
      // The subject read straight from the body: this runs for every decision.
      const resource = raw['resource'];
      const type = readString(resource, 'type');
      const rid = readString(resource, 'id');
      const action = raw['action'];
      const entry: DecisionAuditEntry = {
        kind: 'decision',
        decision_id: id,
        time: isoTime(now),
        agent: readString(raw['agent'], 'id'),
        action: typeof action === 'string' ? action : null,
        resource: type !== null || rid !== null ? { type: type ?? '', id: rid ?? '' } : null,
        effect: decision.effect,
        allowed: decision.allowed,
        risk: decision.risk,
        policies: decision.policies,
        reasons: decision.reasons,
        revision: decision.revision,
        latency_us: Math.round(elapsed * 1000),
        request_id: meta.requestId,
      };
      const onBehalfOf = readString(raw['task'], 'on_behalf_of');
      if (onBehalfOf !== null) entry.on_behalf_of = onBehalfOf;
      if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
      if (meta.api !== undefined) entry.api = meta.api;
      audit.write(entry);
    }
    return { ok: true, decision: out };
  }

  function contextDeny(
    set: PolicySet,
    status: ContextDenyStatus,
    reason: string,
    raw: RawObject,
    meta: DecideMeta,
    now: number,
    started: number,
    span: Span | undefined,
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
    return finish(decision, meta, now, started, raw, span);
  }

  function evaluate(
    set: PolicySet,
    ctx: AgentContext,
    raw: RawObject,
    agentId: string,
    meta: DecideMeta,
    now: number,
    started: number,
    span: Span | undefined,
  ): DecideOutcome {
    let registered: JsonObject | null = null;
    let registeredId: string | undefined;
    let grants: readonly Grant[] = EMPTY_GRANTS;
    switch (ctx.status) {
      case 'ok':
        registered = ctx.agent.attributes;
        registeredId = ctx.agent.id;
        if (ctx.grants.length > 0) grants = toGrants(ctx.grants);
        break;
      case 'unknown':
        if (requireRegisteredAgents) return contextDeny(set, 'unknown', REASON_UNKNOWN_AGENT, raw, meta, now, started, span);
        break;
      case 'inactive':
        return contextDeny(set, 'inactive', REASON_DEACTIVATED, raw, meta, now, started, span);
      case 'unavailable':
        return contextDeny(set, 'unavailable', REASON_STORE_UNAVAILABLE, raw, meta, now, started, span);
    }

    const resource = raw['resource'];
    const resourceKey = `${readString(resource, 'type') ?? ''}:${readString(resource, 'id') ?? ''}`;
    const behavior = store.behavior(agentId, resourceKey, now) as unknown as JsonObject;
    const input = {
      agent: mergeAgent(raw['agent'], registered, behavior, registeredId),
      action: raw['action'],
      resource,
      task: raw['task'],
    };
    const validation = set.validate(input, { now, grants });
    if (!validation.ok) {
      const first = validation.issues[0];
      const message = first === undefined ? 'invalid request' : `${first.path}: ${first.message}`;
      return reject(400, { code: 'invalid_request', message, issues: validation.issues }, meta, now, started, raw, set.revision, span);
    }
    if (meta.scope !== undefined) {
      const r = validation.request.resource;
      const covered = meta.scope(validation.request.action, { type: String(r['type'] ?? ''), id: String(r['id'] ?? '') });
      if (!covered) {
        store.recordDecision(agentId, resourceKey, false, now);
        return contextDeny(set, 'out_of_scope', REASON_OUT_OF_SCOPE, raw, meta, now, started, span);
      }
    }
    const decision = meta.explain === true ? set.explain(validation.request) : set.decide(validation.request);
    store.recordDecision(agentId, resourceKey, decision.allowed, now);
    return finish(decision, meta, now, started, raw, span);
  }

  function unavailable(err: unknown): AgentContext {
    return { status: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
  }

  function noPolicies(meta: DecideMeta, now: number, started: number, body: RawObject | null): DecideOutcome {
    const span = spanFor(meta);
    return reject(503, { code: 'policies_unavailable', message: 'no valid policy set is loaded' }, meta, now, started, body, undefined, span);
  }

  function decideWith(set: PolicySet, raw: unknown, meta: DecideMeta, now: number, started: number): DecideOutcome | Promise<DecideOutcome> {
    // Undefined (no allocation) unless an OpenTelemetry SDK is registered.
    const span = spanFor(meta);
    if (span !== undefined) {
      const id = span.spanContext().traceId;
      if (id !== '00000000000000000000000000000000') meta = { ...meta, traceId: id };
    }
    const body = isObject(raw) ? raw : null;
    if (body === null) {
      const issues = [{ path: '', message: 'expected a JSON object' }];
      return reject(400, { code: 'invalid_request', message: 'the request must be a JSON object', issues }, meta, now, started, null, set.revision, span);
    }
    const agent = body['agent'];
    const agentId = readString(agent, 'id');
    if (agentId === null || agentId.length === 0) {
      const issue: ValidationIssue = isObject(agent)
        ? { path: 'agent.id', message: 'expected a non-empty string' }
        : { path: 'agent', message: 'expected an object with at least `id`' };
      const error: DecideError = { code: 'invalid_request', message: `${issue.path}: ${issue.message}`, issues: [issue] };
      return reject(400, error, meta, now, started, body, set.revision, span);
    }

    let ctx: AgentContext | Promise<AgentContext>;
    try {
      ctx = store.agentContext(agentId, now);
    } catch (err) {
      ctx = unavailable(err);
    }
    if (isThenable(ctx)) {
      return ctx.then(
        (c) => evaluate(set, c, body, agentId, meta, now, started, span),
        (err: unknown) => evaluate(set, unavailable(err), body, agentId, meta, now, started, span),
      );
    }
    return evaluate(set, ctx, body, agentId, meta, now, started, span);
  }

  function decide(raw: unknown, meta: DecideMeta): DecideOutcome | Promise<DecideOutcome> {
    const started = performance.now();
    const now = clock();
    const set = policies.current;
    if (set === undefined) return noPolicies(meta, now, started, isObject(raw) ? raw : null);
    return decideWith(set, raw, meta, now, started);
  }

  function decideMany(raws: readonly unknown[], meta: DecideMeta): DecideOutcome[] | Promise<DecideOutcome[]> {
    const now = clock();
    // One policy set and one clock reading for the whole batch, even across a reload.
    const set = policies.current;
    const out: (DecideOutcome | Promise<DecideOutcome>)[] = new Array<DecideOutcome | Promise<DecideOutcome>>(raws.length);
    let pending = false;
    for (let i = 0; i < raws.length; i++) {
      const started = performance.now();
      const raw = raws[i];
      const r = set === undefined ? noPolicies(meta, now, started, isObject(raw) ? raw : null) : decideWith(set, raw, meta, now, started);
      if (isThenable(r)) pending = true;
      out[i] = r;
    }
    return pending ? Promise.all(out) : (out as DecideOutcome[]);
  }

  return { decide, decideMany, policies, store };
}
