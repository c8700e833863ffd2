// `agp bench`: times one request through the compiled policy set (and the reference
// interpreter, for scale) so authors see what their policies cost.

import type { Command } from '../command.js';
import { hasErrors, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';
import { UsageError } from '../output.js';
import { parseNow, prepareRequest, readRequestInput } from '../request-input.js';

interface Timing { median_ns: number; p99_ns: number; samples: number }

/** Times `fn` in batches; per-decision ns from each batch; median and p99 over batches. */
export function timeIt(fn: () => unknown, samples: number, batch: number): Timing {
  for (let i = 0; i < batch * 20; i++) fn();
  const perCall: number[] = [];
  for (let s = 0; s < samples; s++) {
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
  --batch N            decisions per sample (default 1000)
  --format text|json   output format (default text)
  -h, --help

Example:
  agp bench --policies policies --input request.json
`,
  async run(argv, streams) {
    const { values } = parse(argv, {
      policies: { type: 'string', multiple: true },
      input: { type: 'string' },
      request: { type: 'string' },
      samples: { type: 'string' },
      batch: { type: 'string' },
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
    const loaded = await loadPaths(values.policies ?? ['policies']);
    if (hasErrors(loaded.diagnostics) || !loaded.policySet) {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      return 1;
    }
    const ps = loaded.policySet;
    const now = parseNow(undefined);
    const prepared = prepareRequest(ps, body, now);
    if (!prepared.ok) {
      streams.err(`invalid request:\n  ${prepared.message.split('\n').join('\n  ')}\n`);
      return 1;
    }
    const req = prepared.request;
    const decision = ps.decide(req);
    const compiled = timeIt(() => ps.decide(req), samples, batch);
    const interpreted = timeIt(() => ps.interpret(req), Math.max(20, Math.floor(samples / 4)), Math.max(10, Math.floor(batch / 10)));
    const validation = timeIt(() => prepareRequest(ps, body, now), Math.max(20, Math.floor(samples / 4)), Math.max(10, Math.floor(batch / 10)));
    const result = { effect: decision.effect, policies: ps.ir.policies.length, compiled, interpreter: interpreted, validation, speedup: Math.round((interpreted.median_ns / Math.max(1, compiled.median_ns)) * 10) / 10 };
    if (format === 'json') {
      streams.out(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    }
    streams.out(`decision: ${decision.effect} (${ps.ir.policies.length} policies)\n`);
    streams.out(`compiled     median ${compiled.median_ns} ns   p99 ${compiled.p99_ns} ns\n`);
    streams.out(`interpreter  median ${interpreted.median_ns} ns   p99 ${interpreted.p99_ns} ns   (${result.speedup}x slower)\n`);
    streams.out(`validation   median ${validation.median_ns} ns   p99 ${validation.p99_ns} ns   (per request, merge + schema check)\n`);
    return 0;
  },
};
