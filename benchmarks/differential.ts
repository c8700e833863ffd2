// On-demand differential run: N random (policy set, request) cases, compiled decide() vs the
// reference interpreter. `node dist/benchmarks/differential.js --cases 1000000 [--seed S]`.
// Prints the count and, on the first disagreement, the seed, IR and request to reproduce it.

import { isDeepStrictEqual } from 'node:util';
import { compilePolicySet } from '../engine/compiler.js';
import { interpret } from '../engine/interpreter.js';
import { Rng, genPolicySet, genRequest } from '../test/engine/arbitrary-ir.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : undefined;
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`invalid --${name} \`${String(raw)}\``);
    process.exit(2);
  }
  return n;
}

const cases = arg('cases', 100_000);
const firstSeed = arg('seed', Date.now() % 1_000_000_000);
const perSet = arg('per-set', 50);

const started = process.hrtime.bigint();
let done = 0;
let seed = firstSeed;
const effects = { permit: 0, deny: 0, escalate: 0 };
while (done < cases) {
  const ps = genPolicySet(seed);
  const { decide } = compilePolicySet(ps);
  const rng = new Rng(seed ^ 0x5bd1e995);
  for (let i = 0; i < perSet && done < cases; i++) {
    const req = genRequest(rng);
    const want = interpret(ps, req, false);
    const got = decide(req);
    done++;
    effects[want.effect]++;
    if (!isDeepStrictEqual(got, want)) {
      console.error(`counterexample after ${done} cases: seed ${seed}, request #${i}`);
      console.error(JSON.stringify({ policySet: ps, request: req, compiled: got, interpreted: want }, null, 2));
      process.exit(1);
    }
  }
  seed = (seed + 1) % 0x7fffffff;
  if (process.stderr.isTTY && done % 100_000 < perSet) process.stderr.write(`\r${done} cases`);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (process.stderr.isTTY) process.stderr.write('\n');
console.log(
  `${done} cases agree (seeds ${firstSeed}..${seed - 1}, ${perSet} requests per set; ` +
    `permit ${effects.permit}, deny ${effects.deny}, escalate ${effects.escalate}) in ${seconds.toFixed(1)} s`,
);
