// Helpers to build checked IR by hand in engine tests (no parser involved), and the fixed
// rich schema that the unit tests and the random IR generator share.

import type { Effect, Span } from '../../grammar/ast.js';
import type { Grant, NormalizedRequest } from '../../engine/decision.js';
import type {
  ArithOp,
  BuiltinFn,
  CmpOp,
  FieldType,
  IrBranch,
  IrExpr,
  IrFactor,
  IrLet,
  IrObligation,
  IrPolicy,
  IrPolicySet,
  IrTargetTest,
  ObligationKind,
  Schema,
  Type,
  Value,
} from '../../engine/ir.js';
import { encodeVersion } from '../../engine/ir.js';

export const span: Span = { file: 'test.agp', line: 1, col: 1, endLine: 1, endCol: 1, offset: 0, endOffset: 0 };
export const spanAt = (line: number): Span => ({ ...span, line, endLine: line });

export const T = {
  string: { t: 'string' } as Type,
  number: { t: 'number' } as Type,
  bool: { t: 'bool' } as Type,
  version: { t: 'version' } as Type,
  duration: { t: 'duration' } as Type,
  level: (name: string, members: string[]): Type => ({ t: 'level', name, members }),
  set: (elem: Type): Type => ({ t: 'set', elem }),
  list: (elem: Type): Type => ({ t: 'list', elem }),
  record: (fields: FieldType[]): Type => ({ t: 'record', fields }),
};

export const field = (name: string, type: Type, optional = false): FieldType => ({ name, type, optional });

export const TRUST = T.level('agent.trust', ['untrusted', 'basic', 'verified', 'privileged']);
export const SENSITIVITY = T.level('resource.sensitivity', ['public', 'internal', 'confidential', 'restricted']);

/** The schema of docs/language.md's example, plus optional and collection attributes. */
export const RICH_SCHEMA: Schema = {
  request: {
    t: 'record',
    fields: [
      field(
        'agent',
        T.record([
          field('id', T.string),
          field('roles', T.set(T.string)),
          field('model', T.record([field('name', T.string), field('version', T.version)])),
          field('confidence', T.number),
          field('trust', TRUST),
          field('behavior', T.record([field('rate_z', T.number), field('deny_ratio', T.number), field('new_resource', T.bool)])),
          field('manager', T.string, true),
          field('tags', T.list(T.string), true),
          field('quota', T.record([field('limit', T.number)]), true),
        ]),
      ),
      field(
        'resource',
        T.record([
          field('type', T.string),
          field('id', T.string),
          field('owner', T.string, true),
          field('sensitivity', SENSITIVITY),
          field('size', T.number),
          field('labels', T.set(T.string)),
        ]),
      ),
      field(
        'task',
        T.record([
          field('kind', T.string),
          field('flagged', T.bool),
          field('on_behalf_of', T.string, true),
          field('deadline', T.duration),
          field('priority', T.number, true),
        ]),
      ),
      field('action', T.string),
    ],
  },
};

// ---------------------------------------------------------------- expressions

export const lit = (value: Value, type: Type): IrExpr => ({ op: 'lit', type, value });
export const str = (s: string): IrExpr => lit(s, T.string);
export const num = (n: number): IrExpr => lit(n, T.number);
export const bool = (b: boolean): IrExpr => lit(b, T.bool);
export const ver = (a: number, b: number, c: number): IrExpr => lit(encodeVersion(a, b, c), T.version);
export const dur = (seconds: number): IrExpr => lit(seconds, T.duration);
export const strs = (...xs: string[]): IrExpr => ({ op: 'list', items: xs.map(str), type: T.list(T.string) });

export function typeAt(path: readonly string[], schema: Schema = RICH_SCHEMA): Type {
  let t: Type = schema.request;
  for (const seg of path) {
    if (t.t !== 'record') throw new Error(`no ${path.join('.')}`);
    const f: FieldType | undefined = t.fields.find((x) => x.name === seg);
    if (!f) throw new Error(`no ${path.join('.')}`);
    t = f.type;
  }
  return t;
}

