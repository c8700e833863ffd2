// `agp fmt`: prints (or checks, or writes) the canonical layout of .agp files.

import { writeFile } from 'node:fs/promises';
import type { Command } from '../command.js';
import { oneLine, parse, printDiagnostics } from '../command.js';
import { UsageError } from '../output.js';
import { formatSource } from '../../grammar/format.js';
import { readPolicySources } from '../../server/policy-files.js';
import type { Diagnostic } from '../../engine/diagnostics.js';

export const fmtCommand: Command = {
  name: 'fmt',
  summary: 'print, check or rewrite .agp files in the canonical layout',
  help: `Usage: agp fmt [--check | --write] <paths...>

Formats every .agp file under the given files and directories in the canonical layout
(comments kept; meaning never changes). Without a flag it prints the formatted text
(with a "==> file <==" header per file when there are several).

Options:
  --check      print the files that are not formatted and exit 1 if there are any
  --write      rewrite the files that are not formatted, in place
  -h, --help   show this help

Exit codes: 0 ok, 1 unformatted files (--check) or syntax errors, 2 usage or I/O error.

Examples:
  agp fmt --check policies
  agp fmt --write policies/fraud.agp
`,
  async run(argv, streams) {
    const { values, positionals } = parse(argv, { check: { type: 'boolean' }, write: { type: 'boolean' } });
    if (values.check && values.write) throw new UsageError('--check and --write cannot be used together');
    if (positionals.length === 0) throw new UsageError('no paths given');
    const read = await readPolicySources(positionals);
    const io = read.diagnostics.filter((d) => d.code === 'agp_io_error');
    if (io.length > 0) throw new UsageError(oneLine(io.map((d) => d.message)));
    if (read.sources.length === 0) throw new UsageError('no .agp files found');
    const problems: Diagnostic[] = [];
    const unformatted: string[] = [];
    const sources = new Map(read.sources.map((s) => [s.path, s.text]));
    for (const { path, text } of read.sources) {
      const result = formatSource(path, text);
      problems.push(...result.diagnostics.filter((d) => d.severity === 'error'));
      if (result.text === undefined) continue;
      if (values.check || values.write) {
        if (result.text !== text) {
          unformatted.push(path);
          if (values.write) await writeFile(path, result.text, 'utf8');
        }
      } else {
        if (read.sources.length > 1) streams.out(`==> ${path} <==\n`);
        streams.out(result.text);
      }
    }
    printDiagnostics(streams, problems, sources);
    if (values.check) {
      for (const f of unformatted) streams.out(`${f}\n`);
      if (unformatted.length > 0) streams.err(`${unformatted.length} file${unformatted.length === 1 ? ' is' : 's are'} not formatted (run \`agp fmt --write\`)\n`);
    } else if (values.write && unformatted.length > 0) {
      streams.err(`formatted ${unformatted.length} file${unformatted.length === 1 ? '' : 's'}\n`);
    }
    return problems.length > 0 || (values.check && unformatted.length > 0) ? 1 : 0;
  },
};
