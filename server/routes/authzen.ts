// OpenID AuthZEN Authorization API 1.0 over AGP's one decision pipeline: the metadata
// document, access evaluation(s) and the subject/resource/action searches. AuthZEN shapes
// are translated to AGP requests here and nowhere else (docs/authzen.md has the mapping).
// By default an answer is exactly `{"decision": bool}`; AGP's reasons, risk and
// obligations are added under `context` only when the caller asks for them.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Auth } from '../auth.js';
import type { DecidedDecision, DecideMeta, DecideOutcome, Decider } from '../decider.js';
import type { ContextStore } from '../context/types.js';
import type { PolicySet } from '../../engine/decision.js';
import { traceIdOf } from '../tracing.js';
import { errorBody, requireCaller } from './errors.js';

// ---------------------------------------------------------------- options

export interface AuthzenEntity {
  type: string;
  id: string;
  /** Attributes the PDP knows about the entity, used when deciding for a search. */
  properties?: { [k: string]: unknown };
}

/** The entities the PDP knows, for the search endpoints. */
export interface AuthzenCatalog {
  subjects: AuthzenEntity[];
  resources: AuthzenEntity[];
  actions: string[];
}

export interface AuthzenRoutesOptions {
  decider: Pick<Decider, 'decide' | 'decideMany'>;
  catalog: () => AuthzenCatalog | Promise<AuthzenCatalog>;
  /** The PDP's public base URL (no trailing slash); by default from Host / X-Forwarded-*. */
  baseUrl?: () => string;
  /** PEP authentication (the app's API keys); without it every caller is admitted. */
  auth?: Auth;
  /** Or any onRequest hook that authenticates (used when `auth` is absent). */
  authenticate?: onRequestHookHandler;
  /** Most evaluations per `/access/v1/evaluations` call (default 1000). */
  maxBatch?: number;
  /** Largest search page (default 1000); a larger `page.limit` is capped. */
  maxPageSize?: number;
}

export const AUTHZEN_PATHS = {
  configuration: '/.well-known/authzen-configuration',
  evaluation: '/access/v1/evaluation',
  evaluations: '/access/v1/evaluations',
  searchSubject: '/access/v1/search/subject',
  searchResource: '/access/v1/search/resource',
  searchAction: '/access/v1/search/action',
} as const;

/** Request header asking for AGP's details under `context`. */
export const INCLUDE_CONTEXT_HEADER = 'agp-include-context';
/** Request header asking for the per-policy explanation too. */
export const EXPLAIN_HEADER = 'agp-explain';
/** The same two options as members of the request's `context` (removed before deciding). */
export const INCLUDE_CONTEXT_KEY = 'agp_include_context';
export const EXPLAIN_KEY = 'agp_explain';

/** An X-Request-ID value that is echoed and audited as sent: visible ASCII, at most 256. */
const REQUEST_ID_ECHO = /^[\x21-\x7e]{1,256}$/;

const SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;
type Semantic = (typeof SEMANTICS)[number];

// ---------------------------------------------------------------- shapes

type Obj = { [k: string]: unknown };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Issue {
  path: string;
  message: string;
}

