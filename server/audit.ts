// The audit log's public API (the modules are under server/audit/): `createAuditLog` picks
// the sink — a writer thread for a file, this thread for a stream, nothing for `none` — and
// `verifyAuditFile` checks a written chain. One hash-chained JSON line per decision, rejected
// request, anomaly and admin change; writing never blocks a decision (docs/audit.md).

import { FileAuditLog } from './audit/file-log.js';
import { DisabledAuditLog, NEW_CHAIN, type AuditLog, type AuditLogOptions } from './audit/log.js';
import { StreamAuditLog } from './audit/stream-log.js';
import { readTail } from './audit/tail.js';

export * from './audit/entries.js';
export { MAX_LINE_BYTES } from './audit/bound.js';
export { FLOOD_DEFAULTS, type FloodSettings } from './audit/flood.js';
export { canonicalJson, scrubSecrets } from './audit/format.js';
export type { AuditLog, AuditLogOptions, AuditMetricsHooks, AuditSinkStream, AuditStats } from './audit/log.js';
export { verifyAuditFile, type AuditVerifyResult } from './audit/verify.js';

export function createAuditLog(opts: AuditLogOptions): AuditLog {
  if (opts.sink === 'file') {
    const file = opts.file;
    if (file === undefined || file === '') throw new Error('the `file` audit sink needs a file path');
    const tail = readTail(file);
    const start = tail === undefined ? NEW_CHAIN : { prev: tail.hash, seq: tail.seq + 1, continued: true };
    return new FileAuditLog({ ...opts, file }, start);
  }
  if (opts.sink === 'none') return new DisabledAuditLog(opts);
  return new StreamAuditLog(opts, opts.sink === 'stdout' ? process.stdout : opts.sink);
}
