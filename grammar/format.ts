// The canonical .agp formatter (`agp fmt`): prints a PolicyFile in the one canonical layout,
// keeping every comment, and checks its own output by re-parsing it.
//
// Layout: 2-space indent; declarations separated by one blank line; inside blocks, one item
// per line (schema field, risk factor, `on`/`when` line, outcome, test item), and a single
// blank line kept wherever the author left one or more; expressions on one line unless a
// record, list, match or call does not fit in 100 columns, which then breaks one element per
// line. Comments attach to the statement-level item they precede (or trail on its line);
// comments inside an expression move before its statement.
import type * as A from './ast.js';
import { assertNever } from './ast.js';
import { diagnostic, hasErrors } from '../engine/diagnostics.js';
import type { Diagnostic } from '../engine/diagnostics.js';
import { astEqual, stripSpans } from './ast-util.js';
import { parseFile } from './parse.js';
import { COMPARE_PREC, NEG_PREC, NOT_PREC, PREC } from './to-ast.js';

const WIDTH = 100;
const INDENT = '  ';

// ---------------------------------------------------------------- documents

type Doc =
  | string
  | { t: 'concat'; parts: Doc[] }
  | { t: 'group'; doc: Doc }
  | { t: 'indent'; doc: Doc }
  | { t: 'line'; soft: boolean }
  | { t: 'ifBreak'; doc: Doc };

const line: Doc = { t: 'line', soft: false };
const softline: Doc = { t: 'line', soft: true };
const cat = (...parts: Doc[]): Doc => ({ t: 'concat', parts });
const group = (doc: Doc): Doc => ({ t: 'group', doc });
const indent = (doc: Doc): Doc => ({ t: 'indent', doc });
const ifBreak = (doc: Doc): Doc => ({ t: 'ifBreak', doc });

function join(sep: Doc, docs: Doc[]): Doc {
  const parts: Doc[] = [];
  docs.forEach((d, i) => {
    if (i > 0) parts.push(sep);
    parts.push(d);
  });
  return cat(...parts);
}

type Mode = 'flat' | 'break';
type Cmd = [number, Mode, Doc];

function fits(next: Cmd, rest: Cmd[], width: number): boolean {
  let restIdx = rest.length;
  const cmds: Cmd[] = [next];
  let remaining = width;
  while (remaining >= 0) {
    const cmd = cmds.pop() ?? (restIdx > 0 ? rest[--restIdx] : undefined);
    if (!cmd) return true;
    const [ind, mode, doc] = cmd;
    if (typeof doc === 'string') {
      remaining -= doc.length;
      continue;
    }
    switch (doc.t) {
      case 'concat':
        for (let i = doc.parts.length - 1; i >= 0; i--) cmds.push([ind, mode, doc.parts[i]!]);
        break;
      case 'indent':
      case 'group':
        cmds.push([ind, mode, doc.doc]);
        break;
      case 'ifBreak':
        if (mode === 'break') cmds.push([ind, mode, doc.doc]);
        break;
      case 'line':
        if (mode === 'break') return true;
        if (!doc.soft) remaining--;
        break;
      default:
        assertNever(doc);
    }
  }
  return false;
}

/** Renders a document whose first character lands at column `startCol` (0-based) and whose
 *  broken lines are indented from `baseIndent` columns. */
function render(doc: Doc, baseIndent: number, startCol: number): string {
  let out = '';
  let pos = startCol;
  const stack: Cmd[] = [[baseIndent, 'break', doc]];
  while (stack.length > 0) {
    const [ind, mode, d] = stack.pop()!;
    if (typeof d === 'string') {
      out += d;
      pos += d.length;
      continue;
    }
    switch (d.t) {
      case 'concat':
        for (let i = d.parts.length - 1; i >= 0; i--) stack.push([ind, mode, d.parts[i]!]);
        break;
      case 'indent':
        stack.push([ind + INDENT.length, mode, d.doc]);
        break;
      case 'group':
        if (mode === 'flat') stack.push([ind, 'flat', d.doc]);
        else stack.push([ind, fits([ind, 'flat', d.doc], stack, WIDTH - pos) ? 'flat' : 'break', d.doc]);
        break;
      case 'ifBreak':
        if (mode === 'break') stack.push([ind, mode, d.doc]);
        break;
      case 'line':
        if (mode === 'flat') {
          if (!d.soft) {
            out += ' ';
            pos++;
          }
        } else {
          out += '\n' + ' '.repeat(ind);
          pos = ind;
        }
        break;
      default:
        assertNever(d);
    }
  }
  return out;
}

