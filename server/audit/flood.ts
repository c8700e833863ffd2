// Flood control for audit entries a caller can cause at will (rejected unauthenticated
// calls, refused credentials): per flood key and window, the first `burst` entries are
// written in full and the rest only counted, then summarized in one `audit_suppressed`
// entry when the window ends. The keys tracked are bounded: past `maxKeys`, new keys share
// one overflow key, so neither memory nor audit bytes grow with the number of callers.

import type { SuppressedMarker } from './entries.js';

export interface FloodSettings {
  /** Entries per key and window written in full. */
  burst: number;
  /** The window's length in milliseconds, from the first entry of the key. */
  windowMs: number;
  /** Keys tracked at once; later keys share `OVERFLOW_KEY` until a window ends. */
  maxKeys: number;
}

export const FLOOD_DEFAULTS: FloodSettings = { burst: 10, windowMs: 60_000, maxKeys: 1000 };

/** The key of entries whose own key found no room. */
export const OVERFLOW_KEY = '(other keys)';

/** Longest key kept as given (a longer one is cut: keys come from callers' addresses and names). */
const MAX_KEY_LENGTH = 256;

interface FloodWindow {
  key: string;
  start: number;
  /** Entries seen in this window (written and suppressed). */
  seen: number;
  suppressed: number;
  firstSuppressedAt: number;
  lastSuppressedAt: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class FloodControl {
  private readonly settings: FloodSettings;
  private readonly windows = new Map<string, FloodWindow>();
  /** Suppressed entries since start, over every key. */
  suppressedTotal = 0;

  constructor(settings: Partial<FloodSettings> = {}) {
    this.settings = { ...FLOOD_DEFAULTS, ...settings };
    this.settings.burst = Math.max(0, Math.floor(this.settings.burst));
    this.settings.windowMs = Math.max(1, this.settings.windowMs);
    this.settings.maxKeys = Math.max(1, Math.floor(this.settings.maxKeys));
  }

  get windowMs(): number {
    return this.settings.windowMs;
  }

  /** Whether any window is open (a sweep is due). */
  get active(): boolean {
    return this.windows.size > 0;
  }

  /**
   * Whether an entry with flood key `key` at `at` is written in full. `ended` receives the
   * summary of this key's previous window when that window is over and suppressed some.
   */
  admit(key: string, at: number, ended: (marker: SuppressedMarker) => void): boolean {
    let k = key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key;
    let w = this.windows.get(k);
    if (w !== undefined && at >= w.start + this.settings.windowMs) {
      this.windows.delete(k);
      const marker = this.summary(w);
      if (marker !== undefined) ended(marker);
      w = undefined;
    }
    if (w === undefined) {
      if (this.windows.size >= this.settings.maxKeys) {
        k = OVERFLOW_KEY;
        w = this.windows.get(k);
      }
      if (w === undefined) {
        w = { key: k, start: at, seen: 0, suppressed: 0, firstSuppressedAt: 0, lastSuppressedAt: 0 };
        this.windows.set(k, w);
      }
    }
    w.seen++;
    if (w.seen <= this.settings.burst) return true;
    if (w.suppressed === 0) w.firstSuppressedAt = at;
    w.suppressed++;
    w.lastSuppressedAt = at;
    this.suppressedTotal++;
    return false;
  }

  /** Closes the windows over by `at` (every window when `at` is Infinity); their summaries. */
  sweep(at: number): SuppressedMarker[] {
    const out: SuppressedMarker[] = [];
    for (const [k, w] of this.windows) {
      if (at < w.start + this.settings.windowMs) continue;
      this.windows.delete(k);
      const marker = this.summary(w);
      if (marker !== undefined) out.push(marker);
    }
    return out;
  }

  /** When the earliest open window ends (epoch ms), or undefined when none is open. */
  nextEnd(): number | undefined {
    let next: number | undefined;
    for (const w of this.windows.values()) {
      const end = w.start + this.settings.windowMs;
      if (next === undefined || end < next) next = end;
    }
    return next;
  }

  private summary(w: FloodWindow): SuppressedMarker | undefined {
    if (w.suppressed === 0) return undefined;
    return {
      kind: 'audit_suppressed',
      key: w.key,
      count: w.suppressed,
      written: w.seen - w.suppressed,
      window_started_at: iso(w.start),
      window_ms: this.settings.windowMs,
      first_suppressed_at: iso(w.firstSuppressedAt),
      last_suppressed_at: iso(w.lastSuppressedAt),
    };
  }
}
