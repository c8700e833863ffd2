// The Redis context store, shared by every AGP replica: agent records, grants (hash per agent,
// key TTL = latest expiry, pruned on read), token revocations and the key-value space live in
// Redis; an in-process LRU with TTL answers the hot path synchronously; every change is
// published on `<prefix>:changes` so that each replica drops its cached entry at once.
// Failure behaviour: commands fail fast (no offline queue, command timeout), cached context
// serves as `stale` up to `staleMaxMs`, anything else is `unavailable` (the server denies),
// and ioredis reconnects on its own. Nothing on the decision path throws.

import { randomUUID } from 'node:crypto';
import { Cluster, Redis, type ChainableCommander, type ClusterOptions, type RedisOptions } from 'ioredis';
import { BehaviorTracker, type BehaviorOptions, type FlushItem } from './behavior.js';
import { TtlLru } from './cache.js';
import { StoreInputError, StoreUnavailableError } from './errors.js';
import { keySpace, type KeySpace } from './keys.js';
import { activeGrants, byCreation, contextOf, decodeCursor, encodeCursor, newGrant, pageLimit, validateAgentId } from './records.js';
import type { Json } from '../../engine/ir.js';
import type {
  AgentContext, AgentRecord, AnomalyEvent, BehaviorFigures, ContextStore, GrantRecord, Page, StoreHealth,
} from './types.js';

export interface RedisStoreOptions {
  /** `redis://[user:pass@]host:port[/db]` (`rediss://` for TLS); with `cluster`, a comma-separated list of seed nodes. */
  url: string;
  /** Key prefix; default `agp` (keys look like `agp:{agent:<id>}:record`). */
  prefix?: string;
  /** Use ioredis' cluster client; `url` lists seed nodes. Default false. */
  cluster?: boolean;
  /** How long a cached agent context is served without asking Redis. Default 5,000 ms. */
  cacheTtlMs?: number;
  /** How old cached context may be when Redis is unreachable (served `stale: true`). Default 30,000 ms. */
  staleMaxMs?: number;
  /** Agents kept in the in-process cache. Default 10,000. */
  cacheMaxEntries?: number;
  /** A Redis command not answered within this fails (and the decision path falls back). Default 500 ms. */
  commandTimeoutMs?: number;
  /** TCP connect timeout. Default 2,000 ms. */
  connectTimeoutMs?: number;
  /** Upper bound of the delay between reconnect attempts. Default 2,000 ms. */
  maxReconnectDelayMs?: number;
  /** Period of the batched flush of behaviour counters. Default 250 ms. */
  flushIntervalMs?: number;
  /** Resource keys loaded from the shared set when this replica first sees an agent. Default 1,000. */
  hydrateLimit?: number;
  /** Behavioural analytics settings. */
  behavior?: BehaviorOptions;
  /** Called on connection state changes and background errors (never with secrets). */
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface RedisStoreStats {
  cacheHits: number;
  cacheMisses: number;
  staleServed: number;
  unavailable: number;
  redisErrors: number;
  flushes: number;
  flushErrors: number;
}

export interface RedisContextStore extends ContextStore {
  readonly kind: 'redis';
  /** Resolves true once commands and change notices both work; false after `timeoutMs`. */
  waitReady(timeoutMs?: number): Promise<boolean>;
  /** Sends queued behaviour counters now (tests, shutdown). */
  flush(): Promise<void>;
  stats(): RedisStoreStats;
}

type Client = Redis | Cluster;

interface Loaded {
  record: AgentRecord | null;
  /** Every grant read from Redis that had not expired by the wall clock. */
  grants: GrantRecord[];
  /** The last non-stale view, valid for request times in [viewFrom, viewUntil). */
  view: AgentContext | null;
  viewFrom: number;
  viewUntil: number;
}

interface Flight {
  promise: Promise<Loaded>;
  discarded: boolean;
}

/** `o` names the publishing store instance: it already applied the change to its own cache. */
type ChangeNotice = { o: string } & ({ k: 'a'; id: string } | { k: 't'; jti: string; exp: number });

/** Kept past the real expiry on Redis TTLs: reads filter by time, so clock skew only delays cleanup. */
const EXPIRY_GRACE_MS = 60_000;
const RATE_KEY_TTL_MS = 3 * 60_000;
const RESOURCE_SET_TTL_MS = 30 * 24 * 3600_000;
const MAX_REVOKED_CACHED = 100_000;
const GRANT_MAX_FIELD = '#max';

const ADD_GRANT_LUA = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], '${GRANT_MAX_FIELD}') or '0')
local exp = tonumber(ARGV[3])
if exp > cur then
  redis.call('HSET', KEYS[1], '${GRANT_MAX_FIELD}', ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], exp)