class BadRequest {
  constructor(
    readonly message: string,
    readonly issues: Issue[],
  ) {}
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** Checks the AuthZEN fields of one of subject/action/resource, collecting issues. */
function checkEntity(kind: 'subject' | 'resource', v: unknown, issues: Issue[], needId: boolean): void {
  if (v === undefined) {
    issues.push({ path: kind, message: 'required' });
    return;
  }
  if (!isObj(v)) {
    issues.push({ path: kind, message: 'expected an object' });
    return;
  }
  if (!nonEmptyString(v['type'])) issues.push({ path: `${kind}.type`, message: v['type'] === undefined ? 'required' : 'expected a non-empty string' });
  if (needId && !nonEmptyString(v['id'])) issues.push({ path: `${kind}.id`, message: v['id'] === undefined ? 'required' : 'expected a non-empty string' });
  if (v['properties'] !== undefined && !isObj(v['properties'])) issues.push({ path: `${kind}.properties`, message: 'expected an object' });
}

function checkAction(v: unknown, issues: Issue[]): void {
  if (v === undefined) {
    issues.push({ path: 'action', message: 'required' });
    return;
  }
  if (!isObj(v)) {
    issues.push({ path: 'action', message: 'expected an object' });
    return;
  }
  if (!nonEmptyString(v['name'])) issues.push({ path: 'action.name', message: v['name'] === undefined ? 'required' : 'expected a non-empty string' });
  if (v['properties'] !== undefined && !isObj(v['properties'])) issues.push({ path: 'action.properties', message: 'expected an object' });
}

function checkContext(v: unknown, issues: Issue[]): void {
  if (v !== undefined && v !== null && !isObj(v)) issues.push({ path: 'context', message: 'expected an object' });
}

function summary(issues: Issue[]): string {
  const first = issues[0];
  return first === undefined ? 'invalid request' : `${first.path}: ${first.message}`;
}

interface Tuple {
  subject: unknown;
  action: unknown;
  resource: unknown;
  context: unknown;
}

interface Asks {
  includeContext: boolean;
  explain: boolean;
}

/** One AuthZEN evaluation, translated: the AGP request and what the caller asked for. */
interface Translated {
  raw: { agent: Obj; action: string; resource: Obj; task: Obj };
  asks: Asks;
}

function copyProps(target: Obj, props: unknown): void {
  if (!isObj(props)) return;
  for (const k of Object.keys(props)) {
    // JSON bodies are parsed with prototype-poisoning protection; this is belt and braces.
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
    target[k] = props[k];
  }
}

/**
 * subject → agent (`id` = subject.id, `type` = subject.type, properties → attributes);
 * action.name → action (action.properties → `task.action`); resource → resource (`type`,
 * `id`, properties → attributes); context → task (minus the `agp_*` options).
 */
function translate(t: Tuple, headerAsks: Asks): Translated | BadRequest {
  const issues: Issue[] = [];
  checkEntity('subject', t.subject, issues, true);
  checkAction(t.action, issues);
  checkEntity('resource', t.resource, issues, true);
  checkContext(t.context, issues);
  if (issues.length > 0) return new BadRequest(summary(issues), issues);
  const subject = t.subject as Obj;
  const action = t.action as Obj;
  const resource = t.resource as Obj;
  const agent: Obj = {};
  copyProps(agent, subject['properties']);
  agent['id'] = subject['id'];
  agent['type'] = subject['type'];
  const res: Obj = {};
  copyProps(res, resource['properties']);
  res['type'] = resource['type'];
  res['id'] = resource['id'];
  const task: Obj = {};
  const asks: Asks = { ...headerAsks };
  if (isObj(t.context)) {
    copyProps(task, t.context);
    if (task[INCLUDE_CONTEXT_KEY] === true) asks.includeContext = true;
    if (task[EXPLAIN_KEY] === true) asks.explain = asks.includeContext = true;
    delete task[INCLUDE_CONTEXT_KEY];
    delete task[EXPLAIN_KEY];
  }
  if (isObj(action['properties'])) task['action'] = action['properties'];
  return { raw: { agent, action: action['name'] as string, resource: res, task }, asks };
}

// ---------------------------------------------------------------- answers

interface EvaluationAnswer {
  decision: boolean;
  context?: Obj;
}

/** AuthZEN's decision context, shaped like the specification's example (`reason_*`). */
function decisionContext(d: DecidedDecision, explain: boolean): Obj {
  const ctx: Obj = {
    id: d.decision_id,
    effect: d.effect,
    risk: d.risk,
    factors: d.factors,
    policies: d.policies,
    reasons: d.reasons,
    obligations: d.obligations,
    revision: d.revision,
  };
  if (d.reasons.length > 0) {
    const text = d.reasons.join('; ');
    ctx['reason_user'] = { en: text };
    ctx['reason_admin'] = { en: d.policies.length > 0 ? `${d.policies.join(', ')}: ${text}` : text };
  }
  if (explain && d.explanation !== undefined) ctx['explanation'] = d.explanation;
  return ctx;
}

function errorContext(status: number, code: string, message: string, issues?: Issue[]): Obj {
  const error: Obj = { status, code, message };
  if (issues !== undefined && issues.length > 0) error['issues'] = issues;
  return { error };
}

/** A non-503 outcome as an AuthZEN answer; `withError` forces the error context. */
function answer(outcome: DecideOutcome, asks: Asks, withError: boolean): EvaluationAnswer {
  if (outcome.ok) {
    // Only `permit` is a yes: `escalate` needs a person first, so the PEP must not proceed.
    const a: EvaluationAnswer = { decision: outcome.decision.effect === 'permit' };
    if (asks.includeContext) a.context = decisionContext(outcome.decision, asks.explain);
    return a;
  }
  const a: EvaluationAnswer = { decision: false };
  if (withError || asks.includeContext) a.context = errorContext(outcome.status, outcome.error.code, outcome.error.message, outcome.error.issues);
  return a;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}

function headerTrue(v: string | string[] | undefined): boolean {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && (s.trim().toLowerCase() === 'true' || s.trim() === '1');
}

function headerAsks(request: FastifyRequest): Asks {
  const explain = headerTrue(request.headers[EXPLAIN_HEADER]);
  return { explain, includeContext: explain || headerTrue(request.headers[INCLUDE_CONTEXT_HEADER]) };
}

function meta(request: FastifyRequest, explain: boolean): DecideMeta {
  // The audit line carries the id the caller sent (the one echoed back), else Fastify's.
  const given = request.headers['x-request-id'];
  const requestId = typeof given === 'string' && REQUEST_ID_ECHO.test(given) ? given : request.id;
  // `headers` parents the decider's span; `traceId` is for the audit line without an SDK.
  const m: DecideMeta = { requestId, caller: request.caller ?? 'anonymous', api: 'authzen', headers: request.headers };
  const traceId = traceIdOf({ headers: request.headers });
  if (traceId !== undefined) m.traceId = traceId;
  if (explain) m.explain = true;
  return m;
}

function badRequest(reply: FastifyReply, message: string, issues: Issue[] = []): FastifyReply {
  return reply.code(400).send(errorBody('invalid_request', message, issues.length > 0 ? { issues } : {}));
}

function unavailable(reply: FastifyReply, outcome: Extract<DecideOutcome, { ok: false }>): FastifyReply {
  return reply.code(outcome.status).send(errorBody(outcome.error.code, outcome.error.message));
}

// ---------------------------------------------------------------- pagination

interface PageRequest {
  offset: number;
  limit: number;
}

function encodeToken(offset: number, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ o: offset, f: fingerprint })).toString('base64url');
}

