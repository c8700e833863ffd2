// Hot reload with the real loader: a policy directory in a temp folder, changed under a
// running app. A broken set is rejected with diagnostics and the last good set keeps
// serving; a fixed set is served under its new revision; a first load that fails serves 503.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyHolder } from '../../server/policy-holder.js';
import { makeApp, READ_TRANSACTIONS, type TestApp } from './helpers.js';

let t: TestApp | undefined;
let dir: string | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function policyDir(): string {
  dir = mkdtempSync(join(tmpdir(), 'agp-reload-'));
  cpSync('policies', dir, { recursive: true, filter: (src) => !src.endsWith('.test.agp') && !src.includes('authzen') });
  return dir;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function decideRevision(app: TestApp['app']): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/v1/decide', payload: READ_TRANSACTIONS });
  expect(r.statusCode).toBe(200);
  return r.json().revision as string;
}

describe('hot reload', () => {
  it('keeps the last good set on a broken change and serves the fixed one', async () => {
    const d = policyDir();
    const holder = new PolicyHolder({ directory: d, debounceMs: 50 });
    await holder.reload('start');
    holder.watch();
    t = await makeApp({ holder });
    const app = t.app;
    const first = await decideRevision(app);
    expect(first).toMatch(/^sha256:[0-9a-f]{64}$/);

    const fraud = join(d, 'fraud.agp');
    const good = readFileSync(fraud, 'utf8');
    writeFileSync(fraud, `${good}\npolicy broken "unfinished" {\n  on action == \n`);
    await until('the broken set to be rejected', () => holder.status().rejected !== undefined);

    // Decisions keep coming from the last good set.
    expect(await decideRevision(app)).toBe(first);
    const diag = await app.inject({ method: 'GET', url: '/v1/admin/policies/diagnostics' });
    expect(diag.statusCode).toBe(200);
    const body = diag.json();
    expect(body.revision).toBe(first);
    expect(body.last_attempt).toMatchObject({ ok: false, trigger: 'watch' });
    expect(body.rejected.diagnostics.length).toBeGreaterThan(0);
    expect(body.rejected.diagnostics[0]).toMatchObject({ severity: 'error', file: expect.stringContaining('fraud.agp') });
    expect(body.rejected.diagnostics[0].line).toBeGreaterThan(good.split('\n').length - 1);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/agp_policy_reloads_total\{result="failed"\} [1-9]/);

    // The admin call reports the rejection too.
    const manual = await app.inject({ method: 'POST', url: '/v1/admin/policies/reload' });
    expect(manual.statusCode).toBe(422);
    expect(manual.json()).toMatchObject({ error: { code: 'policy_set_rejected' }, ok: false, revision: first });

    writeFileSync(fraud, `${good}\n// reviewed ${Date.now()}\n`);
    await until('the fixed set to serve', () => holder.current?.revision !== first && holder.status().rejected === undefined);
    const second = await decideRevision(app);
    expect(second).not.toBe(first);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/policies/diagnostics' })).json()).toMatchObject({ revision: second, rejected: null });
  });

  it('swaps whole sets only: concurrent decisions see one revision or the other', async () => {
    const d = policyDir();
    const holder = new PolicyHolder({ directory: d });
    await holder.reload('start');
    t = await makeApp({ holder });
    const revisions = new Set<string>();
    const fraud = join(d, 'fraud.agp');
    const good = readFileSync(fraud, 'utf8');
    writeFileSync(fraud, `${good}\n// v2\n`);
    const reload = holder.reload('admin');
    for (let i = 0; i < 50; i++) revisions.add(await decideRevision(t.app));
    const result = await reload;
    expect(result).toMatchObject({ ok: true, changed: true });
    revisions.add(await decideRevision(t.app));
    expect(revisions.size).toBeLessThanOrEqual(2);
    expect(revisions.has(result.revision!)).toBe(true);
  });

  it('starts without a valid set: 503 and not ready until the set is fixed', async () => {
    const d = policyDir();
    const schema = join(d, 'schema.agp');
    const good = readFileSync(schema, 'utf8');
    writeFileSync(schema, good.replace('confidence: number', 'confidence: numbr'));
    const holder = new PolicyHolder({ directory: d });
    const first = await holder.reload('start');
    expect(first.ok).toBe(false);
    t = await makeApp({ holder });
    const r = await t.app.inject({ method: 'POST', url: '/v1/decide', payload: READ_TRANSACTIONS });
    expect(r.statusCode).toBe(503);
    expect((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    const diag = (await t.app.inject({ method: 'GET', url: '/v1/admin/policies/diagnostics' })).json();
    expect(diag.revision).toBeNull();
    expect(diag.rejected.diagnostics.some((x: any) => x.message.includes('numbr'))).toBe(true);

    writeFileSync(schema, good);
    const fixed = await t.app.inject({ method: 'POST', url: '/v1/admin/policies/reload' });
    expect(fixed.statusCode).toBe(200);
    expect(fixed.json()).toMatchObject({ ok: true, changed: true });
    expect((await t.app.inject({ method: 'POST', url: '/v1/decide', payload: READ_TRANSACTIONS })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });
});
