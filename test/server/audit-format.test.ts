import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { canonicalJson, createAuditLog, scrubSecrets, verifyAuditFile, type AuditEntry, type DecisionAuditEntry } from '../../server/audit.js';

// Decision lines are written by a hand-ordered serializer; every other entry by the generic
// scrub + canonical JSON. Both must give the very same bytes for the same entry.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agp-audit-format-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tricky = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl', 'Bearer abcdefghijklmnop', 'x "quoted" \\ back\nslash\t', '\u2028\u0000\u001f\ud800', 'basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ=='),
);
const num = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, 1e21, 1.5e-7, Number.NaN, Infinity));

const decisionArb: fc.Arbitrary<DecisionAuditEntry> = fc
  .record(
    {
      decision_id: tricky,
      time: tricky,
      agent: fc.option(tricky, { nil: null }),
      on_behalf_of: tricky,
      action: fc.option(tricky, { nil: null }),
      resource: fc.option(fc.record({ type: tricky, id: tricky }), { nil: null }),
      effect: tricky,
      allowed: fc.boolean(),
      risk: num,
      policies: fc.array(tricky, { maxLength: 4 }),
      reasons: fc.array(tricky, { maxLength: 4 }),
      revision: tricky,
      latency_us: num,
      request_id: tricky,
      trace_id: tricky,
      api: tricky,
    },
    { requiredKeys: ['decision_id', 'agent', 'action', 'resource', 'effect', 'allowed', 'risk', 'policies', 'reasons', 'revision', 'latency_us'] },
  )
  .map((r) => ({ kind: 'decision', ...r }) as DecisionAuditEntry);

// Entries the fast path must hand over to the generic one: extra members, odd types.
const oddArb: fc.Arbitrary<AuditEntry> = fc.oneof(
  decisionArb.map((e) => ({ ...e, extra: { token: 'secret-value', n: 1 } }) as unknown as AuditEntry),
  decisionArb.map((e) => ({ ...e, risk: '12' }) as unknown as AuditEntry),
  decisionArb.map((e) => ({ ...e, resource: { type: 'a', id: 'b', owner: 'c' } }) as unknown as AuditEntry),
  decisionArb.map((e) => ({ ...e, time: 12 }) as unknown as AuditEntry),
);

function checkLines(text: string, entries: AuditEntry[], start: number): void {
  const lines = text.trimEnd().split('\n');
  expect(lines).toHaveLength(entries.length + start);
  for (let i = start; i < lines.length; i++) {
    const line = lines[i]!;
    const { hash, ...rest } = JSON.parse(line) as Record<string, unknown>;
    // Canonical bytes: the line is the canonical JSON of its members with `hash` appended.
    expect(line).toBe(`${canonicalJson(rest).slice(0, -1)},"hash":"${String(hash)}"}`);
    // The members: the scrubbed entry, its time (or the queue time), seq and prev.
    const expected = JSON.parse(JSON.stringify(scrubSecrets(entries[i - start]))) as Record<string, unknown>;
    if (typeof expected['time'] !== 'string') expected['time'] = rest['time'];
    expect(rest).toEqual({ ...expected, seq: i, prev: rest['prev'] });
  }
}

describe('audit line format', () => {
  it('writes decision lines byte for byte as the generic canonical form, in this thread', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(decisionArb, oddArb), { minLength: 1, maxLength: 20 }), async (entries) => {
        const chunks: string[] = [];
        const sink = new Writable({
          write(chunk: Buffer, _enc, cb) {
            chunks.push(chunk.toString('utf8'));
            cb();
          },
        });
        const log = createAuditLog({ sink });
        for (const e of entries) log.write(e);
        await log.close();
        checkLines(chunks.join(''), entries, 1);
      }),
      { numRuns: 150 },
    );
  });

  it('writes the same lines through the file writer thread, and the chain verifies', async () => {
    const entries = fc.sample(fc.oneof(decisionArb, decisionArb, oddArb), { numRuns: 400, seed: 7 });
    const file = join(dir, 'format.jsonl');
    const log = createAuditLog({ sink: 'file', file, bufferSize: 1000 });
    for (const e of entries.slice(0, 200)) log.write(e);
    await log.flush();
    expect(log.stats()).toEqual({ written: 201, dropped: 0, buffered: 0, suppressed: 0 });
    for (const e of entries.slice(200)) log.write(e);
    await log.close();
    checkLines(readFileSync(file, 'utf8'), entries, 1);
    const verified = await verifyAuditFile(file);
    expect(verified).toMatchObject({ ok: true, lines: 401 });
    expect(verified.head).toBe(log.head());
  });

  it('keeps the order of decisions formatted by this thread among entries the writer formats', async () => {
    const entries = fc.sample(fc.oneof(decisionArb, decisionArb, oddArb), { numRuns: 300, seed: 11 });
    const file = join(dir, 'mixed.jsonl');
    const log = createAuditLog({ sink: 'file', file, bufferSize: 1000 });
    for (const e of entries) log.write(e);
    await log.close();
    checkLines(readFileSync(file, 'utf8'), entries, 1);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 301 });
  });

  it('writes an entry that cannot be sent to the writer thread as is (a function inside) as its JSON values', async () => {
    const file = join(dir, 'unclonable.jsonl');
    const log = createAuditLog({ sink: 'file', file });
    const decision = fc.sample(decisionArb, { numRuns: 1, seed: 5 })[0]!;
    log.write(decision);
    log.write({ kind: 'admin', operation: 'agent.put', actor: 'admin', detail: { kept: 1, dropped: (() => 1) as unknown as number } });
    log.write(decision);
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; detail?: unknown });
    expect(lines.map((l) => l.kind)).toEqual(['admin', 'decision', 'admin', 'decision']);
    expect(lines[2]!.detail).toEqual({ kept: 1 });
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 4 });
  });

  it('keeps the chain with an HMAC key in the writer thread', async () => {
    const file = join(dir, 'hmac.jsonl');
    const entries = fc.sample(decisionArb, { numRuns: 50, seed: 3 });
    const log = createAuditLog({ sink: 'file', file, hmacKey: 'k'.repeat(32) });
    for (const e of entries) log.write(e);
    await log.close();
    expect(await verifyAuditFile(file, { hmacKey: 'k'.repeat(32) })).toMatchObject({ ok: true, lines: 51 });
    expect((await verifyAuditFile(file)).ok).toBe(false);
  });

  it('counts what the writer thread could not write as dropped', async () => {
    const failures: Error[] = [];
    const log = createAuditLog({ sink: 'file', file: join(dir, 'no-such-dir', 'x.jsonl'), metrics: { error: (e) => failures.push(e) } });
    for (let i = 0; i < 5; i++) log.write(fc.sample(decisionArb, { numRuns: 1, seed: i })[0]!);
    await log.close();
    expect(failures.length).toBeGreaterThan(0);
    // The start line and the five entries.
    expect(log.stats()).toEqual({ written: 0, dropped: 6, buffered: 0, suppressed: 0 });
  });
});
