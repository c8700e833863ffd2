// The audit log: one hash-chained JSON line per decision, rejected request, anomaly and
// admin change. Writing never blocks a decision: `write` only queues; a background writer
// drains the queue to the sink with backpressure, and overflow is counted and recorded in
// the chain as an `audit_dropped` line so that a gap is always visible.

import type * as Crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import type * as Fs from 'node:fs';
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import type * as WorkerThreads from 'node:worker_threads';
import { Worker } from 'node:worker_threads';

/** `prev` of the first line of a log: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_FORMAT_VERSION = 1;

type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

export interface AuditResourceRef {
  type: string;
  id: string;
}

interface EntryBase {
  /** RFC 3339 with milliseconds; filled in by `write` when absent. */
  time?: string;
  request_id?: string;
  trace_id?: string;
}

/** A decision that was made (permit, deny or escalate). */
export interface DecisionAuditEntry extends EntryBase {
  kind: 'decision';
  decision_id: string;
  agent: string | null;
  /** The user the agent acts for, when the request says so. */
  on_behalf_of?: string;
  action: string | null;
  resource: AuditResourceRef | null;
  effect: string;
  allowed: boolean;
  risk: number;
  policies: string[];
  reasons: string[];
  revision: string;
  latency_us: number;
  /** Which API received it: `decide`, `connect`, `authzen`... */
  api?: string;
}

/** A request that got no decision: invalid input, no policy set, store unavailable... */
export interface RejectedAuditEntry extends EntryBase {
  kind: 'rejected';
  decision_id: string;
  agent: string | null;
  on_behalf_of?: string;
  action: string | null;
  resource: AuditResourceRef | null;
  status: number;
  error: { code: string; message: string; issues?: { path: string; message: string }[] };
  revision?: string;
  latency_us: number;
  api?: string;
}

/** An anomaly reported by the context store's behaviour analytics. */
export interface AnomalyAuditEntry extends EntryBase {
  kind: 'anomaly';
  agent: string;
  anomaly: string;
  value: number;
  threshold: number;
}

/** A change made through the admin API or a policy reload. */
export interface AdminAuditEntry extends EntryBase {
  kind: 'admin';
  /** What was done, e.g. `agent.put`, `grant.create`, `policies.reload`. */
  operation: string;
  /** Who did it (the admin key's name or `system`). */
  actor?: string;
  /** What it was done to, e.g. an agent id. */
  target?: string;
  outcome?: 'ok' | 'failed';
  detail?: { [k: string]: JsonValue };
}

export type AuditEntry = DecisionAuditEntry | RejectedAuditEntry | AnomalyAuditEntry | AdminAuditEntry;

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

export interface AuditLog {
  /** Queues an entry; never blocks and never throws. */
  write(entry: AuditEntry): void;
  /** Resolves when every entry queued so far reached the sink. */
  flush(): Promise<void>;
  /** Flushes, then closes the sink (stdout is left open). Later writes are dropped. */
  close(): Promise<void>;
  stats(): AuditStats;
  /** The hash of the last line written: store it elsewhere to detect a truncated tail. */
  head(): string;
}

// ---------------------------------------------------------------- the line format

/** One entry waiting for the writer, with the time it was queued. */
interface Queued {
  entry: AuditEntry | DropMarker;
  at: number;
}

/**
 * What the serving thread posts to the writer thread. Decisions arrive formatted: their
 * `DecisionParts` (the canonical body around `prev` and `seq`, which only the writer knows)
 * back to back in `text`, three end offsets each in `cuts`. A `-1` in `cuts` stands for the
 * next entry of `others` (anything else, formatted by the writer). One string and one array
 * of numbers cost far less to send between threads than an object per entry.
 */
interface Posted {
  text: string;
  cuts: number[];
  others: Queued[];
}

/** A decision line's body without its closing brace: head + prev + mid + seq + tail. */
type DecisionParts = [head: string, mid: string, tail: string];

interface DropMarker {
  kind: 'audit_dropped';
  count: number;
  first_dropped_at: string;
  last_dropped_at: string;
}

/** What `chain` returns: the chunk to append and the chain's new head. */
interface Chained {
  chunk: string;
  prev: string;
  seq: number;
}

/**
 * The line format: scrubbing, canonical JSON, the decision line's fast path, chaining. One
 * self-contained function that refers to nothing outside its body but `load` (node's
 * `require`): the file writer runs this very code in a worker thread, built from this
 * function's source text. Keep it that way: no module-scope values inside.
 */
