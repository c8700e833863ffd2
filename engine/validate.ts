// Request validation derived from the policy set's schema: one zod 4 schema per policy set,
// built once, that checks and normalizes a raw request ({agent, action, resource, task})
// into a NormalizedRequest. Output objects are built fresh by zod and hold only schema
// keys, so `__proto__`, `constructor` and `prototype` in the input never reach evaluation.
//
// Normalization: versions "2.4.1" → encoded numbers, levels by member name → index,
// durations "5m"/"30s"/"250ms"/"2h"/"1d" or a number of seconds → seconds, sets
// deduplicated. Optional attributes may be absent (`null` is not absence: it is a type
// error, so a PEP bug never silently turns into a missing attribute). Unknown attributes
// are dropped from requests; for the agent registry (`validateAgentAttributes`) they are
// issues instead, so the registry never stores junk.

import * as z from 'zod';
import type { Grant, NormalizedRequest, ValidationIssue, ValidationResult } from './decision.js';
import { closest } from './diagnostics.js';
import type { FieldType, Schema, Type, Value } from './ir.js';
import { parseVersion } from './ir.js';

/** Keys that never reach evaluation, even if a schema declared them. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_SECONDS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds for a duration given as `"5m"`-style text or a number of seconds; undefined if invalid. */
export function parseDuration(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== 'string') return undefined;
  const m = DURATION.exec(raw);
  if (!m) return undefined;
  const seconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return Number.isFinite(seconds) ? seconds : undefined;
}

const MISSING = 'required attribute is missing';

function typeError(expected: string) {
  return (iss: { input?: unknown }): string => (iss.input === undefined ? MISSING : `expected ${expected}`);
}

function describe(t: Type): string {
  switch (t.t) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a finite number';
    case 'bool':
      return 'true or false';
    case 'version':
      return 'a version `MAJOR.MINOR.PATCH`, e.g. `2.4.1`';
    case 'duration':
      return 'a duration such as `5m`, `30s`, `250ms`, `2h`, `1d` or a number of seconds';
    case 'level':
      return `one of ${t.members.join('|')}`;
    case 'set':
    case 'list':
      return 'an array';
    case 'record':
      return 'an object';
  }
}

function dedupe(xs: Value[]): Value[] {
  // Small sets (the usual case) without duplicates are returned as they are, unallocated.
  if (xs.length < 16) {
    let dup = false;
    for (let i = 1; i < xs.length && !dup; i++) for (let j = 0; j < i; j++) if (xs[i] === xs[j]) dup = true;
    if (!dup) return xs;
  }
  return Array.from(new Set(xs));
}

type Mode = 'request' | 'registry';

function ownPropertiesOnly(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const copy: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(input)) copy[k] = (input as Record<string, unknown>)[k];
  return copy;
}

function fieldsOf(fields: readonly FieldType[]): FieldType[] {
  return fields.filter((f) => !FORBIDDEN_KEYS.has(f.name));
}

/**
 * The zod schema of one type. In `registry` mode every attribute is optional and records
 * are strict (unknown keys are issues).
 */
function zodType(t: Type, mode: Mode): z.ZodType<Value> {
  switch (t.t) {
    case 'string':
      return z.string({ error: typeError(describe(t)) });
    case 'number':
      return z.number({ error: typeError(describe(t)) });
    case 'bool':
      return z.boolean({ error: typeError(describe(t)) });
    case 'version':
      // Checks only: zod keeps its fast path; `normalizer` converts after a successful parse.
      return z.string({ error: typeError(describe(t)) }).refine((s) => parseVersion(s) !== undefined, { message: `expected ${describe(t)}` });
    case 'duration':
      return z
        .union([z.number(), z.string()], { error: typeError(describe(t)) })
        .refine((raw) => parseDuration(raw) !== undefined, { message: `expected ${describe(t)}` });
    case 'level':
      return z.enum(t.members as [string, ...string[]], { error: typeError(describe(t)) });
    case 'set':
    case 'list':
      return z.array(zodType(t.elem, mode), { error: typeError(describe(t)) });
    case 'record': {
      const shape: Record<string, z.ZodType<Value | undefined>> = {};
      for (const f of fieldsOf(t.fields)) {
        const ft = zodType(f.type, mode);
        shape[f.name] = f.optional || mode === 'registry' ? ft.optional() : ft;
      }
      const opts = { error: typeError(describe(t)) };
      const obj = mode === 'registry' ? z.strictObject(shape, opts) : z.object(shape, opts);
      // zod reads `input[key]`, which finds inherited members (`toString`, ...): for records
      // declaring such a name, hand zod a copy holding only the input's own properties.
      if (!t.fields.some((f) => f.name in Object.prototype)) return obj as unknown as z.ZodType<Value>;
      return z.preprocess(ownPropertiesOnly, obj) as unknown as z.ZodType<Value>;
    }
  }
}

