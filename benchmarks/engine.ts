// Engine benchmark: decision cost of compiled AGP against its own reference interpreter,
// Cedar (cedar-wasm, preparsed) and Casbin (enforceSync) on equivalent generated policy
// sets of 10 to 10,000 policies, plus a Set.has loop as the timer floor. All engines run
// in one process per policy-set size, alternating sample by sample so machine drift hits
// them alike, and every request is decided by every engine first to prove they agree.
//
//   npm run bench:engine [-- --quick] [-- --json]

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { newEnforcer, newModelFromString, StringAdapter } from 'casbin';
import { loadPolicySet } from '../engine/load.js';
import type { NormalizedRequest, PolicySet } from '../engine/decision.js';

const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const ONLY = process.argv.find((a) => a.startsWith('--engines='))?.slice('--engines='.length).split(',');
const JSON_OUT = args.has('--json');
const sizesArg = process.argv.find((a) => a.startsWith('--sizes='));
const SIZES = sizesArg ? sizesArg.slice('--sizes='.length).split(',').map(Number) : [10, 100, 1000, 10000];
const SAMPLES = QUICK ? 25 : 150;
const SAMPLE_TARGET_NS = QUICK ? 40_000 : 100_000;
const WARMUP = QUICK ? 5_000 : 50_000;
const WARMUP_MS = QUICK ? 150 : 600;

const TRUST = ['untrusted', 'basic', 'verified', 'privileged'] as const;
const SENSITIVITY = ['public', 'internal', 'confidential', 'restricted'] as const;
const VERSIONS = ['1.9.0', '2.0.0', '2.4.1', '3.1.0'] as const;
const ROLES = 10;

/** A small deterministic PRNG so every run decides the same requests. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const versionNumber = (v: string) => {
  const [a, b, c] = v.split('.').map(Number) as [number, number, number];
  return a * 1_000_000 + b * 1000 + c;
};

interface Generated {
  agp: { path: string; text: string }[];
  cedar: string;
  casbinPolicy: string[];
  actions: number;
  types: number;
}

const SCHEMA = `schema {
  agent {
    id: string
    roles: set<string>
    trust: level<untrusted, basic, verified, privileged>
    model: { name: string, version: version }
  }
  resource { type: string, id: string, sensitivity: level<public, internal, confidential, restricted> }
  task { kind: string }
  action: string
}
`;

/**
 * N policies over N/2 (action, resource type) buckets: each bucket has a permit that needs a
 * role, a minimum trust and a maximum sensitivity; its second policy is another permit or,
 * for every fifth bucket, a forbid of old model versions.
 */
function generate(n: number): Generated {
  const buckets = Math.max(1, Math.floor(n / 2));
  const actions = Math.min(20, buckets);
  const types = Math.ceil(buckets / actions);
  const agp: string[] = [];
  const ced: string[] = [];
  const cas: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = i % buckets;
    const a = b % actions;
    const t = Math.floor(b / actions);
    const second = i >= buckets;
    if (second && b % 5 === 0) {
      const v = VERSIONS[1 + (b % 3)]!;
      agp.push(`forbid f${i} {\n  on action == "act_${a}" and resource.type == "type_${t}"\n  when agent.model.version < ${v}\n  because "model version retired"\n}\n`);
      ced.push(`@id("f${i}")\nforbid(principal, action == Action::"act_${a}", resource is type_${t}) when { principal.version < ${versionNumber(v)} };`);
      cas.push(`p, *, type_${t}, act_${a}, 0, 0, ${versionNumber(v)}, deny`);
    } else {
      const role = (i * 7) % ROLES;
      const trust = (i * 3) % 3; // untrusted..verified
      const sens = 1 + (i % 3); // internal..restricted
      agp.push(`policy p${i} {\n  on action == "act_${a}" and resource.type == "type_${t}"\n  when "role_${role}" in agent.roles and agent.trust >= ${TRUST[trust]} and resource.sensitivity <= ${SENSITIVITY[sens]}\n  permit\n}\n`);
      ced.push(`@id("p${i}")\npermit(principal, action == Action::"act_${a}", resource is type_${t}) when { principal.roles.contains("role_${role}") && principal.trust >= ${trust} && resource.sensitivity <= ${sens} };`);
      cas.push(`p, role_${role}, type_${t}, act_${a}, ${trust}, ${sens}, 0, allow`);
    }
  }
  // Real policy sets are many files; each stays under the 1 MiB per-file limit.
  const files = [{ path: 'bench/schema.agp', text: SCHEMA }];
  for (let k = 0; k < agp.length; k += 500) {
    files.push({ path: `bench/policies-${String(k / 500).padStart(3, '0')}.agp`, text: agp.slice(k, k + 500).join('\n') });
  }
  return {
    agp: files,
    cedar: ced.join('\n'),
    casbinPolicy: cas,
    actions,
    types,
  };
}