function lineFormat(load: (id: string) => unknown) {
  const { createHmac, hash: hashOnce } = load('node:crypto') as typeof Crypto;

  const SECRET_KEY = /token|secret|authorization|password|passwd|assertion|api[-_]?key|credential|cookie|private[-_]?key/i;
  const JWT_LIKE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
  const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
  // Neither pattern can match a string without one of these: one scan instead of two.
  const SUSPECT = /eyJ|bearer|basic/i;
  // What JSON.stringify escapes (and any surrogate, so that a lone one is escaped too):
  // a string without them is written as is between quotes, several times faster.
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

  function scrubString(value: string): string {
    if (value.length < 12 || !SUSPECT.test(value)) return value;
    return value.replace(JWT_LIKE, '[redacted]').replace(BEARER, '$1 [redacted]');
  }

  function canonicalJson(value: unknown): string {
    if (value === null || typeof value !== 'object') {
      const s = JSON.stringify(value);
      return s === undefined ? 'null' : s;
    }
    if (Array.isArray(value)) {
      let out = '[';
      for (let i = 0; i < value.length; i++) {
        if (i > 0) out += ',';
        const v: unknown = value[i];
        out += v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v);
      }
      return out + ']';
    }
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    let out = '{';
    let first = true;
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined || typeof v === 'function') continue;
      if (!first) out += ',';
      first = false;
      out += JSON.stringify(k) + ':' + canonicalJson(v);
    }
    return out + '}';
  }

  function scrubSecrets(value: unknown, depth = 0): JsonValue {
    if (typeof value === 'string') return scrubString(value);
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'boolean' || value === null) return value;
    if (typeof value !== 'object' || depth > 16) return null;
    if (Array.isArray(value)) return value.map((v: unknown) => scrubSecrets(v, depth + 1));
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined || typeof v === 'function') continue;
      out[k] = SECRET_KEY.test(k) ? '[redacted]' : scrubSecrets(v, depth + 1);
    }
    return out;
  }

  function lineHash(prev: string, body: string, hmacKey: string | undefined): string {
    // The one-shot hash is about twice as fast as a Hash object for a line-sized input.
    if (hmacKey === undefined) return hashOnce('sha256', prev + body, 'hex');
    return createHmac('sha256', hmacKey).update(prev).update(body).digest('hex');
  }

  /** A scrubbed string as JSON. */
  function q(value: string): string {
    const s = scrubString(value);
    return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
  }

  // The strings a decision line repeats from one decision to the next (policy names,
  // reasons, the revision, actions, agent ids...) are scrubbed and quoted once.
  const quoted = new Map<string, string>();
  function qc(value: string): string {
    let out = quoted.get(value);
    if (out === undefined) {
      out = q(value);
      if (value.length <= 256) {
        if (quoted.size >= 4096) quoted.clear();
        quoted.set(value, out);
      }
    }
    return out;
  }

  /** A scrubbed string or null as JSON; undefined when `value` is neither. */
  function qn(value: unknown): string | undefined {
    if (typeof value === 'string') return qc(value);
    return value === null ? 'null' : undefined;
  }

  /** A number as `scrubSecrets` then `canonicalJson` write it; undefined when not a number. */
  function num(value: unknown): string | undefined {
    if (typeof value !== 'number') return undefined;
    return Number.isFinite(value) ? String(value) : 'null';
  }

  function strings(value: unknown): string | undefined {
    if (!Array.isArray(value)) return undefined;
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'string') return undefined;
      out += i === 0 ? qc(v) : ',' + qc(v);
    }
    return out + ']';
  }

  const DECISION_KEYS = new Set([
    'kind', 'decision_id', 'time', 'agent', 'on_behalf_of', 'action', 'resource', 'effect', 'allowed', 'risk',
    'policies', 'reasons', 'revision', 'latency_us', 'request_id', 'trace_id', 'api',
  ]);

  /**
   * The chained body of a decision entry without its closing brace, in three parts around
   * `prev` and `seq`: byte for byte what the generic path (scrub, then canonical JSON)
   * gives, keys in sorted order, written directly. Undefined when the entry holds anything
   * unexpected: the generic path takes it then.
   */
  function decisionParts(e: DecisionAuditEntry, at: number): DecisionParts | undefined {
    for (const k in e) if (!DECISION_KEYS.has(k)) return undefined;
    const action = qn(e.action);
    const agent = qn(e.agent);
    const risk = num(e.risk);
    const latency = num(e.latency_us);
    const policies = strings(e.policies);
    const reasons = strings(e.reasons);
    if (action === undefined || agent === undefined || typeof e.allowed !== 'boolean' || risk === undefined || latency === undefined || policies === undefined || reasons === undefined) return undefined;
    if (typeof e.decision_id !== 'string' || typeof e.effect !== 'string' || typeof e.revision !== 'string') return undefined;
    let resource: string;
    const r = e.resource as unknown;
    if (r === null) resource = 'null';
    else {
      if (typeof r !== 'object' || Array.isArray(r)) return undefined;
      const ref = r as { [k: string]: unknown };
      for (const k in ref) if (k !== 'id' && k !== 'type') return undefined;
      if (typeof ref['id'] !== 'string' || typeof ref['type'] !== 'string') return undefined;
      resource = `{"id":${q(ref['id'])},"type":${qc(ref['type'])}}`;
    }
    let out = `{"action":${action},"agent":${agent},"allowed":${e.allowed ? 'true' : 'false'}`;
    if (e.api !== undefined) {
      if (typeof e.api !== 'string') return undefined;
      out += `,"api":${qc(e.api)}`;
    }
    out += `,"decision_id":${q(e.decision_id)},"effect":${qc(e.effect)},"kind":"decision","latency_us":${latency}`;
    if (e.on_behalf_of !== undefined) {
      if (typeof e.on_behalf_of !== 'string') return undefined;
      out += `,"on_behalf_of":${q(e.on_behalf_of)}`;
    }
    out += `,"policies":${policies}`;
    let mid = `,"reasons":${reasons}`;
    if (e.request_id !== undefined) {
      if (typeof e.request_id !== 'string') return undefined;
      mid += `,"request_id":${q(e.request_id)}`;
    }
    mid += `,"resource":${resource},"revision":${qc(e.revision)},"risk":${risk}`;
    const time = e.time;
    if (time !== undefined && typeof time !== 'string') return undefined;
    let tail = `,"time":${q(time ?? new Date(at).toISOString())}`;
    if (e.trace_id !== undefined) {
      if (typeof e.trace_id !== 'string') return undefined;
      tail += `,"trace_id":${q(e.trace_id)}`;
    }
    return [out, mid, tail];
  }

  /** The generic path: the canonical JSON of the scrubbed entry with time, seq and prev. */
  function genericBody(item: Queued, seq: number, prev: string): string {
    const record = scrubSecrets(item.entry) as { [k: string]: JsonValue };
    if (typeof record['time'] !== 'string') record['time'] = new Date(item.at).toISOString();
    record['seq'] = seq;
    record['prev'] = prev;
    return canonicalJson(record);
  }

  /** The body of one line without its closing brace. */
  function openLine(item: Queued, seq: number, prev: string): string {
    const e = item.entry;
    const parts = e.kind === 'decision' ? decisionParts(e, item.at) : undefined;
    return parts === undefined ? genericBody(item, seq, prev).slice(0, -1) : `${parts[0]},"prev":${JSON.stringify(prev)}${parts[1]},"seq":${seq}${parts[2]}`;
  }

  /** Closes a line with its hash, the last member and outside what it hashes. */
  function closeLine(open: string, prev: string, hmacKey: string | undefined): string {
    return lineHash(prev, open + '}', hmacKey);
  }

  /** One chained line per item, in order, after the line whose hash is `prev`. */
  function chain(items: readonly Queued[], prev: string, seq: number, hmacKey: string | undefined): Chained {
    let chunk = '';
    for (const item of items) {
      const open = openLine(item, seq, prev);
      const hash = closeLine(open, prev, hmacKey);
      chunk += `${open},"hash":"${hash}"}\n`;
      prev = hash;
      seq++;
    }
    return { chunk, prev, seq };
  }

  /** `chain` over what the serving thread posted. */
  function chainPosted(msg: Posted, prev: string, seq: number, hmacKey: string | undefined): Chained {
    const { text, cuts, others } = msg;
    let chunk = '';
    let at = 0;
    let other = 0;
    for (let i = 0; i < cuts.length; i++) {
      let open: string;
      const c = cuts[i]!;
      if (c < 0) {
        open = openLine(others[other++]!, seq, prev);
      } else {
        const mid = cuts[i + 1]!;
        const end = cuts[i + 2]!;
        open = `${text.slice(at, c)},"prev":${JSON.stringify(prev)}${text.slice(c, mid)},"seq":${seq}${text.slice(mid, end)}`;
        at = end;
        i += 2;
      }
      const hash = closeLine(open, prev, hmacKey);
      chunk += `${open},"hash":"${hash}"}\n`;
      prev = hash;
      seq++;
    }
    return { chunk, prev, seq };
  }

  return { canonicalJson, scrubSecrets, lineHash, chain, chainPosted, decisionParts };
}