function parsePage(v: unknown, fingerprint: string, maxPageSize: number): PageRequest | BadRequest {
  if (v === undefined || v === null) return { offset: 0, limit: maxPageSize };
  if (!isObj(v)) return new BadRequest('page: expected an object', [{ path: 'page', message: 'expected an object' }]);
  let limit = maxPageSize;
  if (v['limit'] !== undefined) {
    const l = v['limit'];
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 1) {
      return new BadRequest('page.limit: expected a positive integer', [{ path: 'page.limit', message: 'expected a positive integer' }]);
    }
    limit = Math.min(l, maxPageSize);
  }
  let offset = 0;
  if (v['token'] !== undefined && v['token'] !== '') {
    const bad = new BadRequest('page.token: not a token this PDP issued for this search', [{ path: 'page.token', message: 'unknown or expired token' }]);
    if (typeof v['token'] !== 'string' || v['token'].length > 512) return bad;
    try {
      const t: unknown = JSON.parse(Buffer.from(v['token'], 'base64url').toString('utf8'));
      if (!isObj(t) || typeof t['o'] !== 'number' || !Number.isInteger(t['o']) || t['o'] < 0 || t['f'] !== fingerprint) return bad;
      offset = t['o'];
    } catch {
      return bad;
    }
  }
  return { offset, limit };
}

/** A search candidate's properties: the request's, overlaid by what the catalog knows. */
function withKnown(requested: unknown, known: { [k: string]: unknown } | undefined): Obj {
  const out: Obj = {};
  copyProps(out, requested);
  copyProps(out, known);
  return out;
}

// ---------------------------------------------------------------- the plugin

const SAFE_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

function firstHeader(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim();
}

function requestBaseUrl(request: FastifyRequest): string {
  const proto = firstHeader(request.headers['x-forwarded-proto']);
  const scheme = proto === 'https' || proto === 'http' ? proto : request.protocol;
  const host = firstHeader(request.headers['x-forwarded-host']) ?? request.headers.host;
  return `${scheme}://${host !== undefined && SAFE_HOST.test(host) ? host : 'localhost'}`;
}

