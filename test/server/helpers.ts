// Shared fixtures of the server tests: an app over the example policies (or a given
// directory) with an embedded store, and the fraud-detection agent's requests.

import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildAppOptions } from '../../server/app.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { ContextStore } from '../../server/context/types.js';
import { PolicyHolder } from '../../server/policy-holder.js';

export interface TestApp {
  app: FastifyInstance;
  holder: PolicyHolder;
  store: ContextStore;
  close(): Promise<void>;
}

export async function makeApp(
  options: Partial<Omit<BuildAppOptions, 'policies' | 'store'>> & { dir?: string; store?: ContextStore; holder?: PolicyHolder } = {},
): Promise<TestApp> {
  const { dir, store: givenStore, holder: givenHolder, ...rest } = options;
  const holder = givenHolder ?? new PolicyHolder({ directory: dir ?? 'policies' });
  if (givenHolder === undefined) await holder.reload('start');
  const store = givenStore ?? createEmbeddedStore();
  const app = await buildApp({ policies: holder, store, logger: false, ...rest });
  await app.ready();
  return {
    app,
    holder,
    store,
    async close() {
      await app.close();
      await holder.close();
      if (givenStore === undefined) await store.close();
    },
  };
}

/** fraudbot's registered identity (what an admin puts in the registry). */
export const FRAUDBOT_ATTRIBUTES = {
  owner: 'risk-team',
  roles: ['fraud-detector'],
  model: { name: 'fraudnet', version: '2.4.1' },
  trust: 'verified',
};

/** A full request as a PEP would send it for an unregistered agent. */
export function fraudRequest(
  action: string,
  resource: { type: string; id: string; sensitivity: string },
  task: { kind?: string; flagged?: boolean } = {},
  agent: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    agent: { id: 'fraudbot-1', ...FRAUDBOT_ATTRIBUTES, confidence: 0.93, ...agent },
    action,
    resource,
    task: { kind: 'investigation', flagged: false, ...task },
  };
}

export const READ_TRANSACTIONS = fraudRequest('read', { type: 'transactions', id: 'tx-1', sensitivity: 'internal' });
export const FREEZE_991 = fraudRequest('freeze_account', { type: 'account', id: '991', sensitivity: 'confidential' }, { flagged: true });
