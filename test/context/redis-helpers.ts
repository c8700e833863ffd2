// Shared helpers of the context-store tests: the local Redis, unique key prefixes per run,
// and cleanup of exactly the keys a run created.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.AGP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `agptest:<random>` — every key a test run writes starts with it. */
export function runPrefix(): string {
  return `agptest:${randomBytes(6).toString('hex')}`;
}

/** Deletes every key under `prefix:` with SCAN (never FLUSHDB), and returns how many. */
export async function cleanupPrefix(prefix: string, url = REDIS_URL): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}

/** Polls `check` until it returns true or `ms` pass; returns the elapsed milliseconds or -1. */
export async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start <= ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  return -1;
}
