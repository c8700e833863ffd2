// The serving policy set and its hot reload. One reference holds the current compiled
// PolicySet; a reload reads, checks and compiles a whole new set first and swaps that one
// reference only when it is valid, so no request ever sees a half-loaded set. A broken set
// is rejected, its diagnostics kept for the admin API, and the last good set keeps serving.

import { watch, type FSWatcher } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { PolicySet } from '../engine/decision.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import { hasErrors, sortDiagnostics } from '../engine/diagnostics.js';
import type { PolicySource } from './decider.js';

export interface LoadedPolicies {
  policySet?: PolicySet;
  diagnostics: Diagnostic[];
}

/** Reads and compiles the policy directory; never throws for bad policies (diagnostics). */
export type PolicyLoader = (dir: string) => Promise<LoadedPolicies>;

export const loadPolicyDirectory: PolicyLoader = async (dir) => {
  // Loaded on first use: a holder given its own loader never pulls in the compiler.
  const [{ readPolicySources }, { loadPolicySet }] = await Promise.all([import('./policy-files.js'), import('../engine/load.js')]);
  const read = await readPolicySources([dir]);
  const errors = read.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return { diagnostics: sortDiagnostics(read.diagnostics) };
  if (read.sources.length === 0) {
    return {
      diagnostics: [
        {
          code: 'agp_io_error',
          severity: 'error',
          message: `no .agp files under \`${dir}\``,
          file: dir,
          line: 1,
          col: 1,
          endLine: 1,
          endCol: 1,
          hint: 'point --policies (AGP_POLICIES) at the directory holding the policy set',
        },
      ],
    };
  }
  // Compilation is synchronous but happens between requests, never inside one.
  const loaded = loadPolicySet(read.sources);
  const diagnostics = sortDiagnostics([...read.diagnostics, ...loaded.diagnostics]);
  return loaded.policySet === undefined ? { diagnostics } : { policySet: loaded.policySet, diagnostics };
};

export type ReloadTrigger = 'start' | 'watch' | 'signal' | 'admin';

export interface ReloadResult {
  ok: boolean;
  /** The serving revision after this attempt (unchanged when it failed). */
  revision: string | undefined;
  /** A new revision is now serving. */
  changed: boolean;
  trigger: ReloadTrigger;
  diagnostics: Diagnostic[];
  durationMs: number;
}

export interface PolicyStatus {
  directory: string;
  revision: string | undefined;
  /** RFC 3339 time the serving set was loaded. */
  loadedAt: string | undefined;
  /** The latest reload attempt, successful or not. */
  lastAttempt: (Omit<ReloadResult, 'diagnostics'> & { at: string; diagnostics: Diagnostic[] }) | undefined;
  /** The diagnostics of the latest rejected set, kept until a later set loads. */
  rejected: { at: string; diagnostics: Diagnostic[] } | undefined;
}

/** A pino-compatible logger subset. */
export interface HolderLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface PolicyHolderOptions {
  directory: string;
  loader?: PolicyLoader;
  /** Quiet period after the last file change before reloading. */
  debounceMs?: number;
  log?: HolderLog;
  onReload?: (result: ReloadResult) => void;
  clock?: () => number;
}

const silent: HolderLog = { info() {}, warn() {}, error() {} };

