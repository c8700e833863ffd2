// Behavioural analytics on the decision hot path, in process and without I/O: per agent a
// per-minute request counter with an EWMA baseline (mean and variance) and its z-score, a
// deny ratio over a sliding window of time buckets, bounded sets of the resources and
// resource types the agent has touched, and anomaly events when a threshold is crossed.
// When the store is shared (Redis), the tracker also queues per-minute deltas, deny-window
// deltas and newly seen resources for the store's batched flush, and takes back the shared
// totals it reads, so that rate and deny ratio count every replica's decisions.

import type { AnomalyEvent, BehaviorFigures } from './types.js';

export interface BehaviorOptions {
  /** EWMA weight of each completed minute (0 < alpha <= 1). Default 0.1. */
  alpha?: number;
  /** Completed minutes folded into the baseline before `rate_z` is reported. Default 3. */
  warmupMinutes?: number;
  /** Lower bound of the standard deviation used by `rate_z`. Default 1. */
  minStddev?: number;
  /** Span of the deny-ratio window. Default 5 minutes. */
  denyWindowMs?: number;
  /** Time buckets of the deny-ratio window. Default 10. */
  denyBuckets?: number;
  /** Decisions in the window below which `deny_ratio` is 0. Default 10. */
  denyMinSamples?: number;
  /** `rate_z` at or above which a `rate` anomaly is emitted. Default 6. */
  rateZThreshold?: number;
  /** `deny_ratio` at or above which a `deny_ratio` anomaly is emitted. Default 0.5. */
  denyRatioThreshold?: number;
  /**
   * Resources touched for the first time within one minute at or above which a
   * `new_resource` anomaly is emitted (an agent sweeping through records it never used),
   * once the agent is past its warm-up. Default 20.
   */
  newResourceThreshold?: number;
  /** Resource keys remembered per agent (least recently used forgotten first). Default 4096. */
  maxResources?: number;
  /** Resource types remembered per agent. Default 256. */
  maxResourceTypes?: number;
  /** Agents tracked per process (least recently active forgotten first). Default 50,000. */
  maxAgents?: number;
  /** Queue deltas and new resources for a shared store. Default false. */
  shared?: boolean;
}

/** One agent's share of a flush to the shared store. */
export interface FlushItem {
  agent: string;
  minute: number;
  /** Requests counted locally since the last flush (0: read the total only). */
  delta: number;
  resources: string[];
  types: string[];
  /**
   * Decisions and denials counted locally in deny-window bucket `epoch` since the last flush
   * (both 0: read the shared counts only). Absent: nothing to send or read for the window.
   */
  window?: { epoch: number; total: number; denied: number };
}

const MINUTE_MS = 60_000;
/** Empty minutes folded one by one at most; beyond this the baseline is ~0 anyway. */
const MAX_GAP_MINUTES = 240;
/** Read-backs of shared totals (agents without a local request this cycle) per flush, at most. */
const MAX_READ_BACKS = 1000;
/** Deltas of past minutes waiting for a flush, at most. */
const MAX_CARRIED = 10_000;

interface AgentBehavior {
  id: string;
  firstMinute: number;
  minute: number;
  local: number;
  /** Requests other replicas counted in `minute` (from the shared total). */
  others: number;
  /** Local requests of `minute` whose INCRBY succeeded. */
  flushed: number;
  pending: number;
  mean: number;
  variance: number;
  folded: number;
  bucketEpoch: number[];
  bucketTotal: number[];
  bucketDenied: number[];
  /** Decisions and denials other replicas counted in each bucket (from the shared counts). */
  bucketOthersTotal: number[];
  bucketOthersDenied: number[];
  /** Local decisions and denials of each bucket whose increments reached the shared store. */
  bucketFlushedTotal: number[];
  bucketFlushedDenied: number[];
  /** The bucket epoch of the window deltas waiting for a flush, and the deltas. */
  windowEpoch: number;
  windowTotal: number;
  windowDenied: number;
  resources: ClockSet;
  types: ClockSet;
  newResources: string[];
  newTypes: string[];
  rateAnomalyMinute: number;
  denyAnomalyAt: number;
  /** Resources touched for the first time in `minute`, and the minute of the last such anomaly. */
  newThisMinute: number;
  newAnomalyMinute: number;
  hydrated: boolean;
  /** Second-chance flag of the agent map's CLOCK eviction. */
  used: boolean;
  /** Flush cycle of the last local request (read-backs of the shared total). */
  cycle: number;
}

