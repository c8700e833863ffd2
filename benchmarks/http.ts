// `npm run bench:http [-- --quick] [-- --json]`: AGP over HTTP against a bare Fastify route,
// measured side by side in one run (PERFORMANCE.md). Servers run in child processes (this
// file with `--child <mode>`); autocannon drives them from this process with the same
// flags, a warm-up round first, and the measured rounds alternating between peers.
//
// Cases: /v1/decide vs the bare route (requests/s, p50, p99); /v1/decide/batch in
// decisions/s vs single calls; the Redis store with a warm cache and with every request a
// cache miss vs the embedded store.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------- autocannon (untyped)

interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}
interface CannonOptions {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string;
  connections: number;
  duration: number;
  pipelining?: number;
  requests?: { setupRequest: (req: { body?: string }) => { body?: string } }[];
}
const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as (opts: CannonOptions) => Promise<CannonResult>;

// ---------------------------------------------------------------- the request

const FRAUDBOT = {
  owner: 'risk-team',
  roles: ['fraud-detector'],
  model: { name: 'fraudnet', version: '2.4.1' },
  trust: 'verified',
};

/** A realistic PEP call: a registered agent's id and confidence, a resource and a task. */
function decideBody(agentId: string, full: boolean): Record<string, unknown> {
  return {
    agent: full ? { id: agentId, ...FRAUDBOT, confidence: 0.93 } : { id: agentId, confidence: 0.93 },
    action: 'freeze_account',
    resource: { type: 'account', id: '991', owner: 'payments', sensitivity: 'confidential' },
    task: { kind: 'investigation', flagged: true },
  };
}

const BATCH_SIZE = 100;

// ---------------------------------------------------------------- child servers

type Mode = 'bare' | 'bare-work' | 'agp' | 'agp-redis';

/** CPU work the calibration route does per request, in microseconds. */
const CALIBRATION_WORK_US = 10;

async function child(mode: Mode): Promise<void> {
  if (mode === 'bare' || mode === 'bare-work') {
    const { default: Fastify } = await import('fastify');
    const app = Fastify({ logger: false });
    // The calibration route: the bare route plus a fixed amount of CPU work, so the report
    // shows what a given ratio means in microseconds of server work on this machine.
    const work = mode === 'bare-work' ? CALIBRATION_WORK_US / 1000 : 0;
    app.post('/bare', (_request, reply) => {
      if (work > 0) {
        const until = performance.now() + work;
        while (performance.now() < until);
      }
      return reply.send({ decision: 'permit', allowed: true, risk: 12 });
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    process.stdout.write(`${JSON.stringify({ url })}\n`);
    process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
    return;
  }
  const { loadConfig } = await import('../server/config.js');
  const { start } = await import('../server/main.js');
  const loaded = loadConfig({ port: 0, host: '127.0.0.1', policies: process.env['BENCH_POLICIES'] ?? 'policies', logLevel: 'warn', watch: false }, process.env);
  if (!loaded.ok) throw new Error(loaded.errors.join('; '));
  const server = await start(loaded.config);
  process.stdout.write(`${JSON.stringify({ url: server.url, revision: server.policies.current?.revision ?? null })}\n`);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

interface Server {
  url: string;
  proc: ChildProcess;
}

function spawnServer(mode: Mode, env: Record<string, string>): Promise<Server> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', mode], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    // The server's own log lines share stdout: wait for the line that carries the URL.
    const onLine = (line: string): void => {
      let parsed: { url?: unknown } | undefined;
      try {
        parsed = JSON.parse(line) as { url?: unknown };
      } catch {
        parsed = undefined;
      }
      if (typeof parsed?.url === 'string') {
        lines.off('line', onLine);
        lines.on('line', () => {});
        resolve({ url: parsed.url, proc });
      }
    };
    lines.on('line', onLine);
    proc.once('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
}

async function stop(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.proc.once('exit', () => resolve());
    server.proc.kill('SIGTERM');
    setTimeout(() => server.proc.kill('SIGKILL'), 5000).unref();
  });
}

// ---------------------------------------------------------------- measuring

interface Target {
  name: string;
  url: string;
  body: string | ((i: number) => string);
  /** Decisions per request (batch size). */
  decisions: number;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function run(target: Target, connections: number, duration: number): Promise<Sample> {
  let n = 0;
  const body = target.body;
  const opts: CannonOptions = {
    url: target.url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    duration,
  };
  if (typeof body === 'string') opts.body = body;
  else opts.requests = [{ setupRequest: (req) => ({ ...req, body: body(n++) }) }];
  const r = await autocannon(opts);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface CaseResult {
  name: string;
  requests_per_s: number;
  decisions_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  rounds: number;
}

/** Warm-up each target, then `rounds` measured rounds alternating over the targets. */
async function compare(targets: Target[], connections: number, warmup: number, duration: number, rounds: number, log: (s: string) => void): Promise<CaseResult[]> {
  for (const t of targets) {
    log(`  warm-up ${t.name}`);
    await run(t, connections, warmup);
  }
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round so drift hits every target alike.
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const s = await run(t, connections, duration);
      log(`  round ${r + 1} ${t.name}: ${Math.round(s.rps)} req/s, p99 ${s.p99} ms`);
      samples.get(t.name)!.push(s);
    }
  }
  return targets.map((t) => {
    const ss = samples.get(t.name)!;
    const rps = median(ss.map((s) => s.rps));
    return {
      name: t.name,
      requests_per_s: Math.round(rps),
      decisions_per_s: Math.round(rps * t.decisions),
      p50_ms: median(ss.map((s) => s.p50)),
      p99_ms: median(ss.map((s) => s.p99)),
      errors: ss.reduce((a, s) => a + s.errors, 0),
      rounds: ss.length,
    };
  });
}

async function redisAvailable(url: string): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function cleanRedis(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url);
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await r.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await r.quit();
}

