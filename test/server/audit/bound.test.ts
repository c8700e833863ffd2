// Bounded audit lines: whatever an entry holds, its line is at most 16 KiB, canonical and
// chained; a cut entry says so (`truncated`), keeps its kind and time, and never keeps part
// of a secret.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, createAuditLog, MAX_LINE_BYTES, verifyAuditFile, type AuditEntry, type DecisionAuditEntry, type RejectedAuditEntry } from '../../../server/audit.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agp-audit-bound-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `entries` through a stream sink (this thread) and returns the raw lines. */
async function throughStream(entries: AuditEntry[]): Promise<string[]> {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = createAuditLog({ sink, now: () => Date.UTC(2026, 0, 1) });
  for (const e of entries) log.write(e);
  await log.close();
  return chunks.join('').split('\n').slice(0, -1);
}

/** Writes `entries` through the file writer thread and returns the raw lines. */
async function throughFile(name: string, entries: AuditEntry[]): Promise<string[]> {
  const file = join(dir, name);
  const log = createAuditLog({ sink: 'file', file, now: () => Date.UTC(2026, 0, 1) });
  for (const e of entries) log.write(e);
  await log.close();
  expect(await verifyAuditFile(file)).toMatchObject({ ok: true });
  return readFileSync(file, 'utf8').split('\n').slice(0, -1);
}

function bytes(line: string): number {
  return Buffer.byteLength(line, 'utf8') + 1;
}

/** The 400 KB request of issue 10: `agent.roles` with 200,000 items, every one an issue. */
function hugeRejected(): RejectedAuditEntry {
  const issues = Array.from({ length: 200_000 }, (_, i) => ({ path: `agent.roles.${i}`, message: 'expected a string' }));
  return {
    kind: 'rejected',
    decision_id: '01JD6Z3K8W4Q2M7V5N9R0T1XYZ',
    agent: 'fraudbot-1',
    action: 'read',
    resource: { type: 'transactions', id: 't1' },
    status: 400,
    error: { code: 'invalid_request', message: 'agent.roles.0: expected a string', issues },
    latency_us: 1200,
    request_id: 'req-1',
  };
}

function decision(extra: Partial<DecisionAuditEntry> = {}): DecisionAuditEntry {
  return {
    kind: 'decision', decision_id: 'd-1', agent: 'fraudbot-1', action: 'read', resource: { type: 'transactions', id: '1' },
    effect: 'permit', allowed: true, risk: 12, policies: ['fraud_read'], reasons: [], revision: 'sha256:abc', latency_us: 42, ...extra,
  };
}

