// The audit log on a file, written by a worker thread (writer-worker.ts): an audited
// decision costs the serving thread a queue push, then formatting its line and its share of
// one message per batch. The thread chains the lines and appends them.

import { Worker } from 'node:worker_threads';
import { workerModuleUrl } from '../worker-url.js';
import type { AuditEntry } from './entries.js';
import { postable, type Posted } from './chain.js';
import { scrubSecrets } from './format.js';
import { AuditLog, type AuditLogOptions, type ChainStart } from './log.js';
import type { WriterData, WriterMessage, WriterReply } from './writer-worker.js';

// Each message to the thread has a fixed cost (waking it): entries wait up to
// POST_DELAY_MS (or until POST_BATCH of them) so that one message carries many.
const POST_DELAY_MS = 5;
const POST_BATCH = 256;

export class FileAuditLog extends AuditLog {
  private worker: Worker | null;
  /** Entries handed to the writer thread and not yet reported written. */
  private inflight = 0;
  /** Items posted to the thread, and (shared, updated by the thread) items it has handled. */
  private posted = 0;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  private scheduled: 'no' | 'timer' | 'now' = 'no';
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  constructor(opts: AuditLogOptions & { file: string }, start: ChainStart) {
    super(opts, start, true);
    const data: WriterData = { file: opts.file, prev: start.prev, seq: start.seq, done: this.done };
    if (this.hmacKey !== undefined) data.hmacKey = this.hmacKey;
    const worker = new Worker(workerModuleUrl('./writer-worker.js', import.meta.url), { workerData: data });
    this.worker = worker;
    // Referenced only while it holds entries: an idle log never keeps the process alive.
    worker.unref();
    worker.on('message', (reply: WriterReply) => this.onReply(reply));
    worker.on('error', (err) => this.onError(err));
    worker.on('exit', () => this.onExit());
    this.schedule(true);
  }

  protected async drained(): Promise<void> {
    if (this.worker === null) {
      // The writer is gone: anything still queued is lost, and counted.
      this.lose(AuditLog.entriesIn(this.takeBatch()));
      return;
    }
    this.schedule(true);
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      this.settle();
    });
  }

  protected async closeSink(): Promise<void> {
    const w = this.worker;
    if (w !== null) {
      w.ref();
      await new Promise<void>((resolve) => {
        w.once('exit', () => resolve());
        w.postMessage('close' satisfies WriterMessage);
      });
    }
  }

  protected accepts(): boolean {
    return true;
  }

  /** Entries the thread has not handled yet, read without waiting for its replies. */
  protected backlog(): number {
    return this.worker === null ? 0 : (this.posted - Atomics.load(this.done, 0)) | 0;
  }

  protected schedule(urgent: boolean): void {
    if (this.worker === null || this.scheduled === 'now') return;
    if (urgent || this.queue.length >= POST_BATCH) {
      this.scheduled = 'now';
      setImmediate(() => this.post());
    } else if (this.scheduled === 'no') {
      this.scheduled = 'timer';
      this.timer = setTimeout(() => this.post(), POST_DELAY_MS);
    }
  }

  private onReply(reply: WriterReply): void {
    if ('closed' in reply) return;
    this.taken(reply.n);
    if ('error' in reply) {
      this.onError(new Error(reply.error));
      this.lose(reply.entries);
    } else {
      this.written += reply.n;
      this.seq += reply.n;
      this.prev = reply.prev;
      this.hooks.written?.(reply.n);
    }
    this.settle();
  }

  private onExit(): void {
    if (!this.closed) this.onError(new Error('the audit writer thread stopped'));
    // Whatever it held is lost.
    this.lose(this.inflight);
    this.taken(this.inflight);
    this.worker = null;
    this.settle();
  }

  private taken(n: number): void {
    this.inflight -= n;
    if (this.inflight === 0) this.worker?.unref();
  }

  /** Resolves the flushes waiting for everything queued so far to be written. */
  private settle(): void {
    if (this.waiters.length === 0 || this.scheduled !== 'no' || this.inflight > 0 || this.waiting()) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private post(): void {
    this.scheduled = 'no';
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.takeBatch();
    const worker = this.worker;
    if (batch.length > 0) {
      if (this.failed || worker === null) {
        this.lose(AuditLog.entriesIn(batch));
      } else {
        // Decision lines are formatted here (the part of the work that does not need the
        // chain) and sent as strings: cloning an entry object to the thread and reading it
        // there cost more than formatting it. The writer chains and appends.
        const message: Posted = postable(batch);
        try {
          worker.postMessage(message satisfies WriterMessage);
        } catch {
          // Something in an entry cannot be cloned (a function, a symbol...): the scrubbed
          // copy holds JSON values only and is written the same.
          message.others = message.others.map((item) => ({ entry: scrubSecrets(item.entry) as unknown as AuditEntry, at: item.at }));
          worker.postMessage(message satisfies WriterMessage);
        }
        if (this.inflight === 0) worker.ref();
        this.inflight += batch.length;
        this.posted = (this.posted + batch.length) | 0;
      }
    }
    this.settle();
  }
}
