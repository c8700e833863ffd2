// The `agp` command: dispatches to one module per subcommand and owns the exit codes:
// 0 ok, 1 policy or test failures, 2 usage or I/O errors. Results go to stdout, messages
// to stderr; no stack trace ever reaches the user.

import { createRequire } from 'node:module';
import { processStreams, UsageError, type Streams } from './output.js';
import type { Command } from './command.js';
import { checkCommand } from './commands/check.js';
import { fmtCommand } from './commands/fmt.js';
import { testCommand } from './commands/test.js';
import { evalCommand } from './commands/eval.js';
import { benchCommand } from './commands/bench.js';
import { serveCommand } from './commands/serve.js';
import { auditCommand } from './commands/audit.js';

export const commands: readonly Command[] = [checkCommand, fmtCommand, testCommand, evalCommand, benchCommand, serveCommand, auditCommand];

function version(): string {
  const require = createRequire(import.meta.url);
  const pkg = require('../../package.json') as { version: string };
  return pkg.version;
}

export function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'agp — the policy decision point for AI agents',
    '',
    'Usage: agp <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `agp <command> --help` for the options of a command.',
    'Exit codes: 0 ok, 1 policy or test failures, 2 usage or I/O errors.',
    '',
  ].join('\n');
}

export async function main(argv: string[], streams: Streams = processStreams()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    streams.out(mainHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    streams.out(`${version()}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    streams.err(`agp: unknown command \`${name}\` (commands: ${commands.map((c) => c.name).join(', ')})\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    streams.out(command.help);
    return 0;
  }
  try {
    return await command.run(rest, streams);
  } catch (error) {
    if (error instanceof UsageError || isArgError(error)) {
      streams.err(`agp ${command.name}: ${(error as Error).message}\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    streams.err(`agp ${command.name}: internal error: ${message}\n`);
    return 2;
  }
}

/** node:util parseArgs errors carry ERR_PARSE_ARGS_* codes. */
function isArgError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}
