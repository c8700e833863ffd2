// The audit log: one hash-chained JSON line per decision, rejected request, anomaly and
// admin change. Writing never blocks a decision: `write` only queues; a background writer
// drains the queue to the sink with backpressure, and overflow is counted and recorded in
// the chain as an `audit_dropped` line so that a gap is always visible.

import { createHash, createHmac } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';

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

// ---------------------------------------------------------------- canonical form + scrub

/** JSON with object keys sorted recursively and no whitespace; `undefined` members omitted. */
export function canonicalJson(value: unknown): string {
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

const SECRET_KEY = /token|secret|authorization|password|passwd|assertion|api[-_]?key|credential|cookie|private[-_]?key/i;
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;

/**
 * A copy of `value` where members named like a credential are replaced by `[redacted]` and
 * JWT-looking or `Bearer ...` substrings inside strings by `[redacted]`. Callers should never
 * pass secrets; this is the second line of defence.
 */
export function scrubSecrets(value: unknown, depth = 0): JsonValue {
  if (typeof value === 'string') {
    if (value.length < 12) return value;
    return value.replace(JWT_LIKE, '[redacted]').replace(BEARER, '$1 [redacted]');
  }
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
  const h = hmacKey === undefined ? createHash('sha256') : createHmac('sha256', hmacKey);
  return h.update(prev).update(body).digest('hex');
}

/**
 * Serializes one chained line: the canonical JSON of `record` (which holds `prev`) with
 * `hash` appended as its last member. Returns the line (with `\n`) and its hash.
 */
function chainLine(record: { [k: string]: JsonValue }, hmacKey: string | undefined): { line: string; hash: string } {
  const body = canonicalJson(record);
  const hash = lineHash(record['prev'] as string, body, hmacKey);
  const line = body === '{}' ? `{"hash":"${hash}"}\n` : `${body.slice(0, -1)},"hash":"${hash}"}\n`;
  return { line, hash };
}

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

interface Queued {
  entry: AuditEntry | DropMarker;
  at: number;
}

interface DropMarker {
  kind: 'audit_dropped';
  count: number;
  first_dropped_at: string;
  last_dropped_at: string;
}

export function createAuditLog(opts: AuditLogOptions): AuditLog {
  const now = opts.now ?? Date.now;
  const capacity = Math.max(1, opts.bufferSize ?? 10_000);
  const hooks = opts.metrics ?? {};
  const hmacKey = opts.hmacKey;

  let stream: AuditSinkStream | null = null;
  let ownsStream = false;
  let tail: ChainTail | undefined;
  if (opts.sink === 'file') {
    if (opts.file === undefined || opts.file === '') throw new Error('the `file` audit sink needs a file path');
    tail = readTail(opts.file);
    const ws = createWriteStream(opts.file, { flags: 'a', highWaterMark: 64 * 1024 });
    stream = ws;
    ownsStream = true;
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
  let draining: Promise<void> | null = null;

  const onError = (err: Error): void => {
    failed = true;
    hooks.error?.(err);
  };
  if (stream !== null && ownsStream) (stream as Writable).on('error', onError);

  const iso = (ms: number): string => new Date(ms).toISOString();

  function countDrop(n: number, at: number): void {
    if (pendingDrops === 0) firstDropAt = at;
    pendingDrops += n;
    lastDropAt = at;
    dropped += n;
    hooks.dropped?.(n);
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

  function schedule(): void {
    if (draining === null && stream !== null) draining = drain();
  }

  // The first line of every open records the start (in a new log it is the genesis line).
  // It is held apart from the queue so that it never takes an entry's place in the buffer.
  let startLine: Queued | null =
    stream === null
      ? null
      : {
          entry: { kind: 'admin', operation: tail === undefined ? 'audit.start' : 'audit.open', actor: 'system', detail: { format: AUDIT_FORMAT_VERSION, alg: hmacKey === undefined ? 'sha256' : 'hmac-sha256' } },
          at: now(),
        };
  // Settles when the sink has taken the last chunk handed to it.
  let lastWrite: Promise<void> = Promise.resolve();
  schedule();

  function render(item: Queued): { [k: string]: JsonValue } {
    const scrubbed = scrubSecrets(item.entry) as { [k: string]: JsonValue };
    if (typeof scrubbed['time'] !== 'string') scrubbed['time'] = iso(item.at);
    scrubbed['seq'] = seq;
    scrubbed['prev'] = prev;
    return scrubbed;
  }

  async function drain(): Promise<void> {
    // Yield first so that a burst of writes is batched into one chunk.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (queue.length > 0 || pendingDrops > 0 || startLine !== null) {
        queueMarkerIfNeeded();
        const batch = queue;
        queue = [];
        if (startLine !== null) {
          batch.unshift(startLine);
          startLine = null;
        }
        if (failed || stream === null || stream.destroyed === true) {
          // The sink is gone: what is queued is lost, and counted.
          const lost = batch.filter((q) => q.entry.kind !== 'audit_dropped').length;
          if (lost > 0) {
            dropped += lost;
            hooks.dropped?.(lost);
          }
          pendingDrops = 0;
          continue;
        }
        let chunk = '';
        for (const item of batch) {
          const { line, hash } = chainLine(render(item), hmacKey);
          chunk += line;
          prev = hash;
          seq++;
        }
        let ok = true;
        lastWrite = new Promise<void>((resolve) => {
          ok = stream!.write(chunk, (err) => {
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

  async function flush(): Promise<void> {
    queueMarkerIfNeeded();
    schedule();
    while (draining !== null) await draining;
    await lastWrite;
  }

  return {
    write(entry: AuditEntry): void {
      if (closed || stream === null) {
        if (closed) countDrop(1, now());
        return;
      }
      const at = now();
      if (queue.length >= capacity) {
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
      if (stream !== null && ownsStream && stream.end !== undefined && !failed) {
        const s = stream;
        await new Promise<void>((resolve) => {
          s.end!(() => resolve());
        });
      }
    },
    stats(): AuditStats {
      return { written, dropped, buffered: queue.length };
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
