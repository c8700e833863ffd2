// The context store contract: agent inventory, elevation grants, behaviour analytics,
// revocations and a small namespaced key-value space for identity. Two implementations
// (embedded in-memory, Redis behind an in-process cache) pass the same contract tests.

import type { Json } from '../../engine/ir.js';

export interface AgentRecord {
  id: string;
  active: boolean;
  /** Registered attributes (owner, roles, model, trust, ...), JSON as the admin sent them. */
  attributes: { [k: string]: Json };
  createdAt: number;
  updatedAt: number;
}

export interface GrantRecord {
  id: string;
  agent: string;
  actions: string[];
  /** Glob over `type:id`, e.g. `account:991`. */
  resource: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  reason: string;
  approvedBy: string;
  createdAt: number;
}

export interface BehaviorFigures {
  /** Requests in the current minute. */
  rate: number;
  /** EWMA baseline of the per-minute rate. */
  baseline: number;
  /** (rate - baseline) / stddev, 0 while the baseline is still learning. */
  rate_z: number;
  /** Share of denied decisions over the recent window, 0..1. */
  deny_ratio: number;
  /** The agent has not touched this resource (type:id) before. */
  new_resource: boolean;
  /** The agent has not touched this resource type before. */
  new_resource_type: boolean;
}

/** What a decision needs about one agent. */
export type AgentContext =
  | { status: 'ok'; agent: AgentRecord; grants: readonly GrantRecord[]; stale: boolean }
  | { status: 'unknown' }
  | { status: 'inactive'; agent: AgentRecord }
  /** The store cannot answer and nothing cached is fresh enough: fail closed. */
  | { status: 'unavailable'; reason: string };

export type StoreState = 'ok' | 'degraded' | 'down';

export interface StoreHealth {
  kind: 'embedded' | 'redis';
  state: StoreState;
  detail?: string;
}

export interface AnomalyEvent {
  agent: string;
  kind: 'rate' | 'deny_ratio' | 'new_resource';
  value: number;
  threshold: number;
  at: number;
}

export interface Page<T> {
  items: T[];
  /** Opaque; absent on the last page. */
  next?: string;
}

export interface ContextStore {
  readonly kind: 'embedded' | 'redis';

  // ---- hot path (decisions)
  /** Synchronous on an in-process cache hit; a promise only on a miss. */
  agentContext(agentId: string, now: number): AgentContext | Promise<AgentContext>;
  /** In-process figures for the agent about to act on `resourceKey` (`type:id`). Never I/O. */
  behavior(agentId: string, resourceKey: string, now: number): BehaviorFigures;
  /** Counts a decision in-process; shared counters are flushed to Redis in batches. */
  recordDecision(agentId: string, resourceKey: string, allowed: boolean, now: number): void;

  // ---- inventory (admin)
  putAgent(id: string, attributes: { [k: string]: Json }, now: number): Promise<AgentRecord>;
  getAgent(id: string): Promise<AgentRecord | null>;
  setAgentActive(id: string, active: boolean, now: number): Promise<AgentRecord | null>;
  listAgents(cursor: string | undefined, limit: number): Promise<Page<AgentRecord>>;

  // ---- grants (admin)
  createGrant(grant: Omit<GrantRecord, 'id' | 'createdAt'>, now: number): Promise<GrantRecord>;
  revokeGrant(agentId: string, grantId: string): Promise<boolean>;
  listGrants(agentId: string, now: number): Promise<GrantRecord[]>;

  // ---- token revocation (identity); kept until the token would have expired
  revokeToken(jti: string, expiresAt: number): Promise<void>;
  isTokenRevoked(jti: string): Promise<boolean>;

  // ---- namespaced key-value space (identity keys, credentials, replay protection)
  kvGet(ns: string, key: string): Promise<string | null>;
  kvSet(ns: string, key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only if absent; true when this call set it (single-use `jti`s across replicas). */
  kvSetIfAbsent(ns: string, key: string, value: string, ttlMs: number): Promise<boolean>;
  kvDelete(ns: string, key: string): Promise<void>;
  kvList(ns: string): Promise<{ key: string; value: string }[]>;

  // ---- operations
  health(): StoreHealth;
  onAnomaly(listener: (event: AnomalyEvent) => void): void;
  close(): Promise<void>;
}