interface Agent { id: string; roles: string[]; trust: number; version: string }
interface Req { agent: Agent; action: string; type: string; id: string; sensitivity: number }

function requests(g: Generated, count: number, seed: number): { agents: Agent[]; reqs: Req[] } {
  const r = rng(seed);
  const agents: Agent[] = [];
  for (let k = 0; k < 64; k++) {
    const roles = new Set<string>();
    const nRoles = 1 + Math.floor(r() * 3);
    while (roles.size < nRoles) roles.add(`role_${Math.floor(r() * ROLES)}`);
    agents.push({ id: `agent_${k}`, roles: [...roles], trust: Math.floor(r() * 4), version: VERSIONS[Math.floor(r() * VERSIONS.length)]! });
  }
  const reqs: Req[] = [];
  for (let i = 0; i < count; i++) {
    const unknown = r() < 0.05;
    reqs.push({
      agent: agents[Math.floor(r() * agents.length)]!,
      action: unknown ? 'act_unknown' : `act_${Math.floor(r() * g.actions)}`,
      type: `type_${Math.floor(r() * g.types)}`,
      id: `r${i}`,
      sensitivity: Math.floor(r() * 4),
    });
  }
  return { agents, reqs };
}

function toAgp(ps: PolicySet, q: Req): NormalizedRequest {
  const v = ps.validate({
    agent: { id: q.agent.id, roles: q.agent.roles, trust: TRUST[q.agent.trust], model: { name: 'm', version: q.agent.version } },
    action: q.action,
    resource: { type: q.type, id: q.id, sensitivity: SENSITIVITY[q.sensitivity] },
    task: { kind: 'bench' },
  });
  if (!v.ok) throw new Error(`benchmark request rejected: ${JSON.stringify(v.issues)}`);
  return v.request;
}

function toCedar(setId: string, q: Req): cedar.StatefulAuthorizationCall {
  return {
    principal: { type: 'Agent', id: q.agent.id },
    action: { type: 'Action', id: q.action },
    resource: { type: q.type, id: q.id },
    context: {},
    preparsedPolicySetId: setId,
    entities: [
      { uid: { type: 'Agent', id: q.agent.id }, attrs: { roles: q.agent.roles, trust: q.agent.trust, version: versionNumber(q.agent.version) }, parents: [] },
      { uid: { type: q.type, id: q.id }, attrs: { sensitivity: q.sensitivity }, parents: [] },
    ],
  };
}

const CASBIN_MODEL = `[request_definition]
r = sub, obj, act, trust, sens, ver
[policy_definition]
p = sub, obj, act, trust, sens, ver, eft
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
[matchers]
m = r.obj == p.obj && r.act == p.act && ((p.eft == "allow" && g(r.sub, p.sub) && r.trust >= p.trust && r.sens <= p.sens) || (p.eft == "deny" && r.ver < p.ver))`;

interface Engine {
  name: string;
  /** Decides request i (mod the request count); returns whether it was allowed. */
  run: (i: number) => boolean;
}

interface Case { engine: string; policies: number; median_ns: number; p99_ns: number }

/** Per-decision ns for a sample: enough decisions to take about SAMPLE_TARGET_NS. */
function calibrate(e: Engine): number {
  const t0 = process.hrtime.bigint();
  let calls = 0;
  while (Number(process.hrtime.bigint() - t0) < SAMPLE_TARGET_NS / 4) e.run(calls++);
  const perCall = Number(process.hrtime.bigint() - t0) / calls;
  return Math.max(1, Math.min(20_000, Math.ceil(SAMPLE_TARGET_NS / perCall)));
}

/** Runs WARMUP decisions (JIT tiers, caches), or as many as fit in WARMUP_MS for slow peers. */
function warm(e: Engine): void {
  const deadline = process.hrtime.bigint() + BigInt(WARMUP_MS * 1e6);
  for (let i = 0; i < WARMUP; i++) {
    e.run(i);
    if ((i & 63) === 0 && process.hrtime.bigint() > deadline) return;
  }
}