function resourceType(resourceKey: string): string {
  const i = resourceKey.indexOf(':');
  return i < 0 ? resourceKey : resourceKey.slice(0, i);
}

/**
 * A bounded set that forgets its least recently used members approximately (CLOCK, "second
 * chance"): a hit only sets a flag, so the hot path never re-orders the map; eviction skips
 * (and clears) flagged members. Amortised O(1).
 */
export class ClockSet {
  private readonly map = new Map<string, boolean>();
  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  has(member: string): boolean {
    return this.map.has(member);
  }

  /** Marks the member as used; true when it was not in the set (and is now). */
  touch(member: string): boolean {
    const used = this.map.get(member);
    if (used === undefined) {
      this.map.set(member, false);
      if (this.map.size > this.max) this.evict();
      return true;
    }
    if (!used) this.map.set(member, true);
    return false;
  }

  private evict(): void {
    for (;;) {
      const first = this.map.entries().next();
      if (first.done === true) return;
      const [member, used] = first.value;
      this.map.delete(member);
      if (!used) return;
      this.map.set(member, false);
    }
  }
}

export class BehaviorTracker {
  private readonly agents = new Map<string, AgentBehavior>();
  private readonly dirty = new Set<string>();
  /** Agents with a recent local request, for read-backs of the shared totals. */
  private readonly watched = new Set<string>();
  private cycle = 0;
  /** The latest deny-window bucket any call has reached (the tracker's present). */
  private lastEpoch = -1;
  private carried: FlushItem[] = [];
  private readonly listeners: ((event: AnomalyEvent) => void)[] = [];

  private readonly alpha: number;
  private readonly warmup: number;
  private readonly minStddev: number;
  private readonly bucketMs: number;
  private readonly buckets: number;
  private readonly denyMinSamples: number;
  private readonly denyWindowMs: number;
  readonly rateZThreshold: number;
  readonly denyRatioThreshold: number;
  readonly newResourceThreshold: number;
  private readonly maxResources: number;
  private readonly maxTypes: number;
  private readonly maxAgents: number;
  private readonly shared: boolean;

  constructor(options: BehaviorOptions = {}) {
    this.alpha = options.alpha ?? 0.1;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new Error('behaviour `alpha` must be in (0, 1]');
    this.warmup = Math.max(1, options.warmupMinutes ?? 3);
    this.minStddev = options.minStddev ?? 1;
    this.buckets = Math.max(1, Math.floor(options.denyBuckets ?? 10));
    this.denyWindowMs = options.denyWindowMs ?? 5 * MINUTE_MS;
    this.bucketMs = Math.max(1, Math.floor(this.denyWindowMs / this.buckets));
    this.denyMinSamples = options.denyMinSamples ?? 10;
    this.rateZThreshold = options.rateZThreshold ?? 6;
    this.denyRatioThreshold = options.denyRatioThreshold ?? 0.5;
    this.newResourceThreshold = Math.max(1, options.newResourceThreshold ?? 20);
    this.maxResources = Math.max(1, options.maxResources ?? 4096);
    this.maxTypes = Math.max(1, options.maxResourceTypes ?? 256);
    this.maxAgents = Math.max(1, options.maxAgents ?? 50_000);
    this.shared = options.shared ?? false;
  }

  onAnomaly(listener: (event: AnomalyEvent) => void): void {
    this.listeners.push(listener);
  }

