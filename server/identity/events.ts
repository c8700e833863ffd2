// What identity reports to the audit log. Events name agents, key thumbprints, secret ids
// and token `jti`s — never a secret, an assertion or a token. Values a caller claimed but
// nobody verified are cut to a short prefix and a digest before they get here.

import { createHash } from 'node:crypto';

export type CredentialMethod = 'private_key_jwt' | 'client_secret';

export type IdentityAuditEvent =
  | { kind: 'credential_used'; agent: string; method: CredentialMethod; credential: string; jti?: string; at: number }
  | {
      kind: 'credential_rejected';
      /** The agent the caller claimed to be (unverified: see `unverifiedText`). */
      agent?: string;
      method: CredentialMethod;
      reason: string;
      /** The caller's address: the audit's flood-control key for these lines. */
      address?: string;
      at: number;
    }
  | { kind: 'credential_registered'; agent: string; method: CredentialMethod; credential: string; at: number }
  | { kind: 'credential_revoked'; agent: string; method: CredentialMethod; credential: string; at: number }
  | { kind: 'credential_settings'; agent: string; dpop_bound_access_tokens: boolean; at: number }
  | {
      kind: 'token_issued';
      agent: string;
      sub: string;
      /** Actors, outermost first, when the agent acts for someone. */
      act?: string[];
      jti: string;
      /** The `jti` of the token it was exchanged from. */
      parent?: string;
      /** The DPoP key it is bound to. */
      jkt?: string;
      scope: string;
      aud: string | string[];
      exp: number;
      decision_ids: string[];
      at: number;
    }
  | { kind: 'token_refused'; agent: string; sub: string; error: string; scopes: string[]; decision_ids: string[]; at: number }
  | { kind: 'token_revoked'; agent: string; jti: string; by: string; at: number }
  | { kind: 'key_rotated'; kid: string; previous?: string; forced: boolean; at: number }
  | { kind: 'key_retired'; kid: string; at: number };

export type IdentityAudit = (event: IdentityAuditEvent) => void;

/** Longest unverified value written whole. */
export const UNVERIFIED_PREFIX = 64;

/**
 * An unverified claim as the audit may keep it: whole when short, else its first 64
 * characters, `…`, and the first 16 characters of its SHA-256 (base64url) — enough to tell
 * two values apart, never kilobytes of whatever a caller sent.
 */
export function unverifiedText(value: string): string {
  if (value.length <= UNVERIFIED_PREFIX) return value;
  const digest = createHash('sha256').update(value, 'utf8').digest('base64url').slice(0, 16);
  return `${value.slice(0, UNVERIFIED_PREFIX)}…sha256:${digest}`;
}

/** The audit's flood-control key for an event, when it is one a stranger can cause at will. */
export function auditFloodKey(event: IdentityAuditEvent): string | undefined {
  return event.kind === 'credential_rejected' ? `identity:${event.address ?? 'unknown'}` : undefined;
}