end
return 1`;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function parseNodes(url: string): { host: string; port: number }[] {
  return url.split(',').map((u) => {
    const parsed = new URL(u.trim());
    return { host: parsed.hostname, port: parsed.port === '' ? 6379 : Number(parsed.port) };
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis ${what} timed out after ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}

function parseRecord(raw: unknown): AgentRecord | null {
  if (typeof raw !== 'string') return null;
  return JSON.parse(raw) as AgentRecord;
}

export function createRedisStore(options: RedisStoreOptions): RedisContextStore {
  const keys: KeySpace = keySpace(options.prefix ?? 'agp');
  const cacheTtlMs = options.cacheTtlMs ?? 5_000;
  const staleMaxMs = Math.max(options.staleMaxMs ?? 30_000, cacheTtlMs);
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const maxReconnectDelayMs = options.maxReconnectDelayMs ?? 2_000;
  const hydrateLimit = options.hydrateLimit ?? 1_000;
  const isCluster = options.cluster === true;
  const log = options.log ?? ((): void => {});
  // Refresh a hot entry in the background before it expires, so hits stay synchronous.
  const refreshAheadMs = cacheTtlMs * 0.8;

  const instance = randomUUID();
  const cache = new TtlLru<Loaded>({ maxEntries: options.cacheMaxEntries ?? 10_000, ttlMs: cacheTtlMs });
  const inflight = new Map<string, Flight>();
  const revokedSeen = new Map<string, number>();
  const notRevoked = new TtlLru<true>({ maxEntries: options.cacheMaxEntries ?? 10_000, ttlMs: cacheTtlMs });
  const tracker = new BehaviorTracker({ ...options.behavior, shared: true });
  const stats: RedisStoreStats = {
    cacheHits: 0, cacheMisses: 0, staleServed: 0, unavailable: 0, redisErrors: 0, flushes: 0, flushErrors: 0,
  };

  const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), maxReconnectDelayMs);
  const baseOptions: RedisOptions = {
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy,
    // A reply error (READONLY, ...) fails that command only; it never triggers a reconnect.
    reconnectOnError: null,
  };
  // The subscriber only ever subscribes: queue that until connected, and never time it out.
  const { commandTimeout: _unused, ...subBase } = baseOptions;
  const subOptions: RedisOptions = { ...subBase, enableOfflineQueue: true };

  const makeClient = (opts: RedisOptions): Client => {
    if (!isCluster) return new Redis(options.url, opts);
    const first = new URL(options.url.split(',')[0]?.trim() ?? options.url);
    const redisOptions: RedisOptions = { ...opts };
    if (first.username !== '') redisOptions.username = decodeURIComponent(first.username);
    if (first.password !== '') redisOptions.password = decodeURIComponent(first.password);
    if (first.protocol === 'rediss:') redisOptions.tls = {};
    const clusterOptions: ClusterOptions = {
      redisOptions,
      enableOfflineQueue: opts.enableOfflineQueue ?? false,
      clusterRetryStrategy: retryStrategy,
      maxRedirections: 4,
    };
    return new Cluster(parseNodes(options.url), clusterOptions);
  };

  const client = makeClient(baseOptions);
  const sub = makeClient(subOptions);

  // ---- connection state
  let closed = false;
  let everReady = false;
  let downSince: number | null = Date.now();
  let lastError = '';
  let subscribed = false;
  let subEverReady = false;
  /** Entries stored before this time are not fresh (change notices may have been missed). */
  let freshAfter = 0;

  client.on('error', (err: unknown) => {
    stats.redisErrors++;
    const text = message(err);
    if (text !== lastError) log('warn', `redis: ${text}`);
    lastError = text;
  });
  client.on('ready', () => {
    if (downSince !== null && everReady) log('info', 'redis: reconnected');
    everReady = true;
    downSince = null;
  });
  const markDown = (): void => {
    if (downSince === null) {
      downSince = Date.now();
      if (!closed) log('warn', 'redis: connection lost, serving cached context');
    }
  };
  client.on('close', markDown);
  client.on('end', markDown);
  client.on('reconnecting', markDown);

  sub.on('error', (err: unknown) => {
    stats.redisErrors++;
    lastError = message(err);
  });
  sub.on('ready', () => {
    // Notices published while we were away are lost: nothing cached before now is fresh.
    if (subEverReady) {
      freshAfter = Date.now();
      subscribed = true;
    }
    subEverReady = true;
  });
  const subDown = (): void => { subscribed = false; };
  sub.on('close', subDown);
  sub.on('end', subDown);
  sub.on('message', (channel: string, text: string) => {
    if (channel !== keys.changes) return;
    let notice: ChangeNotice;
    try {
      notice = JSON.parse(text) as ChangeNotice;
    } catch {
      return;
    }
    if (notice.o === instance) return;
    if (notice.k === 'a' && typeof notice.id === 'string') invalidate(notice.id);
    else if (notice.k === 't' && typeof notice.jti === 'string') rememberRevoked(notice.jti, Number(notice.exp));
  });
  sub.subscribe(keys.changes).then(
    () => { subscribed = true; },
    (err: unknown) => { lastError = message(err); },
  );

  const ready = (): boolean => !closed && client.status === 'ready';

  // ---- cache

  function invalidate(agentId: string): void {
    cache.delete(agentId);
    const flight = inflight.get(agentId);
    if (flight !== undefined) {
      flight.discarded = true;
      inflight.delete(agentId);
    }
  }

  function rememberRevoked(jti: string, exp: number): void {
    notRevoked.delete(jti);
    if (!(exp > Date.now())) return;
    revokedSeen.set(jti, exp);
    if (revokedSeen.size > MAX_REVOKED_CACHED) {
      const oldest = revokedSeen.keys().next();
      if (oldest.done !== true) revokedSeen.delete(oldest.value);
    }
  }

  function view(loaded: Loaded, now: number, stale: boolean): AgentContext {
    if (!stale && loaded.view !== null && now >= loaded.viewFrom && now < loaded.viewUntil) return loaded.view;
    const grants = activeGrants(loaded.grants, now);
    const ctx = contextOf(loaded.record, grants, stale);
    if (!stale) {
      let until = Infinity;
      for (const g of grants) if (g.expiresAt < until) until = g.expiresAt;
      loaded.view = ctx;
      loaded.viewFrom = now;
      loaded.viewUntil = until;
    }
    return ctx;
  }

  function fallback(agentId: string, now: number, reason: string): AgentContext {
    const entry = cache.peek(agentId);
    if (entry !== undefined && Date.now() - entry.storedAt < staleMaxMs) {
      stats.staleServed++;
      return view(entry.value, now, true);
    }
    stats.unavailable++;
    return { status: 'unavailable', reason };
  }

  async function fetchContext(agentId: string): Promise<Loaded> {
    const hydrate = !tracker.isHydrated(agentId);
    const pipe = client.pipeline();
    pipe.get(keys.agentRecord(agentId));
    pipe.hgetall(keys.agentGrants(agentId));
    if (hydrate) {
      pipe.srandmember(keys.agentResources(agentId), hydrateLimit);
      pipe.srandmember(keys.agentResourceTypes(agentId), hydrateLimit);
    }
    const replies = await withTimeout(pipe.exec(), commandTimeoutMs, 'read');
    if (replies === null) throw new Error('redis pipeline was discarded');
    for (const [err] of replies) if (err !== null) throw err;
    const record = parseRecord(replies[0]?.[1]);
    const hash = (replies[1]?.[1] ?? {}) as Record<string, string>;
    const realNow = Date.now();
    const grants: GrantRecord[] = [];
    const expired: string[] = [];
    for (const [field, raw] of Object.entries(hash)) {
      if (field === GRANT_MAX_FIELD) continue;
      const grant = JSON.parse(raw) as GrantRecord;
      if (grant.expiresAt > realNow) grants.push(grant);
      else expired.push(field);
    }
    grants.sort(byCreation);
    if (expired.length > 0) prune(agentId, expired);
    if (hydrate) {
      const resources = (replies[2]?.[1] ?? []) as string[];
      const types = (replies[3]?.[1] ?? []) as string[];
      tracker.hydrate(agentId, resources, types);
    }
    return { record, grants, view: null, viewFrom: 0, viewUntil: 0 };
  }

  function prune(agentId: string, fields: string[]): void {
    client.hdel(keys.agentGrants(agentId), ...fields).catch(() => { stats.redisErrors++; });
  }

  function load(agentId: string): Promise<Loaded> {
    const existing = inflight.get(agentId);
    if (existing !== undefined) return existing.promise;
    const startedAt = Date.now();
    const flight: Flight = { promise: Promise.resolve(null as unknown as Loaded), discarded: false };
    flight.promise = fetchContext(agentId).then(
      (loaded) => {
        if (!flight.discarded) cache.set(agentId, loaded, startedAt);
        if (inflight.get(agentId) === flight) inflight.delete(agentId);
        return loaded;
      },
      (err: unknown) => {
        if (inflight.get(agentId) === flight) inflight.delete(agentId);
        throw err instanceof Error ? err : new Error(String(err));
      },
    );
    inflight.set(agentId, flight);
    return flight.promise;
  }

  // ---- admin helpers

  async function write<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreUnavailableError('the context store is closed');
    if (!ready()) throw new StoreUnavailableError(`the context store is unavailable: cannot ${what} while redis is unreachable`);
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreInputError || err instanceof StoreUnavailableError) throw err;
      stats.redisErrors++;
      throw new StoreUnavailableError(`the context store is unavailable: cannot ${what}`, { cause: err });
    }
  }

  async function publish(notice: ChangeNotice): Promise<void> {
    try {
      await client.publish(keys.changes, JSON.stringify(notice));
    } catch (err) {
      // The write itself succeeded; other replicas catch up within their cache TTL.
      stats.redisErrors++;
      log('warn', `redis: change notice not published: ${message(err)}`);
    }
  }

  async function readRecord(id: string): Promise<AgentRecord | null> {
    return parseRecord(await client.get(keys.agentRecord(id)));
  }

  async function saveRecord(record: AgentRecord): Promise<void> {
    await Promise.all([
      client.set(keys.agentRecord(record.id), JSON.stringify(record)),
      client.zadd(keys.agentIndex, 0, record.id),
    ]);
    invalidate(record.id);
    await publish({ o: instance, k: 'a', id: record.id });
  }

  async function readGrants(agentId: string): Promise<GrantRecord[]> {
    const hash = await client.hgetall(keys.agentGrants(agentId));
    const out: GrantRecord[] = [];
    for (const [field, raw] of Object.entries(hash)) {
      if (field !== GRANT_MAX_FIELD) out.push(JSON.parse(raw) as GrantRecord);
    }
    return out;
  }

  async function scanAll(pattern: string): Promise<string[]> {
    const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    const found = new Set<string>();
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        for (const k of batch) found.add(k);
      } while (cursor !== '0');
    }
    return [...found];
  }

  // ---- behaviour flush

  let flushing: Promise<void> | null = null;

  /**
   * Queues one agent's commands. The first reply is the shared per-minute total; with a
   * window, the two replies at `window` (relative to the first) are the bucket's shared
   * decisions and denials (HINCRBY by 0 reads them).
   */
  function queueItem(pipe: ChainableCommander, item: FlushItem): { n: number; window: number } {
    let n = 1;
    const rateKey = keys.agentRate(item.agent, item.minute);
    if (item.delta > 0) {
      pipe.incrby(rateKey, item.delta);
      pipe.pexpire(rateKey, RATE_KEY_TTL_MS);
      n++;
    } else {
      pipe.get(rateKey);
    }
    if (item.resources.length > 0) {
      pipe.sadd(keys.agentResources(item.agent), ...item.resources);
      pipe.pexpire(keys.agentResources(item.agent), RESOURCE_SET_TTL_MS);
      n += 2;
    }
    if (item.types.length > 0) {
      pipe.sadd(keys.agentResourceTypes(item.agent), ...item.types);
      pipe.pexpire(keys.agentResourceTypes(item.agent), RESOURCE_SET_TTL_MS);
      n += 2;
    }
    let window = -1;
    if (item.window !== undefined) {
      const key = keys.agentDenyWindow(item.agent, item.window.epoch);
      window = n;
      pipe.hincrby(key, 't', item.window.total);
      pipe.hincrby(key, 'd', item.window.denied);
      pipe.pexpire(key, tracker.windowKeyTtlMs);
      n += 3;
    }
    return { n, window };
  }

  async function runFlush(items: FlushItem[]): Promise<void> {
    // In a cluster a pipeline must stay within one slot: one pipeline per agent (its hash tag).
    const groups: FlushItem[][] = isCluster ? items.map((i) => [i]) : [items];
    await Promise.all(groups.map(async (group) => {
      const pipe = client.pipeline();
      const firstReply: number[] = [];
      const windowReply: number[] = [];
      let queued = 0;
      for (const item of group) {
        firstReply.push(queued);
        const q = queueItem(pipe, item);
        windowReply.push(q.window < 0 ? -1 : queued + q.window);
        queued += q.n;
      }
      const replies = await withTimeout(pipe.exec(), commandTimeoutMs * 2, 'flush');
      if (replies === null) throw new Error('redis pipeline was discarded');
      group.forEach((item, i) => {
        const reply = replies[firstReply[i] ?? -1];
        if (reply !== undefined && reply[0] === null) tracker.applyTotal(item.agent, item.minute, Number(reply[1] ?? 0), item.delta);
        const w = windowReply[i] ?? -1;
        const total = replies[w];
        const denied = replies[w + 1];
        if (item.window !== undefined && total !== undefined && denied !== undefined && total[0] === null && denied[0] === null) {
          tracker.applyWindow(item.agent, item.window.epoch, Number(total[1] ?? 0), Number(denied[1] ?? 0), item.window.total, item.window.denied);
        }
      });
      for (const [err] of replies) if (err !== null) throw err;
    }));
  }

  function flush(): Promise<void> {
    if (flushing !== null) return flushing;
    if (!ready()) return Promise.resolve();
    const items = tracker.drain(readBackCycles);
    if (items.length === 0) return Promise.resolve();
    stats.flushes++;
    flushing = runFlush(items)
      .catch((err: unknown) => {
        // Shared counters miss this batch; the local figures are intact.
        stats.flushErrors++;
        log('warn', `redis: behaviour flush failed: ${message(err)}`);
      })
      .finally(() => { flushing = null; });
    return flushing;
  }

  const flushIntervalMs = options.flushIntervalMs ?? 250;
  // Agents with a local request in the last minute get their shared total read back.
  const readBackCycles = Math.max(1, Math.ceil(60_000 / flushIntervalMs));
  let sweepAt = Date.now();
  const timer = setInterval(() => {
    void flush();
    const now = Date.now();
    if (now - sweepAt > 30_000) {
      sweepAt = now;
      cache.prune(now, staleMaxMs);
      for (const [jti, exp] of revokedSeen) if (exp <= now) revokedSeen.delete(jti);
    }
  }, flushIntervalMs);
  timer.unref();

  // ---- the store

  const store: RedisContextStore = {
    kind: 'redis',

    agentContext(agentId: string, now: number): AgentContext | Promise<AgentContext> {
      try {
        const realNow = Date.now();
        const entry = cache.entry(agentId);
        if (entry !== undefined && entry.storedAt >= freshAfter) {
          const age = realNow - entry.storedAt;
          if (age < cacheTtlMs) {
            stats.cacheHits++;
            if (age >= refreshAheadMs && ready() && !inflight.has(agentId)) {
              load(agentId).catch(() => { stats.redisErrors++; });
            }
            return view(entry.value, now, false);
          }
        }
        stats.cacheMisses++;
        if (closed) return { status: 'unavailable', reason: 'context store closed' };
        if (!ready()) return fallback(agentId, now, 'context store unreachable');
        return load(agentId).then(
          (loaded) => view(loaded, now, false),
          (err: unknown) => {
            stats.redisErrors++;
            return fallback(agentId, now, `context store error: ${message(err)}`);
          },
        );
      } catch (err) {
        return { status: 'unavailable', reason: `context store error: ${message(err)}` };
      }
    },

    behavior(agentId: string, resourceKey: string, now: number): BehaviorFigures {
      return tracker.figures(agentId, resourceKey, now);
    },

    recordDecision(agentId: string, resourceKey: string, allowed: boolean, now: number): void {
      tracker.record(agentId, resourceKey, allowed, now);
    },

    putAgent(id: string, attributes: { [k: string]: Json }, now: number): Promise<AgentRecord> {
      return write('register the agent', async () => {
        validateAgentId(id);
        const previous = await readRecord(id);
        const record: AgentRecord = {
          id,
          active: previous?.active ?? true,
          attributes: structuredClone(attributes),
          createdAt: previous?.createdAt ?? now,
          updatedAt: now,
        };
        await saveRecord(record);
        return record;
      });
    },

    async getAgent(id: string): Promise<AgentRecord | null> {
      return write('read the agent', () => readRecord(id));
    },

    setAgentActive(id: string, active: boolean, now: number): Promise<AgentRecord | null> {
      return write('change the agent', async () => {
        const previous = await readRecord(id);
        if (previous === null) return null;
        const record: AgentRecord = { ...previous, active, updatedAt: now };
        await saveRecord(record);
        return record;
      });
    },

    listAgents(cursor: string | undefined, limit: number): Promise<Page<AgentRecord>> {
      return write('list agents', async () => {
        const after = decodeCursor(cursor);
        const n = pageLimit(limit);
        const ids = await client.zrangebylex(keys.agentIndex, after === undefined ? '-' : `(${after}`, '+', 'LIMIT', 0, n + 1);
        const page = ids.slice(0, n);
        const raws = await Promise.all(page.map((id) => client.get(keys.agentRecord(id))));
        const items = raws.map(parseRecord).filter((r): r is AgentRecord => r !== null);
        const last = page[page.length - 1];
        return ids.length > n && last !== undefined ? { items, next: encodeCursor(last) } : { items };
      });
    },

    createGrant(input: Omit<GrantRecord, 'id' | 'createdAt'>, now: number): Promise<GrantRecord> {
      return write('create the grant', async () => {
        const grant = newGrant(input, now);
        await client.eval(
          ADD_GRANT_LUA, 1, keys.agentGrants(grant.agent),
          grant.id, JSON.stringify(grant), String(Math.max(grant.expiresAt, Date.now()) + EXPIRY_GRACE_MS),
        );
        invalidate(grant.agent);
        await publish({ o: instance, k: 'a', id: grant.agent });
        return grant;
      });
    },

    revokeGrant(agentId: string, grantId: string): Promise<boolean> {
      return write('revoke the grant', async () => {
        if (grantId === GRANT_MAX_FIELD) return false;
        const removed = await client.hdel(keys.agentGrants(agentId), grantId);
        invalidate(agentId);
        await publish({ o: instance, k: 'a', id: agentId });
        return removed > 0;
      });
    },

    listGrants(agentId: string, now: number): Promise<GrantRecord[]> {
      return write('list grants', async () => {
        const all = await readGrants(agentId);
        const realNow = Date.now();
        const expired = all.filter((g) => g.expiresAt <= realNow).map((g) => g.id);
        if (expired.length > 0) prune(agentId, expired);
        return activeGrants(all, now);
      });
    },

    revokeToken(jti: string, expiresAt: number): Promise<void> {
      return write('revoke the token', async () => {
        const ttl = expiresAt - Date.now();
        if (!(ttl > 0)) return;
        await client.set(keys.revokedToken(jti), String(expiresAt), 'PX', Math.ceil(ttl + EXPIRY_GRACE_MS));
        rememberRevoked(jti, expiresAt);
        await publish({ o: instance, k: 't', jti, exp: expiresAt });
      });
    },

    async isTokenRevoked(jti: string): Promise<boolean> {
      const now = Date.now();
      const exp = revokedSeen.get(jti);
      if (exp !== undefined) {
        if (exp > now) return true;
        revokedSeen.delete(jti);
      }
      const negative = notRevoked.peek(jti);
      if (negative !== undefined && negative.storedAt >= freshAfter && now - negative.storedAt < cacheTtlMs) return false;
      if (ready()) {
        try {
          const startedAt = Date.now();
          const raw = await client.get(keys.revokedToken(jti));
          // The key outlives the token by a grace period; the stored expiry is what counts.
          if (raw !== null && Number(raw) > Date.now()) {
            rememberRevoked(jti, Number(raw));
            return true;
          }
          // A notice may have arrived while we waited: it wins over the read.
          const seen = revokedSeen.get(jti);
          if (seen !== undefined && seen > Date.now()) return true;
          notRevoked.set(jti, true, startedAt);
          return false;
        } catch (err) {
          stats.redisErrors++;
          lastError = message(err);
        }
      }
      // Same staleness bound as agent context; beyond it the caller must refuse the token.
      if (negative !== undefined && Date.now() - negative.storedAt < staleMaxMs) return false;
      throw new StoreUnavailableError('the context store is unavailable: cannot check token revocation');
    },

    kvGet(ns: string, key: string): Promise<string | null> {
      return write('read the key', () => client.get(keys.kv(ns, key)));
    },

    kvSet(ns: string, key: string, value: string, ttlMs?: number): Promise<void> {
      return write('write the key', async () => {
        if (ttlMs === undefined) await client.set(keys.kv(ns, key), value);
        else if (!(ttlMs > 0)) throw new StoreInputError('a key-value TTL must be positive');
        else await client.set(keys.kv(ns, key), value, 'PX', Math.ceil(ttlMs));
      });
    },

    kvSetIfAbsent(ns: string, key: string, value: string, ttlMs: number): Promise<boolean> {
      return write('write the key', async () => {
        if (!(ttlMs > 0)) throw new StoreInputError('a key-value TTL must be positive');
        const reply = await client.set(keys.kv(ns, key), value, 'PX', Math.ceil(ttlMs), 'NX');
        return reply === 'OK';
      });
    },

    kvDelete(ns: string, key: string): Promise<void> {
      return write('delete the key', async () => { await client.del(keys.kv(ns, key)); });
    },

    kvList(ns: string): Promise<{ key: string; value: string }[]> {
      return write('list keys', async () => {
        const found = (await scanAll(keys.kvPattern(ns))).sort();
        if (found.length === 0) return [];
        const values: (string | null)[] = [];
        // One namespace is one hash slot, so MGET works on a cluster too.
        for (let i = 0; i < found.length; i += 500) values.push(...await client.mget(found.slice(i, i + 500)));
        const out: { key: string; value: string }[] = [];
        found.forEach((k, i) => {
          const v = values[i];
          if (typeof v === 'string') out.push({ key: keys.kvKeyFrom(ns, k), value: v });
        });
        return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      });
    },

    health(): StoreHealth {
      if (closed) return { kind: 'redis', state: 'down', detail: 'closed' };
      if (!ready()) {
        const since = downSince ?? Date.now();
        const why = lastError === '' ? client.status : lastError;
        if (everReady && Date.now() - since < staleMaxMs) {
          return { kind: 'redis', state: 'degraded', detail: `redis unreachable (${why}); serving cached context up to ${staleMaxMs} ms old` };
        }
        return { kind: 'redis', state: 'down', detail: `redis unreachable (${why})` };
      }
      if (!subscribed) {
        return { kind: 'redis', state: 'degraded', detail: `change notices unavailable; cached context lives up to ${cacheTtlMs} ms` };
      }
      return { kind: 'redis', state: 'ok' };
    },

    onAnomaly(listener: (event: AnomalyEvent) => void): void {
      tracker.onAnomaly(listener);
    },

    waitReady(timeoutMs = 5_000): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      return new Promise((resolve) => {
        const poll = (): void => {
          if (ready() && subscribed) resolve(true);
          else if (closed || Date.now() >= deadline) resolve(false);
          else setTimeout(poll, 10);
        };
        poll();
      });
    },

    flush,

    stats(): RedisStoreStats {
      return { ...stats };
    },

    async close(): Promise<void> {
      if (closed) return;
      clearInterval(timer);
      try {
        await withTimeout(flush(), commandTimeoutMs * 2, 'final flush');
      } catch {
        // Best effort: shutting down must not wait on a dead Redis.
      }
      closed = true;
      const quit = async (c: Client): Promise<void> => {
        if (c.status === 'ready') {
          try {
            await withTimeout(c.quit(), commandTimeoutMs, 'quit');
            return;
          } catch {
            // fall through to a hard disconnect
          }
        }
        c.disconnect();
      };
      await Promise.all([quit(client), quit(sub)]);
    },
  };
  return store;
}
