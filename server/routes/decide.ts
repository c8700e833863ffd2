// The native decision API: `POST /v1/decide` and `POST /v1/decide/batch` (docs/api.md).
// A deny is a 200; 400 names the bad attribute; 503 when no valid policy set is loaded.
// The single-decision path stays synchronous when the store answers from its cache.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AgentTokenVerifier } from '../app.js';
import type { Auth } from '../auth.js';
import type { DecidedDecision, DecideMeta, DecideOutcome, Decider } from '../decider.js';
import { parseTraceparent } from '../tracing.js';
import { echoRequestId, errorBody, requireCaller } from './errors.js';

export interface DecideRoutesOptions {
  decider: Decider;
  auth: Auth;
  maxBatch: number;
  /** Verifies the `AGP-Agent-Token` header; without it the header is refused. */
  agentTokens?: AgentTokenVerifier;
}

/** Carries an AGP-issued agent token: the decision is for the token's agent (`agp_agent`). */
export const AGENT_TOKEN_HEADER = 'agp-agent-token';

/** The response body of one decision (the engine's `effect` is `decision` on the wire). */
export interface DecisionBody {
  decision: DecidedDecision['effect'];
  allowed: boolean;
  risk: number;
  factors: DecidedDecision['factors'];
  policies: string[];
  reasons: string[];
  obligations: DecidedDecision['obligations'];
  decision_id: string;
  revision: string;
  explanation?: DecidedDecision['explanation'];
}

// What JSON.stringify escapes in a string (and any surrogate, so a lone one is escaped too).
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

// Factor and obligation names, policy names, reasons and the revision come from the policy
// set and repeat from one decision to the next: each is quoted once.
const quoted = new Map<string, string>();
function cached(s: string): string {
  let out = quoted.get(s);
  if (out === undefined) {
    out = str(s);
    if (s.length <= 256) {
      if (quoted.size >= 4096) quoted.clear();
      quoted.set(s, out);
    }
  }
  return out;
}

// Risks and factor contributions are mostly small integers.
const SMALL_INTS: readonly string[] = Array.from({ length: 1024 }, (_, i) => String(i));

function num(n: number): string {
  if ((n | 0) === n && n >= 0 && n < 1024) return SMALL_INTS[n]!;
  return Number.isFinite(n) ? String(n) : 'null';
}

function strings(xs: readonly string[]): string {
  if (xs.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < xs.length; i++) out += i === 0 ? cached(xs[i]!) : `,${cached(xs[i]!)}`;
  return `${out}]`;
}

/**
 * `JSON.stringify(decisionBody(d))`, byte for byte, written field by field with the
 * repeating parts quoted once: about twice as fast (property-tested against JSON.stringify).
 */
export function decisionJson(d: DecidedDecision): string {
  let factors = '{';
  for (const k of Object.keys(d.factors)) {
    if (factors.length > 1) factors += ',';
    factors += `${cached(k)}:${num(d.factors[k]!)}`;
  }
  let obligations = '{';
  const ob = d.obligations as Record<string, unknown>;
  for (const k of Object.keys(ob)) {
    const v = ob[k];
    const json = typeof v === 'number' ? num(v) : typeof v === 'string' ? str(v) : JSON.stringify(v);
    if (json === undefined) continue;
    if (obligations.length > 1) obligations += ',';
    obligations += `${cached(k)}:${json}`;
  }
  let out =
    `{"decision":${cached(d.effect)},"allowed":${d.allowed ? 'true' : 'false'},"risk":${num(d.risk)},"factors":${factors}}` +
    `,"policies":${strings(d.policies)},"reasons":${strings(d.reasons)},"obligations":${obligations}}` +
    `,"decision_id":${str(d.decision_id)},"revision":${cached(d.revision)}`;
  if (d.explanation !== undefined) {
    const explanation = JSON.stringify(d.explanation);
    if (explanation !== undefined) out += `,"explanation":${explanation}`;
  }
  return `${out}}`;
}

export function decisionBody(d: DecidedDecision): DecisionBody {
  const out: DecisionBody = {
    decision: d.effect,
    allowed: d.allowed,
    risk: d.risk,
    factors: d.factors,
    policies: d.policies,
    reasons: d.reasons,
    obligations: d.obligations,
    decision_id: d.decision_id,
    revision: d.revision,
  };
  if (d.explanation !== undefined) out.explanation = d.explanation;
  return out;
}

/** The decider's request metadata: ids, caller, trace parent. */
export function metaOf(request: FastifyRequest, api: string, explain: boolean): DecideMeta {
  const meta: DecideMeta = { requestId: request.id, caller: request.caller, api, headers: request.headers };
  const traceId = parseTraceparent(request.headers.traceparent);
  if (traceId !== undefined) meta.traceId = traceId;
  if (explain) meta.explain = true;
  return meta;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}

