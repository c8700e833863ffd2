// The audit line format: scrubbing secrets, canonical JSON, line hashes and the decision
// line's fast path (a decision's canonical body written directly, byte for byte what the
// generic path gives). Shared by the serving thread and the file writer thread, so there is
// one definition of the bytes on disk.

import { createHmac, hash as hashOnce } from 'node:crypto';
import type { DecisionAuditEntry, JsonValue } from './entries.js';

/** A decision line's body without its closing brace: head + prev + mid + seq + tail. */
export type DecisionParts = [head: string, mid: string, tail: string];


/** Member names whose values are never written. */
export const SECRET_KEY = /token|secret|authorization|password|passwd|assertion|api[-_]?key|credential|cookie|private[-_]?key/i;
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
// Neither pattern can match a string without one of these: one scan instead of two.
const SUSPECT = /eyJ|bearer|basic/i;
// What JSON.stringify escapes (and any surrogate, so that a lone one is escaped too):
// a string without them is written as is between quotes, several times faster.
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** `value` with JWT-looking and `Bearer …` substrings replaced by `[redacted]`. */
export function scrubString(value: string): string {
  if (value.length < 12 || !SUSPECT.test(value)) return value;
  return value.replace(JWT_LIKE, '[redacted]').replace(BEARER, '$1 [redacted]');
}

/** JSON with object keys sorted recursively and no whitespace; `undefined` members omitted. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v);
    }
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(k) + ':' + canonicalJson(v);
  }
  return out + '}';
}

/**
 * A copy of `value` where members named like a credential are replaced by `[redacted]` and
 * JWT-looking or `Bearer ...` substrings inside strings by `[redacted]`. Callers should never
 * pass secrets; this is the second line of defence.
 */
export function scrubSecrets(value: unknown, depth = 0): JsonValue {
  if (typeof value === 'string') return scrubString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean' || value === null) return value;
  if (typeof value !== 'object' || depth > 16) return null;
  if (Array.isArray(value)) return value.map((v: unknown) => scrubSecrets(v, depth + 1));
  const out: { [k: string]: JsonValue } = {};
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined || typeof v === 'function') continue;
    out[k] = SECRET_KEY.test(k) ? '[redacted]' : scrubSecrets(v, depth + 1);
  }
  return out;
}

/** A line's hash: sha256, or HMAC-SHA256 with the log's key, of `prev` then the body. */
export function lineHash(prev: string, body: string, hmacKey: string | undefined): string {
  // The one-shot hash is about twice as fast as a Hash object for a line-sized input.
  if (hmacKey === undefined) return hashOnce('sha256', prev + body, 'hex');
  return createHmac('sha256', hmacKey).update(prev).update(body).digest('hex');
}

// ---------------------------------------------------------------- the decision fast path

/** A scrubbed string as JSON. */
function q(value: string): string {
  const s = scrubString(value);
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

// The strings a decision line repeats from one decision to the next (policy names,
// reasons, the revision, actions, agent ids...) are scrubbed and quoted once (per thread).
const quoted = new Map<string, string>();
function qc(value: string): string {
  let out = quoted.get(value);
  if (out === undefined) {
    out = q(value);
    if (value.length <= 256) {
      if (quoted.size >= 4096) quoted.clear();
      quoted.set(value, out);
    }
  }
  return out;
}

/** A scrubbed string or null as JSON; undefined when `value` is neither. */
function qn(value: unknown): string | undefined {
  if (typeof value === 'string') return qc(value);
  return value === null ? 'null' : undefined;
}

/** A number as `scrubSecrets` then `canonicalJson` write it; undefined when not a number. */
function num(value: unknown): string | undefined {
  if (typeof value !== 'number') return undefined;
  return Number.isFinite(value) ? String(value) : 'null';
}

function strings(value: unknown): string | undefined {
  if (!Array.isArray(value)) return undefined;
  let out = '[';
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'string') return undefined;
    out += i === 0 ? qc(v) : ',' + qc(v);
  }
  return out + ']';
}

const DECISION_KEYS = new Set([
  'kind', 'decision_id', 'time', 'agent', 'on_behalf_of', 'action', 'resource', 'effect', 'allowed', 'risk',
  'policies', 'reasons', 'revision', 'latency_us', 'request_id', 'trace_id', 'api',
]);

/**
 * The chained body of a decision entry without its closing brace, in three parts around
 * `prev` and `seq`: byte for byte what the generic path (scrub, then canonical JSON)
 * gives, keys in sorted order, written directly. Undefined when the entry holds anything
 * unexpected: the generic path takes it then.
 */
export function decisionParts(e: DecisionAuditEntry, at: number): DecisionParts | undefined {
  for (const k in e) if (!DECISION_KEYS.has(k)) return undefined;
  const action = qn(e.action);
  const agent = qn(e.agent);
  const risk = num(e.risk);
  const latency = num(e.latency_us);
  const policies = strings(e.policies);
  const reasons = strings(e.reasons);
  if (action === undefined || agent === undefined || typeof e.allowed !== 'boolean' || risk === undefined || latency === undefined || policies === undefined || reasons === undefined) return undefined;
  if (typeof e.decision_id !== 'string' || typeof e.effect !== 'string' || typeof e.revision !== 'string') return undefined;
  let resource: string;
  const r = e.resource as unknown;
  if (r === null) resource = 'null';
  else {
    if (typeof r !== 'object' || Array.isArray(r)) return undefined;
    const ref = r as { [k: string]: unknown };
    for (const k in ref) if (k !== 'id' && k !== 'type') return undefined;
    if (typeof ref['id'] !== 'string' || typeof ref['type'] !== 'string') return undefined;
    resource = `{"id":${q(ref['id'])},"type":${qc(ref['type'])}}`;
  }
  let out = `{"action":${action},"agent":${agent},"allowed":${e.allowed ? 'true' : 'false'}`;
  if (e.api !== undefined) {
    if (typeof e.api !== 'string') return undefined;
    out += `,"api":${qc(e.api)}`;
  }
  out += `,"decision_id":${q(e.decision_id)},"effect":${qc(e.effect)},"kind":"decision","latency_us":${latency}`;
  if (e.on_behalf_of !== undefined) {
    if (typeof e.on_behalf_of !== 'string') return undefined;
    out += `,"on_behalf_of":${q(e.on_behalf_of)}`;
  }
  out += `,"policies":${policies}`;
  let mid = `,"reasons":${reasons}`;
  if (e.request_id !== undefined) {
    if (typeof e.request_id !== 'string') return undefined;
    mid += `,"request_id":${q(e.request_id)}`;
  }
  mid += `,"resource":${resource},"revision":${qc(e.revision)},"risk":${risk}`;
  const time = e.time;
  if (time !== undefined && typeof time !== 'string') return undefined;
  let tail = `,"time":${q(time ?? new Date(at).toISOString())}`;
  if (e.trace_id !== undefined) {
    if (typeof e.trace_id !== 'string') return undefined;
    tail += `,"trace_id":${q(e.trace_id)}`;
  }
  return [out, mid, tail];
}