// ---------------------------------------------------------------- literals and expressions

/** A string literal that the lexer reads back as `value`. */
export function quote(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ch = value[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f || c === 0x2028 || c === 0x2029) out += unicodeEscape(c);
    else if (c >= 0xd800 && c <= 0xdbff) {
      const n = value.charCodeAt(i + 1);
      if (n >= 0xdc00 && n <= 0xdfff) {
        out += ch + value[i + 1]!;
        i++;
      } else out += unicodeEscape(c);
    } else if (c >= 0xdc00 && c <= 0xdfff) out += unicodeEscape(c);
    else out += ch;
  }
  return out + '"';
}

function unicodeEscape(c: number): string {
  return `\\u${c.toString(16).padStart(4, '0')}`;
}

function numberText(n: number): string {
  return String(n);
}

/** Expectation values carry their sign in the literal; `String(-0)` would lose it. */
function signedNumberText(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n);
}

function prec(e: A.Expr): number {
  switch (e.kind) {
    case 'binary':
      return PREC[e.op];
    case 'unary':
      return e.op === 'not' ? NOT_PREC : NEG_PREC;
    case 'has':
      return COMPARE_PREC;
    case 'member':
      return NEG_PREC + 1;
    default:
      return NEG_PREC + 2;
  }
}

function wrap(e: A.Expr, min: number): Doc {
  const d = exprDoc(e);
  return prec(e) < min ? cat('(', d, ')') : d;
}

function recordDoc(r: A.RecordLit): Doc {
  if (r.fields.length === 0) return '{}';
  const fields = r.fields.map((f) => cat(f.name, ': ', exprDoc(f.value)));
  return group(cat('{', indent(cat(line, join(cat(',', line), fields))), ifBreak(','), line, '}'));
}

function exprDoc(e: A.Expr): Doc {
  switch (e.kind) {
    case 'string':
      return quote(e.value);
    case 'number':
      return numberText(e.value);
    case 'bool':
      return e.value ? 'true' : 'false';
    case 'version':
    case 'duration':
      return e.raw;
    case 'ident':
      return e.name;
    case 'risk':
      return 'risk';
    case 'granted':
      return 'granted';
    case 'error':
      return '<error>';
    case 'member':
      return cat(wrap(e.object, 8), '.', e.name);
    case 'has':
      return cat(wrap(e.object, 5), ' has ', e.name);
    case 'unary':
      return e.op === 'not' ? cat('not ', wrap(e.arg, 3)) : cat('-', wrap(e.arg, 7));
    case 'binary': {
      const p = PREC[e.op];
      const compare = p === 4;
      return cat(wrap(e.left, compare ? 5 : p), ` ${e.op} `, wrap(e.right, compare ? 5 : p + 1));
    }
    case 'call':
      if (e.args.length === 0) return `${e.callee}()`;
      return group(cat(e.callee, '(', indent(cat(softline, join(cat(',', line), e.args.map(exprDoc)))), softline, ')'));
    case 'list':
      if (e.items.length === 0) return '[]';
      return group(cat('[', indent(cat(softline, join(cat(',', line), e.items.map(exprDoc)))), ifBreak(','), softline, ']'));
    case 'record':
      return recordDoc(e);
    case 'match': {
      const arms: Doc[] = e.arms.map((a) => cat(a.labelKind === 'string' ? quote(a.label) : a.label, ': ', exprDoc(a.value)));
      if (e.otherwise) arms.push(cat('else: ', exprDoc(e.otherwise)));
      if (arms.length === 0) return cat('match ', exprDoc(e.subject), ' {}');
      return group(cat('match ', exprDoc(e.subject), ' {', indent(cat(line, join(cat(',', line), arms))), ifBreak(','), line, '}'));
    }
    default:
      return assertNever(e);
  }
}

function typeText(t: A.TypeExpr): string {
  switch (t.kind) {
    case 'type_name':
      return t.args.length === 0 ? t.name : `${t.name}<${t.args.map(typeText).join(', ')}>`;
    case 'type_level':
      return `level<${t.members.map((m) => m.name).join(', ')}>`;
    case 'type_record':
      return t.fields.length === 0 ? '{}' : `{ ${t.fields.map((f) => `${f.name}${f.optional ? '?' : ''}: ${typeText(f.type)}`).join(', ')} }`;
    default:
      return assertNever(t);
  }
}

