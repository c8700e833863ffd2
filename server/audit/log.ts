// The audit log as the server sees it: `write` queues an entry and returns (no I/O, no
// hashing on a decision's path), a bounded buffer whose overflow is counted and recorded in
// the chain as an `audit_dropped` line, and the start line of every open. How the queue
// reaches the sink is the subclass's: a writer thread for a file (file-log.ts), this thread
// for a stream (stream-log.ts), nowhere for `none`.

import type { Writable } from 'node:stream';
import { AUDIT_FORMAT_VERSION, GENESIS_HASH, type AuditEntry } from './entries.js';
import type { Queued } from './format.js';

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

  constructor(opts: AuditLogOptions, start: ChainStart, writes: boolean) {
    this.now = opts.now ?? Date.now;
    this.capacity = Math.max(1, opts.bufferSize ?? 10_000);
    this.hooks = opts.metrics ?? {};
    this.hmacKey = opts.hmacKey;
    this.prev = start.prev;
    this.seq = start.seq;
    this.startLine = writes
      ? {
          entry: { kind: 'admin', operation: start.continued ? 'audit.open' : 'audit.start', actor: 'system', detail: { format: AUDIT_FORMAT_VERSION, alg: this.hmacKey === undefined ? 'sha256' : 'hmac-sha256' } },
          at: this.now(),
        }
      : null;
  }

  /** Queues an entry; never blocks and never throws. */
  write(entry: AuditEntry): void {
    if (this.closed) {
      this.countDrop(1, this.now());
      return;
    }
    if (!this.accepts()) return;
    const at = this.now();
    if (this.queue.length + this.backlog() >= this.capacity) {
      this.countDrop(1, at);
      return;
    }
    if (this.pendingDrops > 0) this.queueMarkerIfNeeded();
    this.queue.push({ entry, at });
    this.schedule(false);
  }

  /** Resolves when every entry queued so far reached the sink. */
  abstract flush(): Promise<void>;

  /** Flushes, then closes the sink (stdout is left open). Later writes are dropped. */
  abstract close(): Promise<void>;

  stats(): AuditStats {
    return { written: this.written, dropped: this.dropped, buffered: this.queue.length + this.backlog() };
  }

  /** The hash of the last line written: store it elsewhere to detect a truncated tail. */
  head(): string {
    return this.prev;
  }

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
    for (const item of batch) if (item.entry.kind !== 'audit_dropped') n++;
    return n;
  }
}

/** The `none` sink: accepts writes and records nothing. */
export class DisabledAuditLog extends AuditLog {
  constructor(opts: AuditLogOptions) {
    super(opts, NEW_CHAIN, false);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }

  protected accepts(): boolean {
    return false;
  }

  protected backlog(): number {
    return 0;
  }

  protected schedule(): void {}
}
