// The embedding API of the engine: load (parse, check, compile) a policy set once, then
// validate and decide many times. See docs/embedding.md.

export { loadPolicySet, policySetRevision } from './load.js';
export type { LoadResult, PolicySource } from './load.js';
export { createPolicySet } from './policy-set.js';
export { compilePolicySet } from './compiler.js';
export type { CompiledPolicySet, DecideFn } from './compiler.js';
export { interpret } from './interpreter.js';
export { createValidator, parseDuration, formatPath } from './validate.js';
export type { RequestValidator } from './validate.js';
export type {
  Decision,
  Effect,
  Grant,
  NormalizedRequest,
  ObligationValue,
  Obligations,
  PolicySet,
  PolicyTrace,
  ValidationIssue,
  ValidationResult,
} from './decision.js';
export type { IrPolicySet, Schema, Type, Value } from './ir.js';
export type { Diagnostic } from './diagnostics.js';