// ---------------------------------------------------------------- statement-level items

interface Attached {
  comment: A.Comment;
  /** Moved out of the item's own text (a comment inside an expression). */
  moved: boolean;
}

interface Item {
  /** Where the item is in the source: decides which comments attach to it. */
  span: A.Span;
  /** A leaf item's text, as a document rendered at the item's indentation. */
  doc?: Doc;
  /** A block item: `header {`, children, `}`. */
  header?: string;
  children?: Item[];
  leading: Attached[];
  trailing: A.Comment[];
  headerTrailing: A.Comment[];
  dangling: A.Comment[];
}

function leaf(span: A.Span, doc: Doc): Item {
  return { span, doc, leading: [], trailing: [], headerTrailing: [], dangling: [] };
}

function block(span: A.Span, header: string, children: Item[]): Item {
  return { span, header, children, leading: [], trailing: [], headerTrailing: [], dangling: [] };
}

class Layout {
  constructor(private readonly comments: readonly A.Comment[]) {}

  private hasCommentIn(span: A.Span): boolean {
    return this.comments.some((c) => c.span.offset >= span.offset && c.span.offset < span.endOffset);
  }

  decl(d: A.Decl): Item {
    switch (d.kind) {
      case 'schema':
        return block(d.span, 'schema', d.roots.map((f) => this.field(f, 1, true)));
      case 'let':
        return leaf(d.span, cat('let ', d.name, ' = ', exprDoc(d.value)));
      case 'risk':
        return block(
          d.span,
          'risk',
          d.factors.map((f) => leaf(f.span, cat(f.name, ': ', exprDoc(f.value), f.condition ? cat(' if ', exprDoc(f.condition)) : ''))),
        );
      case 'policy': {
        const head = `${d.forbid ? 'forbid' : 'policy'} ${d.name}${d.description ? ` ${quote(d.description.value)}` : ''}`;
        const items: Item[] = [];
        if (d.target) items.push(leaf(d.target.span, cat('on ', exprDoc(d.target))));
        if (d.when) items.push(leaf(d.when.span, cat('when ', exprDoc(d.when))));
        if (d.forbid) {
          const reason = d.outcomes[0]?.reason;
          if (reason) items.push(leaf(reason.span, cat('because ', quote(reason.value))));
        } else {
          for (const o of d.outcomes) items.push(leaf(o.span, outcomeDoc(o)));
        }
        return block(d.span, head, items);
      }
      case 'test':
        return block(d.span, `test ${quote(d.name.value)}`, d.items.map((i) => leaf(i.span, testItemDoc(i))));
      default:
        return assertNever(d);
    }
  }

  /** Root fields with a record type are always blocks; nested ones only when they hold a
   *  comment or do not fit on one line. */
  private field(f: A.SchemaField, depth: number, root: boolean): Item {
    const name = `${f.name}${f.optional ? '?' : ''}`;
    if (f.type.kind === 'type_record') {
      const inline = `${name}: ${typeText(f.type)}`;
      if (root || this.hasCommentIn(f.span) || depth * INDENT.length + inline.length > WIDTH) {
        return block(f.span, name, f.type.fields.map((g) => this.field(g, depth + 1, false)));
      }
      return leaf(f.span, inline);
    }
    return leaf(f.span, `${name}: ${typeText(f.type)}`);
  }
}

function outcomeDoc(o: A.Outcome): Doc {
  return cat(
    o.effect,
    o.condition ? cat(' if ', exprDoc(o.condition)) : '',
    o.obligations ? cat(' with ', recordDoc(o.obligations)) : '',
    o.reason ? cat(' because ', quote(o.reason.value)) : '',
  );
}

function testItemDoc(i: A.TestItem): Doc {
  switch (i.kind) {
    case 'test_input':
      return cat(i.root, ' ', recordDoc(i.value));
    case 'test_grant':
      return cat('grant ', recordDoc(i.value));
    case 'test_action':
      return `action ${quote(i.value.value)}`;
    case 'test_now':
      return `now ${quote(i.value.value)}`;
    case 'expect_effect':
      return cat('expect ', i.effect, i.obligations ? cat(' with ', recordDoc(i.obligations)) : '');
    case 'expect_risk':
      return `expect risk ${i.op} ${signedNumberText(i.value.value)}`;
    case 'expect_factor':
      return `expect factor ${i.name} ${i.op} ${signedNumberText(i.value.value)}`;
    case 'expect_policies':
      return i.names.length === 1 ? `expect policy ${i.names[0]!.name}` : `expect policies [${i.names.map((n) => n.name).join(', ')}]`;
    case 'expect_reason':
      return `expect reason ${quote(i.value.value)}`;
    default:
      return assertNever(i);
  }
}