async function register(url: string, agentId: string): Promise<void> {
  const r = await fetch(`${url}/v1/admin/agents/${agentId}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ attributes: FRAUDBOT }),
  });
  if (r.status >= 300) throw new Error(`registering ${agentId}: ${r.status} ${await r.text()}`);
}

async function main(argv: string[]): Promise<number> {
  const childAt = argv.indexOf('--child');
  if (childAt >= 0) {
    await child(argv[childAt + 1] as Mode);
    return -1;
  }
  const quick = argv.includes('--quick');
  const json = argv.includes('--json');
  const connections = 32;
  const warmup = quick ? 1 : 3;
  const duration = quick ? 2 : 5;
  const rounds = quick ? 2 : 4;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const redisUrl = process.env['AGP_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const data = mkdtempSync(join(tmpdir(), 'agp-bench-'));
  const common = { AGP_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'), AGP_AUDIT: 'file', AGP_API_KEYS: '', AGP_ADMIN_KEY: '' };
  const servers: Server[] = [];
  const prefix = `agp-bench-${randomUUID().slice(0, 8)}`;
  const withRedis = await redisAvailable(redisUrl);

  try {
    log(`agp bench:http (${quick ? 'quick' : 'full'}): ${connections} connections, ${rounds} x ${duration}s rounds after ${warmup}s warm-up, audit to a file`);
    const bare = await spawnServer('bare', {});
    const bareWork = await spawnServer('bare-work', {});
    // Each server appends to its own audit log (one hash chain per file).
    const agp = await spawnServer('agp', { ...common, AGP_AUDIT_FILE: join(data, 'audit-embedded.jsonl') });
    servers.push(bare, bareWork, agp);
    await register(agp.url, 'fraudbot-1');
    const single = JSON.stringify(decideBody('fraudbot-1', false));
    const batch = JSON.stringify({ requests: Array.from({ length: BATCH_SIZE }, () => decideBody('fraudbot-1', false)) });

    log(`/v1/decide vs a bare Fastify route (and the bare route plus ${CALIBRATION_WORK_US} µs of work per request)`);
    const [bareCase, decideCase, calibrationCase] = await compare(
      [
        { name: 'bare fastify route', url: `${bare.url}/bare`, body: single, decisions: 1 },
        { name: 'POST /v1/decide (embedded store)', url: `${agp.url}/v1/decide`, body: single, decisions: 1 },
        { name: `bare fastify route + ${CALIBRATION_WORK_US} µs of work (calibration)`, url: `${bareWork.url}/bare`, body: single, decisions: 1 },
      ],
      connections,
      warmup,
      duration,
      rounds,
      log,
    );
    log(`/v1/decide/batch (${BATCH_SIZE} per call) vs single calls`);
    const [batchCase, singleAgain] = await compare(
      [
        { name: `POST /v1/decide/batch x${BATCH_SIZE} (embedded store)`, url: `${agp.url}/v1/decide/batch`, body: batch, decisions: BATCH_SIZE },
        { name: 'POST /v1/decide (embedded store, again)', url: `${agp.url}/v1/decide`, body: single, decisions: 1 },
      ],
      connections,
      warmup,
      duration,
      rounds,
      log,
    );

    const cases: CaseResult[] = [bareCase!, decideCase!, calibrationCase!, batchCase!, singleAgain!];
    let redisWarm: CaseResult | undefined;
    let redisMiss: CaseResult | undefined;
    let embeddedRef: CaseResult | undefined;
    if (withRedis) {
      // Unregistered agents are evaluated from the request (registration not required) so a
      // miss costs exactly one Redis lookup and then a full decision.
      // Two servers on the same Redis: the warm-cache one never serves the miss traffic, whose
      // thousands of new agents would otherwise leave it flushing and reading back their
      // counters in the background (work the embedded reference is never given).
      const redisEnv = { ...common, AGP_REDIS_URL: redisUrl, AGP_REDIS_PREFIX: prefix, AGP_REQUIRE_REGISTERED_AGENTS: 'false' };
      const redis = await spawnServer('agp-redis', { ...redisEnv, AGP_AUDIT_FILE: join(data, 'audit-redis-warm.jsonl') });
      const redisCold = await spawnServer('agp-redis', { ...redisEnv, AGP_AUDIT_FILE: join(data, 'audit-redis-miss.jsonl') });
      servers.push(redis, redisCold);
      await register(redis.url, 'fraudbot-1');
      const run = randomUUID().slice(0, 8);
      log('the Redis store (warm cache; every request a miss) vs the embedded store');
      [embeddedRef, redisWarm, redisMiss] = await compare(
        [
          { name: 'POST /v1/decide (embedded store, reference)', url: `${agp.url}/v1/decide`, body: single, decisions: 1 },
          { name: 'POST /v1/decide (redis, warm cache)', url: `${redis.url}/v1/decide`, body: single, decisions: 1 },
          // A distinct agent id on every request: nothing is ever cached.
          { name: 'POST /v1/decide (redis, every request a cache miss)', url: `${redisCold.url}/v1/decide`, body: (i) => JSON.stringify(decideBody(`miss-${run}-${i}`, true)), decisions: 1 },
        ],
        connections,
        warmup,
        duration,
        rounds,
        log,
      );
      cases.push(embeddedRef!, redisWarm!, redisMiss!);
    } else {
      log(`redis at ${redisUrl} is not reachable: the Redis cases are not measured`);
    }

    const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000;
    const ratios: Record<string, number> = {
      decide_vs_bare_requests_per_s: ratio(decideCase!.requests_per_s, bareCase!.requests_per_s),
      decide_vs_bare_p99: ratio(decideCase!.p99_ms, bareCase!.p99_ms),
      [`bare_plus_${CALIBRATION_WORK_US}us_work_vs_bare_requests_per_s`]: ratio(calibrationCase!.requests_per_s, bareCase!.requests_per_s),
      batch_vs_single_decisions_per_s: ratio(batchCase!.decisions_per_s, singleAgain!.decisions_per_s),
    };
    if (redisWarm !== undefined && redisMiss !== undefined && embeddedRef !== undefined) {
      ratios['redis_warm_vs_embedded_requests_per_s'] = ratio(redisWarm.requests_per_s, embeddedRef.requests_per_s);
      ratios['redis_miss_vs_embedded_requests_per_s'] = ratio(redisMiss.requests_per_s, embeddedRef.requests_per_s);
    }
    const goals = {
      decide_at_least_0_7x_bare_requests_per_s: ratios['decide_vs_bare_requests_per_s']! >= 0.7,
      decide_p99_at_most_1_5x_bare: ratios['decide_vs_bare_p99']! <= 1.5,
      ...(ratios['redis_warm_vs_embedded_requests_per_s'] !== undefined
        ? { redis_warm_within_10_percent_of_embedded: ratios['redis_warm_vs_embedded_requests_per_s'] >= 0.9 }
        : {}),
    };
    const report = {
      benchmark: 'http',
      mode: quick ? 'quick' : 'full',
      node: process.version,
      connections,
      duration_s: duration,
      rounds,
      batch_size: BATCH_SIZE,
      redis: withRedis,
      cases,
      ratios,
      goals,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const w = Math.max(...cases.map((c) => c.name.length));
      process.stdout.write(`${'case'.padEnd(w)}  ${'req/s'.padStart(9)}  ${'decisions/s'.padStart(11)}  ${'p50 ms'.padStart(7)}  ${'p99 ms'.padStart(7)}  errors\n`);
      for (const c of cases) {
        process.stdout.write(
          `${c.name.padEnd(w)}  ${String(c.requests_per_s).padStart(9)}  ${String(c.decisions_per_s).padStart(11)}  ${String(c.p50_ms).padStart(7)}  ${String(c.p99_ms).padStart(7)}  ${c.errors}\n`,
        );
      }
      process.stdout.write('\nratios\n');
      for (const [k, v] of Object.entries(ratios)) process.stdout.write(`  ${k}: ${v}\n`);
      process.stdout.write('goals\n');
      for (const [k, v] of Object.entries(goals)) process.stdout.write(`  ${k}: ${v ? 'met' : 'NOT met'}\n`);
    }
    return 0;
  } finally {
    await Promise.all(servers.map(stop));
    if (withRedis) await cleanRedis(redisUrl, prefix);
    rmSync(data, { recursive: true, force: true });
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
