// `agp eval`: decides one request against a policy set and, with --explain, shows why.

import type { Command } from '../command.js';
import { hasErrors, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';
import { renderDecision } from '../render.js';
import { renderWhy } from '../explain.js';
import { parseNow, prepareRequest, readRequestInput } from '../request-input.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'decide one request and explain the decision',
  help: `Usage: agp eval --policies <dir> (--input request.json | --request '<json>') [options]

Decides one request against the policy set, as POST /v1/decide would. The request is
{agent, action, resource, task}; it may also carry the context the server would add:
"registered" (agent attributes held by the registry, which win), "behavior", and
"grants": [{"actions": [...], "resource": "account:991", "expires_in_s": 600}].

Options:
  --policies DIR       policy directory or file (repeatable; default: policies)
  --input FILE         read the request from FILE
  --request JSON       the request inline
  --explain            show why: the policies that decided, each risk factor's value,
                       each candidate policy's \`when\` and outcomes (which threshold fired,
                       with the values it read) and, for every other policy, the target
                       test that did not match
  --now TIME           evaluate at this RFC 3339 time (default: now)
  --format text|json   output format (default text; json prints the decision as
                       POST /v1/decide returns it, with \`explanation\` under --explain)
  -h, --help           show this help

Exit codes: 0 decided (whatever the effect), 1 the policies have errors or the request is
invalid for the schema, 2 usage or I/O error.

Examples:
  agp eval --policies policies --input request.json --explain
  agp eval --explain --now 2026-03-02T09:15:00Z --request '{"agent": {"id": "fraudbot-1",
    "confidence": 0.93}, "registered": {"owner": "risk-team", "roles": ["fraud-detector"],
    "model": {"name": "fraudnet", "version": "2.4.1"}, "trust": "verified"},
    "behavior": {"rate_z": 0.4, "deny_ratio": 0, "new_resource": false},
    "action": "freeze_account", "resource": {"type": "account", "id": "991",
    "sensitivity": "confidential"}, "task": {"kind": "investigation", "flagged": true}}'
`,
  async run(argv, streams) {
    const { values } = parse(argv, {
      policies: { type: 'string', multiple: true },
      input: { type: 'string' },
      request: { type: 'string' },
      explain: { type: 'boolean' },
      now: { type: 'string' },
      format: { type: 'string' },
    }, false);
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    const body = await readRequestInput(values.input, values.request);
    const now = parseNow(values.now);
    const loaded = await loadPaths(values.policies ?? ['policies'], streams);
    if (hasErrors(loaded.diagnostics) || !loaded.policySet) {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      if (format === 'json') streams.out(`${JSON.stringify({ error: { code: 'policy_errors', message: 'the policy set has errors', diagnostics: loaded.diagnostics } }, null, 2)}\n`);
      return 1;
    }
    const prepared = prepareRequest(loaded.policySet, body, now);
    if (!prepared.ok) {
      if (format === 'json') streams.out(`${JSON.stringify({ error: { code: 'invalid_request', message: prepared.message, issues: prepared.issues } }, null, 2)}\n`);
      else streams.err(`invalid request:\n${prepared.message.split('\n').map((l) => `  ${l}`).join('\n')}\n`);
      return 1;
    }
    const explain = Boolean(values.explain) || body['explain'] === true;
    const decision = explain ? loaded.policySet.explain(prepared.request) : loaded.policySet.decide(prepared.request);
    if (format === 'json') {
      streams.out(`${JSON.stringify(decision, null, 2)}\n`);
      return 0;
    }
    streams.out(renderDecision(decision, streams.outColor));
    if (explain) streams.out(renderWhy(loaded.policySet.ir, prepared.request, decision, streams.outColor));
    return 0;
  },
};

