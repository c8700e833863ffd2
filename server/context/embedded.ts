// The embedded context store: everything in process memory, for a single AGP node with no
// Redis configured. Expiry is checked on every read against the caller's `now` (grants) or the
// wall clock (kv entries, token revocations), and a cheap periodic sweep frees expired entries.

import { BehaviorTracker, type BehaviorOptions } from './behavior.js';
import { StoreInputError } from './errors.js';
import { activeGrants, contextOf, decodeCursor, encodeCursor, newGrant, pageLimit, validateAgentId } from './records.js';
import type { Json } from '../../engine/ir.js';
import type {
  AgentContext, AgentRecord, AnomalyEvent, BehaviorFigures, ContextStore, GrantRecord, Page, StoreHealth,
} from './types.js';

export interface EmbeddedStoreOptions {
  /** Behavioural analytics settings (thresholds, warm-up, bounds). */
  behavior?: BehaviorOptions;
  /** Period of the expiry sweep. Default 30 s. */
  sweepIntervalMs?: number;
}

interface KvEntry {
  value: string;
  /** Epoch milliseconds; Infinity when the entry has no TTL. */
  expiresAt: number;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export function createEmbeddedStore(options: EmbeddedStoreOptions = {}): ContextStore {
  const agents = new Map<string, AgentRecord>();
  const grants = new Map<string, Map<string, GrantRecord>>();
  const revoked = new Map<string, number>();
  const kv = new Map<string, Map<string, KvEntry>>();
  const tracker = new BehaviorTracker({ ...options.behavior, shared: false });
  let closed = false;

  const sweep = (): void => {
    const now = Date.now();
    for (const [agent, byId] of grants) {
      for (const [id, g] of byId) if (g.expiresAt <= now) byId.delete(id);
      if (byId.size === 0) grants.delete(agent);
    }
    for (const [jti, exp] of revoked) if (exp <= now) revoked.delete(jti);
    for (const [ns, entries] of kv) {
      for (const [key, e] of entries) if (e.expiresAt <= now) entries.delete(key);
      if (entries.size === 0) kv.delete(ns);
    }
  };
  const timer = setInterval(sweep, options.sweepIntervalMs ?? 30_000);
  timer.unref();

  const liveKv = (ns: string, key: string): KvEntry | undefined => {
    const entry = kv.get(ns)?.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      kv.get(ns)?.delete(key);
      return undefined;
    }
    return entry;
  };
  const setKv = (ns: string, key: string, value: string, ttlMs: number | undefined): void => {
    if (ttlMs !== undefined && !(ttlMs > 0)) throw new StoreInputError('a key-value TTL must be positive');
    let entries = kv.get(ns);
    if (entries === undefined) kv.set(ns, (entries = new Map()));
    entries.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : Date.now() + ttlMs });
  };

  const store: ContextStore = {
    kind: 'embedded',

    agentContext(agentId: string, now: number): AgentContext {
      const record = agents.get(agentId) ?? null;
      const byId = grants.get(agentId);
      return contextOf(record, byId === undefined ? [] : activeGrants(byId.values(), now), false);
    },

    behavior(agentId: string, resourceKey: string, now: number): BehaviorFigures {
      return tracker.figures(agentId, resourceKey, now);
    },

    recordDecision(agentId: string, resourceKey: string, allowed: boolean, now: number): void {
      tracker.record(agentId, resourceKey, allowed, now);
    },

    async putAgent(id: string, attributes: { [k: string]: Json }, now: number): Promise<AgentRecord> {
      validateAgentId(id);
      const previous = agents.get(id);
      const record = deepFreeze<AgentRecord>({
        id,
        active: previous?.active ?? true,
        attributes: structuredClone(attributes),
        createdAt: previous?.createdAt ?? now,
        updatedAt: now,
      });
      agents.set(id, record);
      return record;
    },

    async getAgent(id: string): Promise<AgentRecord | null> {
      return agents.get(id) ?? null;
    },

    async setAgentActive(id: string, active: boolean, now: number): Promise<AgentRecord | null> {
      const previous = agents.get(id);
      if (previous === undefined) return null;
      const record = deepFreeze<AgentRecord>({ ...previous, active, updatedAt: now });
      agents.set(id, record);
      return record;
    },

    async listAgents(cursor: string | undefined, limit: number): Promise<Page<AgentRecord>> {
      const after = decodeCursor(cursor);
      const n = pageLimit(limit);
      const ids = [...agents.keys()].filter((id) => after === undefined || id > after).sort();
      const items = ids.slice(0, n).map((id) => agents.get(id)).filter((r): r is AgentRecord => r !== undefined);
      const last = items[items.length - 1];
      return ids.length > n && last !== undefined ? { items, next: encodeCursor(last.id) } : { items };
    },

    async createGrant(input: Omit<GrantRecord, 'id' | 'createdAt'>, now: number): Promise<GrantRecord> {
      const grant = deepFreeze(newGrant(input, now));
      let byId = grants.get(grant.agent);
      if (byId === undefined) grants.set(grant.agent, (byId = new Map()));
      byId.set(grant.id, grant);
      return grant;
    },

    async revokeGrant(agentId: string, grantId: string): Promise<boolean> {
      const byId = grants.get(agentId);
      return byId?.delete(grantId) ?? false;
    },

    async listGrants(agentId: string, now: number): Promise<GrantRecord[]> {
      const byId = grants.get(agentId);
      return byId === undefined ? [] : activeGrants(byId.values(), now);
    },

    async revokeToken(jti: string, expiresAt: number): Promise<void> {
      if (expiresAt > Date.now()) revoked.set(jti, Math.max(expiresAt, revoked.get(jti) ?? 0));
    },

    async isTokenRevoked(jti: string): Promise<boolean> {
      const exp = revoked.get(jti);
      return exp !== undefined && exp > Date.now();
    },

    async kvGet(ns: string, key: string): Promise<string | null> {
      return liveKv(ns, key)?.value ?? null;
    },

    async kvSet(ns: string, key: string, value: string, ttlMs?: number): Promise<void> {
      setKv(ns, key, value, ttlMs);
    },

    async kvSetIfAbsent(ns: string, key: string, value: string, ttlMs: number): Promise<boolean> {
      if (liveKv(ns, key) !== undefined) return false;
      setKv(ns, key, value, ttlMs);
      return true;
    },

    async kvDelete(ns: string, key: string): Promise<void> {
      kv.get(ns)?.delete(key);
    },

    async kvList(ns: string): Promise<{ key: string; value: string }[]> {
      const entries = kv.get(ns);
      if (entries === undefined) return [];
      const now = Date.now();
      const out: { key: string; value: string }[] = [];
      for (const [key, e] of entries) if (e.expiresAt > now) out.push({ key, value: e.value });
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    health(): StoreHealth {
      return closed ? { kind: 'embedded', state: 'down', detail: 'closed' } : { kind: 'embedded', state: 'ok' };
    },

    onAnomaly(listener: (event: AnomalyEvent) => void): void {
      tracker.onAnomaly(listener);
    },

    async close(): Promise<void> {
      closed = true;
      clearInterval(timer);
    },
  };
  return store;
}
