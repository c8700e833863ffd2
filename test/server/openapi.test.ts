// docs/openapi.yaml against the routes the app really serves: every native route (the
// decision API, the admin API, the operational endpoints) is described, and nothing is
// described that the app does not serve.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeApp } from './helpers.js';

/** `METHOD /path/{param}` for each operation under `paths:` in the document. */
function documented(yaml: string): string[] {
  const out: string[] = [];
  let path: string | undefined;
  let inPaths = false;
  for (const line of yaml.split('\n')) {
    if (/^\S/.test(line)) inPaths = line.startsWith('paths:');
    if (!inPaths) continue;
    const p = /^ {2}(\/\S*):\s*$/.exec(line);
    if (p) path = p[1];
    const m = /^ {4}(get|put|post|delete|patch):/.exec(line);
    if (m && path !== undefined) out.push(`${m[1]!.toUpperCase()} ${path}`);
  }
  return out.sort();
}

/** `METHOD /path/{param}` for each route in Fastify's route tree (HEAD left out). */
function served(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const path = stack.join('').replace(/:(\w+)/g, '{$1}');
    for (const method of (m[3] ?? '').split(', ').filter((x) => x !== '' && x !== 'HEAD')) out.push(`${method} ${path}`);
  }
  return out.sort();
}

describe('docs/openapi.yaml', () => {
  it('describes exactly the native routes the app serves', async () => {
    const t = await makeApp();
    try {
      const routes = served(t.app.printRoutes({ commonPrefix: false }));
      // Connect (proto/), AuthZEN (docs/authzen.md) and identity (docs/identity.md) have their own contracts.
      const native = routes.filter((r) => / \/v1\/|^\w+ \/(healthz|readyz|metrics)$/.test(r));
      expect(native).toContain('POST /v1/decide');
      expect(native).toContain('DELETE /v1/admin/agents/{id}/grants/{grantId}');
      expect(documented(readFileSync('docs/openapi.yaml', 'utf8'))).toEqual(native);
    } finally {
      await t.close();
    }
  });
});
