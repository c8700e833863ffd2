import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import {
  canonicalJson,
  createAuditLog,
  GENESIS_HASH,
  verifyAuditFile,
  type AuditEntry,
  type DecisionAuditEntry,
} from '../../server/audit.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agp-audit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function decision(i: number, extra: Partial<DecisionAuditEntry> = {}): DecisionAuditEntry {
  return {
    kind: 'decision',
    decision_id: `d-${i}`,
    agent: 'fraudbot-1',
    on_behalf_of: 'alice',
    action: 'read',
    resource: { type: 'transactions', id: String(i) },
    effect: i % 3 === 0 ? 'deny' : 'permit',
    allowed: i % 3 !== 0,
    risk: 12.5,
    policies: ['fraud_read'],
    reasons: [],
    revision: 'sha256:abc',
    latency_us: 42,
    request_id: `req-${i}`,
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    ...extra,
  };
}

async function writeLog(file: string, n: number): Promise<string[]> {
  const log = createAuditLog({ sink: 'file', file });
  for (let i = 0; i < n; i++) log.write(decision(i));
  await log.close();
  return readFileSync(file, 'utf8').trimEnd().split('\n');
}

function rewrite(file: string, lines: string[]): void {
  writeFileSync(file, lines.join('\n') + '\n');
}

