// `agp audit verify`: checks the hash chain of an audit log file.

import type { Command } from '../command.js';
import { oneOf, parse } from '../command.js';
import { UsageError } from '../output.js';
import { verifyAuditFile } from '../../server/audit.js';

export const auditCommand: Command = {
  name: 'audit',
  summary: 'verify the hash chain of an audit log (agp audit verify <file>)',
  help: `Usage: agp audit verify [--format text|json] <file>

Verifies the hash chain of an AGP audit log (JSON lines). Any edited, dropped, inserted
or reordered line breaks the chain; the first bad line is reported.

Exit codes: 0 the chain verifies, 1 it does not, 2 usage or I/O error.

Example:
  agp audit verify /var/log/agp/audit.jsonl
`,
  async run(argv, streams) {
    const { values, positionals } = parse(argv, { format: { type: 'string' } });
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    const [sub, file, ...extra] = positionals;
    if (sub !== 'verify') throw new UsageError(sub === undefined ? 'missing subcommand: verify' : `unknown subcommand \`${sub}\` (expected verify)`);
    if (file === undefined || extra.length > 0) throw new UsageError('give exactly one audit log file');
    let result: Awaited<ReturnType<typeof verifyAuditFile>>;
    try {
      result = await verifyAuditFile(file);
    } catch (error) {
      throw new UsageError(`cannot read \`${file}\`: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (format === 'json') streams.out(`${JSON.stringify(result)}\n`);
    else if (result.ok) streams.out(`ok: ${result.lines} lines, chain intact\n`);
    else streams.out(`tampered: line ${result.firstBadLine ?? '?'}: ${result.problem ?? 'chain broken'}\n`);
    return result.ok ? 0 : 1;
  },
};