  /** The figures for the agent about to act on `resourceKey`, before this request counts. */
  figures(agentId: string, resourceKey: string, now: number): BehaviorFigures {
    const state = this.agents.get(agentId);
    if (state === undefined) {
      return { rate: 0, baseline: 0, rate_z: 0, deny_ratio: 0, new_resource: true, new_resource_type: true };
    }
    this.advance(state, Math.floor(now / MINUTE_MS));
    const epoch = Math.floor(now / this.bucketMs);
    if (epoch > this.lastEpoch) this.lastEpoch = epoch;
    const rate = state.local + state.others;
    return {
      rate,
      baseline: state.mean,
      rate_z: this.rateZ(state, rate),
      deny_ratio: this.denyRatio(state, now),
      new_resource: !state.resources.has(resourceKey),
      new_resource_type: !state.types.has(resourceType(resourceKey)),
    };
  }

  /** Counts one decision and emits anomaly events whose threshold it crosses. */
  record(agentId: string, resourceKey: string, allowed: boolean, now: number): void {
    const state = this.state(agentId);
    const minute = Math.floor(now / MINUTE_MS);
    this.advance(state, minute);
    state.local++;

    const epoch = Math.floor(now / this.bucketMs);
    if (epoch > this.lastEpoch) this.lastEpoch = epoch;
    const slot = this.bucket(state, epoch);
    if (slot >= 0) {
      state.bucketTotal[slot] = (state.bucketTotal[slot] ?? 0) + 1;
      if (!allowed) state.bucketDenied[slot] = (state.bucketDenied[slot] ?? 0) + 1;
    }

    const newResource = state.resources.touch(resourceKey);
    const type = resourceType(resourceKey);
    const newType = state.types.touch(type);

    if (this.shared) {
      if (state.pending++ === 0) this.dirty.add(agentId);
      if (state.windowEpoch !== epoch) {
        // A new bucket: the previous one's deltas wait for the next flush on their own.
        if (state.windowTotal > 0 && this.carried.length < MAX_CARRIED) {
          this.carried.push({ agent: agentId, minute: state.minute, delta: 0, resources: [], types: [], window: { epoch: state.windowEpoch, total: state.windowTotal, denied: state.windowDenied } });
        }
        state.windowEpoch = epoch;
        state.windowTotal = 0;
        state.windowDenied = 0;
      }
      state.windowTotal++;
      if (!allowed) state.windowDenied++;
      if (newResource) state.newResources.push(resourceKey);
      if (newType) state.newTypes.push(type);
      if (state.cycle !== this.cycle) {
        state.cycle = this.cycle;
        this.watched.add(agentId);
      }
    }

    const z = this.rateZ(state, state.local + state.others);
    if (z >= this.rateZThreshold && state.rateAnomalyMinute !== minute) {
      state.rateAnomalyMinute = minute;
      this.emit({ agent: agentId, kind: 'rate', value: z, threshold: this.rateZThreshold, at: now });
    }
    if (newResource) {
      state.newThisMinute++;
      // A young agent touches nothing but new resources: only past its warm-up is it a sweep.
      if (state.newThisMinute >= this.newResourceThreshold && state.folded >= this.warmup && state.newAnomalyMinute !== minute) {
        state.newAnomalyMinute = minute;
        this.emit({ agent: agentId, kind: 'new_resource', value: state.newThisMinute, threshold: this.newResourceThreshold, at: now });
      }
    }
    if (!allowed) {
      const ratio = this.denyRatio(state, now);
      if (ratio >= this.denyRatioThreshold && now - state.denyAnomalyAt >= this.denyWindowMs) {
        state.denyAnomalyAt = now;
        this.emit({ agent: agentId, kind: 'deny_ratio', value: ratio, threshold: this.denyRatioThreshold, at: now });
      }
    }
  }

  // ---- shared store support

