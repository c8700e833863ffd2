// The service entry point: configuration errors, the loopback-only rule without keys,
// SIGHUP reload, and graceful shutdown that finishes in-flight requests and flushes audit.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { AgentContext, ContextStore } from '../../server/context/types.js';
import { isLoopback, loadConfig, type ServerConfig } from '../../server/config.js';
import { serve, start } from '../../server/main.js';
import { READ_TRANSACTIONS } from './helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'agp-main-'));
  dirs.push(d);
  return d;
}

function config(over: Partial<ServerConfig> = {}): ServerConfig {
  const r = loadConfig({}, {});
  if (!r.ok) throw new Error(r.errors.join('; '));
  return { ...r.config, port: 0, audit: 'none', logLevel: 'silent', watch: false, ...over };
}

describe('configuration', () => {
  it('has documented defaults', () => {
    const r = loadConfig({}, {});
    expect(r).toMatchObject({ ok: true, config: { host: '127.0.0.1', port: 8181, policies: 'policies', apiKeys: [], requireRegisteredAgents: false, bodyLimit: 1048576, maxBatch: 1000, audit: 'file' } });
    const redis = loadConfig({}, { AGP_REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(redis.ok && redis.config.requireRegisteredAgents).toBe(true);
  });

  it('reads flags over environment', () => {
    const r = loadConfig({ port: '9000', host: '::1' }, { AGP_PORT: '8000', AGP_API_KEYS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb', AGP_WATCH: 'off' });
    expect(r).toMatchObject({ ok: true, config: { port: 9000, host: '::1', apiKeys: ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'], watch: false } });
  });

  it('reports each bad value on one line, never echoing a secret', () => {
    const r = loadConfig({}, { AGP_PORT: 'http', AGP_LOG_LEVEL: 'loud', AGP_API_KEYS: 'short', AGP_REDIS_URL: 'mysql://x' });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toEqual([
      'AGP_PORT: expected an integer 0..65535, got `http`',
      'AGP_API_KEYS: expected a comma-separated list of keys of at least 16 characters',
      'AGP_REDIS_URL: expected a redis:// or rediss:// URL, got `mysql://x`',
      'AGP_LOG_LEVEL: expected one of fatal|error|warn|info|debug|trace|silent, got `loud`',
    ]);
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.1.2.3']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'agp.example.com']) expect(isLoopback(h), h).toBe(false);
  });
});

describe('agp serve', () => {
  it('refuses a non-loopback host without keys (exit 2)', async () => {
    const out: string[] = [];
    const code = await serve(['--host', '0.0.0.0', '--port', '0'], { err: (s) => void out.push(s) }, { env: {} });
    expect(code).toBe(2);
    expect(out.join('')).toBe('agp serve: refusing to listen on `0.0.0.0` without credentials: set AGP_API_KEYS and AGP_ADMIN_KEY, or listen on 127.0.0.1\n');
  });

  it('exits 2 with one line per bad setting or flag', async () => {
    const out: string[] = [];
    expect(await serve(['--port', 'x'], { err: (s) => void out.push(s) }, { env: {} })).toBe(2);
    expect(out).toEqual(['agp serve: --port: expected an integer 0..65535, got `x`\n']);
    const out2: string[] = [];
    expect(await serve(['--bogus'], { err: (s) => void out2.push(s) }, { env: {} })).toBe(2);
    expect(out2[0]).toMatch(/^agp serve: unknown option '--bogus'/);
    const out3: string[] = [];
    expect(await serve([], { err: (s) => void out3.push(s) }, { env: { AGP_ANOMALY_DENY_RATIO: '2' } })).toBe(2);
    expect(out3).toEqual(['agp serve: invalid `AGP_ANOMALY_DENY_RATIO`: `2` is not a ratio from 0 to 1\n']);
  });

  it('serves a non-loopback host when keys are configured', async () => {
    const s = await start(config({ host: '0.0.0.0', apiKeys: ['pep-key-0123456789abcdef'] }), { env: { AGP_KEY_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64') } });
    try {
      const port = new URL(s.url).port;
      const r = await fetch(`http://127.0.0.1:${port}/v1/decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(READ_TRANSACTIONS) });
      expect(r.status).toBe(401);
    } finally {
      await s.close();
    }
  });

  it('requires the key encryption key off loopback (exit 2)', async () => {
    const out: string[] = [];
    const code = await serve(['--host', '0.0.0.0', '--port', '0'], { err: (s) => void out.push(s) }, { env: { AGP_API_KEYS: 'pep-key-0123456789abcdef' } });
    expect(code).toBe(2);
    expect(out.join('')).toMatch(/^agp serve: AGP_KEY_ENCRYPTION_KEY: no key encryption key is set/);
  });

  it('takes the agent from a verified AGP-Agent-Token on /v1/decide', async () => {
    const s = await start(config());
    try {
      const { token } = await s.identity.tokens.issue({ subject: 'fraudbot-1', agent: 'fraudbot-1', clientId: 'fraudbot-1', audience: [s.identity.tokens.issuer], scope: [], ttlS: 60 });
      const call = (headers: Record<string, string>) =>
        fetch(`${s.url}/v1/decide`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ ...READ_TRANSACTIONS, agent: { ...(READ_TRANSACTIONS['agent'] as object), id: 'someone-else' } }),
        });
      // The body names `someone-else` (unregistered: decided from the request, a permit);
      // the token's agent is deactivated, so a deny shows whose decision it was.
      expect(((await (await call({})).json()) as { decision: string }).decision).toBe('permit');
      await s.store.putAgent('fraudbot-1', {}, Date.now());
      await s.store.setAgentActive('fraudbot-1', false, Date.now());
      const ok = await call({ 'agp-agent-token': token });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ decision: 'deny', reasons: ['agent deactivated'] });
      const bad = await call({ 'agp-agent-token': `${token.slice(0, -4)}AAAA` });
      expect(bad.status).toBe(401);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_agent_token');
    } finally {
      await s.close();
    }
  });

  it('reloads on SIGHUP', async () => {
    const d = tmp();
    cpSync('policies', d, { recursive: true, filter: (src) => !src.endsWith('.test.agp') && !src.includes('authzen') });
    const s = await start(config({ policies: d }));
    try {
      const before = s.policies.current?.revision;
      expect(before).toBeDefined();
      writeFileSync(join(d, 'fraud.agp'), `${readFileSync(join(d, 'fraud.agp'), 'utf8')}\n// sighup\n`);
      const reloaded = new Promise<string | undefined>((res) => s.policies.onReload((r) => res(r.revision)));
      process.emit('SIGHUP', 'SIGHUP');
      const after = await reloaded;
      expect(after).not.toBe(before);
      expect(s.policies.current?.revision).toBe(after);
    } finally {
      await s.close();
    }
  });

  it('sends behaviour anomalies to the audit log and to /metrics, with thresholds from the environment', async () => {
    const d = tmp();
    const auditFile = join(d, 'audit.jsonl');
    const s = await start(config({ audit: 'file', auditFile }), { env: { AGP_ANOMALY_DENY_RATIO: '0.8' } });
    try {
      const agent = READ_TRANSACTIONS['agent'] as Record<string, unknown>;
      // An action no policy allows: every decision is a deny; the 10th fills the window.
      const deny = { ...READ_TRANSACTIONS, agent: { ...agent, id: 'denied-bot' }, action: 'drop_everything' };
      for (let i = 0; i < 12; i++) {
        const r = await fetch(`${s.url}/v1/decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(deny) });
        expect((await r.json()) as { decision: string }).toMatchObject({ decision: 'deny' });
      }
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^agp_anomalies_total\{kind="deny_ratio"\} 1$/m);
    } finally {
      await s.close();
    }
    const anomalies = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['kind'] === 'anomaly');
    expect(anomalies).toEqual([expect.objectContaining({ agent: 'denied-bot', anomaly: 'deny_ratio', value: 1, threshold: 0.8 })]);
  });

  it('finishes in-flight requests and flushes the audit log on shutdown', async () => {
    const d = tmp();
    const auditFile = join(d, 'audit', 'audit.jsonl');
    const inner = createEmbeddedStore();
    // Lookups of `slow-*` agents take 300 ms: the requests are in flight when the close begins.
    const store: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
      agentContext: (id: string, now: number): Promise<AgentContext> => new Promise((res) => setTimeout(() => res(inner.agentContext(id, now) as AgentContext), 300)),
      close: () => inner.close(),
    });
    const s = await start(config({ audit: 'file', auditFile }), { store });
    const agent = (READ_TRANSACTIONS['agent'] as Record<string, unknown>);
    const inflight = Array.from({ length: 10 }, (_, i) =>
      fetch(`${s.url}/v1/decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...READ_TRANSACTIONS, agent: { ...agent, id: `slow-${i}` } }) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { decision?: string } }),
        (e: unknown) => ({ status: 0, body: { decision: `failed: ${String(e)}` } }),
      ),
    );
    let received = 0;
    s.app.server.on('request', () => void received++);
    const until = Date.now() + 5000;
    while (received < 10 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(received).toBe(10);
    await s.close();
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(answers.every((a) => a.body.decision === 'permit')).toBe(true);
    const lines = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; agent?: string });
    expect(lines.filter((l) => l.kind === 'decision' && l.agent?.startsWith('slow-')).length).toBe(10);
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});