// ---------------------------------------------------------------- comment placement

/**
 * Attaches each comment to an item of `items` (recursing into blocks): trailing when it sits
 * at the end of the line where an item ends, otherwise leading of the next item, or dangling
 * before the owner's `}` (or at the end of the file when `owner` is null).
 */
function attach(items: Item[], comments: A.Comment[], owner: Item | null, fileDangling: A.Comment[]): void {
  const inside = new Map<Item, A.Comment[]>();
  let k = 0;
  for (const c of comments) {
    while (k < items.length && items[k]!.span.endOffset <= c.span.offset) k++;
    const item = items[k];
    if (item && item.span.offset <= c.span.offset) {
      if (item.children) {
        const list = inside.get(item) ?? [];
        list.push(c);
        inside.set(item, list);
      } else {
        item.leading.push({ comment: c, moved: true });
      }
      continue;
    }
    const prev = k > 0 ? items[k - 1] : undefined;
    const nextLine = item ? item.span.line : owner ? owner.span.endLine : Infinity;
    if (prev && c.span.line === prev.span.endLine && (nextLine > c.span.endLine || !item)) {
      prev.trailing.push(c);
    } else if (!prev && owner && c.span.line === owner.span.line && nextLine > c.span.endLine) {
      owner.headerTrailing.push(c);
    } else if (item) {
      item.leading.push({ comment: c, moved: false });
    } else if (owner) {
      owner.dangling.push(c);
    } else {
      fileDangling.push(c);
    }
  }
  for (const [item, list] of inside) attach(item.children!, list, item, fileDangling);
}

// ---------------------------------------------------------------- printing

class Printer {
  readonly lines: string[] = [];
  /** blankBefore[l] = number of whitespace-only lines in the source up to line l. */
  private readonly blanks: number[];

  constructor(source: string) {
    const srcLines = source.split(/\r\n|\r|\n/);
    this.blanks = [0];
    let count = 0;
    for (const l of srcLines) {
      if (l.trim() === '') count++;
      this.blanks.push(count);
    }
  }

  /** Whether the source has a blank line strictly between lines `a` and `b`. */
  blankBetween(a: number, b: number): boolean {
    if (b - a < 2) return false;
    const hi = Math.min(b - 1, this.blanks.length - 1);
    const lo = Math.min(a, this.blanks.length - 1);
    return hi > lo && this.blanks[hi]! - this.blanks[lo]! > 0;
  }

  private push(indent: string, text: string, forceBlank: boolean): void {
    if (forceBlank && this.lines.length > 0 && this.lines[this.lines.length - 1] !== '') this.lines.push('');
    this.lines.push(indent + text);
  }

  /** Trailing comments of consecutive one-line items (no blank line or own-line comment
   *  between them) start in one column, as authors align them by hand. */
  private trailingColumns(items: Item[], texts: (string | undefined)[]): number[] {
    const widths = texts.map((t) => t?.length ?? 0);
    const eligible = (i: number): boolean => {
      const t = texts[i];
      return t !== undefined && !t.includes('\n') && items[i]!.trailing.length > 0;
    };
    let start = 0;
    while (start < items.length) {
      if (!eligible(start)) {
        start++;
        continue;
      }
      let end = start + 1;
      while (end < items.length && eligible(end) && items[end]!.leading.length === 0) {
        const prev = items[end - 1]!;
        const prevEnd = Math.max(prev.span.endLine, ...prev.trailing.map((c) => c.span.endLine));
        if (this.blankBetween(prevEnd, items[end]!.span.line)) break;
        end++;
      }
      let max = 0;
      for (let i = start; i < end; i++) max = Math.max(max, widths[i]!);
      for (let i = start; i < end; i++) widths[i] = max;
      start = end;
    }
    return widths;
  }

