// The one decision pipeline behind every protocol (native HTTP, Connect, AuthZEN): agent
// context from the store, the merge rule, schema validation, the engine, behaviour
// counters, metrics, audit. Protocol adapters only translate shapes around `decide`.

import { performance } from 'node:perf_hooks';
import type { Decision, Grant, PolicySet, ValidationIssue } from '../engine/decision.js';
import { mergeAgent } from '../engine/agent-context.js';
import type { JsonObject } from '../engine/agent-context.js';
import type { AuditEntry, AuditWriteOptions } from './audit.js';
import { decisionEntry, isObject, readString, rejectedEntry, subjectOf, type RawObject } from './decision-audit.js';
import { decisionId } from './decision-ids.js';
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
  write(entry: AuditEntry, options?: AuditWriteOptions): void;
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

// ---------------------------------------------------------------- the pipeline

export { decisionId } from './decision-ids.js';

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

function unavailable(err: unknown): AgentContext {
  return { status: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
}

/** One call's state as it moves through the pipeline. */
interface Call {
  set: PolicySet;
  meta: DecideMeta;
  /** Epoch milliseconds: the clock reading of the call (one per batch). */
  now: number;
  /** `performance.now()` when the call started (latency). */
  started: number;
  span: Span | undefined;
}

/**
 * The decision pipeline: the steps of one decision as named methods, in order —
 * `decide` → `decideWith` (body shape, agent id, store lookup) → `evaluate` (registry
 * state, merge rule, validation, token scope, engine) → `finish` (id, metrics, audit) or
 * `reject` (400/503, audit).
 */
export class DecisionPipeline implements Decider {
  readonly policies: PolicySource;
  readonly store: ContextStore;
  private readonly audit: AuditSink | undefined;
  private readonly metrics: DecisionObserver | undefined;
  private readonly clock: () => number;
  private readonly requireRegisteredAgents: boolean;

  constructor(options: DeciderOptions) {
    this.policies = options.policies;
    this.store = options.store;
    this.audit = options.audit;
    this.metrics = options.metrics;
    this.clock = options.clock ?? Date.now;
    this.requireRegisteredAgents = options.requireRegisteredAgents;
  }

  decide(raw: unknown, meta: DecideMeta): DecideOutcome | Promise<DecideOutcome> {
    const started = performance.now();
    const now = this.clock();
    const set = this.policies.current;
    if (set === undefined) return this.noPolicies(meta, now, started, isObject(raw) ? raw : null);
    return this.decideWith(set, raw, meta, now, started);
  }

  decideMany(raws: readonly unknown[], meta: DecideMeta): DecideOutcome[] | Promise<DecideOutcome[]> {
    const now = this.clock();
    // One policy set and one clock reading for the whole batch, even across a reload.
    const set = this.policies.current;
    const out: (DecideOutcome | Promise<DecideOutcome>)[] = new Array<DecideOutcome | Promise<DecideOutcome>>(raws.length);
    let pending = false;
    for (let i = 0; i < raws.length; i++) {
      const started = performance.now();
      const raw = raws[i];
      const r = set === undefined ? this.noPolicies(meta, now, started, isObject(raw) ? raw : null) : this.decideWith(set, raw, meta, now, started);
      if (isThenable(r)) pending = true;
      out[i] = r;
    }
    return pending ? Promise.all(out) : (out as DecideOutcome[]);
  }

  /** The body's shape and the agent id, then the agent's context (sync on a cache hit). */
  private decideWith(set: PolicySet, raw: unknown, meta: DecideMeta, now: number, started: number): DecideOutcome | Promise<DecideOutcome> {
    // Undefined (no allocation) unless an OpenTelemetry SDK is registered.
    const span = spanFor(meta);
    if (span !== undefined) {
      const id = span.spanContext().traceId;
      if (id !== '00000000000000000000000000000000') meta = { ...meta, traceId: id };
    }
    const call: Call = { set, meta, now, started, span };
    const body = isObject(raw) ? raw : null;
    if (body === null) {
      const issues = [{ path: '', message: 'expected a JSON object' }];
      return this.reject(call, 400, { code: 'invalid_request', message: 'the request must be a JSON object', issues }, null);
    }
    const agent = body['agent'];
    const agentId = readString(agent, 'id');
    if (agentId === null || agentId.length === 0) {
      const issue: ValidationIssue = isObject(agent)
        ? { path: 'agent.id', message: 'expected a non-empty string' }
        : { path: 'agent', message: 'expected an object with at least `id`' };
      return this.reject(call, 400, { code: 'invalid_request', message: `${issue.path}: ${issue.message}`, issues: [issue] }, body);
    }

    let ctx: AgentContext | Promise<AgentContext>;
    try {
      ctx = this.store.agentContext(agentId, now);
    } catch (err) {
      ctx = unavailable(err);
    }
    if (isThenable(ctx)) {
      return ctx.then(
        (c) => this.evaluate(call, c, body, agentId),
        (err: unknown) => this.evaluate(call, unavailable(err), body, agentId),
      );
    }
    return this.evaluate(call, ctx, body, agentId);
  }

  /** Registry state, merge rule, validation, token scope, then the engine. */
  private evaluate(call: Call, ctx: AgentContext, raw: RawObject, agentId: string): DecideOutcome {
    const { set, meta, now } = call;
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
        if (this.requireRegisteredAgents) return this.contextDeny(call, 'unknown', REASON_UNKNOWN_AGENT, raw);
        break;
      case 'inactive':
        return this.contextDeny(call, 'inactive', REASON_DEACTIVATED, raw);
      case 'unavailable':
        return this.contextDeny(call, 'unavailable', REASON_STORE_UNAVAILABLE, raw);
    }

    const resource = raw['resource'];
    const resourceKey = `${readString(resource, 'type') ?? ''}:${readString(resource, 'id') ?? ''}`;
    const behavior = this.store.behavior(agentId, resourceKey, now) as unknown as JsonObject;
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
      return this.reject(call, 400, { code: 'invalid_request', message, issues: validation.issues }, raw);
    }
    if (meta.scope !== undefined) {
      const r = validation.request.resource;
      const covered = meta.scope(validation.request.action, { type: String(r['type'] ?? ''), id: String(r['id'] ?? '') });
      if (!covered) {
        this.store.recordDecision(agentId, resourceKey, false, now);
        return this.contextDeny(call, 'out_of_scope', REASON_OUT_OF_SCOPE, raw);
      }
    }
    const decision = meta.explain === true ? set.explain(validation.request) : set.decide(validation.request);
    this.store.recordDecision(agentId, resourceKey, decision.allowed, now);
    return this.finish(call, decision, raw);
  }

  /** A deny decided by AGP itself, before any policy: the agent's registry state or the token's scope. */
  private contextDeny(call: Call, status: ContextDenyStatus, reason: string, raw: RawObject): DecideOutcome {
    this.metrics?.contextDeny(status);
    const decision: Decision = {
      effect: 'deny',
      allowed: false,
      risk: 0,
      factors: {},
      policies: [],
      reasons: [reason],
      obligations: {},
      revision: call.set.revision,
    };
    return this.finish(call, decision, raw);
  }

  /** A decision was made: its id, span, metrics and audit line. */
  private finish(call: Call, decision: Decision, raw: RawObject): DecideOutcome {
    const { meta, now, span } = call;
    const id = decisionId(now);
    if (span !== undefined) {
      const s = subjectOf(raw);
      endDecisionSpan(span, { agent: s.agent, action: s.action, resourceType: s.resource?.type ?? null, effect: decision.effect, risk: decision.risk, revision: decision.revision, decisionId: id });
    }
    // The engine returns a fresh decision; copy only if some evaluator ever freezes it.
    const out = (Object.isExtensible(decision) ? decision : { ...decision }) as DecidedDecision;
    out.decision_id = id;
    const elapsed = performance.now() - call.started;
    this.metrics?.decision(decision.effect, elapsed / 1000);
    this.audit?.write(decisionEntry(decision, id, now, Math.round(elapsed * 1000), raw, meta));
    return { ok: true, decision: out };
  }

  /** No decision: a 400 for the request or a 503 for the service; counted, traced, audited. */
  private reject(call: Pick<Call, 'meta' | 'now' | 'started' | 'span'> & { set?: PolicySet }, status: 400 | 503, error: DecideError, raw: RawObject | null): DecideOutcome {
    const { meta, now, span } = call;
    const revision = call.set?.revision;
    this.metrics?.rejected(error.code);
    if (span !== undefined) {
      const s = subjectOf(raw);
      endDecisionSpan(span, { agent: s.agent, action: s.action, resourceType: s.resource?.type ?? null, status, errorCode: error.code, ...(revision !== undefined ? { revision } : {}) });
    }
    if (this.audit !== undefined) {
      const e = error.issues === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, issues: error.issues };
      // A caller can send bad requests at will: past a few per minute, the same caller's
      // rejections of one kind are counted in an `audit_suppressed` line, not written each.
      const flood = { key: `rejected:${meta.caller ?? 'anonymous'}:${error.code}` };
      this.audit.write(rejectedEntry(e, status, decisionId(now), now, microseconds(call.started), raw, revision, meta), { flood });
    }
    return { ok: false, status, error };
  }

  private noPolicies(meta: DecideMeta, now: number, started: number, body: RawObject | null): DecideOutcome {
    const span = spanFor(meta);
    return this.reject({ meta, now, started, span }, 503, { code: 'policies_unavailable', message: 'no valid policy set is loaded' }, body);
  }
}

export function createDecider(options: DeciderOptions): Decider {
  return new DecisionPipeline(options);
}
