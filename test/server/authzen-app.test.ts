// The AuthZEN endpoints as the service serves them: registered by buildApp over the example
// AuthZEN policy set, behind the PEP keys, audited into a real hash-chained log.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLog, verifyAuditFile, type AuditLog } from '../../server/audit.js';
import { makeApp, type TestApp } from './helpers.js';

const PEP = { authorization: 'Bearer pep-key-authzen', 'content-type': 'application/json' };
const ADMIN = { authorization: 'Bearer admin-key-authzen', 'content-type': 'application/json' };

let t: TestApp;
let audit: AuditLog;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agp-authzen-app-'));
  audit = createAuditLog({ sink: 'file', file: join(dir, 'audit.jsonl') });
  t = await makeApp({ dir: 'examples/authzen', apiKeys: ['pep-key-authzen'], adminKey: 'admin-key-authzen', audit });
  // Registered through the admin API: the registry then supplies the roles.
  for (const [id, roles] of [['alice', ['viewer']], ['bob', []], ['erin', ['steward', 'editor']]] as const) {
    const res = await t.app.inject({ method: 'PUT', url: `/v1/admin/agents/${id}`, headers: ADMIN, payload: { attributes: { roles } } });
    expect(res.statusCode).toBeLessThan(300);
  }
});

afterAll(async () => {
  await t.close();
  await audit.close();
  rmSync(dir, { recursive: true, force: true });
});

const ROADMAP = { type: 'document', id: 'roadmap', properties: { owner: 'bob', sensitivity: 'internal' } };

describe('AuthZEN in the service', () => {
  it('publishes its metadata without a credential', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration', headers: { host: 'pdp.internal:8181' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ policy_decision_point: 'http://pdp.internal:8181', access_evaluation_endpoint: 'http://pdp.internal:8181/access/v1/evaluation' });
  });

  it('requires the PEP key on every POST endpoint', async () => {
    for (const url of ['/access/v1/evaluation', '/access/v1/evaluations', '/access/v1/search/subject', '/access/v1/search/resource', '/access/v1/search/action']) {
      const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: {} });
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('decides for registered subjects with their registered roles, which the request cannot raise', async () => {
    const read = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: { ...PEP, 'x-request-id': 'az-1' }, payload: { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: ROADMAP } });
    expect(read.statusCode).toBe(200);
    expect(read.body).toBe('{"decision":true}');
    expect(read.headers['x-request-id']).toBe('az-1');
    // alice claims `editor`; the registry says viewer: no write.
    const write = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: PEP, payload: { subject: { type: 'user', id: 'alice', properties: { roles: ['editor'] } }, action: { name: 'can_write' }, resource: ROADMAP } });
    expect(write.json()).toEqual({ decision: false });
  });

  it('keeps AuthZEN error semantics inside the app: 400 for a wrong content type or bad JSON', async () => {
    const text = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: { authorization: PEP.authorization, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(400);
    const xml = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: { authorization: PEP.authorization, 'content-type': 'application/xml' }, payload: '<a/>' });
    expect(xml.statusCode).toBe(400);
    const bad = await t.app.inject({ method: 'POST', url: '/access/v1/evaluation', headers: PEP, payload: '{"subject":' });
    expect(bad.statusCode).toBe(400);
    // The native API keeps its own 415.
    const native = await t.app.inject({ method: 'POST', url: '/v1/decide', headers: { authorization: PEP.authorization, 'content-type': 'application/xml' }, payload: '<a/>' });
    expect(native.statusCode).toBe(415);
  });

  it('searches over the registered agents and the actions the policies name', async () => {
    const subjects = await t.app.inject({ method: 'POST', url: '/access/v1/search/subject', headers: PEP, payload: { subject: { type: 'agent' }, action: { name: 'can_write' }, resource: ROADMAP } });
    expect(subjects.json()).toEqual({ results: [{ type: 'agent', id: 'bob' }, { type: 'agent', id: 'erin' }] });
    const actions = await t.app.inject({ method: 'POST', url: '/access/v1/search/action', headers: PEP, payload: { subject: { type: 'agent', id: 'bob' }, resource: ROADMAP } });
    expect(actions.json()).toEqual({ results: [{ name: 'can_delete' }, { name: 'can_read' }, { name: 'can_share' }, { name: 'can_write' }] });
  });

  it('writes every AuthZEN decision to the hash-chained audit log', async () => {
    await t.app.inject({
      method: 'POST',
      url: '/access/v1/evaluations',
      headers: { ...PEP, 'x-request-id': 'az-batch' },
      payload: { subject: { type: 'user', id: 'erin' }, resource: ROADMAP, evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_delete' } }] },
    });
    await audit.flush();
    const lines = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    const batch = lines.filter((l) => l.request_id === 'az-batch');
    expect(batch.map((l) => [l.kind, l.agent, l.action, l.effect, l.api])).toEqual([
      ['decision', 'erin', 'can_read', 'permit', 'authzen'],
      ['decision', 'erin', 'can_delete', 'deny', 'authzen'],
    ]);
    expect(lines.some((l) => l.kind === 'admin' && l.operation === 'agent.create' && l.target === 'alice')).toBe(true);
    expect(JSON.stringify(lines)).not.toContain('pep-key-authzen');
    expect(await verifyAuditFile(join(dir, 'audit.jsonl'))).toMatchObject({ ok: true });
  });
});