describe('a bounded audit line', () => {
  it('holds a 200,000-issue rejected request in at most 16 KiB: the first issues and a count', async () => {
    const lines = await throughFile('huge.jsonl', [hugeRejected()]);
    const line = lines[1]!;
    expect(bytes(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    const rec = JSON.parse(line) as { truncated: boolean; kind: string; error: { code: string; issues: unknown[] }; request_id: string; status: number };
    expect(rec).toMatchObject({ kind: 'rejected', truncated: true, status: 400, request_id: 'req-1', error: { code: 'invalid_request' } });
    expect(rec.error.issues[0]).toEqual({ path: 'agent.roles.0', message: 'expected a string' });
    const marker = rec.error.issues.at(-1) as string;
    expect(marker).toMatch(/^…\[\+\d+ items\]$/);
    expect(Number(/\d+/.exec(marker)![0]) + rec.error.issues.length - 1).toBe(200_000);
  });

  it('cuts a long string with a marker of what was cut, and leaves a line that fits untouched', async () => {
    const long = 'x'.repeat(100_000);
    const fitting = 'y'.repeat(10_000);
    const lines = await throughStream([
      { kind: 'admin', operation: 'agent.put', detail: { note: long } },
      { kind: 'admin', operation: 'agent.put', detail: { note: fitting } },
    ]);
    const cut = JSON.parse(lines[1]!) as { truncated?: boolean; detail: { note: string } };
    expect(cut.truncated).toBe(true);
    expect(cut.detail.note).toMatch(/^x+…\[\+\d+ chars\]$/);
    const kept = cut.detail.note.length - cut.detail.note.indexOf('…');
    expect(cut.detail.note.indexOf('…') + Number(/\+(\d+)/.exec(cut.detail.note)![1])).toBe(100_000);
    expect(kept).toBeLessThan(100);
    const whole = JSON.parse(lines[2]!) as { truncated?: boolean; detail: { note: string } };
    expect(whole.truncated).toBeUndefined();
    expect(whole.detail.note).toBe(fitting);
  });

  it('never keeps part of a token: strings are scrubbed before they are cut', async () => {
    const jwt = `eyJhbGciOiJFUzI1NiJ9.${'eyJpc3MiOiJ'.padEnd(44_000, 'A')}.c2lnbmF0dXJl`;
    const lines = await throughStream([{ kind: 'admin', operation: 'identity.credential_rejected', detail: { iss: jwt, where: `header ${jwt}` } }]);
    expect(bytes(lines[1]!)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(lines[1]).not.toContain('eyJ');
    expect(lines[1]).toContain('[redacted]');
  });

  it('cuts a decision too large for the fast path on the generic path', async () => {
    const reasons = Array.from({ length: 5000 }, (_, i) => `reason number ${i} of a policy set that says far too much`);
    const lines = await throughFile('decision.jsonl', [decision({ reasons }), decision()]);
    expect(bytes(lines[1]!)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(JSON.parse(lines[1]!)).toMatchObject({ kind: 'decision', truncated: true, effect: 'permit', decision_id: 'd-1' });
    expect(JSON.parse(lines[2]!).truncated).toBeUndefined();
  });

  it('keeps kind and time even when an entry has thousands of members', async () => {
    const detail: Record<string, string> = {};
    for (let i = 0; i < 20_000; i++) detail[`a${String(i).padStart(5, '0')}`] = 'v'.repeat(20);
    const lines = await throughStream([{ kind: 'admin', operation: 'x', time: '2026-02-03T04:05:06.007Z', detail }]);
    const rec = JSON.parse(lines[1]!) as Record<string, unknown> & { detail: Record<string, string> };
    expect(bytes(lines[1]!)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(rec).toMatchObject({ kind: 'admin', operation: 'x', time: '2026-02-03T04:05:06.007Z', truncated: true });
    expect(rec.detail['…']).toMatch(/^\[\+\d+ members\]$/);
  });

  it('property: any entry gives a canonical, chained line of at most 16 KiB, the same from either writer', async () => {
    const big = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.integer({ min: 1, max: 30_000 }).map((n) => '\u0001é😀'.repeat(n)),
      fc.integer({ min: 1, max: 20_000 }).map((n) => 'ab'.repeat(n)),
    );
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, big, fc.double(), fc.boolean(), fc.constant(null), tie('array'), tie('object')),
      array: fc.oneof(fc.array(tie('value'), { maxLength: 5 }), fc.integer({ min: 0, max: 3000 }).map((n) => Array.from({ length: n }, (_, i) => i))),
      object: fc.dictionary(fc.string({ maxLength: 30 }), tie('value'), { maxKeys: 5 }),
    })).value;
    const entryArb = fc.record({ operation: big, detail: fc.dictionary(fc.string({ maxLength: 12 }), json, { maxKeys: 6 }) }).map((r) => ({ kind: 'admin', ...r }) as AuditEntry);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 4 }), async (entries) => {
        const streamed = await throughStream(entries);
        const filed = await throughFile(`p${n++}.jsonl`, entries);
        expect(filed).toEqual(streamed);
        for (const line of streamed) {
          expect(bytes(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
          const { hash, ...rest } = JSON.parse(line) as Record<string, unknown>;
          expect(line).toBe(`${canonicalJson(rest).slice(0, -1)},"hash":"${String(hash)}"}`);
          expect(rest['kind']).toBe('admin');
        }
      }),
      { numRuns: 40 },
    );
  });
});
