// The gRPC-style JSON API: the Connect protocol's unary mapping with the JSON codec for
// `agp.v1.DecisionService` (proto/agp/v1/decision.proto), served by Fastify directly.
// Bodies are the protobuf JSON form (lowerCamelCase); errors are `{code, message, details?}`
// with the Connect code's HTTP status; `Connect-Timeout-Ms` bounds the call.

import { create, fromJson, toBinary, toJson, type JsonObject } from '@bufbuild/protobuf';
import { base64Encode } from '@bufbuild/protobuf/wire';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { performance } from 'node:perf_hooks';
import type { ValidationIssue } from '../../engine/decision.js';
import { WWW_AUTHENTICATE, type Auth } from '../auth.js';
import type { DecidedDecision, DecideOutcome, Decider } from '../decider.js';
import {
  DecideBatchRequestSchema,
  DecideBatchResponseSchema,
  DecideRequestSchema,
  DecideResponseSchema,
  ValidationIssuesSchema,
  type DecideRequest,
  type DecideResponse,
} from '../gen/agp/v1/decision_pb.js';
import { metaOf } from './decide.js';

export interface ConnectRoutesOptions {
  decider: Decider;
  auth: Auth;
  maxBatch: number;
}

/** Connect error codes and their HTTP statuses (connectrpc.com/docs/protocol#error-codes). */
export const CONNECT_HTTP_STATUS = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
} as const;

export type ConnectCode = keyof typeof CONNECT_HTTP_STATUS;

interface ConnectErrorDetail {
  type: string;
  value: string;
  debug?: unknown;
}

class ConnectFailure extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
    readonly details: ConnectErrorDetail[] = [],
  ) {
    super(message);
  }
}

function issuesDetail(issues: readonly ValidationIssue[]): ConnectErrorDetail {
  const msg = create(ValidationIssuesSchema, { issues: issues.map((i) => ({ path: i.path, message: i.message })) });
  return {
    type: ValidationIssuesSchema.typeName,
    value: base64Encode(toBinary(ValidationIssuesSchema, msg), 'std_raw'),
    debug: toJson(ValidationIssuesSchema, msg),
  };
}

function sendError(reply: FastifyReply, code: ConnectCode, message: string, details: ConnectErrorDetail[] = []): FastifyReply {
  const body: { code: ConnectCode; message: string; details?: ConnectErrorDetail[] } = { code, message };
  if (details.length > 0) body.details = details;
  if (code === 'unauthenticated') reply.header('www-authenticate', WWW_AUTHENTICATE);
  return reply.code(CONNECT_HTTP_STATUS[code]).type('application/json').send(JSON.stringify(body));
}

function responseOf(d: DecidedDecision, explain = true): DecideResponse {
  const init: Parameters<typeof create<typeof DecideResponseSchema>>[1] = {
    decision: d.effect,
    allowed: d.allowed,
    risk: d.risk,
    factors: d.factors,
    policies: d.policies,
    reasons: d.reasons,
    obligations: d.obligations as JsonObject,
    decisionId: d.decision_id,
    revision: d.revision,
  };
  if (explain && d.explanation !== undefined) init.explanation = JSON.parse(JSON.stringify(d.explanation)) as JsonObject[];
  return create(DecideResponseSchema, init);
}

/** The native request shape the decider reads, from the protobuf message. */
function rawOf(req: DecideRequest, index?: number): unknown {
  if (req.action === '') {
    const at = index === undefined ? '' : `requests[${index}].`;
    throw new ConnectFailure('invalid_argument', `${at}action: required`, [issuesDetail([{ path: 'action', message: 'required' }])]);
  }
  return { agent: req.agent, action: req.action, resource: req.resource, task: req.task };
}

function parse<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    // protobuf-es reports the offending field; the text is about the caller's JSON only.
    throw new ConnectFailure('invalid_argument', `invalid request message: ${err instanceof Error ? err.message : String(err)}`);
  }
}

interface ItemError {
  code: string;
  message: string;
  issues: ValidationIssue[];
}

const JSON_WRITE = { alwaysEmitImplicit: true } as const;
const JSON_READ = { ignoreUnknownFields: true } as const;
const CONTENT_TYPE = /^application\/json(?:;\s?charset=utf-?8)?$/i;

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}

/** Reads the Connect headers; returns the deadline in ms, if any. */
function checkHeaders(request: FastifyRequest): number | undefined {
  const version = request.headers['connect-protocol-version'];
  if (version !== undefined && version !== '1') {
    throw new ConnectFailure('invalid_argument', `connect-protocol-version must be "1": got "${String(version)}"`);
  }
  const timeout = request.headers['connect-timeout-ms'];
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'string' || !/^\d{1,10}$/.test(timeout)) {
    throw new ConnectFailure('invalid_argument', `protocol error: invalid connect timeout value: ${String(timeout)}`);
  }
  return Number(timeout);
}

