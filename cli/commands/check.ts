// `agp check`: loads every .agp file under the paths as one policy set and reports every
// diagnostic. Exit 0 when there are no errors (warnings allowed), 1 on errors.

import type { Command } from '../command.js';
import { hasErrors, loadPaths, oneOf, parse, printDiagnostics } from '../command.js';

export const checkCommand: Command = {
  name: 'check',
  summary: 'parse and type-check a policy set (and its tests)',
  help: `Usage: agp check [options] <paths...>

Loads every .agp file under the given files and directories as one policy set, parses and
type-checks it (including the .test.agp files), and prints every diagnostic as
file:line:col: severity[code]: message, with the source line, a caret and a hint.

Options:
  --format text|json   output format (default text; json prints {ok, files, diagnostics})
  -h, --help           show this help

Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage or I/O error.

Examples:
  agp check policies
  agp check --format json policies/fraud.agp policies/schema.agp
`,
  async run(argv, streams) {
    const { values, positionals } = parse(argv, { format: { type: 'string' } });
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    const loaded = await loadPaths(positionals, streams);
    const failed = hasErrors(loaded.diagnostics);
    if (format === 'json') {
      streams.out(`${JSON.stringify({ ok: !failed, files: [...loaded.sources.keys()], diagnostics: loaded.diagnostics }, null, 2)}\n`);
    } else {
      printDiagnostics(streams, loaded.diagnostics, loaded.sources);
      if (!failed) {
        const policies = loaded.ir?.policies.length ?? 0;
        streams.err(`ok: ${loaded.sources.size} file${loaded.sources.size === 1 ? '' : 's'}, ${policies} polic${policies === 1 ? 'y' : 'ies'}, ${loaded.tests.length} test${loaded.tests.length === 1 ? '' : 's'}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};
