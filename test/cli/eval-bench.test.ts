// `agp eval` (with --explain: why a request was denied) and `agp bench`, run as a child
// process on the example policies.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agp, ensureBuilt, hasStackTrace, scratchDir } from './helpers.js';

const scratch = scratchDir();
beforeAll(() => ensureBuilt(), 300_000);
afterAll(() => scratch.cleanup());

/** fraudbot-1 as registered, asking to freeze account 991 inside a flagged task. */
function freezeRequest(over: { version?: string; sensitivity?: string; grants?: unknown[] } = {}): Record<string, unknown> {
  return {
    agent: { id: 'fraudbot-1', confidence: 0.93 },
    registered: { owner: 'risk-team', roles: ['fraud-detector'], model: { name: 'fraudnet', version: over.version ?? '2.4.1' }, trust: 'verified' },
    behavior: { rate_z: 0.4, deny_ratio: 0, new_resource: false },
    action: 'freeze_account',
    resource: { type: 'account', id: '991', owner: 'payments', sensitivity: over.sensitivity ?? 'confidential' },
    task: { kind: 'investigation', flagged: true },
    ...(over.grants ? { grants: over.grants } : {}),
  };
}

function requestFile(name: string, body: unknown): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  return file;
}

describe('agp eval', { timeout: 120_000 }, () => {
  it('--explain on a request denied by a forbid shows the forbid, its reason and the condition that held', async () => {
    const file = requestFile('retired.json', freezeRequest({ version: '1.9.0' }));
    const r = await agp(['eval', '--policies', 'policies', '--input', file, '--explain']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^decision: +deny \(not allowed\)$/m);
    expect(r.stdout).toMatch(/^reasons: +.*"model version retired"/m);
    expect(r.stdout).toMatch(/^why: deny: retired_fraud_models denies, and any applicable deny decides; overrides fraud_freeze → escalate$/m);
    expect(r.stdout).toMatch(/retired_fraud_models \(forbid\) +policies\/fraud\.agp:\d+ +→ deny\n +✓ when agent\.model\.name == "fraudnet" and agent\.model\.version < 2\.0\.0\n +✓ forbid because "model version retired" +← fired/);
    // every risk factor's value, with the old model's contribution
    expect(r.stdout).toMatch(/^ {2}risk 73 = sensitivity 40 \+ doubt 2 \+ impact 6 \+ old_model 25 {2}\(0: unusual, .*\)$/m);
    expect(r.stdout).toMatch(/not candidates \(target did not match\): \d+\n(.*\n)*? +code_deploy +✗ action == "deploy" +\(action = "freeze_account"\)/);
  });

  it('--explain on a denied high-risk request shows which thresholds failed and the risk they compared', async () => {
    const file = requestFile('restricted.json', freezeRequest({ sensitivity: 'restricted' }));
    const r = await agp(['eval', '--input', file, '--explain']);
    expect(r.code).toBe(0);
    const risk = Number(/^risk: +(\d+(?:\.\d+)?)/m.exec(r.stdout)?.[1]);
    expect(risk).toBeGreaterThanOrEqual(40);
    // whatever the effect, the trace names each threshold with the risk it saw
    expect(r.stdout).toContain(`✗ permit if risk < 40   (risk = ${risk})`);
    expect(r.stdout).toMatch(/✗ permit if granted +\(granted = false\)/);
    const block = /^ {4}fraud_freeze +policies\/fraud\.agp:\d+ +→ (\w+)\n((?: {6}.*\n)+)/m.exec(r.stdout);
    expect(block).not.toBeNull();
    const fired = block![2]!.split('\n').filter((l) => l.endsWith('← fired'));
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatch(new RegExp(`^ +✓ ${block![1]}\\b`));
    expect(r.stdout).toMatch(new RegExp(`^decision: +${block![1]} `, 'm'));
  });

  it('a grant in the request permits the freeze, and the explanation says so', async () => {
    const file = requestFile('granted.json', freezeRequest({ grants: [{ actions: ['freeze_account'], resource: 'account:991', expires_in_s: 600 }] }));
    const r = await agp(['eval', '--input', file, '--explain']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^decision: +permit \(allowed\)$/m);
    expect(r.stdout).toMatch(/✓ permit if granted +\(granted = true\) +← fired/);
    expect(r.stdout).toMatch(/^obligations: .*scopes=\["accounts:991:freeze"\]/m);
  });

  it('--format json prints the decision as the API does (with the trace under --explain)', async () => {
    const body = JSON.stringify(freezeRequest({ version: '1.9.0' }));
    const plain = await agp(['eval', '--request', body, '--format', 'json']);
    expect(plain.code).toBe(0);
    const d = JSON.parse(plain.stdout) as { effect: string; allowed: boolean; reasons: string[]; policies: string[]; factors: Record<string, number>; explanation?: unknown };
    expect(d).toMatchObject({ effect: 'deny', allowed: false });
    expect(d.reasons).toContain('model version retired');
    expect(d.policies).toContain('retired_fraud_models');
    expect(d.factors['old_model']).toBe(25);
    expect(d.explanation).toBeUndefined();
    const explained = JSON.parse((await agp(['eval', '--request', body, '--format', 'json', '--explain'])).stdout) as { explanation: { policy: string; target: boolean; effect: string | null }[] };
    expect(explained.explanation.find((t) => t.policy === 'retired_fraud_models')).toMatchObject({ target: true, effect: 'deny' });
  });

  it('a request with no matching policy is a default deny, explained', async () => {
    const body = { ...freezeRequest(), action: 'launch_rocket' };
    const r = await agp(['eval', '--request', JSON.stringify(body), '--explain']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^reasons: +"no policy applies"$/m);
    expect(r.stdout).toMatch(/^why: deny by default: no policy applies$/m);
  });

  it('invalid request JSON is one line on stderr, exit 2, no stack trace', async () => {
    const inline = await agp(['eval', '--request', '{"agent": ']);
    expect(inline.code).toBe(2);
    expect(inline.stderr).toMatch(/^agp eval: --request is not valid JSON: .+\n$/);
    const file = requestFile('broken.json', '{"agent": {"id": "x",}');
    const fromFile = await agp(['eval', '--input', file]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr.split('\n')).toHaveLength(2);
    expect(fromFile.stderr).toMatch(/^agp eval: request file `.*broken\.json` is not valid JSON: /);
    expect(hasStackTrace(inline.stderr + fromFile.stderr)).toBe(false);
    expect((await agp(['eval', '--request', '[1, 2]'])).stderr).toBe('agp eval: the request must be a JSON object with agent, action, resource and task\n');
  });

  it('a missing request file is one line, exit 2', async () => {
    const r = await agp(['eval', '--input', 'no-such-request.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('agp eval: cannot read request file `no-such-request.json`: no such file or directory\n');
    expect(r.stdout).toBe('');
  });

  it('a request missing a required attribute exits 1 naming the attribute path', async () => {
    const body = freezeRequest() as { task: Record<string, unknown> };
    delete body.task['flagged'];
    const r = await agp(['eval', '--request', JSON.stringify(body)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('invalid request:\n  task.flagged: required attribute is missing\n');
    const json = await agp(['eval', '--request', JSON.stringify(body), '--format', 'json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'invalid_request', issues: [{ path: 'task.flagged' }] } });
  });

  it('usage errors: both or neither of --input/--request, a bad --now, a stray argument', async () => {
    for (const [args, message] of [
      [['eval'], 'give exactly one of --input FILE or --request JSON'],
      [['eval', '--input', 'a.json', '--request', '{}'], 'give exactly one of --input FILE or --request JSON'],
      [['eval', '--request', '{}', '--now', 'yesterday'], '--now must be an RFC 3339 time'],
      [['eval', 'policies', '--request', '{}'], 'unexpected argument `policies`'],
      [['eval', '--policies', 'nowhere', '--request', '{}'], 'cannot read `nowhere`: no such file or directory'],
    ] as const) {
      const r = await agp(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toContain(message);
    }
  });
});

describe('agp bench', { timeout: 120_000 }, () => {
  it('--samples 5 --batch 10 prints the median and p99 per decision', async () => {
    const file = requestFile('bench.json', freezeRequest());
    const r = await agp(['bench', '--policies', 'policies', '--input', file, '--samples', '5', '--batch', '10']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^decision: escalate \(24 policies; 5 samples of 10 decisions\)$/m);
    for (const what of ['compiled', 'interpreter', 'validation']) {
      expect(r.stdout).toMatch(new RegExp(`^${what} +median +[\\d,]+ ns +p99 +[\\d,]+ ns`, 'm'));
    }
    const json = await agp(['bench', '--input', file, '--samples', '5', '--batch', '10', '--format', 'json']);
    const out = JSON.parse(json.stdout) as { effect: string; compiled: { median_ns: number; p99_ns: number; samples: number } };
    expect(out.effect).toBe('escalate');
    expect(out.compiled.samples).toBe(5);
    expect(out.compiled.median_ns).toBeGreaterThan(0);
    expect(out.compiled.p99_ns).toBeGreaterThanOrEqual(out.compiled.median_ns);
  });

  it('rejects a bad --samples and an invalid request', async () => {
    const zero = await agp(['bench', '--request', '{}', '--samples', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toBe('agp bench: --samples must be a positive integer (got `0`)\n');
    const invalid = await agp(['bench', '--request', JSON.stringify({ ...freezeRequest(), action: 7 }), '--samples', '5', '--batch', '10']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^invalid request:\n {2}action: /);
  });
});
