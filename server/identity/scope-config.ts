// The token endpoint's view of a policy set: `scopes.json` beside the `.agp` files maps
// the names written in OAuth scopes onto the policies' action and resource-type names, and
// gives the attribute defaults a token-exchange decision starts from (the parts of a
// request no scope carries: the task, per-call agent figures). It belongs to the policies,
// so it is read from their directory and reloaded with them.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ScopeMap } from './scopes.js';

export const SCOPE_CONFIG_FILE = 'scopes.json';

export interface ScopeConfig {
  map: ScopeMap;
  defaults: {
    /** Agent attributes used when neither the registry holds them (the registry wins). */
    agent: Record<string, unknown>;
    /** Task attributes used when the `task` parameter does not send them. */
    task: Record<string, unknown>;
  };
}

export const EMPTY_SCOPE_CONFIG: ScopeConfig = Object.freeze({ map: {}, defaults: { agent: {}, task: {} } });

const names = z.record(z.string().min(1).max(256), z.string().min(1).max(256));
const attributes = z.record(z.string().min(1).max(256), z.unknown());
const fileSchema = z.strictObject({
  $comment: z.string().optional(),
  resourceTypes: names.optional(),
  actions: names.optional(),
  defaults: z.strictObject({ agent: attributes.optional(), task: attributes.optional() }).optional(),
});

/** Parses the text of a `scopes.json`; errors name the field. */
export function parseScopeConfig(text: string, file = SCOPE_CONFIG_FILE): { value?: ScopeConfig; errors: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { errors: [`${file}: not valid JSON (${err instanceof Error ? err.message.split('\n')[0]!.toLowerCase() : 'unreadable'})`] };
  }
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    return {
      errors: r.error.issues.map((i) => {
        const path = i.path.map(String).join('.');
        const keys = i.code === 'unrecognized_keys' ? ` \`${i.keys.join('`, `')}\`` : '';
        return `${file}: ${path === '' ? '' : `\`${path}\`: `}${i.message.toLowerCase()}${keys}`;
      }),
    };
  }
  const d = r.data;
  const map: ScopeMap = {
    ...(d.resourceTypes !== undefined ? { resourceTypes: d.resourceTypes } : {}),
    ...(d.actions !== undefined ? { actions: d.actions } : {}),
  };
  return { value: { map, defaults: { agent: d.defaults?.agent ?? {}, task: d.defaults?.task ?? {} } }, errors: [] };
}

/** `<dir>/scopes.json`; no file is the empty configuration (scope names used as written). */
export async function loadScopeConfig(directory: string): Promise<{ value?: ScopeConfig; errors: string[] }> {
  const path = join(directory, SCOPE_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { value: EMPTY_SCOPE_CONFIG, errors: [] };
    return { errors: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseScopeConfig(text, path);
}
