// Redis key naming for the context store. Every key of one agent carries the hash tag
// `{agent:<id>}`, so a Redis Cluster keeps all of them in one slot (one pipeline per agent);
// ids are escaped so that `{`, `}`, `:` and glob characters in an id can neither move the
// tag nor make two agents' keys collide.

/** Characters with a meaning in key names: `%` (the escape), hash-tag braces, `:`, glob. */
const SPECIAL = /[%{}:*?[\]\\]/g;

/** Reversible escaping of one key component: special characters become `%XX`. */
export function escapeKeyPart(part: string): string {
  return part.replace(SPECIAL, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

export function unescapeKeyPart(part: string): string {
  return part.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Escapes Redis glob characters so that a literal prefix can start a `SCAN MATCH` pattern. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => '\\' + c);
}

export interface KeySpace {
  /** The prefix without a trailing `:`, e.g. `agp`. */
  readonly base: string;
  /** Pub/sub channel carrying change notices. */
  readonly changes: string;
  /** Sorted set (all scores 0) of every registered agent id, paged by lex range. */
  readonly agentIndex: string;
  /** The hash tag shared by every key of one agent: `{agent:<escaped id>}`. */
  agentTag(agentId: string): string;
  /** JSON AgentRecord. */
  agentRecord(agentId: string): string;
  /** Hash grant id → JSON GrantRecord (plus the `#max` expiry field); key TTL = latest expiry. */
  agentGrants(agentId: string): string;
  /** Shared per-minute request counter (INCRBY from every replica). */
  agentRate(agentId: string, minute: number): string;
  /** Shared decisions (`t`) and denials (`d`) of one deny-window bucket (HINCRBY from every replica). */
  agentDenyWindow(agentId: string, epoch: number): string;
  /** Set of resource keys (`type:id`) the agent has touched. */
  agentResources(agentId: string): string;
  /** Set of resource types the agent has touched. */
  agentResourceTypes(agentId: string): string;
  /** Present while the token `jti` is revoked (TTL until the token expires). */
  revokedToken(jti: string): string;
  /** A key of the key-value space; one namespace shares a slot (`{kv:<ns>}`). */
  kv(ns: string, key: string): string;
  /** `SCAN MATCH` pattern for every key of one namespace. */
  kvPattern(ns: string): string;
  /** `SCAN MATCH` pattern for every key under the prefix (cleanup, tests). */
  allPattern(): string;
  /** Recovers the key of the key-value space from a full Redis key of namespace `ns`. */
  kvKeyFrom(ns: string, redisKey: string): string;
}

/**
 * Key names under `prefix` (`agp`, `agp:` and `agptest:x1:` all work: trailing colons are
 * dropped). A prefix may not contain `{` or `}`: it would change the hash tag.
 */
export function keySpace(prefix = 'agp'): KeySpace {
  const base = prefix.replace(/:+$/, '');
  if (base.length === 0 || /[{}]/.test(base)) {
    throw new Error(`invalid redis key prefix \`${prefix}\`: it must be non-empty and contain no \`{\` or \`}\``);
  }
  const tag = (agentId: string): string => `{agent:${escapeKeyPart(agentId)}}`;
  const kvBase = (ns: string): string => `${base}:{kv:${escapeKeyPart(ns)}}:`;
  return {
    base,
    changes: `${base}:changes`,
    agentIndex: `${base}:agents`,
    agentTag: tag,
    agentRecord: (id) => `${base}:${tag(id)}:record`,
    agentGrants: (id) => `${base}:${tag(id)}:grants`,
    agentRate: (id, minute) => `${base}:${tag(id)}:rate:${minute}`,
    agentDenyWindow: (id, epoch) => `${base}:${tag(id)}:deny:${epoch}`,
    agentResources: (id) => `${base}:${tag(id)}:resources`,
    agentResourceTypes: (id) => `${base}:${tag(id)}:types`,
    revokedToken: (jti) => `${base}:revoked:${escapeKeyPart(jti)}`,
    kv: (ns, key) => kvBase(ns) + escapeKeyPart(key),
    kvPattern: (ns) => escapeGlob(kvBase(ns)) + '*',
    allPattern: () => escapeGlob(base + ':') + '*',
    kvKeyFrom: (ns, redisKey) => unescapeKeyPart(redisKey.slice(kvBase(ns).length)),
  };
}
