// Where a worker thread's module file is. Built code (dist/) starts the worker beside the
// module that asks; sources run untranspiled by the test runner (`.ts`) start the built copy
// in dist/ instead, because Node 20 cannot load TypeScript in a worker (`npm test` builds
// dist/ before it runs the suites).

import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function packageRoot(file: string): string {
  let dir = dirname(file);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${file}`);
    dir = up;
  }
}

/**
 * The URL of the worker module `relativeJs` (e.g. `./audit-writer.js`) next to the module
 * whose `import.meta.url` is `from`, for `new Worker(url)`.
 */
export function workerModuleUrl(relativeJs: string, from: string): URL {
  const url = new URL(relativeJs, from);
  if (!from.endsWith('.ts')) return url;
  const source = fileURLToPath(url);
  const root = packageRoot(fileURLToPath(from));
  return pathToFileURL(join(root, 'dist', relative(root, source)));
}