  /** Prints a sequence of sibling items; returns nothing. `separate` forces one blank line
   *  before each item group after the first (top-level declarations). */
  items(items: Item[], depth: number, separate: boolean, startLine: number | undefined): number | undefined {
    const ind = INDENT.repeat(depth);
    const texts = items.map((item) => (item.children ? undefined : render(item.doc ?? '', ind.length, ind.length)));
    const widths = this.trailingColumns(items, texts);
    let prevEnd = startLine;
    items.forEach((item, i) => {
      let first = true;
      const blankAt = (line: number): boolean => {
        const forced = separate && i > 0 && first;
        const kept = prevEnd !== undefined && this.blankBetween(prevEnd, line);
        first = false;
        return forced || kept;
      };
      let itemBlankUsed = false;
      for (const a of item.leading) {
        if (a.moved) {
          const blank = itemBlankUsed ? false : blankAt(item.span.line);
          itemBlankUsed = true;
          this.push(ind, a.comment.text, blank);
        } else {
          this.push(ind, a.comment.text, blankAt(a.comment.span.line));
          prevEnd = a.comment.span.endLine;
        }
      }
      const blank = itemBlankUsed ? false : blankAt(item.span.line);
      const trailing = item.trailing.map((c) => ` ${c.text}`).join('');
      if (item.children) {
        const headerTrailing = item.headerTrailing.map((c) => ` ${c.text}`).join('');
        if (item.children.length === 0 && item.dangling.length === 0 && item.headerTrailing.length === 0) {
          this.push(ind, `${item.header} {}${trailing}`, blank);
        } else {
          this.push(ind, `${item.header} {${headerTrailing}`, blank);
          const end = this.items(item.children, depth + 1, false, undefined);
          let last = end;
          const childInd = INDENT.repeat(depth + 1);
          for (const c of item.dangling) {
            const kept = last !== undefined && this.blankBetween(last, c.span.line);
            this.push(childInd, c.text, kept);
            last = c.span.endLine;
          }
          this.lines.push(`${ind}}${trailing}`);
        }
      } else {
        const text = texts[i] ?? '';
        this.push(ind, (trailing ? text.padEnd(widths[i]!) : text) + trailing, blank);
      }
      prevEnd = Math.max(item.span.endLine, ...item.trailing.map((c) => c.span.endLine));
    });
    return prevEnd;
  }
}

/** Prints `file` in the canonical layout. `source` is the text it was parsed from (used to
 *  keep the author's blank lines inside blocks); pass `''` for a generated AST. */
export function formatFile(file: A.PolicyFile, source: string): string {
  const layout = new Layout(file.comments);
  const items = file.decls.map((d) => layout.decl(d));
  const comments = [...file.comments].sort((a, b) => a.span.offset - b.span.offset);
  const fileDangling: A.Comment[] = [];
  attach(items, comments, null, fileDangling);
  const p = new Printer(source);
  let last = p.items(items, 0, true, undefined);
  for (const c of fileDangling) {
    const kept = last !== undefined && p.blankBetween(last, c.span.line);
    if (kept && p.lines.length > 0) p.lines.push('');
    p.lines.push(c.text);
    last = c.span.endLine;
  }
  return p.lines.length === 0 ? '' : `${p.lines.join('\n')}\n`;
}

function commentTexts(f: A.PolicyFile): string[] {
  return f.comments.map((c) => c.text).sort();
}

/**
 * Formats one file. Returns no `text` when the file has errors; if the formatted text would
 * parse to a different AST or lose a comment (a formatter bug), returns the original text
 * unchanged with an error.
 */
export function formatSource(path: string, text: string): { text?: string; diagnostics: Diagnostic[] } {
  const before = parseFile(path, text);
  if (hasErrors(before.diagnostics)) return { diagnostics: before.diagnostics };
  let out: string;
  try {
    out = formatFile(before.file, text);
  } catch (e) {
    return { text, diagnostics: [guardError(path, `internal formatter error: ${e instanceof Error ? e.message : String(e)}`)] };
  }
  const after = parseFile(path, out);
  const same =
    !hasErrors(after.diagnostics) &&
    astEqual(stripSpans(before.file.decls), stripSpans(after.file.decls)) &&
    astEqual(commentTexts(before.file), commentTexts(after.file));
  if (!same) {
    return { text, diagnostics: [guardError(path, 'internal formatter error: the formatted text would change the file, so it was left unchanged')] };
  }
  return { text: out, diagnostics: before.diagnostics };
}

function guardError(path: string, message: string): Diagnostic {
  return diagnostic('agp_parse_error', { file: path, line: 1, col: 1, endLine: 1, endCol: 1 }, message, 'this is a bug in `agp fmt`; please report it with the file');
}
