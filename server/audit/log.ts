// The audit log as the server sees it: `write` queues an entry and returns (no I/O, no
// hashing on a decision's path), a bounded buffer whose overflow is counted and recorded in
// the chain as an `audit_dropped` line, and the start line of every open. How the queue
// reaches the sink is the subclass's: a writer thread for a file (file-log.ts), this thread
// for a stream (stream-log.ts), nowhere for `none`.

import type { Writable } from 'node:stream';
import type { Queued } from './chain.js';
import { AUDIT_FORMAT_VERSION, GENESIS_HASH, isMarker, type AuditEntry, type AuditWriteOptions, type LogRecord } from './entries.js';
import { FloodControl, type FloodSettings } from './flood.js';

/** Anything with the Writable `write`/`once('drain')` contract (a file, stdout, a socket). */
export type AuditSinkStream = Pick<Writable, 'write' | 'once'> & Partial<Pick<Writable, 'end' | 'destroyed'>>;

export interface AuditMetricsHooks {
  /** Lines written to the sink (entries and markers). */
  written?: (lines: number) => void;
  /** Entries dropped because the buffer was full or the sink failed. */
  dropped?: (entries: number) => void;
  /** The sink reported an error. */
  error?: (err: Error) => void;
}

export interface AuditLogOptions {
  sink: 'file' | 'stdout' | 'none' | AuditSinkStream;
  /** Required for the `file` sink; appended to, continuing its chain. */
  file?: string;
  /** Maximum queued entries before new ones are dropped (default 10,000). */
  bufferSize?: number;
  /** Makes line hashes HMAC-SHA256 with this key: nobody without it can rebuild a chain. */
  hmacKey?: string;
  metrics?: AuditMetricsHooks;
  /** Flood control of entries written with a flood key (defaults: `FLOOD_DEFAULTS`). */
  flood?: Partial<FloodSettings>;
  /** Injected clock (epoch ms) for tests. */
  now?: () => number;
}

export interface AuditStats {
  /** Lines written to the sink, including open and drop markers. */
  written: number;
  /** Entries lost: buffer overflow or sink failure. */
  dropped: number;
  /** Entries waiting for the writer. */
  buffered: number;
  /** Entries held back by flood control (each window summarized in an `audit_suppressed` line). */
  suppressed: number;
}

/** Where the chain stands when a log opens: a new log, or the tail of an existing file. */
export interface ChainStart {
  prev: string;
  seq: number;
  /** The sink already holds a chain (the start line says `audit.open`, not `audit.start`). */
  continued: boolean;
}

export const NEW_CHAIN: ChainStart = { prev: GENESIS_HASH, seq: 0, continued: false };

const iso = (ms: number): string => new Date(ms).toISOString();

export abstract class AuditLog {
  protected readonly now: () => number;
  protected readonly hooks: AuditMetricsHooks;
  protected readonly hmacKey: string | undefined;
  private readonly capacity: number;

  /** The hash of the last line written and the seq of the next one. */
  protected prev: string;
  protected seq: number;
  protected written = 0;
  protected dropped = 0;
  protected closed = false;
  /** The sink failed: what is queued now is lost (and counted). */
  protected failed = false;

  protected queue: Queued[] = [];
  // Entries lost since the last marker; a marker is queued once space returns.
  protected pendingDrops = 0;
  private firstDropAt = 0;
  private lastDropAt = 0;
  /**
   * The first line of every open records the start (in a new log it is the genesis line).
   * It is held apart from the queue so that it never takes an entry's place in the buffer.
   */
  protected startLine: Queued | null;
  private readonly flood: FloodControl;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(opts: AuditLogOptions, start: ChainStart, writes: boolean) {
    this.now = opts.now ?? Date.now;
    this.capacity = Math.max(1, opts.bufferSize ?? 10_000);
    this.hooks = opts.metrics ?? {};
    this.hmacKey = opts.hmacKey;
    this.flood = new FloodControl(opts.flood);
    this.prev = start.prev;
    this.seq = start.seq;
    this.startLine = writes
      ? {
          entry: { kind: 'admin', operation: start.continued ? 'audit.open' : 'audit.start', actor: 'system', detail: { format: AUDIT_FORMAT_VERSION, alg: this.hmacKey === undefined ? 'sha256' : 'hmac-sha256' } },
          at: this.now(),
        }
      : null;
  }

  /**
   * Queues an entry; never blocks and never throws. With `options.flood`, the entry counts
   * against its flood key and is only counted once the key is over its burst.
   */
  write(entry: AuditEntry, options?: AuditWriteOptions): void {
    if (this.closed) {
      this.countDrop(1, this.now());
      return;
    }
    if (!this.accepts()) return;
    const at = this.now();
    if (options?.flood !== undefined && !this.admit(options.flood.key, at)) return;
    if (this.queue.length + this.backlog() >= this.capacity) {
      this.countDrop(1, at);
      return;
    }
    if (this.pendingDrops > 0) this.queueMarkerIfNeeded();
    this.queue.push({ entry, at });
    this.schedule(false);
  }