/** The writer thread of a `file` sink: chains and appends what the log posts to it. */
function fileWriter(format: ReturnType<typeof lineFormat>, load: (id: string) => unknown): void {
  const { parentPort, workerData } = load('node:worker_threads') as typeof WorkerThreads;
  const fs = load('node:fs') as typeof Fs;
  const port = parentPort!;
  const data = workerData as { file: string; prev: string; seq: number; hmacKey?: string; done: Int32Array };
  let prev = data.prev;
  let seq = data.seq;
  let fd = -1;
  let error: string | undefined;
  try {
    fd = fs.openSync(data.file, 'a');
  } catch (err) {
    error = (err as Error).message;
  }
  port.on('message', (msg: Posted | 'close') => {
    if (msg === 'close') {
      if (fd >= 0) fs.closeSync(fd);
      port.postMessage({ closed: true });
      port.close();
      return;
    }
    // Items in the message: a decision's three cuts count once, anything else once.
    let n = 0;
    let markers = 0;
    for (const c of msg.cuts) if (c < 0) n++;
    n += (msg.cuts.length - n) / 3;
    for (const item of msg.others) if (item.entry.kind === 'audit_dropped') markers++;
    if (error === undefined) {
      try {
        const out = format.chainPosted(msg, prev, seq, data.hmacKey);
        const bytes = Buffer.from(out.chunk, 'utf8');
        for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at);
        prev = out.prev;
        seq = out.seq;
      } catch (err) {
        error = (err as Error).message;
      }
    }
    const entries = n - markers;
    // Seen by the log's `write` at once, without waiting for this reply to be read.
    Atomics.add(data.done, 0, n);
    port.postMessage(error === undefined ? { n, entries, prev } : { n, entries, error });
  });
}