export const attr = (dotted: string, schema: Schema = RICH_SCHEMA): IrExpr => {
  const path = dotted.split('.');
  return { op: 'attr', path, type: typeAt(path, schema) };
};
export const has = (dotted: string): IrExpr => ({ op: 'has', path: dotted.split('.') });
export const letRef = (index: number, type: Type): IrExpr => ({ op: 'let', index, type });
export const risk: IrExpr = { op: 'risk' };
export const grantedE: IrExpr = { op: 'granted' };
export const not = (arg: IrExpr): IrExpr => ({ op: 'not', arg });
export const and = (...args: IrExpr[]): IrExpr => ({ op: 'and', args });
export const or = (...args: IrExpr[]): IrExpr => ({ op: 'or', args });
export const cmp = (c: CmpOp, left: IrExpr, right: IrExpr): IrExpr => ({ op: 'cmp', cmp: c, left, right });
export const inE = (elem: IrExpr, coll: IrExpr): IrExpr => ({ op: 'in', elem, coll });
export const like = (arg: IrExpr, pattern: string): IrExpr => ({ op: 'like', arg, pattern });
export const arith = (a: ArithOp, left: IrExpr, right: IrExpr): IrExpr => ({ op: 'arith', arith: a, left, right });
export const concat = (left: IrExpr, right: IrExpr): IrExpr => ({ op: 'concat', left, right });
export const neg = (arg: IrExpr): IrExpr => ({ op: 'neg', arg });
export const call = (fn: BuiltinFn, ...args: IrExpr[]): IrExpr => ({ op: 'call', fn, args });
export const cond = (c: IrExpr, then: IrExpr, otherwise: IrExpr = num(0)): IrExpr => ({ op: 'cond', cond: c, then, else: otherwise });
export const match = (
  subject: IrExpr,
  cases: { value: string | number | boolean; result: IrExpr }[],
  otherwise: IrExpr | null,
  type: Type,
): IrExpr => ({ op: 'match', subject, cases, otherwise, type });

// ---------------------------------------------------------------- declarations

export const letDecl = (name: string, expr: IrExpr, type: Type): IrLet => ({ name, expr, type, span });
export const factor = (name: string, expr: IrExpr): IrFactor => ({ name, expr, span });
export const target = (dotted: string, ...values: (string | number | boolean)[]): IrTargetTest => ({
  path: dotted.split('.'),
  values,
  span,
});
export const obligation = (key: string, kind: ObligationKind, expr: IrExpr): IrObligation => ({ key, kind, expr, span });
export const branch = (
  effect: Effect,
  condition: IrExpr | null = null,
  opts: { obligations?: IrObligation[]; reason?: string | null; line?: number } = {},
): IrBranch => ({
  effect,
  condition,
  obligations: opts.obligations ?? [],
  reason: opts.reason ?? null,
  span: spanAt(opts.line ?? 1),
});

export function policy(
  name: string,
  opts: { target?: IrTargetTest[]; when?: IrExpr | null; branches: IrBranch[]; forbid?: boolean; line?: number },
): IrPolicy {
  return {
    name,
    description: null,
    forbid: opts.forbid ?? false,
    file: 'test.agp',
    span: spanAt(opts.line ?? 1),
    target: opts.target ?? [],
    when: opts.when ?? null,
    branches: opts.branches,
    whenText: null,
  };
}

export const forbid = (name: string, opts: { target?: IrTargetTest[]; when?: IrExpr | null; reason?: string | null }): IrPolicy =>
  policy(name, { target: opts.target ?? [], when: opts.when ?? null, forbid: true, branches: [branch('deny', null, { reason: opts.reason ?? null })] });

export function policySet(opts: {
  schema?: Schema;
  lets?: IrLet[];
  factors?: IrFactor[];
  policies: IrPolicy[];
  revision?: string;
}): IrPolicySet {
  return {
    schema: opts.schema ?? RICH_SCHEMA,
    lets: opts.lets ?? [],
    factors: opts.factors ?? [],
    policies: opts.policies.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    revision: opts.revision ?? 'sha256:test',
  };
}

// ---------------------------------------------------------------- requests

export interface RequestOverrides {
  agent?: Record<string, Value>;
  resource?: Record<string, Value>;
  task?: Record<string, Value>;
  action?: string;
  grants?: Grant[];
  now?: number;
}

/** A normalized request of RICH_SCHEMA with sensible defaults. */
export function request(o: RequestOverrides = {}): NormalizedRequest {
  return {
    agent: {
      id: 'fraudbot-1',
      roles: ['fraud-detector'],
      model: { name: 'fraudnet', version: encodeVersion(2, 4, 1) },
      confidence: 0.93,
      trust: 2,
      behavior: { rate_z: 0, deny_ratio: 0, new_resource: false },
      ...o.agent,
    },
    action: o.action ?? 'read',
    resource: { type: 'account', id: '991', sensitivity: 1, size: 10, labels: [], ...o.resource },
    task: { kind: 'investigation', flagged: false, deadline: 300, ...o.task },
    grants: o.grants ?? [],
    now: o.now ?? 1_000_000,
  };
}

/** The same request as raw JSON, the way a PEP sends it. */
export function rawRequest(): Record<string, unknown> {
  return {
    agent: {
      id: 'fraudbot-1',
      roles: ['fraud-detector', 'reader'],
      model: { name: 'fraudnet', version: '2.4.1' },
      confidence: 0.93,
      trust: 'verified',
      behavior: { rate_z: 0.5, deny_ratio: 0.01, new_resource: false },
    },
    action: 'freeze_account',
    resource: { type: 'account', id: '991', sensitivity: 'confidential', size: 10, labels: ['pii'] },
    task: { kind: 'investigation', flagged: true, deadline: '5m' },
  };
}