  /**
   * Resolves when every entry queued so far reached the sink (with the summaries of flood
   * windows that are over).
   */
  async flush(): Promise<void> {
    this.queueMarkers(this.flood.sweep(this.now()));
    this.queueMarkerIfNeeded();
    await this.drained();
  }

  /**
   * Flushes (closing every flood window: their summaries are written), then closes the sink
   * (stdout is left open). Later writes are dropped.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.queueMarkers(this.flood.sweep(Infinity));
    await this.flush();
    this.closed = true;
    clearTimeout(this.sweepTimer);
    await this.closeSink();
  }

  stats(): AuditStats {
    return { written: this.written, dropped: this.dropped, buffered: this.queue.length + this.backlog(), suppressed: this.flood.suppressedTotal };
  }

  /** The hash of the last line written: store it elsewhere to detect a truncated tail. */
  head(): string {
    return this.prev;
  }

  /** Resolves once everything taken so far reached the sink. */
  protected abstract drained(): Promise<void>;

  /** Releases the sink after the last flush. */
  protected abstract closeSink(): Promise<void>;

  /** Whether entries go anywhere (false for the `none` sink). */
  protected abstract accepts(): boolean;

  /** Entries handed to the sink and not written yet (they count against the buffer). */
  protected abstract backlog(): number;

  /** Starts the writer; `urgent`: without any batching delay (flush, a full batch). */
  protected abstract schedule(urgent: boolean): void;

  protected onError(err: Error): void {
    this.failed = true;
    this.hooks.error?.(err);
  }

  /** Flood control: whether this entry is written; a window that ended is summarized first. */
  private admit(key: string, at: number): boolean {
    const admitted = this.flood.admit(key, at, (marker) => this.queueMarkers([marker]));
    if (this.sweepTimer === undefined) this.armSweep();
    return admitted;
  }

  /** Summarizes flood windows as they end, also when no entry of their key follows. */
  private armSweep(): void {
    const end = this.flood.nextEnd();
    if (end === undefined || this.closed) return;
    const delay = Math.min(Math.max(end - this.now(), 0), this.flood.windowMs) + 1;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      const markers = this.flood.sweep(this.now());
      if (markers.length > 0) {
        this.queueMarkers(markers);
        this.schedule(false);
      }
      this.armSweep();
    }, delay);
    // An open window never keeps the process alive: close() summarizes what is left.
    this.sweepTimer.unref();
  }

  /** The log's own lines, queued whatever the buffer holds (they must not be lost themselves). */
  private queueMarkers(markers: readonly LogRecord[]): void {
    const at = this.now();
    for (const entry of markers) this.queue.push({ entry, at });
  }

  private countDrop(n: number, at: number): void {
    if (this.pendingDrops === 0) this.firstDropAt = at;
    this.pendingDrops += n;
    this.lastDropAt = at;
    this.dropped += n;
    this.hooks.dropped?.(n);
  }

  /** Entries lost with the sink (already out of the buffer): counted, no marker possible. */
  protected lose(n: number): void {
    if (n <= 0) return;
    this.dropped += n;
    this.hooks.dropped?.(n);
  }

  protected queueMarkerIfNeeded(): void {
    if (this.pendingDrops === 0) return;
    // The marker may exceed capacity by one: it must not be lost itself.
    this.queue.push({
      entry: { kind: 'audit_dropped', count: this.pendingDrops, first_dropped_at: iso(this.firstDropAt), last_dropped_at: iso(this.lastDropAt) },
      at: this.lastDropAt,
    });
    this.pendingDrops = 0;
  }

  /** Whether anything waits to be taken: the start line, the queue, a pending drop marker. */
  protected waiting(): boolean {
    return this.queue.length > 0 || this.pendingDrops > 0 || this.startLine !== null;
  }

  /** The next batch to write: the start line, the queue, a pending drop marker. */
  protected takeBatch(): Queued[] {
    this.queueMarkerIfNeeded();
    const batch = this.queue;
    this.queue = [];
    if (this.startLine !== null) {
      batch.unshift(this.startLine);
      this.startLine = null;
    }
    return batch;
  }

  /** Caller entries in a batch (markers are not entries: losing one loses no entry). */
  protected static entriesIn(batch: readonly Queued[]): number {
    let n = 0;
    for (const item of batch) if (!isMarker(item.entry)) n++;
    return n;
  }
}

/** The `none` sink: accepts writes and records nothing. */
export class DisabledAuditLog extends AuditLog {
  constructor(opts: AuditLogOptions) {
    super(opts, NEW_CHAIN, false);
  }

  protected async drained(): Promise<void> {}

  protected async closeSink(): Promise<void> {}

  protected accepts(): boolean {
    return false;
  }

  protected backlog(): number {
    return 0;
  }

  protected schedule(): void {}
}
