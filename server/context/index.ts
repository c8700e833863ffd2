// The context store's entry point: picks the Redis store when a URL is configured and the
// embedded in-memory store otherwise, and re-exports the store's public pieces.

import type { BehaviorOptions } from './behavior.js';
import { createEmbeddedStore } from './embedded.js';
import { createRedisStore, type RedisStoreOptions } from './redis.js';
import type { ContextStore } from './types.js';

export type * from './types.js';
export { createEmbeddedStore, type EmbeddedStoreOptions } from './embedded.js';
export { createRedisStore, type RedisContextStore, type RedisStoreOptions, type RedisStoreStats } from './redis.js';
export { BehaviorTracker, type BehaviorOptions, type FlushItem } from './behavior.js';
export { TtlLru, type CacheEntry, type TtlLruOptions } from './cache.js';
export { keySpace, escapeKeyPart, unescapeKeyPart, escapeGlob, type KeySpace } from './keys.js';
export { StoreInputError, StoreUnavailableError } from './errors.js';
export { activeGrants } from './records.js';

export interface ContextStoreConfig {
  /** `AGP_REDIS_URL`; no URL means the embedded store (single node). */
  redisUrl?: string;
  /** `AGP_REDIS_CLUSTER`: `redisUrl` lists cluster seed nodes (comma-separated). */
  redisCluster?: boolean;
  /** `AGP_REDIS_PREFIX`; default `agp`. */
  prefix?: string;
  /** `AGP_CONTEXT_CACHE_TTL_MS`; default 5,000. */
  cacheTtlMs?: number;
  /** `AGP_CONTEXT_STALE_MAX_MS`; default 30,000. */
  staleMaxMs?: number;
  /** Other Redis store settings (timeouts, flush period, cache size). */
  redis?: Omit<RedisStoreOptions, 'url' | 'prefix' | 'cluster' | 'cacheTtlMs' | 'staleMaxMs' | 'behavior' | 'log'>;
  behavior?: BehaviorOptions;
  /** How long `createContextStore` waits for the first Redis connection. Default 3,000 ms. */
  readyTimeoutMs?: number;
  log?: (level: 'info' | 'warn', message: string) => void;
}

/**
 * Creates the configured store. With Redis it waits up to `readyTimeoutMs` for the first
 * connection but never fails on it: an unreachable Redis starts the store `down` (every
 * agent `unavailable`, so decisions deny) and it connects on its own later.
 */
export async function createContextStore(config: ContextStoreConfig = {}): Promise<ContextStore> {
  const url = config.redisUrl?.trim();
  if (url === undefined || url === '') {
    return createEmbeddedStore(config.behavior === undefined ? {} : { behavior: config.behavior });
  }
  const options: RedisStoreOptions = { ...config.redis, url, cluster: config.redisCluster ?? false };
  if (config.prefix !== undefined) options.prefix = config.prefix;
  if (config.cacheTtlMs !== undefined) options.cacheTtlMs = config.cacheTtlMs;
  if (config.staleMaxMs !== undefined) options.staleMaxMs = config.staleMaxMs;
  if (config.behavior !== undefined) options.behavior = config.behavior;
  if (config.log !== undefined) options.log = config.log;
  const store = createRedisStore(options);
  const ready = await store.waitReady(config.readyTimeoutMs ?? 3_000);
  if (!ready) config.log?.('warn', 'redis: not reachable yet, starting degraded (unknown context is denied)');
  return store;
}

/** Reads the store settings from the environment (`AGP_REDIS_*`, `AGP_CONTEXT_*`, `AGP_ANOMALY_*`). */
export function contextConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ContextStoreConfig {
  const config: ContextStoreConfig = {};
  const num = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`invalid \`${name}\`: \`${raw}\` is not a non-negative number`);
    return n;
  };
  if (env.AGP_REDIS_URL !== undefined && env.AGP_REDIS_URL !== '') config.redisUrl = env.AGP_REDIS_URL;
  if (env.AGP_REDIS_PREFIX !== undefined && env.AGP_REDIS_PREFIX !== '') config.prefix = env.AGP_REDIS_PREFIX;
  if (env.AGP_REDIS_CLUSTER !== undefined) config.redisCluster = /^(1|true|yes|on)$/i.test(env.AGP_REDIS_CLUSTER);
  const ttl = num('AGP_CONTEXT_CACHE_TTL_MS');
  if (ttl !== undefined) config.cacheTtlMs = ttl;
  const stale = num('AGP_CONTEXT_STALE_MAX_MS');
  if (stale !== undefined) config.staleMaxMs = stale;
  // Anomaly thresholds of the behaviour analytics (docs/context.md).
  const behavior: BehaviorOptions = {};
  const rateZ = num('AGP_ANOMALY_RATE_Z');
  if (rateZ !== undefined) behavior.rateZThreshold = rateZ;
  const denyRatio = num('AGP_ANOMALY_DENY_RATIO');
  if (denyRatio !== undefined) {
    if (denyRatio > 1) throw new Error(`invalid \`AGP_ANOMALY_DENY_RATIO\`: \`${env.AGP_ANOMALY_DENY_RATIO}\` is not a ratio from 0 to 1`);
    behavior.denyRatioThreshold = denyRatio;
  }
  const newResources = num('AGP_ANOMALY_NEW_RESOURCES');
  if (newResources !== undefined) behavior.newResourceThreshold = newResources;
  if (Object.keys(behavior).length > 0) config.behavior = behavior;
  return config;
}