type Normalize = (v: Value) => Value;

/**
 * The in-place normalization of a request zod has accepted (so every check already holds):
 * versions → numbers, levels → indexes, durations → seconds, sets deduplicated. Generated
 * once per schema as straight-line code (attribute names as JSON string literals, never
 * as code) because a generic walk with computed keys costs more than zod's whole parse.
 * Subtrees that need nothing are never walked; records and arrays are zod's fresh output,
 * owned by the caller, so they are updated in place. Null when nothing needs normalizing.
 */
function normalizer(root: Type): Normalize | null {
  const helpers: unknown[] = [];
  let vars = 0;
  const helper = (f: unknown): string => `H[${helpers.push(f) - 1}]`;
  // `at` is an assignable JS expression holding a present value of type `t`.
  const gen = (t: Type, at: string): string => {
    switch (t.t) {
      case 'string':
      case 'number':
      case 'bool':
        return '';
      case 'version':
        return `${at} = ${helper(parseVersion)}(${at});`;
      case 'duration':
        return `${at} = ${helper(parseDuration)}(${at});`;
      case 'level':
        return `${at} = ${helper(new Map(t.members.map((m, i) => [m, i])))}.get(${at});`;
      case 'set':
      case 'list': {
        const a = `a${vars++}`;
        const i = `i${vars++}`;
        const elem = gen(t.elem, `${a}[${i}]`);
        if (!elem && t.t === 'list') return '';
        const loop = elem ? `for (let ${i} = 0; ${i} < ${a}.length; ${i}++) { ${elem} }` : '';
        return `{ const ${a} = ${at}; ${loop} ${t.t === 'set' ? `${at} = ${helper(dedupe)}(${a});` : ''} }`;
      }
      case 'record': {
        const o = `o${vars++}`;
        const body = fieldsOf(t.fields)
          .map((f) => {
            const field = `${o}[${JSON.stringify(f.name)}]`;
            const code = gen(f.type, field);
            // zod's output holds only schema keys, as own properties: an absent `valueOf`
            // must not be read from Object.prototype (and then normalized into the request).
            const present = f.name in Object.prototype ? `Object.prototype.hasOwnProperty.call(${o}, ${JSON.stringify(f.name)}) && ${field} !== undefined` : `${field} !== undefined`;
            return code && `if (${present}) { ${code} }`;
          })
          .filter((c) => c !== '')
          .join(' ');
        return body && `{ const ${o} = ${at}; ${body} }`;
      }
    }
  };
  const body = gen(root, 'v');
  if (!body) return null;
  const make = new Function('H', `"use strict"; return function normalize(v) { ${body} return v; };`) as (h: unknown[]) => Normalize;
  return make(helpers);
}

/** Returned by a fast check that cannot accept its input: zod then decides and explains. */
const REJECT: unique symbol = Symbol('reject');

type FastCheck = (input: unknown) => Value | typeof REJECT;

const VERSION_CACHE_MAX = 4096;

/** `parseVersion` with the (few) version strings a deployment sees remembered. */
function versionCache(): (raw: string) => number | undefined {
  const seen = new Map<string, number | undefined>();
  return (raw) => {
    let v = seen.get(raw);
    if (v === undefined && !seen.has(raw)) {
      v = parseVersion(raw);
      if (seen.size >= VERSION_CACHE_MAX) seen.clear();
      seen.set(raw, v);
    }
    return v;
  };
}