export async function authzenRoutes(app: FastifyInstance, opts: AuthzenRoutesOptions): Promise<void> {
  const { decider } = opts;
  const maxBatch = opts.maxBatch ?? 1000;
  const maxPageSize = opts.maxPageSize ?? 1000;
  const authenticate = opts.auth !== undefined ? requireCaller(opts.auth, 'pep') : opts.authenticate;
  const routeOptions = authenticate !== undefined ? { onRequest: authenticate } : {};

  // AuthZEN: the request id the caller sent comes back verbatim.
  app.addHook('onRequest', (request, reply, done) => {
    const given = request.headers['x-request-id'];
    if (typeof given === 'string' && REQUEST_ID_ECHO.test(given)) void reply.header('x-request-id', given);
    done();
  });

  // AuthZEN asks for 400 (not 415) for a wrong content type, and for malformed JSON.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 415) return badRequest(reply, 'expected `Content-Type: application/json`');
    if (status === 400) {
      if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return badRequest(reply, 'the request body is empty');
      return badRequest(reply, 'the request body is not valid JSON');
    }
    if (status < 500) return reply.code(status).send(errorBody(status === 413 ? 'payload_too_large' : 'invalid_request', error.message));
    request.log.error({ err: error }, 'authzen request failed');
    const body = errorBody('internal', 'internal error');
    body.error.request_id = request.id;
    return reply.code(500).send(body);
  });

  /** The JSON object body, or a 400 already sent. */
  function jsonBody(request: FastifyRequest, reply: FastifyReply): Obj | null {
    const type = request.headers['content-type'];
    const mediaType = type?.split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json' && !(mediaType !== undefined && /^application\/[a-z0-9.+-]+\+json$/.test(mediaType))) {
      void badRequest(reply, 'expected `Content-Type: application/json`');
      return null;
    }
    if (!isObj(request.body)) {
      void badRequest(reply, 'the request body must be a JSON object', [{ path: '', message: 'expected an object' }]);
      return null;
    }
    return request.body;
  }

  app.get(AUTHZEN_PATHS.configuration, (request, reply) => {
    const base = (opts.baseUrl?.() ?? requestBaseUrl(request)).replace(/\/+$/, '');
    return reply.send({
      policy_decision_point: base,
      access_evaluation_endpoint: base + AUTHZEN_PATHS.evaluation,
      access_evaluations_endpoint: base + AUTHZEN_PATHS.evaluations,
      search_subject_endpoint: base + AUTHZEN_PATHS.searchSubject,
      search_resource_endpoint: base + AUTHZEN_PATHS.searchResource,
      search_action_endpoint: base + AUTHZEN_PATHS.searchAction,
      capabilities: [],
    });
  });

  /** One evaluation: 200 with the answer, 400 for an AuthZEN shape error, 503 without policies. */
  function single(request: FastifyRequest, reply: FastifyReply, t: Tuple): FastifyReply | Promise<FastifyReply> {
    const tr = translate(t, headerAsks(request));
    if (tr instanceof BadRequest) return badRequest(reply, tr.message, tr.issues);
    const respond = (o: DecideOutcome): FastifyReply => {
      if (!o.ok && o.status >= 500) return unavailable(reply, o);
      // A request AuthZEN accepts but the policy schema rejects is a deny, not a 400: the
      // PEP asked a well-formed question; the error is in `context` when asked for.
      return reply.send(answer(o, tr.asks, false));
    };
    const out = decider.decide(tr.raw, meta(request, tr.asks.explain));
    return isThenable(out) ? out.then(respond) : respond(out);
  }

  app.post(AUTHZEN_PATHS.evaluation, routeOptions, (request, reply) => {
    const body = jsonBody(request, reply);
    if (body === null) return reply;
    return single(request, reply, { subject: body['subject'], action: body['action'], resource: body['resource'], context: body['context'] });
  });

  app.post(AUTHZEN_PATHS.evaluations, routeOptions, async (request, reply) => {
    const body = jsonBody(request, reply);
    if (body === null) return reply;
    const defaults: Tuple = { subject: body['subject'], action: body['action'], resource: body['resource'], context: body['context'] };
    // Present defaults must have the right JSON type even if every item overrides them.
    const issues: Issue[] = [];
    for (const key of ['subject', 'action', 'resource'] as const) {
      if (defaults[key] !== undefined && !isObj(defaults[key])) issues.push({ path: key, message: 'expected an object' });
    }
    checkContext(defaults.context, issues);
    let semantic: Semantic = 'execute_all';
    const options = body['options'];
    if (options !== undefined && options !== null) {
      if (!isObj(options)) issues.push({ path: 'options', message: 'expected an object' });
      else if (options['evaluations_semantic'] !== undefined) {
        const s = options['evaluations_semantic'];
        if (typeof s === 'string' && (SEMANTICS as readonly string[]).includes(s)) semantic = s as Semantic;
        else issues.push({ path: 'options.evaluations_semantic', message: `expected one of ${SEMANTICS.join(', ')}` });
      }
    }
    const items = body['evaluations'];
    if (items !== undefined && items !== null && !Array.isArray(items)) issues.push({ path: 'evaluations', message: 'expected an array' });
    if (issues.length > 0) return badRequest(reply, summary(issues), issues);

    // No (or no) evaluations: answer like a single evaluation of the defaults.
    if (!Array.isArray(items) || items.length === 0) return single(request, reply, defaults);
    if (items.length > maxBatch) {
      return reply.code(413).send(errorBody('batch_too_large', `an evaluations call holds at most ${maxBatch} evaluations, got ${items.length}`, { hint: 'split the call' }));
    }

    const asks = headerAsks(request);
    // Each item's key replaces the default object whole: no merging inside it.
    const translated: (Translated | BadRequest)[] = items.map((item: unknown, i: number) => {
      if (!isObj(item)) return new BadRequest(`evaluations[${i}]: expected an object`, [{ path: `evaluations[${i}]`, message: 'expected an object' }]);
      const t: Tuple = {
        subject: 'subject' in item ? item['subject'] : defaults.subject,
        action: 'action' in item ? item['action'] : defaults.action,
        resource: 'resource' in item ? item['resource'] : defaults.resource,
        context: 'context' in item ? item['context'] : defaults.context,
      };
      const r = translate(t, asks);
      if (r instanceof BadRequest) {
        const prefixed = r.issues.map((x) => ({ path: `evaluations[${i}].${x.path}`, message: x.message }));
        return new BadRequest(summary(prefixed), prefixed);
      }
      return r;
    });
    const explain = translated.some((t) => !(t instanceof BadRequest) && t.asks.explain);
    const m = meta(request, explain);
    const results: EvaluationAnswer[] = [];

    if (semantic === 'execute_all') {
      // One policy set and one clock reading for every item (decideMany).
      const valid: Translated[] = [];
      for (const t of translated) if (!(t instanceof BadRequest)) valid.push(t);
      const outs = await decider.decideMany(valid.map((t) => t.raw), m);
      const down = outs.find((o): o is Extract<DecideOutcome, { ok: false }> => !o.ok && o.status >= 500);
      if (down !== undefined) return unavailable(reply, down);
      let k = 0;
      for (const t of translated) {
        if (t instanceof BadRequest) results.push({ decision: false, context: errorContext(400, 'invalid_request', t.message, t.issues) });
        else results.push(answer(outs[k++]!, t.asks, true));
      }
      return reply.send({ evaluations: results });
    }

    // Short-circuit: evaluate in order and stop after the deciding evaluation.
    const stopOn = semantic === 'deny_on_first_deny' ? false : true;
    for (const t of translated) {
      let a: EvaluationAnswer;
      if (t instanceof BadRequest) a = { decision: false, context: errorContext(400, 'invalid_request', t.message, t.issues) };
      else {
        const o = await decider.decide(t.raw, { ...m, explain: t.asks.explain });
        if (!o.ok && o.status >= 500) return unavailable(reply, o);
        a = answer(o, t.asks, true);
      }
      results.push(a);
      if (a.decision === stopOn) break;
    }
    return reply.send({ evaluations: results });
  });

  // ---- search: which entities of a type the decision permits, given the other two
  type SearchKind = 'subject' | 'resource' | 'action';

  async function search(kind: SearchKind, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const body = jsonBody(request, reply);
    if (body === null) return reply;
    const issues: Issue[] = [];
    checkEntity('subject', body['subject'], issues, kind !== 'subject');
    if (kind !== 'action') checkAction(body['action'], issues);
    checkEntity('resource', body['resource'], issues, kind !== 'resource');
    checkContext(body['context'], issues);
    if (issues.length > 0) return badRequest(reply, summary(issues), issues);
    const subject = body['subject'] as Obj;
    const resource = body['resource'] as Obj;
    const action = body['action'];
    const fingerprint = `${kind}:${kind === 'subject' ? String(subject['type']) : kind === 'resource' ? String(resource['type']) : ''}`;
    const page = parsePage(body['page'], fingerprint, maxPageSize);
    if (page instanceof BadRequest) return badRequest(reply, page.message, page.issues);

    const catalog = await opts.catalog();
    // The candidates, in catalog order; the searched entity's id (if sent) is ignored.
    let candidates: Tuple[];
    let results: Obj[];
    if (kind === 'subject') {
      const list = catalog.subjects.filter((s) => s.type === subject['type']);
      results = list.map((s) => ({ type: s.type, id: s.id }));
      candidates = list.map((s) => ({ subject: { type: s.type, id: s.id, properties: withKnown(subject['properties'], s.properties) }, action, resource, context: body['context'] }));
    } else if (kind === 'resource') {
      const list = catalog.resources.filter((r) => r.type === resource['type']);
      results = list.map((r) => ({ type: r.type, id: r.id }));
      candidates = list.map((r) => ({ subject, action, resource: { type: r.type, id: r.id, properties: withKnown(resource['properties'], r.properties) }, context: body['context'] }));
    } else {
      results = catalog.actions.map((name) => ({ name }));
      candidates = catalog.actions.map((name) => ({ subject, action: { name }, resource, context: body['context'] }));
    }
    const raws: Translated['raw'][] = [];
    const keep: Obj[] = [];
    const asks = headerAsks(request);
    for (let i = 0; i < candidates.length; i++) {
      const t = translate(candidates[i]!, asks);
      if (t instanceof BadRequest) continue;
      raws.push(t.raw);
      keep.push(results[i]!);
    }
    const outs = raws.length === 0 ? [] : await decider.decideMany(raws, { ...meta(request, false), api: 'authzen_search' });
    const down = outs.find((o): o is Extract<DecideOutcome, { ok: false }> => !o.ok && o.status >= 500);
    if (down !== undefined) return unavailable(reply, down);
    const permitted = keep.filter((_, i) => {
      const o = outs[i]!;
      return o.ok && o.decision.effect === 'permit';
    });
    const slice = permitted.slice(page.offset, page.offset + page.limit);
    const out: Obj = { results: slice };
    const next = page.offset + slice.length;
    if (next < permitted.length) out['page'] = { next_token: encodeToken(next, fingerprint), count: slice.length, total: permitted.length };
    else if (isObj(body['page'])) out['page'] = { next_token: '', count: slice.length, total: permitted.length };
    return reply.send(out);
  }

  app.post(AUTHZEN_PATHS.searchSubject, routeOptions, (request, reply) => search('subject', request, reply));
  app.post(AUTHZEN_PATHS.searchResource, routeOptions, (request, reply) => search('resource', request, reply));
  app.post(AUTHZEN_PATHS.searchAction, routeOptions, (request, reply) => search('action', request, reply));
}