describe('audit log chain', () => {
  it('writes one chained JSON line per entry that verifies', async () => {
    const file = join(dir, 'audit.jsonl');
    const lines = await writeLog(file, 5);
    expect(lines).toHaveLength(6); // the start line + 5 decisions
    const first = JSON.parse(lines[0]!);
    expect(first.prev).toBe(GENESIS_HASH);
    expect(first).toMatchObject({ kind: 'admin', operation: 'audit.start', seq: 0 });
    const d = JSON.parse(lines[2]!);
    expect(d).toMatchObject({
      kind: 'decision',
      decision_id: 'd-1',
      agent: 'fraudbot-1',
      on_behalf_of: 'alice',
      action: 'read',
      resource: { type: 'transactions', id: '1' },
      effect: 'permit',
      allowed: true,
      risk: 12.5,
      policies: ['fraud_read'],
      revision: 'sha256:abc',
      latency_us: 42,
      request_id: 'req-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      seq: 2,
    });
    expect(d.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The documented hash: sha256(prev + canonical JSON of the line without `hash`).
    const { hash, ...rest } = d;
    expect(hash).toBe(createHash('sha256').update(JSON.parse(lines[1]!).hash + canonicalJson(rest)).digest('hex'));
    const res = await verifyAuditFile(file);
    expect(res).toMatchObject({ ok: true, lines: 6, dropped: 0 });
    expect(res.head).toBe(JSON.parse(lines[5]!).hash);
  });

  it('detects an edited line with its line number', async () => {
    const file = join(dir, 'a.jsonl');
    const lines = await writeLog(file, 6);
    lines[3] = lines[3]!.replace('"effect":"permit"', '"effect":"deny"').replace('"allowed":true', '"allowed":false');
    expect(lines[3]).toContain('"effect":"deny"');
    rewrite(file, lines);
    const res = await verifyAuditFile(file);
    expect(res.ok).toBe(false);
    expect(res.firstBadLine).toBe(4);
    expect(res.problem).toMatch(/edited/);
  });

  it('detects a dropped line', async () => {
    const file = join(dir, 'a.jsonl');
    const lines = await writeLog(file, 6);
    lines.splice(3, 1);
    rewrite(file, lines);
    const res = await verifyAuditFile(file);
    expect(res).toMatchObject({ ok: false, firstBadLine: 4 });
  });

  it('detects dropped leading lines', async () => {
    const file = join(dir, 'a.jsonl');
    const lines = await writeLog(file, 3);
    rewrite(file, lines.slice(1));
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBadLine: 1 });
  });

  it('detects an inserted line, even one whose own hash was recomputed', async () => {
    const file = join(dir, 'a.jsonl');
    const lines = await writeLog(file, 6);
    // A verbatim duplicate.
    rewrite(file, [...lines.slice(0, 3), lines[1]!, ...lines.slice(3)]);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBadLine: 4 });
    // A forged line that chains correctly onto line 3: the original line 4 no longer does.
    const prev = JSON.parse(lines[2]!).hash as string;
    const forged: Record<string, unknown> = { ...JSON.parse(lines[3]!), decision_id: 'forged', prev };
    delete forged['hash'];
    const hash = createHash('sha256').update(prev + canonicalJson(forged)).digest('hex');
    const forgedLine = JSON.stringify({ ...forged, hash });
    rewrite(file, [...lines.slice(0, 3), forgedLine, ...lines.slice(3)]);
    const res = await verifyAuditFile(file);
    expect(res).toMatchObject({ ok: false, firstBadLine: 5 });
  });

  it('detects two reordered lines', async () => {
    const file = join(dir, 'a.jsonl');
    const lines = await writeLog(file, 6);
    [lines[3], lines[4]] = [lines[4]!, lines[3]!];
    rewrite(file, lines);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBadLine: 4 });
  });

  it('detects a cut-off tail only against a head kept elsewhere', async () => {
    const file = join(dir, 'a.jsonl');
    const log = createAuditLog({ sink: 'file', file });
    for (let i = 0; i < 4; i++) log.write(decision(i));
    await log.close();
    const head = log.head();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(await verifyAuditFile(file, { expectHead: head })).toMatchObject({ ok: true, lines: 5 });
    rewrite(file, lines.slice(0, -1));
    expect(await verifyAuditFile(file, { expectHead: head })).toMatchObject({ ok: false, firstBadLine: 5 });
  });

  it('with an HMAC key, a chain rebuilt by someone without the key fails', async () => {
    const file = join(dir, 'a.jsonl');
    const log = createAuditLog({ sink: 'file', file, hmacKey: 'k3y' });
    for (let i = 0; i < 3; i++) log.write(decision(i));
    await log.close();
    expect(await verifyAuditFile(file, { hmacKey: 'k3y' })).toMatchObject({ ok: true, lines: 4 });
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBadLine: 1 });
    // Rebuild the whole chain with plain sha256 after editing line 3.
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    let prev = GENESIS_HASH;
    const forged = lines.map((l, i) => {
      const rec = JSON.parse(l);
      delete rec.hash;
      if (i === 2) rec.effect = 'permit';
      rec.prev = prev;
      prev = createHash('sha256').update(prev + canonicalJson(rec)).digest('hex');
      return JSON.stringify({ ...rec, hash: prev });
    });
    rewrite(file, forged);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true });
    expect(await verifyAuditFile(file, { hmacKey: 'k3y' })).toMatchObject({ ok: false, firstBadLine: 1 });
  });

  it('reports a torn line', async () => {
    const file = join(dir, 'a.jsonl');
    await writeLog(file, 2);
    appendFileSync(file, '{"kind":"decision","decision_id":"d-9","ag');
    const res = await verifyAuditFile(file);
    expect(res).toMatchObject({ ok: false, firstBadLine: 4 });
    expect(res.problem).toMatch(/JSON/);
  });
});