function measure(engines: Engine[], policies: number): Case[] {
  // Plain loops only: a deoptimization inside a builtin's callback (forEach, map) while
  // cedar-wasm is on the stack trips a V8 bug in Node 20 ("unreachable code").
  const batch: number[] = [];
  for (const e of engines) {
    warm(e);
    batch.push(calibrate(e));
  }
  const samples: number[][] = [];
  for (let k = 0; k < engines.length; k++) samples.push([]);
  let cursor = 0;
  for (let s = 0; s < SAMPLES; s++) {
    for (let k = 0; k < engines.length; k++) {
      const e = engines[k]!;
      const n = batch[k]!;
      // Untimed re-run of the same batch first: the engine before it may have evicted this
      // one's code and data from the CPU caches, and a PDP deciding thousands of calls an
      // hour runs hot. Same rule for every engine.
      for (let i = 0; i < n; i++) e.run(cursor + i);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) e.run(cursor + i);
      samples[k]!.push(Number(process.hrtime.bigint() - t0) / n);
    }
    cursor += 7919;
  }
  const cases: Case[] = [];
  for (let k = 0; k < engines.length; k++) {
    const sorted = samples[k]!.sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    cases.push({ engine: engines[k]!.name, policies, median_ns: Math.round(at(0.5)), p99_ns: Math.round(at(0.99)) });
  }
  return cases;
}

interface SizeResult {
  cases: Case[];
  compile: { policies: number; ms: number };
  agreement: { engine: string; policies: number; requests: number; mismatches: number }[];
  permits: number;
  requests: number;
}

/** Loads, cross-checks and times one policy-set size: all engines, this one process. */
async function runSize(n: number): Promise<SizeResult> {
  const g = generate(n);
  const t0 = process.hrtime.bigint();
  const loaded = loadPolicySet(g.agp);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!loaded.policySet) throw new Error(`generated policy set did not load: ${JSON.stringify(loaded.diagnostics.slice(0, 3))}`);
  const ps = loaded.policySet;

  const { reqs } = requests(g, 1024, n);
  const agpReqs = reqs.map((q) => toAgp(ps, q));
  const setId = `bench-${n}`;
  const parsed = cedar.preparsePolicySet(setId, { staticPolicies: g.cedar });
  if (parsed.type !== 'success') throw new Error(`cedar rejected the policy set: ${JSON.stringify(parsed.errors.slice(0, 2))}`);
  const cedarCalls = reqs.map((q) => toCedar(setId, q));
  const agentRoles = new Map<string, string[]>();
  for (const q of reqs) agentRoles.set(q.agent.id, q.agent.roles);
  const roleLines = [...agentRoles].flatMap(([id, roles]) => roles.map((r) => `g, ${id}, ${r}`));
  const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL), new StringAdapter([...g.casbinPolicy, ...roleLines].join('\n')));
  const casbinArgs = reqs.map((q) => [q.agent.id, q.type, q.action, q.agent.trust, q.sensitivity, versionNumber(q.agent.version)] as const);
  const floor = new Set(g.casbinPolicy);
  const floorKeys = reqs.map((q) => `p, role_0, ${q.type}, ${q.action}, 0, 1, 0, allow`);

  const mask = reqs.length - 1;
  const engines: Engine[] = [
    { name: 'agp', run: (i) => ps.decide(agpReqs[i & mask]!).allowed },
    { name: 'agp-interpreter', run: (i) => ps.interpret(agpReqs[i & mask]!).allowed },
    {
      name: 'cedar-wasm',
      run: (i) => {
        const a = cedar.statefulIsAuthorized(cedarCalls[i & mask]!);
        return a.type === 'success' && a.response.decision === 'allow';
      },
    },
    { name: 'casbin', run: (i) => enforcer.enforceSync(...casbinArgs[i & mask]!) },
    { name: 'set-has-floor', run: (i) => floor.has(floorKeys[i & mask]!) },
  ];

  // Agreement first: every engine decides every request; any difference is a bug in the
  // translation or an engine, and would make the timing comparison meaningless.
  const truth: boolean[] = [];
  for (let i = 0; i < reqs.length; i++) truth.push(engines[0]!.run(i));
  let permits = 0;
  for (const t of truth) if (t) permits++;
  const agreement: SizeResult['agreement'] = [];
  for (const e of engines.slice(1, 4)) {
    let mismatches = 0;
    for (let i = 0; i < reqs.length; i++) if (e.run(i) !== truth[i]) mismatches++;
    agreement.push({ engine: e.name, policies: n, requests: reqs.length, mismatches });
  }
  const cases = measure(ONLY ? engines.filter((e) => ONLY.includes(e.name)) : engines, n);
  return { cases, compile: { policies: n, ms: Math.round(ms * 10) / 10 }, agreement, permits, requests: reqs.length };
}

