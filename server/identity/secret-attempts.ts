// What a client-secret guess may cost AGP: failed attempts per client and address back off
// exponentially (429 with Retry-After), and scrypt verifications run a few at a time with a
// short queue (503 past it), so a flood of guesses cannot burn the CPU. Nothing here knows
// whether a client exists: unknown ids are throttled exactly like known ones.

/** Failed attempts allowed before the first wait. */
export const FREE_FAILURES = 5;
const FIRST_WAIT_MS = 1000;
const LONGEST_WAIT_MS = 15 * 60_000;
/** Distinct (client, address) pairs remembered; the least recently failed are forgotten first. */
const MAX_TRACKED = 10_000;

export interface SecretThrottleOptions {
  freeFailures?: number;
  firstWaitMs?: number;
  longestWaitMs?: number;
  maxTracked?: number;
  now?: () => number;
}

interface Failures {
  count: number;
  /** Epoch ms before which no attempt is verified. */
  until: number;
}

/**
 * Exponential backoff of failed client-secret attempts, keyed by client id and client
 * address: after 5 failures in a row the next attempt waits 1 s, after 6 2 s, 4 s … up to
 * 15 min; a success clears the count. Keyed by address too so that a stranger's guesses cannot lock an agent out of its
 * own address (the secret is 256 random bits: the throttle is about cost, not guessing).
 * Kept per replica, in memory: the state is small and needs no store round trip.
 */
export class SecretThrottle {
  private readonly failures = new Map<string, Failures>();
  private readonly freeFailures: number;
  private readonly firstWaitMs: number;
  private readonly longestWaitMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;

  constructor(options: SecretThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? FREE_FAILURES;
    this.firstWaitMs = options.firstWaitMs ?? FIRST_WAIT_MS;
    this.longestWaitMs = options.longestWaitMs ?? LONGEST_WAIT_MS;
    this.maxTracked = options.maxTracked ?? MAX_TRACKED;
    this.now = options.now ?? Date.now;
  }

  /** Milliseconds until `key` may try again; 0 when it may now. */
  waitMs(key: string): number {
    const f = this.failures.get(key);
    return f === undefined ? 0 : Math.max(0, f.until - this.now());
  }

  failed(key: string): void {
    const f = this.failures.get(key) ?? { count: 0, until: 0 };
    f.count++;
    // The 5th failure in a row makes the next try wait 1 s, the 6th 2 s, …
    const over = f.count - this.freeFailures + 1;
    if (over > 0) f.until = this.now() + Math.min(this.longestWaitMs, this.firstWaitMs * 2 ** Math.min(over - 1, 30));
    // Re-inserted last: the map's order is least recently failed first.
    this.failures.delete(key);
    this.failures.set(key, f);
    if (this.failures.size > this.maxTracked) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(key: string): void {
    this.failures.delete(key);
  }
}

export interface ScryptGateOptions {
  /** Verifications running at once (default 2). */
  concurrency?: number;
  /** Verifications waiting for a slot; more are refused at once (default 16). */
  queue?: number;
}

/** A bounded pool for scrypt work: at most `concurrency` at once, a short queue, then no. */
export class ScryptGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly queue: number;

  constructor(options: ScryptGateOptions = {}) {
    this.concurrency = options.concurrency ?? 2;
    this.queue = options.queue ?? 16;
  }

  /** Runs `work` in a slot, or answers `busy` without running it when the queue is full. */
  async run<T>(work: () => Promise<T>): Promise<T | 'busy'> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.queue) return 'busy';
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; `running` counts it still.
      if (next) next();
      else this.running--;
    }
  }
}
