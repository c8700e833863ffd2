// Where an existing audit file's chain ends: a log opened on a file that already holds
// lines continues from its last line's hash and seq.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface ChainTail {
  hash: string;
  seq: number;
}

/** Reads the last line of `path` to continue its chain; undefined for a missing/empty file. */
export function readTail(path: string): ChainTail | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const info = fstatSync(fd);
    // A device (a pipe, /dev/null) has no chain to continue.
    if (!info.isFile() || info.size === 0) return undefined;
    const size = info.size;
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