const format = lineFormat(createRequire(import.meta.url));

/** JSON with object keys sorted recursively and no whitespace; `undefined` members omitted. */
export function canonicalJson(value: unknown): string {
  return format.canonicalJson(value);
}

/**
 * A copy of `value` where members named like a credential are replaced by `[redacted]` and
 * JWT-looking or `Bearer ...` substrings inside strings by `[redacted]`. Callers should never
 * pass secrets; this is the second line of defence.
 */
export function scrubSecrets(value: unknown): JsonValue {
  return format.scrubSecrets(value);
}

const lineHash = format.lineHash;

// ---------------------------------------------------------------- reading an existing chain

interface ChainTail {
  hash: string;
  seq: number;
}

/** Reads the last line of `path` to continue its chain; undefined for a missing/empty file. */
function readTail(path: string): ChainTail | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return undefined;
    // Grow the window until it holds a whole last line.
    for (let window = 8192; ; window *= 4) {
      const start = Math.max(0, size - window);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const text = buf.toString('utf8').replace(/\n+$/, '');
      const nl = text.lastIndexOf('\n');
      if (nl >= 0 || start === 0) {
        const last = text.slice(nl + 1);
        try {
          const parsed = JSON.parse(last) as { hash?: unknown; seq?: unknown };
          if (typeof parsed.hash === 'string' && typeof parsed.seq === 'number') {
            return { hash: parsed.hash, seq: parsed.seq };
          }
        } catch {
          // fall through: an unreadable tail
        }
        // A torn or foreign last line: continue from a hash of its bytes so the chain stays
        // linked to what is on disk; `verifyAuditFile` reports the bad line itself.
        return { hash: createHash('sha256').update(last).digest('hex'), seq: -1 };
      }
    }
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- the log

/** The source text of the `file` sink's writer thread: the line format and the writer. */
const WRITER_SOURCE = `"use strict";\nconst format = (${lineFormat.toString()})(require);\n(${fileWriter.toString()})(format, require);\n`;

