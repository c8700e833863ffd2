// The `agp` command: dispatches to one module per subcommand and owns the exit codes:
// 0 ok, 1 policy or test failures, 2 usage or I/O errors. Results go to stdout, messages
// to stderr; no stack trace ever reaches the user (AGP_DEBUG=1 prints one for bug reports).

import { createRequire } from 'node:module';
import { processStreams, UsageError, type Streams } from './output.js';
import { helpText, type Command } from './command.js';
import { closest } from '../engine/diagnostics.js';
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
    'Options:',
    '  -h, --help       show this help (`agp <command> --help` for a command\'s options)',
    '  -v, --version    print the version',
    '',
    'Exit codes: 0 ok, 1 policy or test failures, 2 usage or I/O errors.',
    'Environment: NO_COLOR=1 disables colour (colour is only used on a terminal);',
    '             AGP_DEBUG=1 prints stack traces of internal errors.',
    '',
    'Examples:',
    '  agp check policies',
    '  agp test policies --coverage --threshold 90 --junit agp-junit.xml',
    '  agp eval --policies policies --input request.json --explain',
    '',
    'Documentation: docs/cli.md',
    '',
  ].join('\n');
}

/** `--help` or `-h` before a `--` terminator. */
function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

export async function main(argv: string[], streams: Streams = processStreams()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    streams.err(mainHelp());
    return 2;
  }
  if (name === '--help' || name === '-h') {
    streams.out(mainHelp());
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    streams.out(`${version()}\n`);
    return 0;
  }
  if (name === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      streams.out(mainHelp());
      return 0;
    }
    const c = commands.find((x) => x.name === topic);
    if (!c) return unknownCommand(topic, streams);
    streams.out(await helpText(c));
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) return unknownCommand(name, streams);
  if (wantsHelp(rest)) {
    streams.out(await helpText(command));
    return 0;
  }
  try {
    return await command.run(rest, streams);
  } catch (error) {
    if (error instanceof UsageError) {
      streams.err(`agp ${command.name}: ${error.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 2;
    }
    const argMessage = argErrorMessage(error);
    if (argMessage !== undefined) {
      streams.err(`agp ${command.name}: ${argMessage} (see \`agp ${command.name} --help\`)\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    streams.err(`agp ${command.name}: internal error: ${message}\n`);
    if (process.env['AGP_DEBUG'] && error instanceof Error && error.stack) streams.err(`${error.stack}\n`);
    return 2;
  }
}

function unknownCommand(name: string, streams: Streams): number {
  const names = commands.map((c) => c.name);
  const sorted = (x: string): string => [...x].sort().join('');
  // edit distance misses swapped letters (`tset`) and prefixes (`ev`): try those too
  const guess = name.startsWith('-')
    ? undefined
    : (closest(name, names) ?? names.find((c) => sorted(c) === sorted(name)) ?? (name.length >= 2 ? names.find((c) => c.startsWith(name)) : undefined));
  const hint = guess ? `; did you mean \`${guess}\`?` : '';
  streams.err(`agp: unknown ${name.startsWith('-') ? 'option' : 'command'} \`${name}\`${hint} (commands: ${commands.map((c) => c.name).join(', ')}; see \`agp --help\`)\n`);
  return 2;
}

/**
 * node:util parseArgs errors (ERR_PARSE_ARGS_*) rewritten in the CLI's voice: lowercase, the
 * flag in backticks, one line.
 */
export function argErrorMessage(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) return undefined;
  const message = (error as Error).message;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option \`${quoted}\``;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument \`${quoted}\``;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = /--[\w-]+/.exec(message)?.[0] ?? quoted;
      return message.includes('argument missing') ? `option \`${flag}\` needs a value` : `option \`${flag}\` does not take a value`;
    }
    default:
      return message.split('\n')[0]!.replace(/^\w/, (c) => c.toLowerCase()).replace(/\.$/, '');
  }
}
