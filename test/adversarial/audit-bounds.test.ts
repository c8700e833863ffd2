// What a hostile caller can make AGP write to its audit log, against a real listener: a
// 400 KB request rejected with 200,000 issues writes one line of at most 16 KiB, and a
// flood of bad requests writes a few lines in full and one `audit_suppressed` summary.

import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES, verifyAuditFile } from '../../server/audit.js';
import { cleanup, httpRequest, rawRequest, serve, type Served } from './harness.js';

let agp: Served;

beforeAll(async () => {
  agp = await serve();
}, 60_000);

afterAll(async () => {
  await agp?.stop();
  if (agp) cleanup(agp);
});

function auditBytesPerLine(): number[] {
  return agp.auditLines().map((l) => Buffer.byteLength(JSON.stringify(l)) + 1);
}

describe('the audit log under hostile requests', () => {
  it('writes at most 16 KiB for a 400 KB request rejected with 200,000 issues', async () => {
    const body = `{"agent":{"id":"fraudbot-1","roles":[${new Array(200_000).fill('0').join(',')}]},"action":"read","resource":{"type":"transactions","id":"t1"},"task":{}}`;
    expect(body.length).toBeGreaterThan(400_000);
    const res = await rawRequest(agp.port, httpRequest('POST', '/v1/decide', { 'content-type': 'application/json', 'x-request-id': 'hostile-1', connection: 'close' }, body), { timeoutMs: 30_000 });
    expect(res.status).toBe(400);
    const deadline = Date.now() + 10_000;
    let line: Record<string, unknown> | undefined;
    while (line === undefined && Date.now() < deadline) {
      line = agp.auditLines().find((l) => l['request_id'] === 'hostile-1');
      if (line === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line).toMatchObject({ kind: 'rejected', status: 400, truncated: true });
    // The line as written (the file's bytes), not as re-serialized.
    expect(Math.max(...auditBytesPerLine())).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(statSync(agp.auditFile).size).toBeLessThan(4 * MAX_LINE_BYTES);
  }, 60_000);

  it('writes a flood of identical rejected requests as a few lines and one summary', async () => {
    const before = statSync(agp.auditFile).size;
    // The request of the test above counts against the same key (same caller, same code).
    const earlier = agp.auditLines().filter((l) => l['kind'] === 'rejected').length;
    const bad = JSON.stringify({ agent: { id: '' }, action: 'read', resource: { type: 'transactions', id: 't1' } });
    const total = 300;
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < total) {
        sent++;
        const res = await fetch(`${agp.url}/v1/decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bad });
        expect(res.status).toBe(400);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    // Stopping closes the log, which summarizes the open flood windows.
    expect(await agp.stop()).toBe(0);
    const lines = agp.auditLines();
    expect(lines.filter((l) => l['kind'] === 'rejected')).toHaveLength(10);
    expect(lines.filter((l) => l['kind'] === 'audit_suppressed')).toEqual([expect.objectContaining({ key: 'rejected:anonymous:invalid_request', count: total + earlier - 10, written: 10 })]);
    // 300 requests cost the log eleven lines (a few KiB), not 300.
    expect(statSync(agp.auditFile).size - before).toBeLessThan(12 * 1024);
    expect(await verifyAuditFile(agp.auditFile)).toMatchObject({ ok: true });
  }, 60_000);
});
