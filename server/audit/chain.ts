// Audit lines and their chain: each line is the canonical JSON of its record with `seq` and
// `prev` (the previous line's hash), closed by its own `hash`. Decision lines take the fast
// path of format.ts; anything else, and any line that would not fit, the generic path
// (scrub, bound, canonical JSON). The serving thread formats decisions (`postable`); the
// writer chains what it is posted (`chainPosted`); a stream sink chains here (`chain`).

import { boundRecord, MAX_BODY_BYTES } from './bound.js';
import type { JsonValue, LogRecord } from './entries.js';
import { canonicalJson, decisionParts, lineHash, scrubSecrets, type DecisionParts } from './format.js';

/** One record waiting for the writer, with the time it was queued (epoch ms). */
export interface Queued {
  entry: LogRecord;
  at: number;
}

/**
 * What the serving thread posts to the writer thread. Decisions arrive formatted: their
 * `DecisionParts` (the canonical body around `prev` and `seq`, which only the writer knows)
 * back to back in `text`, three end offsets each in `cuts`. A `-1` in `cuts` stands for the
 * next entry of `others` (anything else, formatted by the writer). One string and one array
 * of numbers cost far less to send between threads than an object per entry.
 */
export interface Posted {
  text: string;
  cuts: number[];
  others: Queued[];
}


/** What `chain` returns: the chunk to append and the chain's new head. */
export interface Chained {
  chunk: string;
  prev: string;
  seq: number;
}

/** Whether a decision's formatted parts fit a line (the cheap test first: 3 bytes per unit). */
function partsFit(parts: DecisionParts): boolean {
  const units = parts[0].length + parts[1].length + parts[2].length;
  if (units * 3 <= MAX_BODY_BYTES) return true;
  return Buffer.byteLength(parts[0]) + Buffer.byteLength(parts[1]) + Buffer.byteLength(parts[2]) <= MAX_BODY_BYTES;
}

/** A decision's parts when the fast path takes it and the line fits; else undefined. */
function fastParts(item: Queued): DecisionParts | undefined {
  if (item.entry.kind !== 'decision') return undefined;
  const parts = decisionParts(item.entry, item.at);
  return parts !== undefined && partsFit(parts) ? parts : undefined;
}

/** The generic path: the canonical JSON of the bounded, scrubbed entry with time, seq and prev. */
function genericBody(item: Queued, seq: number, prev: string): string {
  const record = scrubSecrets(boundRecord(item.entry)) as { [k: string]: JsonValue };
  if (typeof record['time'] !== 'string') record['time'] = new Date(item.at).toISOString();
  record['seq'] = seq;
  record['prev'] = prev;
  return canonicalJson(record);
}

/** The body of one line without its closing brace. */
function openLine(item: Queued, seq: number, prev: string): string {
  const parts = fastParts(item);
  return parts === undefined ? genericBody(item, seq, prev).slice(0, -1) : `${parts[0]},"prev":${JSON.stringify(prev)}${parts[1]},"seq":${seq}${parts[2]}`;
}

/** The hash of a line whose body is `open`: it closes the line as its last member, outside what it hashes. */
function closeLine(open: string, prev: string, hmacKey: string | undefined): string {
  return lineHash(prev, open + '}', hmacKey);
}

/** One chained line per item, in order, after the line whose hash is `prev`. */
export function chain(items: readonly Queued[], prev: string, seq: number, hmacKey: string | undefined): Chained {
  let chunk = '';
  for (const item of items) {
    const open = openLine(item, seq, prev);
    const hash = closeLine(open, prev, hmacKey);
    chunk += `${open},"hash":"${hash}"}\n`;
    prev = hash;
    seq++;
  }
  return { chunk, prev, seq };
}

/** `chain` over what the serving thread posted. */
export function chainPosted(msg: Posted, prev: string, seq: number, hmacKey: string | undefined): Chained {
  const { text, cuts, others } = msg;
  let chunk = '';
  let at = 0;
  let other = 0;
  for (let i = 0; i < cuts.length; i++) {
    let open: string;
    const c = cuts[i]!;
    if (c < 0) {
      open = openLine(others[other++]!, seq, prev);
    } else {
      const mid = cuts[i + 1]!;
      const end = cuts[i + 2]!;
      open = `${text.slice(at, c)},"prev":${JSON.stringify(prev)}${text.slice(c, mid)},"seq":${seq}${text.slice(mid, end)}`;
      at = end;
      i += 2;
    }
    const hash = closeLine(open, prev, hmacKey);
    chunk += `${open},"hash":"${hash}"}\n`;
    prev = hash;
    seq++;
  }
  return { chunk, prev, seq };
}

/**
 * What the serving thread posts for `items`: decision lines formatted here (the part of the
 * work that does not need the chain), anything else as is, for the writer to format.
 */
export function postable(items: readonly Queued[]): Posted {
  const message: Posted = { text: '', cuts: [], others: [] };
  let text = '';
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const parts = fastParts(item);
    if (parts === undefined) {
      message.cuts.push(-1);
      // Bounded here: a huge entry is cut before it is copied to the thread, not after.
      const entry = boundRecord(item.entry);
      message.others.push(entry === item.entry ? item : { entry, at: item.at });
    } else {
      text += parts[0];
      message.cuts.push(text.length);
      text += parts[1];
      message.cuts.push(text.length);
      text += parts[2];
      message.cuts.push(text.length);
    }
  }
  message.text = text;
  return message;
}