describe('audit log tampering (property)', () => {
  it('any single edit, removal, duplication or swap is reported at the first line it breaks', async () => {
    const file = join(dir, 'base.jsonl');
    const lines = await writeLog(file, 20);
    const head = JSON.parse(lines.at(-1)!).hash as string;
    const target = join(dir, 'tampered.jsonl');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: lines.length - 1 }),
        fc.constantFrom('edit', 'remove', 'duplicate', 'swap'),
        fc.constantFrom('agent', 'effect', 'risk', 'seq', 'time', 'prev'),
        async (i, how, field) => {
          const copy = [...lines];
          let expected: number; // 1-based
          if (how === 'edit') {
            const rec = JSON.parse(copy[i]!);
            rec[field] = typeof rec[field] === 'number' ? rec[field] + 1 : `${String(rec[field])}x`;
            copy[i] = JSON.stringify(rec);
            expected = i + 1;
          } else if (how === 'remove') {
            copy.splice(i, 1);
            expected = i + 1; // the line after the gap (or, for the last line, the missing head)
          } else if (how === 'duplicate') {
            copy.splice(i + 1, 0, copy[i]!);
            expected = i + 2;
          } else {
            if (i === copy.length - 1) return; // nothing after the last line to swap with
            [copy[i], copy[i + 1]] = [copy[i + 1]!, copy[i]!];
            expected = i + 1;
          }
          rewrite(target, copy);
          const res = await verifyAuditFile(target, { expectHead: head });
          expect(res.ok).toBe(false);
          expect(res.firstBadLine).toBe(expected);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('audit log across opens', () => {
  it('continues the chain of an existing file', async () => {
    const file = join(dir, 'a.jsonl');
    await writeLog(file, 3);
    const log = createAuditLog({ sink: 'file', file });
    log.write(decision(10));
    log.write(decision(11));
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(7);
    const reopen = JSON.parse(lines[4]!);
    expect(reopen).toMatchObject({ kind: 'admin', operation: 'audit.open', seq: 4 });
    expect(reopen.prev).toBe(JSON.parse(lines[3]!).hash);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 7 });
  });
});

describe('audit log buffering', () => {
  it('never blocks: a slow sink fills the buffer, drops are counted and recorded in the chain', async () => {
    const chunks: string[] = [];
    let slowWrites = 0;
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _enc, cb) {
        slowWrites++;
        chunks.push(chunk.toString('utf8'));
        setTimeout(cb, 100);
      },
    });
    const droppedByHook: number[] = [];
    const log = createAuditLog({ sink: slow, bufferSize: 10, metrics: { dropped: (n) => droppedByHook.push(n) } });
    // Let the writer pick up the start line and block on the slow sink.
    await new Promise((r) => setTimeout(r, 5));
    const total = 200;
    const t0 = process.hrtime.bigint();
    const returned: unknown[] = [];
    for (let i = 0; i < total; i++) returned.push(log.write(decision(i)));
    const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
    // Synchronous, nothing to await; 200 writes take less than one sink write (100 ms).
    expect(returned.every((r) => r === undefined)).toBe(true);
    expect(elapsedMs).toBeLessThan(100);
    const s = log.stats();
    expect(s.dropped).toBe(total - 10);
    expect(s.buffered).toBe(10);
    expect(droppedByHook.reduce((a, b) => a + b, 0)).toBe(total - 10);
    // Space returns: the next entry is preceded by a marker with the count.
    await log.flush();
    log.write(decision(1000));
    await log.close();
    expect(slowWrites).toBeGreaterThan(1);
    const file = join(dir, 'slow.jsonl');
    writeFileSync(file, chunks.join(''));
    const recs = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    const markers = recs.filter((r) => r.kind === 'audit_dropped');
    expect(markers).toHaveLength(1);
    expect(markers[0].count).toBe(total - 10);
    const decisions = recs.filter((r) => r.kind === 'decision').map((r) => r.decision_id);
    expect(decisions).toEqual([...Array.from({ length: 10 }, (_, i) => `d-${i}`), 'd-1000']);
    // The marker sits between the last accepted entry and the next one.
    expect(recs.findIndex((r) => r.kind === 'audit_dropped')).toBe(recs.findIndex((r) => r.decision_id === 'd-1000') - 1);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, dropped: total - 10 });
  });

  it('writes the drop marker on flush even when no entry follows', async () => {
    const chunks: string[] = [];
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString('utf8'));
        setTimeout(cb, 10);
      },
    });
    const log = createAuditLog({ sink: slow, bufferSize: 2 });
    for (let i = 0; i < 5; i++) log.write(decision(i));
    await log.close();
    const recs = chunks.join('').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(recs.at(-1)).toMatchObject({ kind: 'audit_dropped', count: 3 });
    expect(log.stats()).toMatchObject({ dropped: 3, buffered: 0 });
  });

  it('close flushes everything queued', async () => {
    const file = join(dir, 'a.jsonl');
    const log = createAuditLog({ sink: 'file', file, bufferSize: 5000 });
    for (let i = 0; i < 3000; i++) log.write(decision(i));
    expect(log.stats().buffered).toBe(3000);
    await log.close();
    expect(log.stats()).toEqual({ written: 3001, dropped: 0, buffered: 0, suppressed: 0 });
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(3001);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 3001 });
    log.write(decision(1));
    expect(log.stats().dropped).toBe(1);
  });
});