const POST_DELAY_MS = 5;
const POST_BATCH = 256;

type WriterReply = { n: number; entries: number; prev: string } | { n: number; entries: number; error: string } | { closed: true };

export function createAuditLog(opts: AuditLogOptions): AuditLog {
  const now = opts.now ?? Date.now;
  const capacity = Math.max(1, opts.bufferSize ?? 10_000);
  const hooks = opts.metrics ?? {};
  const hmacKey = opts.hmacKey;

  // A `file` sink is written by a worker thread (hash chain, append): an audited decision
  // costs the serving thread a queue push, then formatting its line and its share of one
  // message per batch (see `post`). Other sinks (stdout, a stream) are written here.
  let stream: AuditSinkStream | null = null;
  let worker: Worker | null = null;
  let tail: ChainTail | undefined;
  if (opts.sink === 'file') {
    if (opts.file === undefined || opts.file === '') throw new Error('the `file` audit sink needs a file path');
    tail = readTail(opts.file);
  } else if (opts.sink === 'stdout') {
    stream = process.stdout;
  } else if (opts.sink !== 'none') {
    stream = opts.sink;
  }

  let prev = tail?.hash ?? GENESIS_HASH;
  let seq = tail === undefined ? 0 : tail.seq + 1;
  let written = 0;
  let dropped = 0;
  let closed = false;
  let failed = false;
  // Entries lost since the last marker; a marker is queued once space returns.
  let pendingDrops = 0;
  let firstDropAt = 0;
  let lastDropAt = 0;

  let queue: Queued[] = [];
  /** Entries handed to the writer thread and not yet reported written. */
  let inflight = 0;
  /** Items posted to the thread, and (shared, updated by the thread) items it has handled. */
  let posted = 0;
  const done = new Int32Array(new SharedArrayBuffer(4));
  /** Entries the thread has not handled yet, read without waiting for its replies. */
  const unhandled = (): number => (posted - Atomics.load(done, 0)) | 0;

  const onError = (err: Error): void => {
    failed = true;
    hooks.error?.(err);
  };
  if (opts.sink === 'file') {
    const data: { file: string; prev: string; seq: number; hmacKey?: string; done: Int32Array } = { file: opts.file!, prev, seq, done };
    if (hmacKey !== undefined) data.hmacKey = hmacKey;
    worker = new Worker(WRITER_SOURCE, { eval: true, workerData: data });
    // Referenced only while it holds entries: an idle log never keeps the process alive.
    worker.unref();
    worker.on('message', (reply: WriterReply) => {
      if ('closed' in reply) return;
      taken(reply.n);
      if ('error' in reply) {
        onError(new Error(reply.error));
        lose(reply.entries);
      } else {
        written += reply.n;
        seq += reply.n;
        prev = reply.prev;
        hooks.written?.(reply.n);
      }
      settle();
    });
    worker.on('error', (err) => onError(err));
    worker.on('exit', () => {
      if (!closed) onError(new Error('the audit writer thread stopped'));
      // Whatever it held is lost.
      lose(inflight);
      taken(inflight);
      worker = null;
      settle();
    });
  }
  const sinkPresent = stream !== null || worker !== null;

  const iso = (ms: number): string => new Date(ms).toISOString();

  function countDrop(n: number, at: number): void {
    if (pendingDrops === 0) firstDropAt = at;
    pendingDrops += n;
    lastDropAt = at;
    dropped += n;
    hooks.dropped?.(n);
  }

  /** Entries lost with the sink (already out of the buffer): counted, no marker possible. */
  function lose(n: number): void {
    if (n <= 0) return;
    dropped += n;
    hooks.dropped?.(n);
  }

  function taken(n: number): void {
    inflight -= n;
    if (inflight === 0) worker?.unref();
  }

  function queueMarkerIfNeeded(): void {
    if (pendingDrops === 0) return;
    // The marker may exceed capacity by one: it must not be lost itself.
    queue.push({
      entry: { kind: 'audit_dropped', count: pendingDrops, first_dropped_at: iso(firstDropAt), last_dropped_at: iso(lastDropAt) },
      at: lastDropAt,
    });
    pendingDrops = 0;
  }

  // The first line of every open records the start (in a new log it is the genesis line).
  // It is held apart from the queue so that it never takes an entry's place in the buffer.
  let startLine: Queued | null = !sinkPresent
    ? null
    : {
        entry: { kind: 'admin', operation: tail === undefined ? 'audit.start' : 'audit.open', actor: 'system', detail: { format: AUDIT_FORMAT_VERSION, alg: hmacKey === undefined ? 'sha256' : 'hmac-sha256' } },
        at: now(),
      };

  /** The next batch to write: the start line, the queue, a pending drop marker. */
  function takeBatch(): Queued[] {
    queueMarkerIfNeeded();
    const batch = queue;
    queue = [];
    if (startLine !== null) {
      batch.unshift(startLine);
      startLine = null;
    }
    return batch;
  }

  function entriesIn(batch: readonly Queued[]): number {
    let n = 0;
    for (const item of batch) if (item.entry.kind !== 'audit_dropped') n++;
    return n;
  }

  // ---- the writer thread (file sink)

  // Each message to the thread has a fixed cost (waking it): entries wait up to
  // POST_DELAY_MS (or until POST_BATCH of them) so that one message carries many.
  let scheduled: 'no' | 'timer' | 'now' = 'no';
  let timer: NodeJS.Timeout | undefined;
  let waiters: (() => void)[] = [];

  function settle(): void {
    if (waiters.length === 0 || scheduled !== 'no' || inflight > 0 || draining !== null) return;
    if (queue.length > 0 || pendingDrops > 0 || startLine !== null) return;
    const ws = waiters;
    waiters = [];
    for (const w of ws) w();
  }

  function post(): void {
    scheduled = 'no';
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    const batch = takeBatch();
    if (batch.length > 0) {
      if (failed || worker === null) {
        lose(entriesIn(batch));
      } else {
        // Decision lines are formatted here (the part of the work that does not need the
        // chain) and sent as strings: cloning an entry object to the thread and reading it
        // there cost more than formatting it. The writer chains and appends.
        const message: Posted = { text: '', cuts: [], others: [] };
        let text = '';
        for (let i = 0; i < batch.length; i++) {
          const item = batch[i]!;
          const parts = item.entry.kind === 'decision' ? format.decisionParts(item.entry, item.at) : undefined;
          if (parts === undefined) {
            message.cuts.push(-1);
            message.others.push(item);
          } else {
            text += parts[0];
            message.cuts.push(text.length);
            text += parts[1];
            message.cuts.push(text.length);
            text += parts[2];
            message.cuts.push(text.length);
          }
        }
        message.text = text;
        try {
          worker.postMessage(message);
        } catch {
          // Something in an entry cannot be cloned (a function, a symbol...): the scrubbed
          // copy holds JSON values only and is written the same.
          message.others = message.others.map((item) => ({ entry: format.scrubSecrets(item.entry) as unknown as AuditEntry, at: item.at }));
          worker.postMessage(message);
        }
        if (inflight === 0) worker.ref();
        inflight += batch.length;
        posted = (posted + batch.length) | 0;
      }
    }
    settle();
  }

  // ---- in this thread (stdout, a stream)

  let draining: Promise<void> | null = null;
  // Settles when the sink has taken the last chunk handed to it.
  let lastWrite: Promise<void> = Promise.resolve();

  async function drain(): Promise<void> {
    // Yield first so that a burst of writes is batched into one chunk.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (queue.length > 0 || pendingDrops > 0 || startLine !== null) {
        const batch = takeBatch();
        if (failed || stream === null || stream.destroyed === true) {
          // The sink is gone: what is queued is lost, and counted.
          lose(entriesIn(batch));
          pendingDrops = 0;
          continue;
        }
        const out = format.chain(batch, prev, seq, hmacKey);
        prev = out.prev;
        seq = out.seq;
        let ok = true;
        lastWrite = new Promise<void>((resolve) => {
          ok = stream!.write(out.chunk, (err) => {
            if (err) onError(err);
            resolve();
          });
        });
        written += batch.length;
        hooks.written?.(batch.length);
        if (!ok && !failed) await new Promise<void>((resolve) => stream!.once('drain', () => resolve()));
      }
    } finally {
      draining = null;
    }
  }

  /** Starts the writer; `now`: without the batching delay (flush, a full batch). */
  function schedule(now = false): void {
    if (worker !== null) {
      if (scheduled === 'now') return;
      if (now || queue.length >= POST_BATCH) {
        scheduled = 'now';
        setImmediate(post);
      } else if (scheduled === 'no') {
        scheduled = 'timer';
        timer = setTimeout(post, POST_DELAY_MS);
      }
    } else if (draining === null && stream !== null) {
      draining = drain();
    }
  }
  schedule(true);

  async function flush(): Promise<void> {
    queueMarkerIfNeeded();
    if (opts.sink === 'file') {
      if (worker === null) {
        // The writer is gone: anything still queued is lost, and counted.
        lose(entriesIn(takeBatch()));
        return;
      }
      schedule(true);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        settle();
      });
      return;
    }
    schedule();
    while (draining !== null) await draining;
    await lastWrite;
  }

  return {
    write(entry: AuditEntry): void {
      if (closed || !sinkPresent) {
        if (closed) countDrop(1, now());
        return;
      }
      const at = now();
      if (queue.length + (worker === null ? 0 : unhandled()) >= capacity) {
        countDrop(1, at);
        return;
      }
      if (pendingDrops > 0) queueMarkerIfNeeded();
      queue.push({ entry, at });
      schedule();
    },
    flush,
    async close(): Promise<void> {
      if (closed) return;
      await flush();
      closed = true;
      const w = worker;
      if (w !== null) {
        w.ref();
        await new Promise<void>((resolve) => {
          w.once('exit', () => resolve());
          w.postMessage('close');
        });
      }
    },
    stats(): AuditStats {
      return { written, dropped, buffered: queue.length + (worker === null ? 0 : unhandled()) };
    },
    head(): string {
      return prev;
    },
  };
}

