// Type utilities of the checker: equality, printing for messages, building the request
// schema from the AST's `schema { ... }` declaration, and attribute lookups.

import type { SchemaDecl, SchemaField, Span, TypeExpr } from '../grammar/ast.js';
import { closest, diagnostic, type Diagnostic } from './diagnostics.js';
import type { FieldType, Schema, Type } from './ir.js';

export type RecordT = Extract<Type, { t: 'record' }>;
export type LevelT = Extract<Type, { t: 'level' }>;

export const STRING: Type = { t: 'string' };
export const NUMBER: Type = { t: 'number' };
export const BOOL: Type = { t: 'bool' };
export const VERSION: Type = { t: 'version' };
export const DURATION: Type = { t: 'duration' };

/** The request roots, in the order the schema lists them. */
export const ROOTS = ['agent', 'action', 'resource', 'task'] as const;
export type RootName = (typeof ROOTS)[number];
export const RECORD_ROOTS: readonly string[] = ['agent', 'resource', 'task'];

const SCALAR_NAMES = ['string', 'number', 'bool', 'version', 'duration'] as const;
const COLLECTION_NAMES = ['set', 'list'] as const;
const TYPE_NAMES: readonly string[] = [...SCALAR_NAMES, ...COLLECTION_NAMES, 'level'];

export function typeEquals(a: Type, b: Type): boolean {
  switch (a.t) {
    case 'string':
    case 'number':
    case 'bool':
    case 'version':
    case 'duration':
      return b.t === a.t;
    case 'level':
      return b.t === 'level' && b.name === a.name;
    case 'set':
    case 'list':
      return b.t === a.t && typeEquals(a.elem, b.elem);
    case 'record':
      return (
        b.t === 'record' &&
        a.fields.length === b.fields.length &&
        a.fields.every((f) => {
          const g = b.fields.find((x) => x.name === f.name);
          return g !== undefined && g.optional === f.optional && typeEquals(f.type, g.type);
        })
      );
  }
}

/** Scalars are the types `==` compares and targets index. */
export function isScalar(t: Type): boolean {
  return t.t === 'string' || t.t === 'number' || t.t === 'bool' || t.t === 'version' || t.t === 'duration' || t.t === 'level';
}

/** The types `<`, `<=`, `>`, `>=` order. */
export function isOrdered(t: Type): boolean {
  return t.t === 'number' || t.t === 'version' || t.t === 'duration' || t.t === 'level';
}

/**
 * A type as messages show it. A level shows its members and, because two levels with the
 * same members are still different types, the attribute that declares it.
 */
export function typeToString(t: Type): string {
  switch (t.t) {
    case 'string':
    case 'number':
    case 'bool':
    case 'version':
    case 'duration':
      return t.t;
    case 'level':
      return `level<${t.members.join(', ')}> (${t.name})`;
    case 'set':
    case 'list':
      return `${t.t}<${typeToString(t.elem)}>`;
    case 'record':
      return `{ ${t.fields.map((f) => `${f.name}${f.optional ? '?' : ''}: ${typeToString(f.type)}`).join(', ')} }`;
  }
}

/** A short description: levels by their declaring attribute only (for compact messages). */
export function typeShort(t: Type): string {
  switch (t.t) {
    case 'level':
      return `level ${t.name}`;
    case 'set':
    case 'list':
      return `${t.t}<${typeShort(t.elem)}>`;
    case 'record':
      return 'record';
    default:
      return t.t;
  }
}

// ---------------------------------------------------------------- schema construction

/**
 * Builds a type from a schema type expression. `path` names the attribute being declared:
 * a level declared there is named by it (elements of a set or list share the path).
 * Returns undefined (with a diagnostic) when the type cannot be built.
 */
export function typeFromAst(expr: TypeExpr, path: string, diagnostics: Diagnostic[]): Type | undefined {
  switch (expr.kind) {
    case 'type_level': {
      const seen = new Set<string>();
      let ok = true;
      for (const m of expr.members) {
        if (seen.has(m.name)) {
          diagnostics.push(diagnostic('agp_duplicate_error', m.span, `level member \`${m.name}\` is listed twice in \`${path}\``, 'remove one of them'));
          ok = false;
        }
        seen.add(m.name);
      }
      if (expr.members.length === 0) {
        diagnostics.push(diagnostic('agp_schema_error', expr.span, `level \`${path}\` has no members`, 'list the members in order, e.g. `level<low, medium, high>`'));
        return undefined;
      }
      return ok ? { t: 'level', name: path, members: expr.members.map((m) => m.name) } : undefined;
    }
    case 'type_record':
      return recordFromFields(expr.fields, path, diagnostics);
    case 'type_name': {
      const name = expr.name;
      if ((SCALAR_NAMES as readonly string[]).includes(name)) {
        if (expr.args.length > 0) {
          diagnostics.push(diagnostic('agp_schema_error', expr.span, `type \`${name}\` takes no type arguments`, `write \`${name}\``));
          return undefined;
        }
        return { t: name as (typeof SCALAR_NAMES)[number] };
      }
      if (name === 'set' || name === 'list') {
        const arg = expr.args[0];
        if (expr.args.length !== 1 || arg === undefined) {
          diagnostics.push(
            diagnostic('agp_schema_error', expr.span, `type \`${name}\` takes one type argument, got ${expr.args.length}`, `write e.g. \`${name}<string>\``),
          );
          return undefined;
        }
        const elem = typeFromAst(arg, path, diagnostics);
        if (elem === undefined) return undefined;
        if (!isScalar(elem)) {
          diagnostics.push(
            diagnostic('agp_schema_error', arg.span, `the elements of a ${name} must be scalars, got ${typeShort(elem)}`, 'use string, number, bool, version, duration or a level'),
          );
          return undefined;
        }
        return { t: name, elem };
      }
      if (name === 'level') {
        diagnostics.push(diagnostic('agp_schema_error', expr.span, '`level` needs its members', 'write e.g. `level<low, medium, high>`'));
        return undefined;
      }
      const guess = closest(name, TYPE_NAMES);
      diagnostics.push(
        diagnostic(
          'agp_schema_error',
          expr.span,
          `unknown type \`${name}\``,
          guess !== undefined ? `did you mean \`${guess}\`?` : `the types are ${TYPE_NAMES.map((n) => `\`${n}\``).join(', ')} and records \`{ ... }\``,
        ),
      );
      return undefined;
    }
  }
}

