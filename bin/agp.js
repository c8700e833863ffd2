#!/usr/bin/env node
// The `agp` command: a thin launcher for the compiled CLI in dist/ (built by `npm ci`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(entry)) {
  process.stderr.write('agp: the CLI is not built; run `npm ci` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