function send(reply: FastifyReply, outcome: DecideOutcome): FastifyReply {
  if (outcome.ok) {
    return reply.type('application/json; charset=utf-8').send(decisionJson(outcome.decision));
  }
  const e = outcome.error;
  return reply.code(outcome.status).send(errorBody(e.code, e.message, e.issues === undefined ? {} : { issues: e.issues }));
}

function explainFlag(body: unknown): boolean | 'invalid' {
  if (typeof body !== 'object' || body === null) return false;
  const v = (body as { explain?: unknown }).explain;
  if (v === undefined || v === false) return false;
  return v === true ? true : 'invalid';
}

export async function decideRoutes(app: FastifyInstance, opts: DecideRoutesOptions): Promise<void> {
  const { decider, maxBatch } = opts;
  // With no key configured every caller is `anonymous` (the request's default): no hook.
  const onRequest = opts.auth.open ? [] : [requireCaller(opts.auth, 'pep')];
  // JSON only: a text/plain body is a 415, not a string the decider would call invalid.
  app.removeContentTypeParser('text/plain');

  /** The agent is the verified token's, whatever `agent.id` the body names. */
  async function decideForToken(request: FastifyRequest, reply: FastifyReply, token: string | string[], explain: boolean): Promise<FastifyReply> {
    if (opts.agentTokens === undefined || typeof token !== 'string') {
      return reply.code(401).send(errorBody('invalid_agent_token', 'agent tokens are not accepted here'));
    }
    const v = await opts.agentTokens(token.replace(/^Bearer\s+/i, ''));
    if (!v.ok) return reply.code(401).send(errorBody('invalid_agent_token', `the agent token is not valid: ${v.message}`));
    const body = request.body;
    const raw = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const agent = typeof raw['agent'] === 'object' && raw['agent'] !== null ? (raw['agent'] as Record<string, unknown>) : {};
    const meta = metaOf(request, 'decide', explain);
    if (v.covers !== undefined) meta.scope = v.covers;
    const outcome = await decider.decide({ ...raw, agent: { ...agent, id: v.claims.agp_agent } }, meta);
    return send(reply, outcome);
  }

  app.post('/v1/decide', { onRequest }, (request, reply) => {
    echoRequestId(request, reply);
    const explain = explainFlag(request.body);
    if (explain === 'invalid') {
      return reply.code(400).send(errorBody('invalid_request', 'explain: expected a boolean', { issues: [{ path: 'explain', message: 'expected a boolean' }] }));
    }
    const token = request.headers[AGENT_TOKEN_HEADER];
    if (token !== undefined) return decideForToken(request, reply, token, explain);
    const outcome = decider.decide(request.body, metaOf(request, 'decide', explain));
    if (isThenable(outcome)) return outcome.then((o) => send(reply, o));
    return send(reply, outcome);
  });

  app.post('/v1/decide/batch', { onRequest }, (request, reply) => {
    echoRequestId(request, reply);
    const body = request.body as { requests?: unknown; explain?: unknown } | null;
    const requests = typeof body === 'object' && body !== null ? body.requests : undefined;
    if (!Array.isArray(requests)) {
      return reply.code(400).send(errorBody('invalid_request', 'requests: expected an array of decision requests', { issues: [{ path: 'requests', message: 'expected an array' }] }));
    }
    if (requests.length > maxBatch) {
      return reply.code(413).send(errorBody('batch_too_large', `a batch holds at most ${maxBatch} requests, got ${requests.length}`, { hint: 'split the batch' }));
    }
    const explain = explainFlag(body);
    if (explain === 'invalid') {
      return reply.code(400).send(errorBody('invalid_request', 'explain: expected a boolean', { issues: [{ path: 'explain', message: 'expected a boolean' }] }));
    }
    if (decider.policies.current === undefined) {
      return reply.code(503).send(errorBody('policies_unavailable', 'no valid policy set is loaded'));
    }
    const meta = metaOf(request, 'decide_batch', explain);
    const respond = (outcomes: DecideOutcome[]): FastifyReply => {
      const decisions: unknown[] = new Array<unknown>(outcomes.length);
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i]!;
        if (o.ok) decisions[i] = decisionBody(o.decision);
        else if (o.status === 503) return reply.code(503).send(errorBody('policies_unavailable', o.error.message));
        else decisions[i] = errorBody(o.error.code, o.error.message, o.error.issues === undefined ? {} : { issues: o.error.issues });
      }
      return reply.type('application/json; charset=utf-8').send(JSON.stringify({ decisions }));
    };
    const outcomes = decider.decideMany(requests, meta);
    if (isThenable(outcomes)) return outcomes.then(respond);
    return respond(outcomes);
  });
}
