// What identity reports to the audit log. Events name agents, key thumbprints, secret ids
// and token `jti`s — never a secret, an assertion or a token.

export type CredentialMethod = 'private_key_jwt' | 'client_secret';

export type IdentityAuditEvent =
  | { kind: 'credential_used'; agent: string; method: CredentialMethod; credential: string; jti?: string; at: number }
  | { kind: 'credential_rejected'; agent?: string; method: CredentialMethod; reason: string; at: number }
  | { kind: 'credential_registered'; agent: string; method: CredentialMethod; credential: string; at: number }
  | { kind: 'credential_revoked'; agent: string; method: CredentialMethod; credential: string; at: number }
  | {
      kind: 'token_issued';
      agent: string;
      sub: string;
      /** Actors, outermost first, when the agent acts for someone. */
      act?: string[];
      jti: string;
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
