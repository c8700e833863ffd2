// `agp serve`: runs the PDP service (flags and AGP_* environment, see docs/ops.md). The
// server is imported only when this command runs, so the authoring commands never load it.

import type { Command } from '../command.js';

const EXAMPLES = `
Exit codes: 0 after a graceful shutdown (SIGINT/SIGTERM), 1 cannot start (the policies
have errors, the port is in use), 2 bad flags or configuration.

Examples:
  agp serve --policies policies
  AGP_API_KEYS=k1 AGP_ADMIN_KEY=admin agp serve --policies /etc/agp/policies --host 0.0.0.0 --port 8080
`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the decision service over HTTP, Connect and AuthZEN',
  help: async () => `${(await import('../../server/main.js')).SERVE_HELP.trimEnd()}\n${EXAMPLES}`,
  async run(argv, streams) {
    const { serve } = await import('../../server/main.js');
    return serve(argv, { err: streams.err });
  },
};