describe('audit log content', () => {
  it('never carries a token or secret, even when a caller passes one', async () => {
    const file = join(dir, 'a.jsonl');
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmcmF1ZGJvdCJ9.c2lnbmF0dXJlLXZhbHVl';
    const log = createAuditLog({ sink: 'file', file });
    const sneaky = {
      ...decision(1, { reasons: [`caller sent ${jwt}`, 'Authorization: Bearer sk_live_abcdef123456'] }),
      access_token: 'opaque-access-token-value',
      headers: { authorization: 'Bearer abc.def.ghi', 'x-api-key': 'key-value-123' },
    } as unknown as AuditEntry;
    log.write(sneaky);
    log.write({
      kind: 'admin',
      operation: 'credential.rotate',
      actor: 'admin',
      target: 'fraudbot-1',
      detail: { client_secret: 's3cr3t-value', password: 'hunter2hunter2', subject_token: jwt, note: 'rotated' },
    });
    await log.close();
    const text = readFileSync(file, 'utf8');
    for (const secret of [jwt, 'sk_live_abcdef123456', 'opaque-access-token-value', 'abc.def.ghi', 'key-value-123', 's3cr3t-value', 'hunter2hunter2']) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('rotated');
    expect(text).toContain('[redacted]');
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 3 });
  });

  it('records anomalies, admin changes and rejected requests as their own kinds', async () => {
    const file = join(dir, 'a.jsonl');
    const log = createAuditLog({ sink: 'file', file, now: () => Date.UTC(2026, 0, 1, 12, 0, 0, 7) });
    log.write({ kind: 'anomaly', agent: 'fraudbot-3', anomaly: 'rate', value: 40.2, threshold: 4 });
    log.write({ kind: 'admin', operation: 'grant.create', actor: 'ops', target: 'fraudbot-1', outcome: 'ok' });
    log.write({
      kind: 'rejected',
      decision_id: 'd-x',
      agent: 'fraudbot-1',
      action: 'read',
      resource: null,
      status: 400,
      error: { code: 'invalid_request', message: 'missing attribute', issues: [{ path: 'resource.type', message: 'required' }] },
      latency_us: 12,
      request_id: 'r-1',
    });
    await log.close();
    const recs = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(recs.map((r) => r.kind)).toEqual(['admin', 'anomaly', 'admin', 'rejected']);
    expect(recs[1]).toMatchObject({ agent: 'fraudbot-3', anomaly: 'rate', value: 40.2, time: '2026-01-01T12:00:00.007Z' });
    expect(recs[3]).toMatchObject({ status: 400, error: { code: 'invalid_request', issues: [{ path: 'resource.type' }] } });
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 4 });
  });

  it('the `none` sink accepts writes and records nothing', async () => {
    const log = createAuditLog({ sink: 'none' });
    log.write(decision(1));
    await log.close();
    expect(log.stats()).toEqual({ written: 0, dropped: 0, buffered: 0, suppressed: 0 });
  });
});
