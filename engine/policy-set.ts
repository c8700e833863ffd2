// A compiled policy set: the immutable value the server, CLI and embedders hold. Built once
// from checked IR (compile + validators), then asked for many decisions; a reload builds a
// new one and swaps the reference.

import { compilePolicySet } from './compiler.js';
import type { Decision, NormalizedRequest, PolicySet } from './decision.js';
import { interpret } from './interpreter.js';
import type { IrPolicySet } from './ir.js';
import { createValidator } from './validate.js';

export function createPolicySet(ir: IrPolicySet): PolicySet {
  const compiled = compilePolicySet(ir);
  const validator = createValidator(ir.schema);
  const set: PolicySet = {
    revision: ir.revision,
    ir,
    validate: (input, env) => validator.validate(input, env),
    validateAgentAttributes: (attributes) => validator.validateAgentAttributes(attributes),
    decide: compiled.decide,
    explain: (request: NormalizedRequest): Decision => interpret(ir, request, true),
    interpret: (request: NormalizedRequest): Decision => interpret(ir, request, false),
  };
  return Object.freeze(set);
}