  /**
   * Takes the queued deltas and new resources, plus read-backs of the shared total for agents
   * with a local request in the last `readBackCycles` drains.
   */
  drain(readBackCycles: number): FlushItem[] {
    const items = this.carried;
    this.carried = [];
    this.cycle++;
    for (const id of this.dirty) {
      const state = this.agents.get(id);
      if (state === undefined) continue;
      items.push({
        agent: id,
        minute: state.minute,
        delta: state.pending,
        resources: state.newResources,
        types: state.newTypes,
        window: { epoch: state.windowEpoch, total: state.windowTotal, denied: state.windowDenied },
      });
      state.pending = 0;
      state.newResources = [];
      state.newTypes = [];
      state.windowTotal = 0;
      state.windowDenied = 0;
    }
    let readBacks = 0;
    for (const id of this.watched) {
      const state = this.agents.get(id);
      if (state === undefined || this.cycle - state.cycle > readBackCycles) {
        this.watched.delete(id);
        continue;
      }
      if (this.dirty.has(id) || readBacks >= MAX_READ_BACKS) continue;
      readBacks++;
      const window = this.lastEpoch >= 0 ? { epoch: this.lastEpoch, total: 0, denied: 0 } : undefined;
      items.push({ agent: id, minute: state.minute, delta: 0, resources: [], types: [], ...(window !== undefined ? { window } : {}) });
    }
    this.dirty.clear();
    return items;
  }

  /** The shared total of `minute` after this replica's INCRBY of `sentDelta` succeeded. */
  applyTotal(agentId: string, minute: number, total: number, sentDelta: number): void {
    const state = this.agents.get(agentId);
    if (state === undefined || state.minute !== minute) return;
    state.flushed += sentDelta;
    state.others = Math.max(0, total - state.flushed);
  }

  /**
   * The shared counts of deny-window bucket `epoch` after this replica's increments of
   * `sentTotal` and `sentDenied` succeeded: what other replicas counted there.
   */
  applyWindow(agentId: string, epoch: number, total: number, denied: number, sentTotal: number, sentDenied: number): void {
    const state = this.agents.get(agentId);
    if (state === undefined) return;
    const slot = this.bucket(state, epoch);
    if (slot < 0) return;
    state.bucketFlushedTotal[slot] = (state.bucketFlushedTotal[slot] ?? 0) + sentTotal;
    state.bucketFlushedDenied[slot] = (state.bucketFlushedDenied[slot] ?? 0) + sentDenied;
    state.bucketOthersTotal[slot] = Math.max(0, total - (state.bucketFlushedTotal[slot] ?? 0));
    state.bucketOthersDenied[slot] = Math.max(0, denied - (state.bucketFlushedDenied[slot] ?? 0));
  }

  /** How long a shared deny-window bucket is worth keeping, in milliseconds. */
  get windowKeyTtlMs(): number {
    return this.denyWindowMs + 2 * this.bucketMs;
  }

  /** Seeds the known resources from the shared sets (first sight of the agent on this replica). */
  hydrate(agentId: string, resources: readonly string[], types: readonly string[]): void {
    const state = this.state(agentId);
    for (const r of resources) if (state.resources.size < this.maxResources) state.resources.touch(r);
    for (const t of types) if (state.types.size < this.maxTypes) state.types.touch(t);
    state.hydrated = true;
  }

  isHydrated(agentId: string): boolean {
    return this.agents.get(agentId)?.hydrated ?? false;
  }

  get trackedAgents(): number {
    return this.agents.size;
  }

  // ---- internals

  private state(agentId: string): AgentBehavior {
    let state = this.agents.get(agentId);
    if (state !== undefined) {
      state.used = true;
      return state;
    }
    state = {
      id: agentId,
      firstMinute: NaN,
      minute: NaN,
      local: 0,
      others: 0,
      flushed: 0,
      pending: 0,
      mean: 0,
      variance: 0,
      folded: 0,
      bucketEpoch: new Array<number>(this.buckets).fill(-1),
      bucketTotal: new Array<number>(this.buckets).fill(0),
      bucketDenied: new Array<number>(this.buckets).fill(0),
      bucketOthersTotal: new Array<number>(this.buckets).fill(0),
      bucketOthersDenied: new Array<number>(this.buckets).fill(0),
      bucketFlushedTotal: new Array<number>(this.buckets).fill(0),
      bucketFlushedDenied: new Array<number>(this.buckets).fill(0),
      windowEpoch: -1,
      windowTotal: 0,
      windowDenied: 0,
      resources: new ClockSet(this.maxResources),
      types: new ClockSet(this.maxTypes),
      newResources: [],
      newTypes: [],
      rateAnomalyMinute: NaN,
      denyAnomalyAt: -Infinity,
      newThisMinute: 0,
      newAnomalyMinute: NaN,
      hydrated: false,
      used: false,
      cycle: -1,
    };
    this.agents.set(agentId, state);
    if (this.agents.size > this.maxAgents) this.evictAgent();
    return state;
  }

