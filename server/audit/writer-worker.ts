// The writer thread of the audit log's `file` sink: it chains what the serving thread posts
// (server/audit/file-log.ts) and appends it to the file, then reports the new head. It is
// started from this module's own file (server/worker-url.ts).

import { closeSync, openSync, writeSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { chainPosted, type Posted } from './chain.js';
import { isMarker } from './entries.js';

/** What the log hands the thread when it starts it. */
export interface WriterData {
  file: string;
  /** The chain's head and next seq when the thread starts. */
  prev: string;
  seq: number;
  hmacKey?: string;
  /** Shared with the log: items this thread has handled, read without waiting for replies. */
  done: Int32Array;
}

/** What the log posts: a batch, or `close`. */
export type WriterMessage = Posted | 'close';

/** What the thread answers: per batch, the items it handled and the new head or the error. */
export type WriterReply = { n: number; entries: number; prev: string } | { n: number; entries: number; error: string } | { closed: true };

/** Appends chained batches to one file. */
export class FileWriter {
  private prev: string;
  private seq: number;
  private fd = -1;
  private error: string | undefined;

  constructor(
    private readonly data: WriterData,
    private readonly port: MessagePort,
  ) {
    this.prev = data.prev;
    this.seq = data.seq;
    try {
      this.fd = openSync(data.file, 'a');
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  listen(): void {
    this.port.on('message', (msg: WriterMessage) => (msg === 'close' ? this.close() : this.append(msg)));
  }

  private close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.port.postMessage({ closed: true } satisfies WriterReply);
    this.port.close();
  }

  private append(msg: Posted): void {
    // Items in the message: a decision's three cuts count once, anything else once.
    let n = 0;
    let markers = 0;
    for (const c of msg.cuts) if (c < 0) n++;
    n += (msg.cuts.length - n) / 3;
    for (const item of msg.others) if (isMarker(item.entry)) markers++;
    if (this.error === undefined) {
      try {
        const out = chainPosted(msg, this.prev, this.seq, this.data.hmacKey);
        const bytes = Buffer.from(out.chunk, 'utf8');
        for (let at = 0; at < bytes.length; ) at += writeSync(this.fd, bytes, at);
        this.prev = out.prev;
        this.seq = out.seq;
      } catch (err) {
        this.error = (err as Error).message;
      }
    }
    const entries = n - markers;
    // Seen by the log's `write` at once, without waiting for this reply to be read.
    Atomics.add(this.data.done, 0, n);
    const reply: WriterReply = this.error === undefined ? { n, entries, prev: this.prev } : { n, entries, error: this.error };
    this.port.postMessage(reply);
  }
}

if (parentPort !== null) new FileWriter(workerData as WriterData, parentPort).listen();
