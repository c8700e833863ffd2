// The audit log on a stream (stdout, a socket, a caller's Writable), written from this
// thread: a background writer wakes on the next turn of the event loop, takes everything
// queued, chains it into one chunk and waits for `drain` when the stream pushes back.

import { chain } from './chain.js';
import { AuditLog, NEW_CHAIN, type AuditLogOptions, type AuditSinkStream } from './log.js';

export class StreamAuditLog extends AuditLog {
  private readonly stream: AuditSinkStream;
  private draining: Promise<void> | null = null;
  // Settles when the sink has taken the last chunk handed to it.
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(opts: AuditLogOptions, stream: AuditSinkStream) {
    super(opts, NEW_CHAIN, true);
    this.stream = stream;
    this.schedule();
  }

  protected async drained(): Promise<void> {
    this.schedule();
    while (this.draining !== null) await this.draining;
    await this.lastWrite;
  }

  protected async closeSink(): Promise<void> {}

  protected accepts(): boolean {
    return true;
  }

  protected backlog(): number {
    return 0;
  }

  protected schedule(): void {
    if (this.draining === null) this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    // Yield first so that a burst of writes is batched into one chunk.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const stream = this.stream;
    try {
      while (this.waiting()) {
        const batch = this.takeBatch();
        if (this.failed || stream.destroyed === true) {
          // The sink is gone: what is queued is lost, and counted.
          this.lose(AuditLog.entriesIn(batch));
          this.pendingDrops = 0;
          continue;
        }
        const out = chain(batch, this.prev, this.seq, this.hmacKey);
        this.prev = out.prev;
        this.seq = out.seq;
        let ok = true;
        this.lastWrite = new Promise<void>((resolve) => {
          ok = stream.write(out.chunk, (err) => {
            if (err) this.onError(err);
            resolve();
          });
        });
        this.written += batch.length;
        this.hooks.written?.(batch.length);
        if (!ok && !this.failed) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
      }
    } finally {
      this.draining = null;
    }
  }
}
