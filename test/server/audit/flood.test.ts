// Flood control: entries written with a flood key are limited per key and window — the
// first few in full, the rest counted in one chained `audit_suppressed` line per key and
// window — so a caller who can cause audit lines at will cannot buy unbounded audit bytes.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, verifyAuditFile, type AuditEntry, type AuditLogOptions } from '../../../server/audit.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agp-audit-flood-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 0, 1, 12);

function rejected(address: string, i: number): AuditEntry {
  return { kind: 'admin', operation: 'identity.credential_rejected', outcome: 'failed', detail: { client: address, attempt: i } };
}

/** A stream-sink log on a controllable clock, and its lines parsed. */
function streamLog(options: Partial<AuditLogOptions> = {}) {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const clock = { t: T0 };
  const log = createAuditLog({ sink, now: () => clock.t, ...options });
  const lines = (): Record<string, unknown>[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, clock, lines, text: () => chunks.join('') };
}

describe('audit flood control', () => {
  it('writes the first entries of a key in full and summarizes the rest in one chained line per window', async () => {
    const file = join(dir, 'a.jsonl');
    const clock = { t: T0 };
    const log = createAuditLog({ sink: 'file', file, now: () => clock.t, flood: { burst: 5, windowMs: 60_000 } });
    for (let i = 0; i < 1000; i++) {
      clock.t = T0 + i * 10;
      log.write(rejected('203.0.113.9', i), { flood: { key: 'credential_rejected:203.0.113.9' } });
    }
    await log.flush();
    // Within the window: five lines in full, nothing else yet.
    let lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l['operation'] === 'identity.credential_rejected')).toHaveLength(5);
    expect(lines.some((l) => l['kind'] === 'audit_suppressed')).toBe(false);
    expect(log.stats().suppressed).toBe(995);
    // The window ends: its summary is written at the next flush, counts and times exact.
    clock.t = T0 + 60_000;
    await log.close();
    lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summaries = lines.filter((l) => l['kind'] === 'audit_suppressed');
    expect(summaries).toEqual([
      expect.objectContaining({
        key: 'credential_rejected:203.0.113.9',
        count: 995,
        written: 5,
        window_ms: 60_000,
        window_started_at: new Date(T0).toISOString(),
        first_suppressed_at: new Date(T0 + 50).toISOString(),
        last_suppressed_at: new Date(T0 + 9990).toISOString(),
      }),
    ]);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, lines: 7 });
  });

  it('keeps keys apart, starts a new window after the last one, and summarizes the old one first', async () => {
    const { log, clock, lines } = streamLog({ flood: { burst: 2, windowMs: 1000 } });
    for (let i = 0; i < 4; i++) {
      log.write(rejected('a', i), { flood: { key: 'a' } });
      log.write(rejected('b', i), { flood: { key: 'b' } });
    }
    clock.t = T0 + 1000;
    log.write(rejected('a', 99), { flood: { key: 'a' } });
    await log.flush();
    const got = lines().slice(1).map((l) => (l['kind'] === 'audit_suppressed' ? `suppressed ${String(l['key'])} ${String(l['count'])}` : `${(l['detail'] as { client: string; attempt: number }).client}${(l['detail'] as { attempt: number }).attempt}`));
    // b's window also ended: the flush summarizes it.
    expect(got).toEqual(['a0', 'b0', 'a1', 'b1', 'suppressed a 2', 'a99', 'suppressed b 2']);
  });

  it('never limits entries written without a flood key', async () => {
    const { log, lines } = streamLog({ flood: { burst: 1 } });
    for (let i = 0; i < 50; i++) log.write(rejected('x', i));
    await log.close();
    expect(lines()).toHaveLength(51);
    expect(log.stats().suppressed).toBe(0);
  });

  it('tracks a bounded number of keys: past the limit, new keys share one overflow key', async () => {
    const { log, lines } = streamLog({ flood: { burst: 1, maxKeys: 3 } });
    for (let i = 0; i < 100; i++) log.write(rejected(`198.51.100.${i}`, i), { flood: { key: `addr:${i}` } });
    await log.close();
    const all = lines().slice(1);
    // Three keys of their own, one line each; the 97 others share the overflow key's burst.
    expect(all.filter((l) => l['kind'] === 'admin')).toHaveLength(4);
    expect(all.filter((l) => l['kind'] === 'audit_suppressed')).toEqual([expect.objectContaining({ key: '(other keys)', count: 96, written: 1 })]);
  });

  it('summarizes a window when it ends, without a flush or another entry', async () => {
    const { log, lines } = streamLog({ now: Date.now, flood: { burst: 1, windowMs: 50 } });
    for (let i = 0; i < 10; i++) log.write(rejected('x', i), { flood: { key: 'k' } });
    const deadline = Date.now() + 10_000;
    while (!lines().some((l) => l['kind'] === 'audit_suppressed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(lines().find((l) => l['kind'] === 'audit_suppressed')).toMatchObject({ key: 'k', count: 9, written: 1 });
    await log.close();
  });

  it('by default writes ten entries per key and minute in full', async () => {
    const { log, clock, lines } = streamLog();
    for (let i = 0; i < 30; i++) log.write(rejected('x', i), { flood: { key: 'k' } });
    clock.t = T0 + 59_999;
    log.write(rejected('x', 30), { flood: { key: 'k' } });
    clock.t = T0 + 60_000;
    log.write(rejected('x', 31), { flood: { key: 'k' } });
    await log.close();
    const attempts = lines()
      .filter((l) => l['kind'] === 'admin' && l['operation'] !== 'audit.start')
      .map((l) => (l['detail'] as { attempt: number }).attempt);
    expect(attempts).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 31]);
    expect(lines().filter((l) => l['kind'] === 'audit_suppressed').map((l) => l['count'])).toEqual([21]);
  });
});
