// The `agp` entry point, run as a child process: help for every command, exit codes for
// unknown commands and flags, colour rules (on a real terminal through util-linux
// `script`), `agp audit verify` on good and tampered logs, and `agp serve` answering a
// decision. The progress line is checked in-process and on a terminal.

import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agp, ensureBuilt, ROOT, scratchDir } from './helpers.js';
import { createAuditLog, type AuditEntry } from '../../server/audit.js';
import { progress, type Streams } from '../../cli/output.js';

const scratch = scratchDir();
beforeAll(() => ensureBuilt(), 300_000);
afterAll(() => scratch.cleanup());

/** Every flag each command accepts: its help must describe each one. */
const FLAGS: Record<string, string[]> = {
  check: ['--format'],
  fmt: ['--check', '--write'],
  test: ['--format', '--junit', '--coverage', '--threshold', '--run', '--verbose'],
  eval: ['--policies', '--input', '--request', '--explain', '--now', '--format'],
  bench: ['--policies', '--input', '--request', '--samples', '--batch', '--now', '--format'],
  serve: ['--policies', '--port', '--host', '--redis-url', '--log-level', '--audit-file', '--no-watch'],
  audit: ['--hmac-key', '--head', '--format'],
};

describe('agp --help', { timeout: 120_000 }, () => {
  it('lists every command with exit codes and examples, on stdout, exit 0', async () => {
    const r = await agp(['--help']);
    expect(r.code).toBe(0);
    for (const name of Object.keys(FLAGS)) expect(r.stdout).toMatch(new RegExp(`^ {2}${name} +\\S`, 'm'));
    expect(r.stdout).toContain('Exit codes: 0 ok, 1 policy or test failures, 2 usage or I/O errors.');
    expect(r.stdout).toMatch(/^Examples:\n {2}agp /m);
    expect(r.stderr).toBe('');
  });

  it('with no command prints the help on stderr and exits 2', async () => {
    const r = await agp([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: agp <command>/m);
  });

  for (const [name, flags] of Object.entries(FLAGS)) {
    it(`agp ${name} --help describes every flag with an example`, async () => {
      const r = await agp([name, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^(U|u)sage: agp ${name}\\b`, 'm'));
      for (const flag of flags) expect(r.stdout, flag).toMatch(new RegExp(`^ +${flag}\\b.*\\S`, 'm'));
      expect(r.stdout).toMatch(/^Examples?:\n {2}(\w+=\S+ )*agp /m);
      expect(r.stdout).toMatch(/Exit codes: 0 /);
      expect((await agp(['help', name])).stdout).toBe(r.stdout);
    });
  }

  it('--version prints the package version', async () => {
    const r = await agp(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });
});

describe('usage errors', { timeout: 120_000 }, () => {
  it('an unknown command exits 2 with one line and a suggestion', async () => {
    const r = await agp(['tset', 'policies']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('agp: unknown command `tset`; did you mean `test`? (commands: check, fmt, test, eval, bench, serve, audit; see `agp --help`)\n');
  });

  it('an unknown flag exits 2 with one line naming it', async () => {
    const r = await agp(['test', 'policies', '--colour']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('agp test: unknown option `--colour` (see `agp test --help`)\n');
    expect((await agp(['--frobnicate'])).code).toBe(2);
  });
});

describe('colour', { timeout: 120_000 }, () => {
  it('is off when output is not a terminal, forced by FORCE_COLOR, and NO_COLOR always wins', async () => {
    const plain = await agp(['test', 'policies', '--run', '^story 1:'], { env: { NO_COLOR: undefined } });
    expect(plain.stdout).not.toContain('\u001b[');
    const forced = await agp(['test', 'policies', '--run', '^story 1:'], { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    expect(forced.stdout).toContain('\u001b[32m1 passed, 0 failed\u001b[0m');
    const both = await agp(['test', 'policies', '--run', '^story 1:'], { env: { NO_COLOR: '1', FORCE_COLOR: '1' } });
    expect(both.stdout).not.toContain('\u001b[');
  });
});

/** Runs agp on a pseudo-terminal (util-linux `script`), stdout and stderr both to it. */
function onTerminal(args: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NO_COLOR' && k !== 'FORCE_COLOR'));
  return new Promise((resolve, reject) => {
    execFile('script', ['-qec', `${JSON.stringify(process.execPath)} bin/agp.js ${args}`, '/dev/null'], { cwd: ROOT, env: { ...base, ...env }, timeout: 100_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve(stdout);
    });
  });
}

describe('on a terminal', { timeout: 120_000 }, () => {
  it('colours the output, unless NO_COLOR is set', async () => {
    const coloured = await onTerminal("test policies --run '^story 1:'");
    expect(coloured).toContain('\u001b[32m1 passed, 0 failed\u001b[0m');
    const plain = await onTerminal("test policies --run '^story 1:'", { NO_COLOR: '1' });
    expect(plain).toMatch(/1 passed, 0 failed/);
    // No colour (SGR) codes. A load slower than a second shows the progress line, whose
    // cursor controls (erase line) are not colour and stay under NO_COLOR.
    // eslint-disable-next-line no-control-regex -- the escape character is what it looks for
    expect(plain).not.toMatch(/\u001b\[[0-9;]*m/);
  });

  it('shows a progress line, rewritten in place, for a run longer than a second', async () => {
    const file = join(scratch.dir, 'tty-bench.json');
    writeFileSync(file, JSON.stringify({
      agent: { id: 'fraudbot-1', owner: 'risk-team', roles: ['fraud-detector'], model: { name: 'fraudnet', version: '2.4.1' }, confidence: 0.93, trust: 'verified', behavior: { rate_z: 0.4, deny_ratio: 0, new_resource: false } },
      action: 'read',
      resource: { type: 'transactions', id: 't1', sensitivity: 'internal' },
      task: { kind: 'monitoring', flagged: false },
    }));
    const out = await onTerminal(`bench --input ${JSON.stringify(file)} --samples 200 --batch 50000`, { NO_COLOR: '1' });
    const erase = '\r\u001b[2K';
    expect(out).toMatch(new RegExp(`${erase.replace('[', '\\[')}timing the (compiled set|interpreter|validation): \\d+/\\d+ samples`));
    // the line is erased before the results are printed
    expect(out.lastIndexOf(erase)).toBeLessThan(out.indexOf('decision: permit'));
    expect(out.slice(out.lastIndexOf(erase) + erase.length).trimStart().startsWith('decision: permit')).toBe(true);
    expect(out).toMatch(/compiled +median/);
  });

  it('shows what a slow load is doing (parsing, type-checking, compiling) and erases it before the result', async () => {
    // 48,000 generated policies in 48 files: several seconds to load on these machines.
    const dir = join(scratch.dir, 'big-set');
    mkdirSync(dir, { recursive: true });
    cpSync(join(ROOT, 'policies', 'schema.agp'), join(dir, 'schema.agp'));
    for (let f = 0; f < 48; f++) {
      let text = '';
      for (let i = 0; i < 1000; i++) {
        const n = f * 1000 + i;
        text += `policy p${n} {\n  on action == "act_${n}" and resource.type == "transactions"\n  permit if agent.confidence > 0.5 and risk < 50\n}\n\n`;
      }
      writeFileSync(join(dir, `gen${f}.agp`), text);
    }
    const out = await onTerminal(`check ${JSON.stringify(dir)}`, { NO_COLOR: '1' });
    const erase = '\r\u001b[2K';
    expect(out).toMatch(new RegExp(`${erase.replace('[', '\\[')}(parsing \\d+/49 files|type-checking 49 files|compiling 48000 policies)`));
    expect(out.lastIndexOf(erase)).toBeLessThan(out.indexOf('ok: 49 files, 48000 policies'));
  });
});

describe('agp audit verify', { timeout: 120_000 }, () => {
  const entry = (i: number): AuditEntry => ({
    kind: 'decision',
    decision_id: `d-${i}`,
    agent: 'fraudbot-1',
    action: 'freeze_account',
    resource: { type: 'account', id: String(990 + i) },
    effect: i === 1 ? 'deny' : 'permit',
    allowed: i !== 1,
    risk: 12 + i,
    policies: ['fraud_freeze'],
    reasons: [],
    revision: 'sha256:test',
    latency_us: 40,
  });

  async function writeLog(file: string, hmacKey?: string): Promise<void> {
    const log = createAuditLog({ sink: 'file', file, ...(hmacKey ? { hmacKey } : {}), now: () => Date.parse('2026-03-02T09:15:00Z') });
    for (let i = 0; i < 4; i++) log.write(entry(i));
    await log.close();
  }

  it('exits 0 on an intact log and 1 on a tampered one, naming the line', async () => {
    const file = join(scratch.dir, 'audit.jsonl');
    await writeLog(file);
    const good = await agp(['audit', 'verify', file]);
    expect(good.code).toBe(0);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(good.stdout).toMatch(new RegExp(`^ok: .*audit\\.jsonl: ${lines.length} lines, chain intact, head [0-9a-f]{64}\\n$`));

    const denied = lines.findIndex((l) => l.includes('"effect":"deny"'));
    expect(denied).toBeGreaterThan(-1);
    const tampered = join(scratch.dir, 'tampered.jsonl');
    writeFileSync(tampered, lines.map((l, i) => (i === denied ? l.replace('"effect":"deny"', '"effect":"permit"') : l)).join('\n') + '\n');
    const bad = await agp(['audit', 'verify', tampered]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe(`tampered: ${tampered}:${denied + 1}: \`hash\` does not match the line's content (the line was edited)\n`);

    const dropped = join(scratch.dir, 'dropped.jsonl');
    writeFileSync(dropped, lines.filter((_, i) => i !== denied).join('\n') + '\n');
    const gap = await agp(['audit', 'verify', '--format', 'json', dropped]);
    expect(gap.code).toBe(1);
    expect(JSON.parse(gap.stdout)).toMatchObject({ ok: false, firstBadLine: denied + 1 });
  });

  it('--head detects a cut tail; --hmac-key verifies a keyed log', async () => {
    const file = join(scratch.dir, 'keyed.jsonl');
    const key = 'a-long-enough-audit-key';
    await writeLog(file, key);
    const withKey = await agp(['audit', 'verify', '--format', 'json', '--hmac-key', key, file]);
    expect(withKey.code).toBe(0);
    const head = (JSON.parse(withKey.stdout) as { head: string }).head;
    expect((await agp(['audit', 'verify', file])).code).toBe(1);
    expect((await agp(['audit', 'verify', file], { env: { AGP_AUDIT_HMAC_KEY: key } })).code).toBe(0);

    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const cut = join(scratch.dir, 'cut.jsonl');
    writeFileSync(cut, lines.slice(0, -1).join('\n') + '\n');
    expect((await agp(['audit', 'verify', '--hmac-key', key, cut])).code).toBe(0);
    const r = await agp(['audit', 'verify', '--hmac-key', key, '--head', head, cut]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/lines were cut from the end/);
  });

  it('a missing file or a missing subcommand is a usage error (exit 2)', async () => {
    const missing = await agp(['audit', 'verify', 'no-such-audit.jsonl']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('agp audit: cannot read `no-such-audit.jsonl`: no such file or directory\n');
    expect(missing.stdout).toBe('');
    expect((await agp(['audit', 'verify', scratch.dir])).stderr).toMatch(/is a directory/);
    expect((await agp(['audit'])).code).toBe(2);
    expect((await agp(['audit', 'check', 'x'])).stderr).toBe('agp audit: unknown subcommand `check` (expected verify)\n');
  });
});

describe('agp serve', { timeout: 120_000 }, () => {
  it('serves decisions from the example policies and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'agp.js'), 'serve', '--policies', 'policies', '--port', '0', '--host', '127.0.0.1', '--no-watch', '--log-level', 'info'], {
      cwd: ROOT,
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGP_'))), NO_COLOR: '1', AGP_AUDIT: 'none' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${output}`)), 30_000);
        const look = (chunk: Buffer): void => {
          output += chunk.toString();
          const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        child.stdout.on('data', look);
        child.stderr.on('data', look);
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
      });
      const body = {
        agent: { id: 'fraudbot-1', owner: 'risk-team', roles: ['fraud-detector'], model: { name: 'fraudnet', version: '1.9.0' }, confidence: 0.93, trust: 'verified', behavior: { rate_z: 0, deny_ratio: 0, new_resource: false } },
        action: 'read',
        resource: { type: 'transactions', id: 't1', sensitivity: 'internal' },
        task: { kind: 'monitoring', flagged: false },
      };
      const res = await fetch(`${url}/v1/decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(200);
      const decision = (await res.json()) as { decision: string; reasons: string[] };
      expect(decision.decision).toBe('deny');
      expect(decision.reasons).toContain('model version retired');
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});

describe('progress line', { timeout: 120_000 }, () => {
  function fakeStreams(tty: boolean): Streams & { errText: () => string } {
    let err = '';
    return { out: () => undefined, err: (t) => void (err += t), outColor: false, errColor: false, errIsTTY: tty, errText: () => err };
  }

  it('appears on a terminal only after a second, is rewritten in place and erased at the end', () => {
    let now = 0;
    const s = fakeStreams(true);
    const bar = progress(s, () => now);
    bar.update('running tests: 1/3');
    expect(s.errText()).toBe('');
    now = 1200;
    bar.update('running tests: 2/3');
    expect(s.errText()).toBe('\r\u001b[2Krunning tests: 2/3');
    now = 1250;
    bar.update('running tests: 3/3');
    expect(s.errText()).toBe('\r\u001b[2Krunning tests: 2/3'); // throttled
    bar.done();
    expect(s.errText()).toBe('\r\u001b[2Krunning tests: 2/3\r\u001b[2K');
  });

  it('never appears when stderr is not a terminal', () => {
    let now = 0;
    const s = fakeStreams(false);
    const bar = progress(s, () => now);
    now = 5000;
    bar.update('running');
    bar.done();
    expect(s.errText()).toBe('');
  });
});
