// The in-process cache in front of Redis: a bounded LRU whose entries remember when they were
// stored, so one entry can be read as fresh (within the TTL) or as a stale fallback (within a
// longer bound) while Redis is unreachable. All operations are O(1): a Map keeps insertion
// order, and a hit moves the entry to the end by re-inserting it.

export interface CacheEntry<V> {
  value: V;
  /** Epoch milliseconds when the value was stored. */
  storedAt: number;
}

export interface TtlLruOptions {
  /** Most entries kept; the least recently used one is evicted beyond it. */
  maxEntries: number;
  /** Age up to which `get` returns an entry. */
  ttlMs: number;
}

export class TtlLru<V> {
  private readonly map = new Map<string, CacheEntry<V>>();
  private readonly maxEntries: number;
  readonly ttlMs: number;

  constructor(options: TtlLruOptions) {
    if (!(options.maxEntries >= 1)) throw new Error('cache `maxEntries` must be at least 1');
    this.maxEntries = Math.floor(options.maxEntries);
    this.ttlMs = options.ttlMs;
  }

  get size(): number {
    return this.map.size;
  }

  /** The value when stored less than `ttlMs` before `now`; counts as a use. */
  get(key: string, now: number): V | undefined {
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    if (now - entry.storedAt >= this.ttlMs) return undefined;
    this.touch(key, entry);
    return entry.value;
  }

  /** The entry whatever its age (the caller decides what is fresh enough); counts as a use. */
  entry(key: string): CacheEntry<V> | undefined {
    const entry = this.map.get(key);
    if (entry !== undefined) this.touch(key, entry);
    return entry;
  }

  /** Like `entry` without counting as a use. */
  peek(key: string): CacheEntry<V> | undefined {
    return this.map.get(key);
  }

  set(key: string, value: V, now: number): void {
    if (this.map.has(key)) this.map.delete(key);
    this.map.set(key, { value, storedAt: now });
    if (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  /** Drops entries older than `maxAgeMs` (periodic sweeps; O(n)). */
  prune(now: number, maxAgeMs: number): number {
    let dropped = 0;
    for (const [key, entry] of this.map) {
      if (now - entry.storedAt >= maxAgeMs) {
        this.map.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  private touch(key: string, entry: CacheEntry<V>): void {
    // Re-inserting moves the key to the most-recent end; skip it when already there.
    if (this.map.size > 1) {
      this.map.delete(key);
      this.map.set(key, entry);
    }
  }
}
