// The engine's public values: normalized requests, decisions, explanations, and the
// PolicySet contract that the compiled and interpreted evaluators both fulfil.

import type { Effect } from '../grammar/ast.js';
import type { IrPolicySet, Value } from './ir.js';

export type { Effect };

/** An active elevation grant, as the context store supplies it. */
export interface Grant {
  /** Action names covered; `*` covers every action. */
  actions: readonly string[];
  /** Glob over `resource.type + ":" + resource.id`, e.g. `account:991` or `account:*`. */
  resource: string;
  /** Epoch milliseconds; the grant is active while `now < expiresAt`. */
  expiresAt: number;
}

/**
 * A request that passed schema validation: every required attribute present with the
 * declared type, values normalized (see ir.ts `Value`), unknown attributes dropped.
 */
export interface NormalizedRequest {
  readonly agent: { readonly [k: string]: Value };
  readonly action: string;
  readonly resource: { readonly [k: string]: Value };
  readonly task: { readonly [k: string]: Value };
  readonly grants: readonly Grant[];
  /** Epoch milliseconds, injected by the caller (the engine never reads a clock). */
  readonly now: number;
}

export interface ValidationIssue {
  /** Dotted attribute path, e.g. `resource.sensitivity` or `agent.roles[2]`. */
  path: string;
  message: string;
}

export type ValidationResult =
  | { ok: true; request: NormalizedRequest }
  | { ok: false; issues: ValidationIssue[] };

export type ObligationValue = string | number | boolean | string[];

/** Merged obligations. Duration obligations appear as `<key>_s` in seconds (`ttl_s`). */
export type Obligations = Record<string, ObligationValue>;

export interface PolicyTrace {
  policy: string;
  file: string;
  line: number;
  /** Whether the target matched; when false nothing else was evaluated. */
  target: boolean;
  /** The first target test that failed, as source text. */
  targetFailed?: string;
  /** Whether `when` held (null: not evaluated; true when there is no `when`). */
  when: boolean | null;
  /** The first top-level conjunct of `when` that was false, as source text. */
  whenFailed?: string;
  branches: { effect: Effect; condition: boolean | null; line: number }[];
  /** The policy's effect, or null when it did not apply. */
  effect: Effect | null;
}

export interface Decision {
  effect: Effect;
  allowed: boolean;
  /** Sum of the factors, rounded to 6 decimals. */
  risk: number;
  /** Each factor's contribution, rounded to 6 decimals, in declaration order. */
  factors: Record<string, number>;
  /** Determining policies: the applicable ones whose effect is the decision's, by name. */
  policies: string[];
  reasons: string[];
  obligations: Obligations;
  revision: string;
  explanation?: PolicyTrace[];
}

/** A compiled policy set: immutable; build a new one to change it. */
export interface PolicySet {
  readonly revision: string;
  readonly ir: IrPolicySet;
  /** Validates and normalizes a raw request ({agent, action, resource, task}). */
  validate(input: unknown, env?: { now?: number; grants?: readonly Grant[] }): ValidationResult;
  /**
   * Checks agent attributes as the registry stores them: every attribute present must have
   * its declared type; none is required (the request or AGP supplies the rest).
   */
  validateAgentAttributes(attributes: unknown): ValidationIssue[];
  /** The fast path: the compiled decision function. */
  decide(request: NormalizedRequest): Decision;
  /** The reference interpreter, with a trace of every policy. */
  explain(request: NormalizedRequest): Decision;
  /** The reference interpreter without the trace (used by tests and benchmarks). */
  interpret(request: NormalizedRequest): Decision;
}
