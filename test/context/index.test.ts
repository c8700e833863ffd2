// Choosing the store from configuration: embedded without a Redis URL, Redis with one.
import { describe, expect, it } from 'vitest';
import { contextConfigFromEnv, createContextStore } from '../../server/context/index.js';
import { REDIS_URL, cleanupPrefix, runPrefix } from './redis-helpers.js';

describe('createContextStore', () => {
  it('uses the embedded store when no Redis URL is configured', async () => {
    const store = await createContextStore(contextConfigFromEnv({}));
    expect(store.kind).toBe('embedded');
    expect(store.health()).toEqual({ kind: 'embedded', state: 'ok' });
    await store.close();
  });

  it('uses Redis when a URL is configured, with the prefix from the environment', async () => {
    const prefix = runPrefix();
    const config = contextConfigFromEnv({ AGP_REDIS_URL: REDIS_URL, AGP_REDIS_PREFIX: prefix, AGP_CONTEXT_CACHE_TTL_MS: '1000' });
    expect(config).toEqual({ redisUrl: REDIS_URL, prefix, cacheTtlMs: 1000 });
    const store = await createContextStore(config);
    try {
      expect(store.kind).toBe('redis');
      expect(store.health().state).toBe('ok');
      await store.kvSet('ns', 'k', 'v');
      expect(await store.kvGet('ns', 'k')).toBe('v');
    } finally {
      await store.close();
    }
    expect(await cleanupPrefix(prefix)).toBe(1);
  });

  it('rejects a malformed number in the environment', () => {
    expect(() => contextConfigFromEnv({ AGP_CONTEXT_STALE_MAX_MS: 'soon' })).toThrow(/AGP_CONTEXT_STALE_MAX_MS/);
    expect(contextConfigFromEnv({ AGP_REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
  });

  it('reads the anomaly thresholds, and refuses a deny ratio above 1', () => {
    expect(contextConfigFromEnv({ AGP_ANOMALY_RATE_Z: '4', AGP_ANOMALY_DENY_RATIO: '0.3', AGP_ANOMALY_NEW_RESOURCES: '50' }).behavior).toEqual({
      rateZThreshold: 4,
      denyRatioThreshold: 0.3,
      newResourceThreshold: 50,
    });
    expect(contextConfigFromEnv({}).behavior).toBeUndefined();
    expect(() => contextConfigFromEnv({ AGP_ANOMALY_DENY_RATIO: '2' })).toThrow(/AGP_ANOMALY_DENY_RATIO.*ratio from 0 to 1/);
  });
});
