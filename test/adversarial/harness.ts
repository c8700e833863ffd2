// The adversarial suites' harness: a real `agp serve` child process on a free port (its own
// audit file, its log captured), raw bytes over a TCP socket (hostile sizes, slow clients,
// malformed framing), and the server's CPU time read from /proc, so a test can say "this
// request cost the server at most N ms of CPU" without timing anything on the test side.

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../cli/helpers.js';
import { freePort } from '../context/redis-helpers.js';

export { freePort, ROOT };

export interface ServeOptions {
  /** Added to the child's environment (over the harness defaults). */
  env?: NodeJS.ProcessEnv;
  /** The policy directory (default: a fresh scratch copy of the example `policies/`). */
  policies?: string;
  /** Extra `agp serve` arguments. */
  args?: string[];
  /** Watch the policy directory (default false: `--no-watch`). */
  watch?: boolean;
  /** Wait for `/readyz` to answer 200 (default true); false waits only for the port. */
  waitReady?: boolean;
}

export interface Served {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** The scratch directory holding the audit file (and the policy copy, if made). */
  dir: string;
  policies: string;
  auditFile: string;
  /** Everything the process wrote to stdout and stderr so far. */
  log(): string;
  /** The audit file's lines parsed (empty when it does not exist yet). */
  auditLines(): Record<string, unknown>[];
  /** Sends `signal` (default SIGTERM) and resolves with the exit code once it exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A scratch copy of the example policies (or of `from`) that a test may edit. */
export function policyCopy(from = join(ROOT, 'policies')): string {
  const dir = mkdtempSync(join(tmpdir(), 'agp-adv-policies-'));
  cpSync(from, dir, { recursive: true });
  return dir;
}

/**
 * Starts `node bin/agp.js serve` with the audit log on (a file in a scratch directory) and
 * logging at `info` unless `env` says otherwise.
 */
export async function serve(options: ServeOptions = {}): Promise<Served> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'agp-adv-'));
  const policies = options.policies ?? policyCopy();
  const auditFile = join(dir, 'audit.jsonl');
  const port = await freePort();
  const args = [join(ROOT, 'bin', 'agp.js'), 'serve', '--policies', policies, '--port', String(port), ...(options.watch === true ? [] : ['--no-watch']), ...(options.args ?? [])];
  let output = '';
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: { ...process.env, AGP_AUDIT: 'file', AGP_AUDIT_FILE: auditFile, AGP_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const served: Served = {
    child,
    pid: child.pid!,
    port,
    url,
    dir,
    policies,
    auditFile,
    log: () => output,
    auditLines: () =>
      existsSync(auditFile)
        ? readFileSync(auditFile, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [],
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (options.waitReady === false || res.status === 200) return served;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await served.stop('SIGKILL');
      throw new Error(`agp serve did not become ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes what `serve` and `policyCopy` made (call after `stop`). */
export function cleanup(served: Served): void {
  rmSync(served.dir, { recursive: true, force: true });
}

/** The CPU time (user + system) the process has used so far, in milliseconds (Linux /proc). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux this runs on
  return ((utime + stime) * 1000) / ticksPerSecond;
}

export interface RawResponse {
  /** Everything the server sent, as latin1 text (bytes preserved). */
  text: string;
  /** The first response's status, or 0 when none arrived. */
  status: number;
  headers: Record<string, string>;
  /** The first response's body (as sent: chunked framing is not undone). */
  body: string;
  /** The server closed the connection (rather than the timeout ending the wait). */
  closedByServer: boolean;
  ms: number;
}

function parseResponse(text: string): Pick<RawResponse, 'status' | 'headers' | 'body'> {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, headers, body: end < 0 ? '' : text.slice(end + 4) };
}

/**
 * Writes `bytes` on a fresh TCP connection and collects what comes back until the server
 * closes it or `timeoutMs` pass (default 10 s).
 */
export function rawRequest(port: number, bytes: string | Buffer, options: { timeoutMs?: number } = {}): Promise<RawResponse> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const socket: Socket = connect(port, '127.0.0.1');
    let settled = false;
    const finish = (closedByServer: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, ...parseResponse(text), closedByServer, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(bytes);
  });
}

/** An HTTP/1.1 request as bytes, with Content-Length for a body. */
export function httpRequest(method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Buffer {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const all: Record<string, string> = { host: '127.0.0.1', ...headers };
  if (body !== undefined && all['content-length'] === undefined) all['content-length'] = String(b.length);
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/**
 * A slow client: sends `bytes` one byte every `intervalMs` until the server closes the
 * connection or `maxMs` pass. Resolves with how long the connection stayed open and what
 * the server sent.
 */
export function trickle(port: number, bytes: string | Buffer, intervalMs: number, maxMs: number): Promise<RawResponse> {
  const data = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    let i = 0;
    let settled = false;
    const finish = (closedByServer: boolean): void => {
      if (settled) return;
      settled = true;
      clearInterval(tick);
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, ...parseResponse(text), closedByServer, ms: Date.now() - started });
    };
    const tick = setInterval(() => {
      if (i < data.length && !socket.destroyed) socket.write(data.subarray(i, ++i));
    }, intervalMs);
    const timer = setTimeout(() => finish(false), maxMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}
