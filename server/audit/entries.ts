// What the audit log records: the entry kinds callers write (decision, rejected request,
// anomaly, admin change) and the markers the log writes itself into the chain.

/** `prev` of the first line of a log: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_FORMAT_VERSION = 1;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

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

/** Entries lost to a full buffer, written into the chain once there is room again. */
export interface DropMarker {
  kind: 'audit_dropped';
  count: number;
  first_dropped_at: string;
  last_dropped_at: string;
}

/** Entries a flood key held back in one window (server/audit/flood.ts), summarized. */
export interface SuppressedMarker {
  kind: 'audit_suppressed';
  /** The flood key the writer gave (cut to 256 characters), or `(other keys)`. */
  key: string;
  /** Entries of this key not written in this window. */
  count: number;
  /** Entries of this key written in full in this window. */
  written: number;
  window_started_at: string;
  window_ms: number;
  first_suppressed_at: string;
  last_suppressed_at: string;
}

/** Anything the log writes: a caller's entry or one of its own markers. */
export type LogRecord = AuditEntry | DropMarker | SuppressedMarker;

/** Markers are the log's own lines: they record entries, they are not entries. */
export function isMarker(record: LogRecord): boolean {
  return record.kind === 'audit_dropped' || record.kind === 'audit_suppressed';
}

export interface AuditWriteOptions {
  /**
   * Entries a caller can cause at will (rejected unauthenticated calls, refused
   * credentials): per `key` and window, the first few are written in full and the rest
   * counted in one `audit_suppressed` entry (server/audit/flood.ts).
   */
  flood?: { key: string };
}
