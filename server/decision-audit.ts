// What the audit log and the trace span say about a request, read straight from its raw
// body (before validation, so a rejected request is described as it arrived), and the audit
// entries of a decision and of a rejected request.

import type { Decision } from '../engine/decision.js';
import type { DecisionAuditEntry, RejectedAuditEntry } from './audit.js';
import { isoTime } from './decision-ids.js';

export type RawObject = { [k: string]: unknown };

export function isObject(v: unknown): v is RawObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `o[key]` when `o` is an object and the member a string; else null. */
export function readString(o: unknown, key: string): string | null {
  if (!isObject(o)) return null;
  const v = o[key];
  return typeof v === 'string' ? v : null;
}

/** Who asked for what, as the audit line and the span name it. */
export interface Subject {
  agent: string | null;
  action: string | null;
  resource: { type: string; id: string } | null;
  onBehalfOf: string | null;
}

export function subjectOf(raw: RawObject | null): Subject {
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

/** Request facts every audit entry of a decision call carries. */
export interface EntryContext {
  requestId: string;
  traceId?: string;
  api?: string;
}

/**
 * The audit entry of a decision. The subject is read from the body member by member (this
 * runs for every decision: no intermediate `Subject` object).
 */
export function decisionEntry(decision: Decision, id: string, now: number, latencyUs: number, raw: RawObject, meta: EntryContext): DecisionAuditEntry {
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
    latency_us: latencyUs,
    request_id: meta.requestId,
  };
  const onBehalfOf = readString(raw['task'], 'on_behalf_of');
  if (onBehalfOf !== null) entry.on_behalf_of = onBehalfOf;
  if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
  if (meta.api !== undefined) entry.api = meta.api;
  return entry;
}

/** The audit entry of a request that got no decision. */
export function rejectedEntry(
  error: RejectedAuditEntry['error'],
  status: number,
  id: string,
  now: number,
  latencyUs: number,
  raw: RawObject | null,
  revision: string | undefined,
  meta: EntryContext,
): RejectedAuditEntry {
  const s = subjectOf(raw);
  const entry: RejectedAuditEntry = {
    kind: 'rejected',
    decision_id: id,
    time: isoTime(now),
    agent: s.agent,
    action: s.action,
    resource: s.resource,
    status,
    error,
    latency_us: latencyUs,
    request_id: meta.requestId,
  };
  if (s.onBehalfOf !== null) entry.on_behalf_of = s.onBehalfOf;
  if (revision !== undefined) entry.revision = revision;
  if (meta.traceId !== undefined) entry.trace_id = meta.traceId;
  if (meta.api !== undefined) entry.api = meta.api;
  return entry;
}