/**
 * Each size runs in a fresh child process of this same run: cedar-wasm trips a V8 bug in
 * Node 20 ("unreachable code" in the deoptimizer) once several large policy sets have been
 * preparsed in one process. Within a child, all engines alternate sample by sample.
 */
function runChild(n: number): SizeResult {
  const passThrough = process.argv.slice(2).filter((a) => !a.startsWith('--sizes=') && a !== '--json');
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), `--child=${n}`, ...passThrough], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`the ${n}-policy run failed (exit ${child.status ?? child.signal})`);
  return JSON.parse(child.stdout) as SizeResult;
}

async function main(): Promise<void> {
  const childArg = process.argv.find((a) => a.startsWith('--child='));
  if (childArg) {
    process.stdout.write(JSON.stringify(await runSize(Number(childArg.slice('--child='.length)))));
    return;
  }
  const cases: Case[] = [];
  const compileMs: SizeResult['compile'][] = [];
  const agreement: SizeResult['agreement'] = [];
  const log = (s: string) => { if (!JSON_OUT) process.stdout.write(s); };

  for (const n of SIZES) {
    const r = runChild(n);
    cases.push(...r.cases);
    compileMs.push(r.compile);
    agreement.push(...r.agreement);
    log(`${n} policies: compiled in ${r.compile.ms} ms; ${r.permits}/${r.requests} requests permitted\n`);
    for (const c of r.cases) log(`  ${c.engine.padEnd(16)} median ${String(c.median_ns).padStart(9)} ns   p99 ${String(c.p99_ns).padStart(9)} ns\n`);
  }

  // Ratios use the smallest, the largest and the 100-policy (or smallest) sizes of this run.
  const small = SIZES[0]!;
  const large = SIZES[SIZES.length - 1]!;
  const mid = SIZES.includes(100) ? 100 : small;
  const med = (engine: string, n: number) => cases.find((c) => c.engine === engine && c.policies === n)?.median_ns ?? NaN;
  const ratio = (a: number, b: number, digits = 10) => Math.round((a / Math.max(1, b)) * digits) / digits;
  const ratios = {
    [`cedar_over_agp_at_${mid}`]: ratio(med('cedar-wasm', mid), med('agp', mid)),
    [`interpreter_over_agp_at_${mid}`]: ratio(med('agp-interpreter', mid), med('agp', mid)),
    [`casbin_over_agp_at_${mid}`]: ratio(med('casbin', mid), med('agp', mid)),
    [`agp_${large}_over_${small}`]: ratio(med('agp', large), med('agp', small), 100),
    [`compile_ms_${large}`]: compileMs.find((c) => c.policies === large)!.ms,
  };
  const goals = {
    cedar_100x: ratio(med('cedar-wasm', mid), med('agp', mid)) >= 100,
    interpreter_10x: ratio(med('agp-interpreter', mid), med('agp', mid)) >= 10,
    flat_2x: ratio(med('agp', large), med('agp', small), 100) <= 2,
    compile_under_2s: compileMs.find((c) => c.policies === large)!.ms < 2000,
  };
  const totalMismatches = agreement.reduce((s, a) => s + a.mismatches, 0);
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify({ quick: QUICK, node: process.version, cases, compile_ms: compileMs, agreement, ratios, goals }, null, 2)}\n`);
  } else {
    log('\nagreement (requests compared, mismatches):\n');
    for (const a of agreement) log(`  ${a.engine.padEnd(16)} ${String(a.policies).padStart(6)} policies  ${a.requests} requests  ${a.mismatches} mismatches\n`);
    log('\nratios (same run):\n');
    for (const [k, v] of Object.entries(ratios)) log(`  ${k.padEnd(30)} ${v}\n`);
    log(`\ngoals: ${Object.entries(goals).map(([k, v]) => `${k} ${v ? 'met' : 'MISSED'}`).join(', ')}\n`);
  }
  if (totalMismatches > 0) {
    process.stderr.write(`engines disagree on ${totalMismatches} decisions\n`);
    process.exitCode = 1;
  }
}

await main();
