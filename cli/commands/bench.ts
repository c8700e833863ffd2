// `agp bench`: times one request through the compiled policy set (and the reference
// interpreter, for scale) so authors see what their policies cost.

import type { Command } from '../command.js';
import { hasErrors, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';
import { progress, UsageError } from '../output.js';
import { parseNow, prepareRequest, readRequestInput } from '../request-input.js';

interface Timing { median_ns: number; p99_ns: number; samples: number }

/** Times `fn` in batches; per-decision ns from each batch; median and p99 over batches. */
export function timeIt(fn: () => unknown, samples: number, batch: number, onSample?: (done: number) => void): Timing {
  for (let i = 0; i < batch * 20; i++) fn();
  const perCall: number[] = [];
  for (let s = 0; s < samples; s++) {
    onSample?.(s);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    perCall.push(Number(process.hrtime.bigint() - t0) / batch);
  }
  perCall.sort((a, b) => a - b);
  const at = (q: number) => perCall[Math.min(perCall.length - 1, Math.floor(q * perCall.length))]!;
  return { median_ns: Math.round(at(0.5)), p99_ns: Math.round(at(0.99)), samples };
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'time a request through the compiled policy set',
  help: `Usage: agp bench --policies <dir> (--input request.json | --request '<json>') [options]

Times one request through the compiled decision function (and, for scale, schema
validation and the reference interpreter): median and p99 nanoseconds per decision.

Options:
  --policies DIR       policy directory or file (repeatable; default: policies)
  --input FILE         read the request from FILE
  --request JSON       the request inline
  --samples N          timed samples (default 200)
  --batch N            decisions per sample (default 1000); each sample's time divided
                       by the batch is one per-decision figure
  --now TIME           evaluate at this RFC 3339 time (default: now)
  --format text|json   output format (default text; json prints nanosecond figures)
  -h, --help           show this help

Exit codes: 0 measured, 1 the policies have errors or the request is invalid, 2 usage or
I/O error.

Examples:
  agp bench --policies policies --input request.json
  agp bench --input request.json --samples 50 --batch 100 --format json
`,
  async run(argv, streams) {
    const { values } = parse(argv, {
      policies: { type: 'string', multiple: true },
      input: { type: 'string' },
      request: { type: 'string' },
      samples: { type: 'string' },
      batch: { type: 'string' },
      now: { type: 'string' },
      format: { type: 'string' },
    }, false);
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    const count = (flag: string, v: string | undefined, d: number) => {
      if (v === undefined) return d;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer (got \`${v}\`)`);
      return n;
    };
    const samples = count('samples', values.samples, 200);
    const batch = count('batch', values.batch, 1000);
    const body = await readRequestInput(values.input, values.request);
    const loaded = await loadPaths(values.policies ?? ['policies'], streams);
    if (hasErrors(loaded.diagnostics) || !loaded.policySet) {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      return 1;
    }
    const ps = loaded.policySet;
    const now = parseNow(values.now);
    const prepared = prepareRequest(ps, body, now);
    if (!prepared.ok) {
      streams.err(`invalid request:\n  ${prepared.message.split('\n').join('\n  ')}\n`);
      return 1;
    }
    const req = prepared.request;
    const decision = ps.decide(req);
    const bar = progress(streams);
    const small = { samples: Math.max(20, Math.floor(samples / 4)), batch: Math.max(10, Math.floor(batch / 10)) };
    const compiled = timeIt(() => ps.decide(req), samples, batch, (n) => bar.update(`timing the compiled set: ${n}/${samples} samples`));
    const interpreted = timeIt(() => ps.interpret(req), small.samples, small.batch, (n) => bar.update(`timing the interpreter: ${n}/${small.samples} samples`));
    const validation = timeIt(() => prepareRequest(ps, body, now), small.samples, small.batch, (n) => bar.update(`timing validation: ${n}/${small.samples} samples`));
    bar.done();
    const result = { effect: decision.effect, policies: ps.ir.policies.length, compiled, interpreter: interpreted, validation, speedup: Math.round((interpreted.median_ns / Math.max(1, compiled.median_ns)) * 10) / 10 };
    if (format === 'json') {
      streams.out(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    }
    const ns = (n: number) => `${n.toLocaleString('en-US')} ns`.padStart(12);
    streams.out(`decision: ${decision.effect} (${ps.ir.policies.length} policies; ${samples} samples of ${batch} decisions)\n`);
    streams.out(`compiled     median ${ns(compiled.median_ns)}   p99 ${ns(compiled.p99_ns)}   per decision\n`);
    streams.out(`interpreter  median ${ns(interpreted.median_ns)}   p99 ${ns(interpreted.p99_ns)}   (${result.speedup}x the compiled time)\n`);
    streams.out(`validation   median ${ns(validation.median_ns)}   p99 ${ns(validation.p99_ns)}   (per request: agent merge + schema check)\n`);
    return 0;
  },
};
