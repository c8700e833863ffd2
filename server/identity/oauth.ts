// OAuth 2.0 wire details shared by the token, introspection and revocation endpoints:
// form parameters (no repeats), RFC 6749 §5.2 error responses, and client authentication
// (client_secret_basic, client_secret_post, private_key_jwt).

import type { CredentialCheck, CredentialService } from './credentials.js';
import { CLIENT_ASSERTION_TYPE } from './credentials.js';
import type { CredentialMethod } from './events.js';

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  | 'temporarily_unavailable'
  | 'invalid_dpop_proof';

export interface ApprovalRequired {
  scope: string;
  approver?: string;
  decision_id?: string;
  reasons: string[];
}

export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description?: string;
  /** AGP extension: scopes that need a human approval first. */
  agp_approval?: ApprovalRequired[];
}

export interface OAuthResponse<T> {
  status: number;
  body: T | OAuthErrorBody;
  headers?: Record<string, string>;
}

/** RFC 6749 §5.2: sent with a 401 only to a client that tried HTTP Basic authentication. */
export const WWW_AUTHENTICATE = 'Basic realm="agp", charset="UTF-8"';

/**
 * The one answer to a credential that did not authenticate, whatever the reason (unknown,
 * deactivated or keyless agent, wrong secret, bad signature): the audit keeps the reason.
 */
export const CLIENT_AUTH_FAILED = 'client authentication failed';

export function oauthError(
  error: OAuthErrorCode,
  description: string,
  status = error === 'invalid_client' ? 401 : error === 'temporarily_unavailable' ? 503 : 400,
): OAuthResponse<never> {
  return { status, body: { error, error_description: description } };
}

/** A 401 to a client that used HTTP Basic carries the Basic challenge. */
function withBasicChallenge(response: OAuthResponse<never>): OAuthResponse<never> {
  if (response.status !== 401) return response;
  return { ...response, headers: { ...response.headers, 'www-authenticate': WWW_AUTHENTICATE } };
}

/** Parsed `application/x-www-form-urlencoded` body: every value of every name, in order. */
export type FormParams = Readonly<Record<string, readonly string[]>>;

export function parseForm(body: string): FormParams {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [k, v] of new URLSearchParams(body)) (out[k] ??= []).push(v);
  return out;
}

export class FormError extends Error {}

/** One value of `name`, or undefined; RFC 6749 §3.2 forbids repeating a parameter. */
export function single(params: FormParams, name: string): string | undefined {
  const values = params[name];
  if (!values || values.length === 0) return undefined;
  if (values.length > 1) throw new FormError(`parameter \`${name}\` is repeated`);
  return values[0] === '' ? undefined : values[0];
}

export function many(params: FormParams, name: string): string[] {
  return (params[name] ?? []).filter((v) => v !== '');
}

export type ClientAuth =
  | { kind: 'none' }
  | { kind: 'agent'; agentId: string; method: CredentialMethod; assertion?: string }
  | { kind: 'failed'; response: OAuthResponse<never> };

function formDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

/**
 * A failed credential: throttled (429), verification capacity exhausted (503), else one
 * `invalid_client` — detailed only for a correctly signed assertion, which only its signer
 * (or a replay of it) can present.
 */
function failed(check: Extract<CredentialCheck, { ok: false }>): ClientAuth {
  if (check.retryAfterS !== undefined) {
    const status = check.reason === 'busy' ? 503 : 429;
    return {
      kind: 'failed',
      response: { ...oauthError('temporarily_unavailable', check.message, status), headers: { 'retry-after': String(check.retryAfterS) } },
    };
  }
  return { kind: 'failed', response: oauthError('invalid_client', check.signed ? check.message : CLIENT_AUTH_FAILED) };
}

/** Where a request came from, for per-client throttling and the audit's flood control. */
export interface RequestOrigin {
  address: string;
}

/** RFC 6749 §2.3 client authentication; more than one method at once is refused. */
export async function authenticateClient(
  authorization: string | undefined,
  params: FormParams,
  credentials: CredentialService,
  origin: RequestOrigin = { address: 'unknown' },
): Promise<ClientAuth> {
  const auth = await authenticate(authorization, params, credentials, origin);
  const basic = authorization !== undefined && /^basic /i.test(authorization);
  return auth.kind === 'failed' && basic ? { kind: 'failed', response: withBasicChallenge(auth.response) } : auth;
}

async function authenticate(
  authorization: string | undefined,
  params: FormParams,
  credentials: CredentialService,
  origin: RequestOrigin,
): Promise<ClientAuth> {
  const basic = authorization !== undefined && /^basic /i.test(authorization) ? authorization.slice(6).trim() : undefined;
  const clientId = single(params, 'client_id');
  const clientSecret = single(params, 'client_secret');
  const assertionType = single(params, 'client_assertion_type');
  const assertion = single(params, 'client_assertion');
  const used = [basic !== undefined, clientSecret !== undefined, assertion !== undefined || assertionType !== undefined].filter(Boolean).length;
  if (used > 1) return { kind: 'failed', response: oauthError('invalid_request', 'use one client authentication method, not several') };

  if (basic !== undefined) {
    const decoded = Buffer.from(basic, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    let id: string;
    let secret: string;
    try {
      id = formDecode(decoded.slice(0, colon));
      secret = formDecode(decoded.slice(colon + 1));
    } catch {
      return { kind: 'failed', response: oauthError('invalid_client', 'malformed basic credentials') };
    }
    if (colon <= 0 || secret === '') return { kind: 'failed', response: oauthError('invalid_client', 'malformed basic credentials') };
    if (clientId !== undefined && clientId !== id) return { kind: 'failed', response: oauthError('invalid_request', '`client_id` differs from the basic credentials') };
    const check = await credentials.verifySecret(id, secret, origin);
    return check.ok ? { kind: 'agent', agentId: check.agent.id, method: 'client_secret' } : failed(check);
  }
  if (clientSecret !== undefined) {
    if (clientId === undefined) return { kind: 'failed', response: oauthError('invalid_request', '`client_secret` needs `client_id`') };
    const check = await credentials.verifySecret(clientId, clientSecret, origin);
    return check.ok ? { kind: 'agent', agentId: check.agent.id, method: 'client_secret' } : failed(check);
  }
  if (assertion !== undefined || assertionType !== undefined) {
    if (assertionType !== CLIENT_ASSERTION_TYPE) {
      return { kind: 'failed', response: oauthError('invalid_client', `\`client_assertion_type\` must be \`${CLIENT_ASSERTION_TYPE}\``) };
    }
    if (assertion === undefined) return { kind: 'failed', response: oauthError('invalid_request', '`client_assertion` is missing') };
    const check = await credentials.verifyAssertion(assertion, origin);
    if (!check.ok) return failed(check);
    if (clientId !== undefined && clientId !== check.agent.id) {
      return { kind: 'failed', response: oauthError('invalid_client', '`client_id` differs from the assertion subject') };
    }
    return { kind: 'agent', agentId: check.agent.id, method: 'private_key_jwt', assertion };
  }
  return { kind: 'none' };
}
