// Helpers for tests that run AGP as real processes: free ports, `agp serve` children with
// their own environment, JSON calls over HTTP (free ports and private redis-servers come
// from test/context/redis-helpers.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../cli/helpers.js';
import { freePort } from '../context/redis-helpers.js';

export { freePort, startRedis } from '../context/redis-helpers.js';

export interface AgpProcess { child: ChildProcess; url: string; log: string[] }

/** Starts `agp serve` on the example policies with `env` added; resolves once /readyz answers 200. */
export async function startAgp(env: NodeJS.ProcessEnv): Promise<AgpProcess> {
  const port = await freePort();
  const log: string[] = [];
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'agp.js'), 'serve', '--policies', join(ROOT, 'policies'), '--port', String(port), '--no-watch'], {
    cwd: ROOT,
    env: { ...process.env, AGP_AUDIT: 'none', AGP_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { child, url, log };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`agp serve did not become ready:\n${log.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function stopProcess(child: ChildProcess | undefined | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function call(p: AgpProcess, method: string, path: string, key: string | null, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const headers: Record<string, string> = {};
  if (key !== null) headers['authorization'] = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${p.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: res.status, json, text };
}