  /** CLOCK eviction of the least recently active agent (see ClockSet). */
  private evictAgent(): void {
    for (;;) {
      const first = this.agents.entries().next();
      if (first.done === true) return;
      const [id, state] = first.value;
      this.agents.delete(id);
      if (!state.used) {
        this.dirty.delete(id);
        this.watched.delete(id);
        return;
      }
      state.used = false;
      this.agents.set(id, state);
    }
  }

  /** Moves the agent to `minute`, folding completed minutes (and empty ones) into the baseline. */
  private advance(state: AgentBehavior, minute: number): void {
    if (Number.isNaN(state.minute)) {
      state.minute = minute;
      state.firstMinute = minute;
      return;
    }
    // A clock that goes back (or a test replaying time) keeps counting in the current minute.
    if (minute <= state.minute) return;
    // The minute the agent was first seen is partial: it would drag the baseline down.
    if (state.minute > state.firstMinute) this.fold(state, state.local + state.others);
    const gap = Math.min(minute - state.minute - 1, MAX_GAP_MINUTES);
    for (let i = 0; i < gap; i++) this.fold(state, 0);
    // Bounded while the shared store is unreachable: beyond it, past minutes are not shared.
    if (state.pending > 0 && this.carried.length < MAX_CARRIED) {
      this.carried.push({ agent: state.id, minute: state.minute, delta: state.pending, resources: [], types: [] });
    }
    state.pending = 0;
    state.minute = minute;
    state.newThisMinute = 0;
    state.local = 0;
    state.others = 0;
    state.flushed = 0;
  }

  /**
   * The slot of bucket `epoch`, cleared first when it still holds an older bucket (which is
   * then out of the window); -1 when it already holds a newer one (`epoch` is out of it).
   */
  private bucket(state: AgentBehavior, epoch: number): number {
    const slot = epoch % this.buckets;
    const held = state.bucketEpoch[slot] ?? -1;
    if (held > epoch) return -1;
    if (held < epoch) {
      state.bucketEpoch[slot] = epoch;
      state.bucketTotal[slot] = 0;
      state.bucketDenied[slot] = 0;
      state.bucketOthersTotal[slot] = 0;
      state.bucketOthersDenied[slot] = 0;
      state.bucketFlushedTotal[slot] = 0;
      state.bucketFlushedDenied[slot] = 0;
    }
    return slot;
  }

  private fold(state: AgentBehavior, rate: number): void {
    state.folded++;
    // 1/n while the baseline is young makes it the plain mean and variance of the minutes seen.
    const a = Math.max(this.alpha, 1 / state.folded);
    const d = rate - state.mean;
    state.mean += a * d;
    state.variance = (1 - a) * (state.variance + a * d * d);
  }

  private rateZ(state: AgentBehavior, rate: number): number {
    if (state.folded < this.warmup) return 0;
    const sd = Math.max(Math.sqrt(state.variance), Math.sqrt(state.mean), this.minStddev);
    return (rate - state.mean) / sd;
  }

  private denyRatio(state: AgentBehavior, now: number): number {
    const current = Math.floor(now / this.bucketMs);
    let total = 0;
    let denied = 0;
    for (let i = 0; i < this.buckets; i++) {
      const epoch = state.bucketEpoch[i] ?? -1;
      if (epoch > current - this.buckets && epoch <= current) {
        total += (state.bucketTotal[i] ?? 0) + (state.bucketOthersTotal[i] ?? 0);
        denied += (state.bucketDenied[i] ?? 0) + (state.bucketOthersDenied[i] ?? 0);
      }
    }
    return total < this.denyMinSamples || total === 0 ? 0 : denied / total;
  }

  private emit(event: AnomalyEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A failing listener must not break the decision that triggered it.
      }
    }
  }
}