/** Resolves the outcome within the deadline, or fails with deadline_exceeded. */
function withDeadline<T>(value: T | Promise<T>, deadlineMs: number | undefined, started: number): T | Promise<T> {
  if (deadlineMs === undefined) return value;
  const left = deadlineMs - (performance.now() - started);
  if (!isThenable(value)) {
    if (left < 0) throw new ConnectFailure('deadline_exceeded', 'the deadline expired before the decision completed');
    return value;
  }
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ConnectFailure('deadline_exceeded', 'the deadline expired before the decision completed')), Math.max(0, left));
    value.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function failOf(outcome: Extract<DecideOutcome, { ok: false }>, prefix = ''): ConnectFailure {
  const e = outcome.error;
  if (outcome.status === 503) return new ConnectFailure('unavailable', e.message);
  return new ConnectFailure('invalid_argument', prefix + e.message, e.issues === undefined ? [] : [issuesDetail(e.issues)]);
}

export async function connectRoutes(app: FastifyInstance, opts: ConnectRoutesOptions): Promise<void> {
  const { decider, auth, maxBatch } = opts;

  app.addHook('onRequest', (request, reply, done) => {
    const r = auth.check(request.headers.authorization, 'pep');
    if (r.ok) {
      request.caller = r.caller;
      done();
      return;
    }
    sendError(reply, r.status === 401 ? 'unauthenticated' : 'permission_denied', r.message);
  });

  app.setErrorHandler((error: FastifyError | ConnectFailure, request, reply) => {
    if (error instanceof ConnectFailure) return sendError(reply, error.code, error.message, error.details);
    const status = error.statusCode ?? 500;
    if (status === 415) {
      // Connect: an unsupported codec is a bare 415 (binary `application/proto` is not served).
      return reply.code(415).header('accept-post', 'application/json').send();
    }
    if (status === 413) return sendError(reply, 'resource_exhausted', 'the request body is larger than the limit');
    if (status >= 400 && status < 500) return sendError(reply, 'invalid_argument', error.message);
    request.log.error({ err: error }, 'connect handler failed');
    return sendError(reply, 'internal', 'internal error');
  });

  function requireJson(request: FastifyRequest): void {
    const ct = request.headers['content-type'];
    if (ct === undefined || !CONTENT_TYPE.test(ct)) {
      throw Object.assign(new Error('unsupported content type'), { statusCode: 415 });
    }
  }

  function sendMessage(reply: FastifyReply, json: unknown): FastifyReply {
    return reply.type('application/json').send(JSON.stringify(json));
  }

  app.post('/agp.v1.DecisionService/Decide', (request, reply) => {
    const started = performance.now();
    requireJson(request);
    const deadline = checkHeaders(request);
    const req = parse(() => fromJson(DecideRequestSchema, (request.body ?? {}) as JsonObject, JSON_READ));
    const outcome = withDeadline(decider.decide(rawOf(req), metaOf(request, 'connect', req.explain)), deadline, started);
    const respond = (o: DecideOutcome): FastifyReply => {
      if (!o.ok) throw failOf(o);
      return sendMessage(reply, toJson(DecideResponseSchema, responseOf(o.decision), JSON_WRITE));
    };
    return isThenable(outcome) ? outcome.then(respond) : respond(outcome);
  });

  app.post('/agp.v1.DecisionService/DecideBatch', (request, reply) => {
    const started = performance.now();
    requireJson(request);
    const deadline = checkHeaders(request);
    const batch = parse(() => fromJson(DecideBatchRequestSchema, (request.body ?? {}) as JsonObject, JSON_READ));
    if (batch.requests.length > maxBatch) {
      throw new ConnectFailure('invalid_argument', `a batch holds at most ${maxBatch} requests, got ${batch.requests.length}`);
    }
    if (decider.policies.current === undefined) throw new ConnectFailure('unavailable', 'no valid policy set is loaded');
    // Items whose message is incomplete answer an error entry; the others are decided.
    const raws: unknown[] = [];
    const slots: (ItemError | number)[] = [];
    batch.requests.forEach((r, i) => {
      if (r.action === '') {
        slots.push({ code: 'invalid_argument', message: 'action: required', issues: [{ path: 'action', message: 'required' }] });
      } else {
        slots.push(raws.length);
        raws.push(rawOf(r, i));
      }
    });
    // One pipeline call for the batch: it explains every item when any item asks, and the
    // answer carries an explanation only for the items that asked.
    const explain = batch.requests.some((r) => r.explain);
    const outcomes = withDeadline(decider.decideMany(raws, metaOf(request, 'connect_batch', explain)), deadline, started);
    const respond = (os: DecideOutcome[]): FastifyReply => {
      const decisions = slots.map((slot, i) => {
        if (typeof slot !== 'number') return { result: { case: 'error' as const, value: slot } };
        const o = os[slot]!;
        if (o.ok) return { result: { case: 'decision' as const, value: responseOf(o.decision, batch.requests[i]!.explain) } };
        if (o.status === 503) throw failOf(o);
        return {
          result: {
            case: 'error' as const,
            value: { code: 'invalid_argument', message: o.error.message, issues: o.error.issues ?? [] },
          },
        };
      });
      const msg = create(DecideBatchResponseSchema, { decisions } as Parameters<typeof create<typeof DecideBatchResponseSchema>>[1]);
      return sendMessage(reply, toJson(DecideBatchResponseSchema, msg, JSON_WRITE));
    };
    return isThenable(outcomes) ? outcomes.then(respond) : respond(outcomes);
  });
}