/**
 * The success path of `requestSchema.safeParse` + `normalize` as one generated function:
 * the same checks as the zod schema (types, finite numbers, versions, durations, level
 * members, required attributes), the same output (fresh records in schema key order holding
 * only schema keys, an optional key given as undefined kept, fresh arrays, normalized
 * values). It only ever accepts what zod accepts; on anything else it returns REJECT and
 * the caller runs zod, which writes the issues. zod's generic machinery costs several times
 * the whole decision; this is straight-line code.
 */
function fastCheck(root: Type): FastCheck {
  const helpers: unknown[] = [];
  let vars = 0;
  const helper = (f: unknown): string => `H[${helpers.push(f) - 1}]`;
  const fresh = (p: string): string => `${p}${vars++}`;
  // Code that checks the present (not undefined) value in variable `v` of type `t` and
  // assigns its normalized form to the assignable expression `out`.
  const gen = (t: Type, v: string, out: string): string => {
    switch (t.t) {
      case 'string':
        return `if (typeof ${v} !== 'string') return R; ${out} = ${v};`;
      case 'number':
        return `if (typeof ${v} !== 'number' || !Number.isFinite(${v})) return R; ${out} = ${v};`;
      case 'bool':
        return `if (typeof ${v} !== 'boolean') return R; ${out} = ${v};`;
      case 'version': {
        const n = fresh('n');
        return `if (typeof ${v} !== 'string') return R; const ${n} = ${helper(versionCache())}(${v}); if (${n} === undefined) return R; ${out} = ${n};`;
      }
      case 'duration': {
        const n = fresh('n');
        return `if (typeof ${v} === 'number' ? !Number.isFinite(${v}) : typeof ${v} !== 'string') return R; const ${n} = ${helper(parseDuration)}(${v}); if (${n} === undefined) return R; ${out} = ${n};`;
      }
      case 'level': {
        const n = fresh('n');
        return `if (typeof ${v} !== 'string') return R; const ${n} = ${helper(new Map(t.members.map((m, i) => [m, i])))}.get(${v}); if (${n} === undefined) return R; ${out} = ${n};`;
      }
      case 'set':
      case 'list': {
        const a = fresh('a');
        const i = fresh('i');
        const e = fresh('e');
        const loop = `for (let ${i} = 0; ${i} < ${v}.length; ${i}++) { const ${e} = ${v}[${i}]; if (${e} === undefined) return R; ${gen(t.elem, e, `${a}[${i}]`)} }`;
        return `if (!Array.isArray(${v})) return R; const ${a} = new Array(${v}.length); ${loop} ${out} = ${t.t === 'set' ? `${helper(dedupe)}(${a})` : a};`;
      }
      case 'record': {
        const o = fresh('o');
        let src = v;
        let code = `if (typeof ${v} !== 'object' || ${v} === null || Array.isArray(${v})) return R;`;
        if (t.fields.some((f) => f.name in Object.prototype)) {
          // As zod is given it (see zodType): a copy holding only the input's own properties.
          src = fresh('s');
          code += ` const ${src} = ${helper(ownPropertiesOnly)}(${v});`;
        }
        code += ` const ${o} = {};`;
        for (const f of fieldsOf(t.fields)) {
          const key = JSON.stringify(f.name);
          const x = fresh('x');
          const absent = f.optional ? `if (${key} in ${src}) ${o}[${key}] = undefined;` : 'return R;';
          code += ` { const ${x} = ${src}[${key}]; if (${x} === undefined) { ${absent} } else { ${gen(f.type, x, `${o}[${key}]`)} } }`;
        }
        return `${code} ${out} = ${o};`;
      }
    }
  };
  const body = gen(root, 'input', 'out');
  const make = new Function('H', 'R', `"use strict"; return function check(input) { let out; ${body} return out; };`) as (h: unknown[], r: typeof REJECT) => FastCheck;
  return make(helpers, REJECT);
}

/**
 * The generated success path alone (tests): the normalized request record, or undefined
 * where validation falls back to zod.
 */
export function fastRequestCheck(schema: Schema): (input: unknown) => Value | undefined {
  const check = fastCheck(schema.request);
  return (input) => {
    const r = check(input);
    return r === REJECT ? undefined : r;
  };
}

