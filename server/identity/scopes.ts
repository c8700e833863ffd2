// OAuth scopes as policy questions: the grammar of an AGP scope, its mapping to the
// (action, resource) a policy decides, and coverage between scopes (for delegated tokens).

export interface ScopeMap {
  /** Scope resource type → policy `resource.type`, e.g. `{ accounts: "account" }`. */
  resourceTypes?: Readonly<Record<string, string>>;
  /**
   * Scope action → policy `action`. A key `<scope type>:<scope action>` wins over a plain
   * `<scope action>` key, e.g. `{ "accounts:freeze": "freeze_account" }`.
   */
  actions?: Readonly<Record<string, string>>;
}

export interface ParsedScope {
  /** The scope as requested. */
  scope: string;
  /** The resource type as written in the scope. */
  type: string;
  /** `*` when the scope has two parts. */
  id: string;
  /** The action as written in the scope. */
  verb: string;
}

export interface ScopeQuestion {
  action: string;
  resource: { type: string; id: string };
}

export const MAX_SCOPES = 32;
const MAX_SCOPE_LENGTH = 256;
// RFC 6749 scope-token characters, minus the separator we use.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export type ScopeParse = { ok: true; scopes: ParsedScope[] } | { ok: false; message: string };

/**
 * `<type>:<action>` (any id) or `<type>:<id>:<action>`; the id is everything between the
 * first and the last colon, so ids may contain colons.
 */
export function parseScope(scope: string): ParsedScope | null {
  if (scope.length === 0 || scope.length > MAX_SCOPE_LENGTH || !SCOPE_TOKEN.test(scope)) return null;
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === scope.length - 1) return null;
  const type = scope.slice(0, first);
  const verb = scope.slice(last + 1);
  const id = first === last ? '*' : scope.slice(first + 1, last);
  if (id.length === 0) return null;
  return { scope, type, id, verb };
}

/** A space-separated `scope` parameter; duplicates collapse, order is kept. */
export function parseScopeParam(param: string): ScopeParse {
  const seen = new Set<string>();
  const scopes: ParsedScope[] = [];
  for (const part of param.split(' ')) {
    if (part === '' || seen.has(part)) continue;
    seen.add(part);
    const parsed = parseScope(part);
    if (!parsed) {
      return { ok: false, message: `scope \`${part.slice(0, 80)}\` is not \`<type>:<action>\` or \`<type>:<id>:<action>\`` };
    }
    scopes.push(parsed);
  }
  if (scopes.length === 0) return { ok: false, message: 'no scope requested' };
  if (scopes.length > MAX_SCOPES) return { ok: false, message: `at most ${MAX_SCOPES} scopes per request` };
  return { ok: true, scopes };
}

export function scopeQuestion(scope: ParsedScope, map: ScopeMap = {}): ScopeQuestion {
  const action = map.actions?.[`${scope.type}:${scope.verb}`] ?? map.actions?.[scope.verb] ?? scope.verb;
  const type = map.resourceTypes?.[scope.type] ?? scope.type;
  return { action, resource: { type, id: scope.id } };
}

/** Whether `held` (a granted scope) covers `wanted`: equal, or `held` is the any-id form. */
export function scopeCovers(held: ParsedScope, wanted: ParsedScope): boolean {
  return held.type === wanted.type && held.verb === wanted.verb && (held.id === '*' || held.id === wanted.id);
}

/** Whether a token's `scope` claim allows `action` on `resource` under `map`. */
export function scopeAllows(
  scopeClaim: string,
  action: string,
  resource: { type: string; id: string },
  map: ScopeMap = {},
): boolean {
  for (const part of scopeClaim.split(' ')) {
    const parsed = parseScope(part);
    if (!parsed) continue;
    const q = scopeQuestion(parsed, map);
    if (q.action === action && q.resource.type === resource.type && (q.resource.id === '*' || q.resource.id === resource.id)) {
      return true;
    }
  }
  return false;
}
