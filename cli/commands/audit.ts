// `agp audit verify`: checks the hash chain of an audit log file. The audit module is
// imported only when this command runs.

import { open } from 'node:fs/promises';
import type { Command } from '../command.js';
import { ioReason, oneOf, parse } from '../command.js';
import { UsageError } from '../output.js';

export const auditCommand: Command = {
  name: 'audit',
  summary: 'verify the hash chain of an audit log (agp audit verify <file>)',
  help: `Usage: agp audit verify [options] <file>

Verifies the hash chain of an AGP audit log (JSON lines, as written by \`agp serve\`). Any
edited, dropped, inserted or reordered line breaks the chain; the first bad line is
reported. Lines cut from the end are only visible against a head hash kept elsewhere
(--head).

Options:
  --hmac-key KEY       the log was written with AGP_AUDIT_HMAC_KEY=KEY (default: that
                       environment variable)
  --head HASH          the hash of the last line, as recorded elsewhere (\`head\` in the
                       JSON output of an earlier run): detects a truncated tail
  --format text|json   output format (default text; json prints {ok, lines, head, ...})
  -h, --help           show this help

Exit codes: 0 the chain verifies, 1 it does not, 2 usage or I/O error.

Examples:
  agp audit verify .agp-data/audit.jsonl
  agp audit verify --format json --head 3f2a…c9 /var/log/agp/audit.jsonl
`,
  async run(argv, streams) {
    const { values, positionals } = parse(argv, { format: { type: 'string' }, 'hmac-key': { type: 'string' }, head: { type: 'string' } });
    const format = oneOf('format', values.format, ['text', 'json'] as const, 'text');
    const [sub, file, ...extra] = positionals;
    if (sub !== 'verify') throw new UsageError(sub === undefined ? 'missing subcommand: verify' : `unknown subcommand \`${sub}\` (expected verify)`);
    if (file === undefined || extra.length > 0) throw new UsageError('give exactly one audit log file');
    // Opening first turns a missing or unreadable file into a usage error, not a broken chain.
    try {
      const handle = await open(file, 'r');
      const info = await handle.stat();
      await handle.close();
      if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    } catch (error) {
      throw new UsageError(`cannot read \`${file}\`: ${ioReason(error)}`);
    }
    const hmacKey = values['hmac-key'] ?? (process.env['AGP_AUDIT_HMAC_KEY'] || undefined);
    const options: { hmacKey?: string; expectHead?: string } = {};
    if (hmacKey !== undefined) options.hmacKey = hmacKey;
    if (values.head !== undefined) options.expectHead = values.head;
    const { verifyAuditFile } = await import('../../server/audit.js');
    const result = await verifyAuditFile(file, options);
    if (format === 'json') streams.out(`${JSON.stringify(result)}\n`);
    else if (result.ok) {
      const dropped = result.dropped ? `; the writer reported ${result.dropped} dropped entr${result.dropped === 1 ? 'y' : 'ies'}` : '';
      streams.out(`ok: ${file}: ${result.lines} line${result.lines === 1 ? '' : 's'}, chain intact, head ${result.head ?? ''}${dropped}\n`);
    } else streams.out(`tampered: ${file}:${result.firstBadLine ?? '?'}: ${result.problem ?? 'chain broken'}\n`);
    return result.ok ? 0 : 1;
  },
};
