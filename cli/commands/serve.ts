// `agp serve`: runs the PDP service (flags and AGP_* environment, see docs/ops.md).

import type { Command } from '../command.js';
import { serve, SERVE_HELP } from '../../server/main.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the decision service over HTTP, Connect and AuthZEN',
  help: SERVE_HELP,
  async run(argv, streams) {
    return serve(argv, { err: streams.err });
  },
};
