// Rules shared by both store implementations: grant validation and ids, the paging cursor,
// which grants are active at a time, and the AgentContext built from a record and its grants.

import { randomUUID } from 'node:crypto';
import { StoreInputError } from './errors.js';
import type { AgentContext, AgentRecord, GrantRecord } from './types.js';

export const MAX_PAGE = 1000;

export function pageLimit(limit: number): number {
  if (!Number.isFinite(limit)) return 100;
  return Math.min(MAX_PAGE, Math.max(1, Math.floor(limit)));
}

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  if (!/^[A-Za-z0-9_-]*$/.test(cursor)) {
    throw new StoreInputError(`invalid page cursor \`${cursor}\``, 'pass the `next` value of the previous page unchanged');
  }
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

export function validateAgentId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
    throw new StoreInputError('an agent id must be a non-empty string of at most 256 characters');
  }
}

export function newGrant(grant: Omit<GrantRecord, 'id' | 'createdAt'>, now: number): GrantRecord {
  validateAgentId(grant.agent);
  if (!Array.isArray(grant.actions) || grant.actions.length === 0 || grant.actions.some((a) => typeof a !== 'string' || a === '')) {
    throw new StoreInputError('a grant needs at least one action', 'use `*` for every action');
  }
  if (typeof grant.resource !== 'string' || grant.resource === '') {
    throw new StoreInputError('a grant needs a resource pattern', 'e.g. `account:991` or `account:*`');
  }
  if (!Number.isFinite(grant.expiresAt) || grant.expiresAt <= now) {
    throw new StoreInputError('a grant must expire in the future', 'set `expiresAt` after the current time');
  }
  return {
    id: `g_${randomUUID()}`,
    agent: grant.agent,
    actions: [...grant.actions],
    resource: grant.resource,
    expiresAt: grant.expiresAt,
    reason: grant.reason,
    approvedBy: grant.approvedBy,
    createdAt: now,
  };
}

export function byCreation(a: GrantRecord, b: GrantRecord): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Grants active at `now` (active while `now < expiresAt`), oldest first. */
export function activeGrants(grants: Iterable<GrantRecord>, now: number): GrantRecord[] {
  const out: GrantRecord[] = [];
  for (const g of grants) if (now < g.expiresAt) out.push(g);
  return out.sort(byCreation);
}

export function contextOf(record: AgentRecord | null, grants: readonly GrantRecord[], stale: boolean): AgentContext {
  if (record === null) return { status: 'unknown' };
  if (!record.active) return { status: 'inactive', agent: record };
  return { status: 'ok', agent: record, grants, stale };
}