// ---------------------------------------------------------------- verification

export interface AuditVerifyResult {
  ok: boolean;
  /** Lines read (all of them when ok). */
  lines: number;
  /** 1-based number of the first line that breaks the chain. */
  firstBadLine?: number;
  problem?: string;
  /** The hash of the last line, to compare with a value kept elsewhere. */
  head?: string;
  /** Entries the writer reported as dropped (sum of `audit_dropped` markers). */
  dropped?: number;
}

/**
 * Checks a log's chain: every line parses, carries `prev` equal to the previous line's hash
 * (the genesis hash for line 1), a `hash` that matches its content, and the next `seq`.
 * Any edited, dropped, inserted or reordered line breaks this at or right after its position.
 * A cut-off tail is only visible against a head hash kept elsewhere (`expectHead`).
 */
export async function verifyAuditFile(
  path: string,
  options: { hmacKey?: string; expectHead?: string } = {},
): Promise<AuditVerifyResult> {
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let prev = GENESIS_HASH;
  let expectedSeq: number | null = null;
  let n = 0;
  let dropped = 0;
  const bad = (problem: string): AuditVerifyResult => {
    rl.close();
    return { ok: false, lines: n, firstBadLine: n, problem };
  };
  try {
    for await (const line of rl) {
      n++;
      if (line.trim() === '') return bad('empty line');
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        return bad('not valid JSON (torn or edited line)');
      }
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return bad('not a JSON object');
      const obj = rec as Record<string, unknown>;
      const { hash, ...rest } = obj;
      if (typeof hash !== 'string') return bad('no `hash` member');
      if (obj['prev'] !== prev) {
        return bad(n === 1 ? 'first line does not start the chain (leading lines removed?)' : '`prev` does not match the previous line\'s hash (a line was removed, inserted or moved here)');
      }
      if (lineHash(prev, canonicalJson(rest), options.hmacKey) !== hash) return bad('`hash` does not match the line\'s content (the line was edited)');
      if (typeof obj['seq'] !== 'number') return bad('no `seq` member');
      if (expectedSeq !== null && obj['seq'] !== expectedSeq) return bad(`\`seq\` is ${String(obj['seq'])}, expected ${expectedSeq}`);
      expectedSeq = obj['seq'] + 1;
      if (obj['kind'] === 'audit_dropped' && typeof obj['count'] === 'number') dropped += obj['count'];
      prev = hash;
    }
  } catch (err) {
    return { ok: false, lines: n, firstBadLine: n + 1, problem: `cannot read the file: ${(err as Error).message}` };
  }
  if (options.expectHead !== undefined && options.expectHead !== prev) {
    return { ok: false, lines: n, firstBadLine: n + 1, problem: 'the last line is not the expected head (lines were cut from the end)', head: prev, dropped };
  }
  return { ok: true, lines: n, head: prev, dropped };
}