// ---------------------------------------------------------------- a catalog from AGP's own state

/**
 * The catalog the server can build by itself: registered agents as subjects (type
 * `agent`, or their registered `type` attribute), the action names that policy targets
 * test, and the resources `resources` lists (the server passes its resource registry,
 * server/routes/resources.ts).
 */
export function storeCatalog(
  store: Pick<ContextStore, 'listAgents'>,
  policies: { readonly current: PolicySet | undefined },
  resources: () => AuthzenEntity[] | Promise<AuthzenEntity[]> = () => [],
  maxAgents = 10_000,
): () => Promise<AuthzenCatalog> {
  return async () => {
    const subjects: AuthzenEntity[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listAgents(cursor, 500);
      for (const a of page.items) {
        if (!a.active) continue;
        const t = a.attributes['type'];
        subjects.push({ type: typeof t === 'string' ? t : 'agent', id: a.id });
      }
      cursor = page.next;
    } while (cursor !== undefined && subjects.length < maxAgents);
    const actions = new Set<string>();
    for (const p of policies.current?.ir.policies ?? []) {
      for (const test of p.target) {
        if (test.path.length === 1 && test.path[0] === 'action') for (const v of test.values) if (typeof v === 'string') actions.add(v);
      }
    }
    return { subjects, resources: await resources(), actions: [...actions].sort() };
  };
}