export class PolicyHolder implements PolicySource {
  /** The serving set: read once per decision; replaced whole, never mutated. */
  current: PolicySet | undefined = undefined;
  readonly directory: string;
  private readonly loader: PolicyLoader;
  private readonly debounceMs: number;
  private readonly clock: () => number;
  private log: HolderLog;
  private readonly listeners: ((result: ReloadResult) => void)[] = [];
  private loadedAt: number | undefined;
  private lastAttempt: PolicyStatus['lastAttempt'];
  private rejected: PolicyStatus['rejected'];
  private running: Promise<ReloadResult> | undefined;
  private queued: { trigger: ReloadTrigger; promise: Promise<ReloadResult> } | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: PolicyHolderOptions) {
    this.directory = options.directory;
    this.loader = options.loader ?? loadPolicyDirectory;
    this.debounceMs = options.debounceMs ?? 200;
    this.log = options.log ?? silent;
    this.clock = options.clock ?? Date.now;
    if (options.onReload !== undefined) this.listeners.push(options.onReload);
  }

  /** A holder serving one fixed set (tests, embedding); `reload` re-runs `loader` if given. */
  static of(policySet: PolicySet | undefined, loader?: PolicyLoader): PolicyHolder {
    const h = new PolicyHolder({
      directory: '(memory)',
      loader: loader ?? (() => Promise.resolve(policySet === undefined ? { diagnostics: [] } : { policySet, diagnostics: [] })),
    });
    h.current = policySet;
    if (policySet !== undefined) h.loadedAt = Date.now();
    return h;
  }

  setLog(log: HolderLog): void {
    this.log = log;
  }

  /** Calls `listener` after every reload attempt; returns the unsubscribe function. */
  onReload(listener: (result: ReloadResult) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  get revision(): string | undefined {
    return this.current?.revision;
  }

  /**
   * Loads the directory and swaps the serving set if the new one is valid. Reloads never
   * overlap: a request during a reload queues one more run (coalescing further requests).
   */
  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    if (this.running === undefined) {
      this.running = this.run(trigger).finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    if (this.queued === undefined) {
      const after = this.running.then(
        () => undefined,
        () => undefined,
      );
      const promise = after.then(() => {
        this.queued = undefined;
        return this.reload(trigger);
      });
      this.queued = { trigger, promise };
    }
    return this.queued.promise;
  }

  private async run(trigger: ReloadTrigger): Promise<ReloadResult> {
    const started = performance.now();
    let loaded: LoadedPolicies;
    try {
      loaded = await this.loader(this.directory);
    } catch (err) {
      // A loader bug must not take the service down: treat it as a rejected set.
      this.log.error({ err }, 'policy loader failed');
      loaded = {
        diagnostics: [
          {
            code: 'agp_io_error',
            severity: 'error',
            message: `could not load \`${this.directory}\`: ${err instanceof Error ? err.message : String(err)}`,
            file: this.directory,
            line: 1,
            col: 1,
            endLine: 1,
            endCol: 1,
          },
        ],
      };
    }
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    const now = this.clock();
    const at = new Date(now).toISOString();
    const set = loaded.policySet;
    let result: ReloadResult;
    if (set === undefined || hasErrors(loaded.diagnostics)) {
      const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
      result = { ok: false, revision: this.current?.revision, changed: false, trigger, diagnostics: loaded.diagnostics, durationMs };
      this.rejected = { at, diagnostics: loaded.diagnostics };
      this.log.error(
        {
          trigger,
          directory: this.directory,
          serving: this.current?.revision ?? null,
          errors: errors.length,
          first: errors.slice(0, 5).map((d) => `${d.file}:${d.line}:${d.col} ${d.code} ${d.message}`),
        },
        this.current === undefined ? 'policy set rejected; no policy set is serving' : 'policy set rejected; the last good set keeps serving',
      );
    } else {
      const changed = set.revision !== this.current?.revision;
      if (changed) {
        this.current = set;
        this.loadedAt = now;
      }
      this.rejected = undefined;
      result = { ok: true, revision: set.revision, changed, trigger, diagnostics: loaded.diagnostics, durationMs };
      this.log.info(
        { trigger, directory: this.directory, revision: set.revision, policies: set.ir.policies.length, warnings: loaded.diagnostics.length, durationMs },
        changed ? 'policy set loaded' : 'policy set unchanged',
      );
    }
    this.lastAttempt = { ...result, at };
    for (const l of this.listeners) {
      try {
        l(result);
      } catch (err) {
        this.log.error({ err }, 'reload listener failed');
      }
    }
    return result;
  }

  status(): PolicyStatus {
    return {
      directory: this.directory,
      revision: this.current?.revision,
      loadedAt: this.loadedAt === undefined ? undefined : new Date(this.loadedAt).toISOString(),
      lastAttempt: this.lastAttempt,
      rejected: this.rejected,
    };
  }

  /** Reloads after changes under the directory settle (recursive watch, Node >= 20.13 on Linux). */
  watch(): void {
    if (this.watcher !== undefined || this.closed) return;
    try {
      this.watcher = watch(this.directory, { recursive: true, persistent: false }, (_event, filename) => {
        // Editors write temporary files next to the real one; only policy files and
        // directories (no extension) can change the set.
        if (filename !== null && !filename.endsWith('.agp') && /\.[^/\\]*$/.test(filename)) return;
        this.schedule();
      });
      this.watcher.on('error', (err) => {
        this.log.warn({ err, directory: this.directory }, 'policy directory watch failed; reload with SIGHUP or the admin api');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn({ err, directory: this.directory }, 'cannot watch the policy directory; reload with SIGHUP or the admin api');
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload('watch');
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Stops watching; waits for a reload in progress. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    if (this.running !== undefined) await this.running.catch(() => undefined);
  }
}
