// Verification of an audit file's chain (`agp audit verify`): every line parses, links to
// the previous one and hashes to its `hash`.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { GENESIS_HASH } from './entries.js';
import { canonicalJson, lineHash } from './format.js';

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