function recordFromFields(fields: readonly SchemaField[], path: string, diagnostics: Diagnostic[]): RecordT | undefined {
  const out: FieldType[] = [];
  const seen = new Map<string, Span>();
  let ok = true;
  for (const f of fields) {
    const fieldPath = `${path}.${f.name}`;
    const first = seen.get(f.name);
    if (first !== undefined) {
      diagnostics.push(
        diagnostic('agp_duplicate_error', f.nameSpan, `attribute \`${fieldPath}\` is declared twice`, `the first is at ${first.file}:${first.line}:${first.col}; remove or rename one`),
      );
      ok = false;
      continue;
    }
    seen.set(f.name, f.nameSpan);
    const type = typeFromAst(f.type, fieldPath, diagnostics);
    if (type === undefined) {
      ok = false;
      continue;
    }
    out.push({ name: f.name, type, optional: f.optional });
  }
  return ok ? { t: 'record', fields: out } : undefined;
}

/**
 * The request schema from one `schema` declaration. A root the schema leaves out is
 * implicit: `agent`, `resource`, `task` an empty record, `action` a string. The result is
 * partial (undefined roots left out) when a root has errors, so checking can go on.
 */
export function schemaFromAst(decl: SchemaDecl, diagnostics: Diagnostic[]): { schema: Schema; complete: boolean } {
  const roots = new Map<string, Type>();
  const seen = new Map<string, Span>();
  let complete = true;
  for (const root of decl.roots) {
    const first = seen.get(root.name);
    if (first !== undefined) {
      diagnostics.push(diagnostic('agp_duplicate_error', root.nameSpan, `root \`${root.name}\` is declared twice`, `the first is at ${first.file}:${first.line}:${first.col}; remove or rename one`));
      complete = false;
      continue;
    }
    seen.set(root.name, root.nameSpan);
    if (!(ROOTS as readonly string[]).includes(root.name)) {
      const guess = closest(root.name, ROOTS);
      diagnostics.push(
        diagnostic(
          'agp_schema_error',
          root.nameSpan,
          `unknown root \`${root.name}\``,
          guess !== undefined ? `did you mean \`${guess}\`?` : 'the roots are `agent`, `resource`, `task` (records) and `action` (a string)',
        ),
      );
      complete = false;
      continue;
    }
    if (root.optional) {
      diagnostics.push(diagnostic('agp_schema_error', root.nameSpan, `root \`${root.name}\` cannot be optional`, `remove the \`?\` after \`${root.name}\``));
      complete = false;
    }
    const type = typeFromAst(root.type, root.name, diagnostics);
    if (type === undefined) {
      complete = false;
      continue;
    }
    if (root.name === 'action' ? type.t !== 'string' : type.t !== 'record') {
      const want = root.name === 'action' ? 'a string' : 'a record';
      diagnostics.push(
        diagnostic(
          'agp_schema_error',
          root.type.span,
          `root \`${root.name}\` must be ${want}, got ${typeShort(type)}`,
          root.name === 'action' ? 'write `action: string`' : `write \`${root.name} { ... }\` with its attributes`,
        ),
      );
      complete = false;
      continue;
    }
    roots.set(root.name, type);
  }
  const fields: FieldType[] = [];
  for (const name of ROOTS) {
    const type = roots.get(name) ?? (seen.has(name) ? undefined : name === 'action' ? STRING : { t: 'record' as const, fields: [] });
    if (type !== undefined) fields.push({ name, type, optional: false });
  }
  return { schema: { request: { t: 'record', fields } }, complete };
}

// ---------------------------------------------------------------- lookups

export function fieldOf(record: RecordT, name: string): FieldType | undefined {
  return record.fields.find((f) => f.name === name);
}

/** The field at a path from the request root (`['resource', 'owner']`), or undefined. */
export function lookupPath(schema: Schema, path: readonly string[]): FieldType | undefined {
  let current: Type = schema.request;
  let field: FieldType | undefined;
  for (const name of path) {
    if (current.t !== 'record') return undefined;
    field = fieldOf(current, name);
    if (field === undefined) return undefined;
    current = field.type;
  }
  return field;
}

/** Every level type declared in the schema, by name. */
export function levelsOf(schema: Schema): Map<string, LevelT> {
  const out = new Map<string, LevelT>();
  const visit = (t: Type): void => {
    if (t.t === 'level') out.set(t.name, t);
    else if (t.t === 'set' || t.t === 'list') visit(t.elem);
    else if (t.t === 'record') for (const f of t.fields) visit(f.type);
  };
  visit(schema.request);
  return out;
}
