// The native API's error body and the authentication hook shared by its routes.
// Every error is `{ "error": { "code", "message", "issues"?, "hint"? } }`; 5xx bodies carry
// only a generic message and the request id, never an internal message or a stack.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { ValidationIssue } from '../../engine/decision.js';
import type { Json } from '../../engine/ir.js';
import { WWW_AUTHENTICATE, type Auth, type Scope } from '../auth.js';
import type { AuditSink } from '../decider.js';

export type ErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'invalid_agent_token'
  | 'forbidden'
  | 'not_found'
  | 'payload_too_large'
  | 'batch_too_large'
  | 'unsupported_media_type'
  | 'policy_set_rejected'
  | 'policies_unavailable'
  | 'store_unavailable'
  | 'internal';

export interface ErrorBody {
  error: { code: ErrorCode | string; message: string; issues?: ValidationIssue[]; hint?: string; request_id?: string };
}

export function errorBody(code: ErrorCode | string, message: string, extra: { issues?: ValidationIssue[]; hint?: string } = {}): ErrorBody {
  const error: ErrorBody['error'] = { code, message };
  if (extra.issues !== undefined) error.issues = extra.issues;
  if (extra.hint !== undefined) error.hint = extra.hint;
  return { error };
}

/** Every response carries the request's id (the caller's, or one made for it). */
export function echoRequestId(request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
}

/** A Fastify preHandler that admits callers with the credential `scope` needs. */
export function requireCaller(auth: Auth, scope: Scope) {
  return function authenticate(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const r = auth.check(request.headers.authorization, scope);
    if (r.ok) {
      request.caller = r.caller;
      done();
      return;
    }
    // Refused before any handler ran: the id is echoed here (the decide routes have no hook).
    echoRequestId(request, reply);
    if (r.status === 401) reply.header('www-authenticate', WWW_AUTHENTICATE);
    void reply.code(r.status).send(errorBody(r.status === 401 ? 'unauthenticated' : 'forbidden', r.message));
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called: `anonymous` (no keys configured), `admin`, or `key:<digest prefix>`. */
    caller: string;
  }
}

/** Zod's issues as the API's `{path, message}`; `whole` names an issue of the value itself. */
export function zodIssues(error: z.ZodError, whole = '(body)'): ValidationIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || whole, message: i.message.toLowerCase() }));
}

/** The admin routes' audit lines: one change, by the caller, with the request id. */
export function adminRecorder(audit: AuditSink | undefined) {
  return (request: FastifyRequest, operation: string, target: string, detail: { [k: string]: Json } = {}): void => {
    audit?.write({ kind: 'admin', operation, actor: request.caller, target, outcome: 'ok', detail, request_id: request.id });
  };
}

/** 400 `invalid_request` naming the first bad field, with every issue. */
export function invalidRequest(reply: FastifyReply, issues: ValidationIssue[]): FastifyReply {
  const first = issues[0];
  return reply.code(400).send(errorBody('invalid_request', first === undefined ? 'invalid request' : `${first.path}: ${first.message}`, { issues }));
}

/**
 * The error handler of the admin routes over the context store: the store's input errors
 * and other 4xx keep their status; anything else is a store failure, answered 503 (fail
 * closed, never a half-written registry), counted and logged.
 */
export function adminStoreErrorHandler(metrics: { storeError(operation: string): void } | undefined, what: string) {
  return (error: Error & { statusCode?: number; code?: string; hint?: string }, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (error.code === 'store_invalid_input') {
      return reply.code(400).send(errorBody('invalid_request', error.message, error.hint === undefined ? {} : { hint: error.hint }));
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'invalid_request', error.message));
    }
    metrics?.storeError('admin');
    request.log.error({ err: error }, `${what} call failed`);
    return reply.code(503).send(errorBody('store_unavailable', 'the context store is unavailable; retry later'));
  };
}
