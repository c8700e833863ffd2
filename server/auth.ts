// Caller authentication: PEP API keys and a separate admin key, presented as
// `Authorization: Bearer <key>`. Keys are kept only as SHA-256 digests and compared in
// constant time; the key itself is never logged (callers are named by a digest prefix).

import { createHash, timingSafeEqual } from 'node:crypto';

export type Scope = 'pep' | 'admin';

export type AuthResult =
  | { ok: true; caller: string; admin: boolean }
  | { ok: false; status: 401 | 403; message: string };

export interface Auth {
  /** No key is configured: every call is allowed (the server then binds to loopback only). */
  readonly open: boolean;
  /** Whether an admin key is configured (admin routes answer 403 without one, unless open). */
  readonly adminConfigured: boolean;
  check(authorization: string | undefined, scope: Scope): AuthResult;
}

/** The value of `WWW-Authenticate` on every 401. */
export const WWW_AUTHENTICATE = 'Bearer realm="agp"';

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** A caller's name in logs and the audit trail: never the key, only a digest prefix. */
export function keyLabel(key: string): string {
  return `key:${digest(key).toString('hex').slice(0, 12)}`;
}

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

export function createAuth(options: { apiKeys?: readonly string[]; adminKey?: string | undefined }): Auth {
  const pep = (options.apiKeys ?? []).map((k) => ({ hash: digest(k), label: keyLabel(k) }));
  const admin = options.adminKey === undefined ? undefined : { hash: digest(options.adminKey), label: 'admin' };
  const open = pep.length === 0 && admin === undefined;

  function check(authorization: string | undefined, scope: Scope): AuthResult {
    if (open) return { ok: true, caller: 'anonymous', admin: true };
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    if (m === null) return { ok: false, status: 401, message: 'missing bearer credential' };
    const presented = digest(m[1]!);
    // Compare against every key so that timing does not tell which one (if any) matched.
    let match: string | undefined;
    for (const k of pep) {
      if (timingSafeEqual(presented, k.hash) && match === undefined) match = k.label;
    }
    const isAdmin = admin !== undefined && timingSafeEqual(presented, admin.hash);
    if (isAdmin) return { ok: true, caller: admin.label, admin: true };
    if (match === undefined) return { ok: false, status: 401, message: 'invalid credential' };
    if (scope === 'admin') {
      return {
        ok: false,
        status: 403,
        message: admin === undefined ? 'the admin api is disabled: no admin key is configured' : 'this credential may not call the admin api',
      };
    }
    return { ok: true, caller: match, admin: false };
  }

  return { open, adminConfigured: admin !== undefined, check };
}