/** `agent.roles[2]`-style path text. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function knownFieldsAt(root: Type, path: readonly PropertyKey[]): string[] {
  let t: Type | undefined = root;
  for (const seg of path) {
    if (!t) return [];
    if (typeof seg === 'number') t = t.t === 'set' || t.t === 'list' ? t.elem : undefined;
    else t = t.t === 'record' ? t.fields.find((f) => f.name === seg)?.type : undefined;
  }
  return t && t.t === 'record' ? fieldsOf(t.fields).map((f) => f.name) : [];
}

function toIssues(error: z.ZodError, root: Type): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const iss of error.issues) {
    if (iss.code === 'unrecognized_keys') {
      const known = knownFieldsAt(root, iss.path);
      for (const key of iss.keys) {
        const near = closest(key, known);
        issues.push({
          path: formatPath([...iss.path, key]),
          message: `unknown attribute \`${key}\`${near ? ` (did you mean \`${near}\`?)` : ''}`,
        });
      }
    } else {
      issues.push({ path: formatPath(iss.path), message: iss.message });
    }
  }
  return issues;
}

export interface RequestValidator {
  validate(input: unknown, env?: { now?: number; grants?: readonly Grant[] }): ValidationResult;
  validateAgentAttributes(attributes: unknown): ValidationIssue[];
}

const ROOTS = ['agent', 'resource', 'task'] as const;

/**
 * Builds the validators of one schema (call once per policy set). `fast: false` leaves out
 * the generated success path and runs zod on every request (the reference, for tests).
 */
export function createValidator(schema: Schema, options: { fast?: boolean } = {}): RequestValidator {
  const requestSchema = zodType(schema.request, 'request') as unknown as z.ZodType<Record<string, Value>>;
  const normalize = normalizer(schema.request);
  const check: FastCheck = options.fast === false ? () => REJECT : fastCheck(schema.request);
  const noGrants: readonly Grant[] = Object.freeze([]);

  return {
    validate(input, env) {
      let d = check(input) as Record<string, Value> | typeof REJECT;
      if (d === REJECT) {
        const r = requestSchema.safeParse(input);
        if (!r.success) return { ok: false, issues: toIssues(r.error, schema.request) };
        d = (normalize ? normalize(r.data) : r.data) as Record<string, Value>;
      }
      for (const root of ROOTS) if (d[root] === undefined) d[root] = {};
      const request: NormalizedRequest = {
        agent: d['agent'] as NormalizedRequest['agent'],
        action: (d['action'] ?? '') as string,
        resource: d['resource'] as NormalizedRequest['resource'],
        task: d['task'] as NormalizedRequest['task'],
        grants: env?.grants ?? noGrants,
        now: env?.now ?? 0,
      };
      return { ok: true, request };
    },
    validateAgentAttributes: (attributes) => validateRootAttributes(schema, 'agent', attributes),
  };
}

const rootValidators = new WeakMap<Schema, Map<string, { type: Type; zod: z.ZodType<Value> }>>();

/**
 * Checks attributes stored for one root of the request (the server's resource registry
 * uses `resource`) the way `validateAgentAttributes` checks the agent registry: every
 * attribute present must have its declared type, none is required, unknown attributes are
 * issues. Paths are relative to the root (`sensitivity`, `tags[0]`). Additive to the
 * `PolicySet` contract: callers pass `set.ir.schema`; validators are cached per schema.
 */
export function validateRootAttributes(schema: Schema, root: 'agent' | 'resource' | 'task', attributes: unknown): ValidationIssue[] {
  let perSchema = rootValidators.get(schema);
  if (perSchema === undefined) {
    perSchema = new Map();
    rootValidators.set(schema, perSchema);
  }
  let v = perSchema.get(root);
  if (v === undefined) {
    const type: Type = schema.request.fields.find((f) => f.name === root)?.type ?? { t: 'record', fields: [] };
    v = { type, zod: zodType(type, 'registry') };
    perSchema.set(root, v);
  }
  const r = v.zod.safeParse(attributes);
  return r.success ? [] : toIssues(r.error, v.type);
}
