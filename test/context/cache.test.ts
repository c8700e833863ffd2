// The in-process cache (bounded LRU with TTL) and the behaviour tracker's bounds.
import { describe, expect, it } from 'vitest';
import { BehaviorTracker, ClockSet } from '../../server/context/behavior.js';
import { TtlLru } from '../../server/context/cache.js';

describe('TtlLru', () => {
  it('serves entries within the TTL and keeps expired ones for stale reads', () => {
    const cache = new TtlLru<string>({ maxEntries: 10, ttlMs: 100 });
    cache.set('a', 'A', 1_000);
    expect(cache.get('a', 1_050)).toBe('A');
    expect(cache.get('a', 1_100)).toBeUndefined();
    expect(cache.entry('a')).toEqual({ value: 'A', storedAt: 1_000 });
    expect(cache.prune(1_200, 150)).toBe(1);
    expect(cache.entry('a')).toBeUndefined();
  });

  it('evicts the least recently used entry beyond its bound', () => {
    const cache = new TtlLru<number>({ maxEntries: 3, ttlMs: 1_000 });
    cache.set('a', 1, 0);
    cache.set('b', 2, 0);
    cache.set('c', 3, 0);
    expect(cache.get('a', 1)).toBe(1); // a is now the most recent
    cache.set('d', 4, 1);
    expect(cache.size).toBe(3);
    expect(cache.peek('b')).toBeUndefined();
    expect([...cache.keys()].sort()).toEqual(['a', 'c', 'd']);
  });
});

describe('behaviour bounds', () => {
  it('ClockSet keeps at most its bound and prefers to keep members in use', () => {
    const set = new ClockSet(3);
    expect(set.touch('a')).toBe(true);
    expect(set.touch('b')).toBe(true);
    expect(set.touch('c')).toBe(true);
    expect(set.touch('a')).toBe(false);
    expect(set.touch('d')).toBe(true); // b, the oldest unused, goes
    expect(set.size).toBe(3);
    expect(set.has('a')).toBe(true);
    expect(set.has('b')).toBe(false);
  });

  it('forgets resources beyond the per-agent limit, so they read as new again', () => {
    const tracker = new BehaviorTracker({ maxResources: 100 });
    for (let i = 0; i < 150; i++) tracker.record('a', `doc:${i}`, true, 0);
    expect(tracker.figures('a', 'doc:149', 1).new_resource).toBe(false);
    expect(tracker.figures('a', 'doc:0', 1).new_resource).toBe(true);
    expect(tracker.figures('a', 'doc:0', 1).new_resource_type).toBe(false);
  });

  it('tracks a bounded number of agents', () => {
    const tracker = new BehaviorTracker({ maxAgents: 50 });
    for (let i = 0; i < 200; i++) tracker.record(`agent-${i}`, 'doc:1', true, 0);
    expect(tracker.trackedAgents).toBe(50);
    expect(tracker.figures('agent-199', 'doc:1', 1).rate).toBe(1);
    expect(tracker.figures('agent-0', 'doc:1', 1).rate).toBe(0);
  });

  it('folds empty minutes into the baseline, so a burst after a quiet spell stands out', () => {
    const tracker = new BehaviorTracker({ warmupMinutes: 3 });
    const MIN = 60_000;
    for (let m = 0; m < 10; m++) for (let i = 0; i < 20; i++) tracker.record('a', 'doc:1', true, m * MIN + i);
    const busy = tracker.figures('a', 'doc:1', 10 * MIN);
    expect(busy.baseline).toBeCloseTo(20, 5);
    // Two hours of silence: the baseline decays towards zero.
    const quiet = tracker.figures('a', 'doc:1', 130 * MIN);
    expect(quiet.baseline).toBeLessThan(0.1);
    for (let i = 0; i < 30; i++) tracker.record('a', 'doc:1', true, 130 * MIN + i);
    expect(tracker.figures('a', 'doc:1', 130 * MIN + 100).rate_z).toBeGreaterThan(6);
  });

  it('reports an agent sweeping through resources it never touched, once it is past its warm-up', () => {
    const MIN = 60_000;
    const tracker = new BehaviorTracker({ warmupMinutes: 3, newResourceThreshold: 20 });
    const events: { kind: string; value: number; at: number }[] = [];
    // (The burst also raises a `rate` anomaly; only the sweep is looked at here.)
    tracker.onAnomaly((e) => e.kind === 'new_resource' && events.push(e));
    // A new agent's first minute is all new resources: no anomaly during the warm-up.
    for (let i = 0; i < 30; i++) tracker.record('a', `doc:${i}`, true, i);
    // Four quiet minutes on the same few documents.
    for (let m = 1; m < 5; m++) for (let i = 0; i < 10; i++) tracker.record('a', `doc:${i % 3}`, true, m * MIN + i);
    expect(events).toEqual([]);
    // Minute 5: nineteen new documents is under the threshold, the twentieth crosses it, once.
    for (let i = 0; i < 19; i++) tracker.record('a', `doc:new-${i}`, true, 5 * MIN + i);
    expect(events).toEqual([]);
    for (let i = 19; i < 40; i++) tracker.record('a', `doc:new-${i}`, true, 5 * MIN + i);
    expect(events.map((e) => [e.kind, e.value, e.at])).toEqual([['new_resource', 20, 5 * MIN + 19]]);
    // The count starts again each minute.
    for (let i = 0; i < 19; i++) tracker.record('a', `doc:next-${i}`, true, 6 * MIN + i);
    expect(events).toHaveLength(1);
  });

  it('queues deny-window deltas per 30 s bucket for a shared store and adds what other replicas counted', () => {
    const tracker = new BehaviorTracker({ shared: true });
    const B = 30_000;
    for (let i = 0; i < 3; i++) tracker.record('a', 'doc:1', false, 10 * B + i);
    // The next bucket starts: the first one's deltas wait for the flush on their own.
    tracker.record('a', 'doc:1', true, 11 * B);
    const items = tracker.drain(1);
    expect(items.map((i) => i.window)).toEqual([
      { epoch: 10, total: 3, denied: 3 },
      { epoch: 11, total: 1, denied: 0 },
    ]);
    // The shared counts came back: other replicas counted 10 decisions, 4 denied, in bucket 11.
    tracker.applyWindow('a', 11, 11, 4, 1, 0);
    // Window: 3 + 1 local and 10 other decisions; 3 + 4 denied.
    expect(tracker.figures('a', 'doc:1', 11 * B + 1).deny_ratio).toBeCloseTo(7 / 14, 10);
    // A count for a bucket the window has left is ignored.
    tracker.applyWindow('a', 11 - 10, 50, 50, 0, 0);
    expect(tracker.figures('a', 'doc:1', 11 * B + 2).deny_ratio).toBeCloseTo(7 / 14, 10);
    // With nothing local since the last flush, the agent's current bucket is read back.
    expect(tracker.drain(10)).toEqual([{ agent: 'a', minute: 5, delta: 0, resources: [], types: [], window: { epoch: 11, total: 0, denied: 0 } }]);
  });
});
