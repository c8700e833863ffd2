import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { readPolicySources } from '../../server/policy-files.js';
import { loadPolicySet } from '../../engine/load.js';
import type { PolicySet } from '../../engine/decision.js';
import { createDecider, type Decider } from '../../server/decider.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { ContextStore } from '../../server/context/types.js';
import type { AuditEntry } from '../../server/audit.js';
import { createAuth } from '../../server/auth.js';
import { authzenRoutes, storeCatalog, type AuthzenCatalog, type AuthzenRoutesOptions } from '../../server/routes/authzen.js';

// The example AuthZEN policy set (examples/authzen) behind the real decision pipeline.
let policySet: PolicySet;
let store: ContextStore;
const audit: AuditEntry[] = [];

beforeAll(async () => {
  const read = await readPolicySources(['examples/authzen'], { includeTests: false });
  const loaded = loadPolicySet(read.sources);
  if (loaded.policySet === undefined) throw new Error(JSON.stringify(loaded.diagnostics));
  policySet = loaded.policySet;
  store = createEmbeddedStore();
  const now = Date.now();
  // Registered subjects: the registry supplies their roles (and wins over the request).
  await store.putAgent('alice', { roles: ['viewer'] }, now);
  await store.putAgent('bob', { roles: [] }, now);
  await store.putAgent('erin', { roles: ['steward', 'editor'] }, now);
  await store.putAgent('summarizer-1', { roles: ['viewer'], type: 'agent' }, now);
});

afterAll(async () => {
  await store.close();
});

const DOCS = {
  roadmap: { owner: 'bob', sensitivity: 'internal' },
  minutes: { owner: 'carol', sensitivity: 'confidential' },
  memo: { owner: 'bob', sensitivity: 'public' },
} as const;

const CATALOG: AuthzenCatalog = {
  subjects: [
    { type: 'user', id: 'alice' },
    { type: 'user', id: 'bob' },
    { type: 'user', id: 'erin' },
    { type: 'agent', id: 'summarizer-1' },
  ],
  resources: [
    { type: 'document', id: 'roadmap', properties: DOCS.roadmap },
    { type: 'document', id: 'minutes', properties: DOCS.minutes },
    { type: 'document', id: 'memo', properties: DOCS.memo },
    { type: 'record', id: 'patient-7', properties: { owner: 'dave', sensitivity: 'restricted' } },
  ],
  actions: ['can_read', 'can_write', 'can_delete', 'can_share'],
};

function decider(policies: { current: PolicySet | undefined } = { current: policySet }): Decider {
  return createDecider({
    policies,
    store,
    audit: { write: (e) => audit.push(e) },
    requireRegisteredAgents: false,
  });
}

async function makeApp(options: Partial<AuthzenRoutesOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  await app.register(authzenRoutes, { decider: decider(), catalog: () => CATALOG, ...options });
  await app.ready();
  return app;
}

function doc(id: keyof typeof DOCS) {
  return { type: 'document', id, properties: DOCS[id] };
}

async function post(app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.statusCode, body: res.json(), text: res.body, headers: res.headers };
}

describe('AuthZEN metadata', () => {
  it('publishes absolute endpoint URLs from the request host', async () => {
    const app = await makeApp();
    const res = await app.inject({ method: 'GET', url: '/.well-known/authzen-configuration', headers: { host: 'pdp.example.com:8443', 'x-forwarded-proto': 'https' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      policy_decision_point: 'https://pdp.example.com:8443',
      access_evaluation_endpoint: 'https://pdp.example.com:8443/access/v1/evaluation',
      access_evaluations_endpoint: 'https://pdp.example.com:8443/access/v1/evaluations',
      search_subject_endpoint: 'https://pdp.example.com:8443/access/v1/search/subject',
      search_resource_endpoint: 'https://pdp.example.com:8443/access/v1/search/resource',
      search_action_endpoint: 'https://pdp.example.com:8443/access/v1/search/action',
      capabilities: [],
    });
    // A hostile Host header does not end up in the document.
    const evil = await app.inject({ method: 'GET', url: '/.well-known/authzen-configuration', headers: { host: 'evil.com/<script>' } });
    expect(evil.json().policy_decision_point).toBe('http://localhost');
    await app.close();
  });

  it('uses the configured base URL when given', async () => {
    const app = await makeApp({ baseUrl: () => 'https://authz.corp.example/' });
    const res = await app.inject({ method: 'GET', url: '/.well-known/authzen-configuration' });
    expect(res.json().policy_decision_point).toBe('https://authz.corp.example');
    expect(res.json().access_evaluation_endpoint).toBe('https://authz.corp.example/access/v1/evaluation');
    await app.close();
  });
});

describe('AuthZEN access evaluation', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp();
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers a permit with exactly {"decision": true}', async () => {
    const r = await post(app, '/access/v1/evaluation', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap') });
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"decision":true}');
  });

  it('answers a deny with exactly {"decision": false} and a 200', async () => {
    const r = await post(app, '/access/v1/evaluation', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_write' }, resource: doc('roadmap') });
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"decision":false}');
  });

  it('maps subject properties, resource properties and context onto agent, resource and task', async () => {
    // An unregistered agent: its roles come from subject.properties; it acts for carol.
    const body = {
      subject: { type: 'agent', id: 'helper-9', properties: { roles: ['viewer'] } },
      action: { name: 'can_read', properties: { method: 'GET' } },
      resource: doc('minutes'),
      context: { on_behalf_of: 'carol', unknown_field: 1 },
      unknown_top_level: true,
    };
    const r = await post(app, '/access/v1/evaluation', body, { 'agp-include-context': 'true' });
    expect(r.status).toBe(200);
    expect(r.body.decision).toBe(true);
    // confidential 40, reading adds nothing, acting for the owner: no `unattended` risk.
    expect(r.body.context).toMatchObject({ effect: 'permit', risk: 40, policies: ['read_documents'], obligations: { ttl_s: 900 } });
    // Without the delegation the agent (subject.type "agent") is unattended: a steward must approve.
    const alone = await post(app, '/access/v1/evaluation', { ...body, context: {} }, { 'agp-include-context': 'true' });
    expect(alone.body).toMatchObject({ decision: false, context: { effect: 'escalate', risk: 55, obligations: { approver: 'data-stewards' } } });
    // The same subject as a user is not unattended.
    const user = await post(app, '/access/v1/evaluation', { ...body, subject: { ...body.subject, type: 'user' }, context: {} });
    expect(user.body).toEqual({ decision: true });
  });

  it('adds reasons, risk and obligations only when asked, in the request context or a header', async () => {
    const body = { subject: { type: 'user', id: 'bob' }, action: { name: 'can_delete' }, resource: { ...doc('minutes'), properties: { owner: 'bob', sensitivity: 'confidential' } } };
    const plain = await post(app, '/access/v1/evaluation', body);
    expect(plain.body).toEqual({ decision: false });
    const asked = await post(app, '/access/v1/evaluation', { ...body, context: { agp_include_context: true } });
    expect(asked.body.decision).toBe(false);
    expect(asked.body.context).toMatchObject({
      effect: 'deny',
      policies: ['delete_documents'],
      reasons: ['confidential documents are archived, not deleted'],
      reason_user: { en: 'confidential documents are archived, not deleted' },
      reason_admin: { en: 'delete_documents: confidential documents are archived, not deleted' },
      revision: policySet.revision,
    });
    expect(asked.body.context.id).toMatch(/^[0-9A-Z]{26}$/);
    expect(asked.body.context.explanation).toBeUndefined();
    const explained = await post(app, '/access/v1/evaluation', { ...body, context: { agp_explain: true } });
    expect(explained.body.context.explanation.find((p: { policy: string }) => p.policy === 'delete_documents')).toMatchObject({ target: true, when: true, effect: 'deny' });
    const header = await post(app, '/access/v1/evaluation', body, { 'AGP-Include-Context': 'true' });
    expect(header.body.context.effect).toBe('deny');
  });

  it('answers a request the policy schema rejects with a deny, the error only when asked', async () => {
    // resource.owner is required by the example schema.
    const body = { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: { type: 'document', id: 'x', properties: { sensitivity: 'public' } } };
    const plain = await post(app, '/access/v1/evaluation', body);
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual({ decision: false });
    const asked = await post(app, '/access/v1/evaluation', body, { 'agp-include-context': 'true' });
    expect(asked.body).toMatchObject({ decision: false, context: { error: { status: 400, code: 'invalid_request', issues: [{ path: 'resource.owner' }] } } });
  });

  it.each([
    ['a missing subject', { action: { name: 'can_read' }, resource: doc('roadmap') }, 'subject'],
    ['a numeric subject id', { subject: { type: 'user', id: 7 }, action: { name: 'can_read' }, resource: doc('roadmap') }, 'subject.id'],
    ['a missing subject type', { subject: { id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap') }, 'subject.type'],
    ['a missing action name', { subject: { type: 'user', id: 'alice' }, action: {}, resource: doc('roadmap') }, 'action.name'],
    ['a string action', { subject: { type: 'user', id: 'alice' }, action: 'can_read', resource: doc('roadmap') }, 'action'],
    ['a missing resource id', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: { type: 'document' } }, 'resource.id'],
    ['non-object properties', { subject: { type: 'user', id: 'alice', properties: [1] }, action: { name: 'can_read' }, resource: doc('roadmap') }, 'subject.properties'],
    ['a non-object context', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap'), context: 'x' }, 'context'],
  ])('answers 400 for %s, naming the field', async (_name, body, path) => {
    const r = await post(app, '/access/v1/evaluation', body);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_request');
    expect(r.body.error.issues.map((i: { path: string }) => i.path)).toContain(path);
  });

  it('answers 400 for malformed JSON, a wrong content type and a non-object body', async () => {
    const bad = await app.inject({ method: 'POST', url: '/access/v1/evaluation', payload: '{"subject": ', headers: { 'content-type': 'application/json' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/not valid JSON/);
    const text = await app.inject({ method: 'POST', url: '/access/v1/evaluation', payload: 'subject=alice', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(400);
    expect(text.json().error.message).toMatch(/Content-Type/);
    const form = await app.inject({ method: 'POST', url: '/access/v1/evaluation', payload: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.statusCode).toBe(400);
    const none = await app.inject({ method: 'POST', url: '/access/v1/evaluation' });
    expect(none.statusCode).toBe(400);
    const arr = await post(app, '/access/v1/evaluation', [1, 2]);
    expect(arr.status).toBe(400);
    const poisoned = await app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      payload: '{"subject":{"type":"user","id":"alice","properties":{"__proto__":{"roles":["editor"]}}},"action":{"name":"can_write"},"resource":{"type":"document","id":"roadmap","properties":{"owner":"bob","sensitivity":"internal"}}}',
      headers: { 'content-type': 'application/json' },
    });
    expect(poisoned.statusCode).toBe(400);
  });

  it('echoes X-Request-ID, on success and on error', async () => {
    const ok = await post(app, '/access/v1/evaluation', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap') }, { 'x-request-id': 'req-42/abc' });
    expect(ok.headers['x-request-id']).toBe('req-42/abc');
    const bad = await post(app, '/access/v1/evaluation', {}, { 'x-request-id': 'req-43' });
    expect(bad.status).toBe(400);
    expect(bad.headers['x-request-id']).toBe('req-43');
    const meta = await app.inject({ method: 'GET', url: '/.well-known/authzen-configuration', headers: { 'x-request-id': 'req-44' } });
    expect(meta.headers['x-request-id']).toBe('req-44');
  });

  it('audits each decision with the AuthZEN api, the request id and the incoming trace id', async () => {
    audit.length = 0;
    await post(
      app,
      '/access/v1/evaluation',
      { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap'), context: { on_behalf_of: 'bob' } },
      { 'x-request-id': 'req-audit', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      kind: 'decision',
      agent: 'alice',
      on_behalf_of: 'bob',
      action: 'can_read',
      resource: { type: 'document', id: 'roadmap' },
      effect: 'permit',
      request_id: 'req-audit',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      api: 'authzen',
    });
  });
});

describe('AuthZEN access evaluations', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({ maxBatch: 10 });
  });
  afterAll(async () => {
    await app.close();
  });
  const E = '/access/v1/evaluations';
  const alice = { type: 'user', id: 'alice' };

  it('applies top-level defaults and per-item overrides, answering in order', async () => {
    const r = await post(app, E, {
      subject: alice,
      resource: doc('roadmap'),
      evaluations: [
        { action: { name: 'can_read' } },
        { action: { name: 'can_write' } },
        { action: { name: 'can_write' }, subject: { type: 'user', id: 'bob' } },
        { action: { name: 'can_read' }, resource: doc('minutes') },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: true }, { decision: true }] });
  });

  it('an overriding key replaces the default object whole (no merging inside it)', async () => {
    const r = await post(app, E, {
      subject: alice,
      action: { name: 'can_read' },
      resource: doc('roadmap'),
      evaluations: [
        {},
        // Only type and id: the default's properties (owner, sensitivity) are not merged in.
        { resource: { type: 'document', id: 'roadmap' } },
        { subject: { type: 'user', id: 'helper', properties: { roles: ['viewer'] } } },
        { subject: { type: 'user', id: 'helper' } },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.evaluations[0]).toEqual({ decision: true });
    expect(r.body.evaluations[1]).toMatchObject({ decision: false, context: { error: { code: 'invalid_request' } } });
    expect(r.body.evaluations[1].context.error.issues.map((i: { path: string }) => i.path)).toEqual(expect.arrayContaining(['resource.owner', 'resource.sensitivity']));
    expect(r.body.evaluations[2]).toEqual({ decision: true });
    // Same id without properties: no roles, since the overriding subject is taken whole.
    expect(r.body.evaluations[3]).toMatchObject({ decision: false, context: { error: { issues: [{ path: 'agent.roles' }] } } });
  });

  it('execute_all: an item missing a field is a deny with an error context; the call is a 200', async () => {
    const r = await post(app, E, {
      subject: alice,
      resource: doc('roadmap'),
      options: { evaluations_semantic: 'execute_all' },
      evaluations: [{ action: { name: 'can_read' } }, {}, { action: { name: 'can_read' }, resource: { type: 'document' } }, 'junk', { action: { name: 'can_read' } }],
    });
    expect(r.status).toBe(200);
    const ev = r.body.evaluations;
    expect(ev).toHaveLength(5);
    expect(ev[0]).toEqual({ decision: true });
    expect(ev[1]).toMatchObject({ decision: false, context: { error: { status: 400, issues: [{ path: 'evaluations[1].action' }] } } });
    expect(ev[2]).toMatchObject({ decision: false, context: { error: { issues: [{ path: 'evaluations[2].resource.id' }] } } });
    expect(ev[3]).toMatchObject({ decision: false, context: { error: { issues: [{ path: 'evaluations[3]' }] } } });
    expect(ev[4]).toEqual({ decision: true });
  });

  it('deny_on_first_deny stops after the first deny, including it', async () => {
    audit.length = 0;
    const r = await post(app, E, {
      subject: alice,
      resource: doc('roadmap'),
      options: { evaluations_semantic: 'deny_on_first_deny' },
      evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_write' } }, { action: { name: 'can_read' } }],
    });
    expect(r.body).toEqual({ evaluations: [{ decision: true }, { decision: false }] });
    // The third was never evaluated: nothing decided, nothing audited.
    expect(audit.map((e) => (e.kind === 'decision' ? e.action : null))).toEqual(['can_read', 'can_write']);
    const allPermit = await post(app, E, { subject: alice, resource: doc('roadmap'), options: { evaluations_semantic: 'deny_on_first_deny' }, evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_read' } }] });
    expect(allPermit.body).toEqual({ evaluations: [{ decision: true }, { decision: true }] });
  });

  it('permit_on_first_permit stops after the first permit, including it', async () => {
    const r = await post(app, E, {
      subject: alice,
      resource: doc('roadmap'),
      options: { evaluations_semantic: 'permit_on_first_permit' },
      evaluations: [{ action: { name: 'can_delete' } }, { action: { name: 'can_write' } }, { action: { name: 'can_read' } }, { action: { name: 'can_share' } }],
    });
    expect(r.body).toEqual({ evaluations: [{ decision: false }, { decision: false }, { decision: true }] });
    // A failing item counts as a deny and does not stop permit_on_first_permit.
    const withError = await post(app, E, { subject: alice, resource: doc('roadmap'), options: { evaluations_semantic: 'permit_on_first_permit' }, evaluations: [{}, { action: { name: 'can_read' } }] });
    expect(withError.body.evaluations).toHaveLength(2);
    expect(withError.body.evaluations[0]).toMatchObject({ decision: false, context: { error: {} } });
    expect(withError.body.evaluations[1]).toEqual({ decision: true });
  });

  it('with no or an empty evaluations array answers like a single evaluation', async () => {
    const base = { subject: alice, action: { name: 'can_read' }, resource: doc('roadmap') };
    expect((await post(app, E, base)).text).toBe('{"decision":true}');
    expect((await post(app, E, { ...base, evaluations: [] })).text).toBe('{"decision":true}');
    expect((await post(app, E, { ...base, action: { name: 'can_write' }, evaluations: [] })).text).toBe('{"decision":false}');
    // ... including its 400 for missing fields.
    const missing = await post(app, E, { subject: alice, evaluations: [] });
    expect(missing.status).toBe(400);
  });

  it('includes the decision context per item only when asked', async () => {
    const r = await post(
      app,
      E,
      { subject: alice, resource: doc('roadmap'), evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_write' }, context: { agp_include_context: true } }] },
    );
    expect(r.body.evaluations[0]).toEqual({ decision: true });
    expect(r.body.evaluations[1]).toMatchObject({ decision: false, context: { effect: 'deny', reasons: ['no policy applies'] } });
    const all = await post(app, E, { subject: alice, resource: doc('roadmap'), evaluations: [{ action: { name: 'can_read' } }] }, { 'agp-include-context': 'true' });
    expect(all.body.evaluations[0].context).toMatchObject({ effect: 'permit', risk: 10 });
  });

  it.each([
    [{ options: { evaluations_semantic: 'first_match' } }, 'options.evaluations_semantic'],
    [{ options: 'execute_all' }, 'options'],
    [{ evaluations: { action: { name: 'can_read' } } }, 'evaluations'],
    [{ subject: 'alice', evaluations: [{ action: { name: 'can_read' } }] }, 'subject'],
  ])('answers 400 for a malformed call (%j)', async (extra, path) => {
    const r = await post(app, E, { subject: alice, resource: doc('roadmap'), action: { name: 'can_read' }, evaluations: [{}], ...extra });
    expect(r.status).toBe(400);
    expect(r.body.error.issues.map((i: { path: string }) => i.path)).toContain(path);
  });

  it('refuses more evaluations than the configured maximum', async () => {
    const r = await post(app, E, { subject: alice, resource: doc('roadmap'), evaluations: Array.from({ length: 11 }, () => ({ action: { name: 'can_read' } })) });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('batch_too_large');
  });

  it('echoes X-Request-ID', async () => {
    const r = await post(app, E, { subject: alice, resource: doc('roadmap'), evaluations: [{ action: { name: 'can_read' } }] }, { 'x-request-id': 'batch-7' });
    expect(r.headers['x-request-id']).toBe('batch-7');
  });
});

describe('AuthZEN search', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({ maxPageSize: 50 });
  });
  afterAll(async () => {
    await app.close();
  });

  it('subject search: the subjects of a type that may do the action on the resource', async () => {
    const r = await post(app, '/access/v1/search/subject', { subject: { type: 'user', id: 'ignored' }, action: { name: 'can_read' }, resource: doc('roadmap') });
    expect(r.status).toBe(200);
    // alice (viewer), bob (owner), erin (steward+editor); the agent is another type.
    expect(r.body).toEqual({ results: [{ type: 'user', id: 'alice' }, { type: 'user', id: 'bob' }, { type: 'user', id: 'erin' }] });
    const writers = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_write' }, resource: doc('roadmap') });
    expect(writers.body.results).toEqual([{ type: 'user', id: 'bob' }, { type: 'user', id: 'erin' }]);
    const agents = await post(app, '/access/v1/search/subject', { subject: { type: 'agent' }, action: { name: 'can_read' }, resource: doc('roadmap') });
    expect(agents.body.results).toEqual([{ type: 'agent', id: 'summarizer-1' }]);
  });

  it('resource search: the resources of a type the subject may act on', async () => {
    const r = await post(app, '/access/v1/search/resource', { subject: { type: 'user', id: 'bob' }, action: { name: 'can_delete' }, resource: { type: 'document' } });
    expect(r.body).toEqual({ results: [{ type: 'document', id: 'roadmap' }, { type: 'document', id: 'memo' }] });
    const records = await post(app, '/access/v1/search/resource', { subject: { type: 'user', id: 'erin' }, action: { name: 'can_read' }, resource: { type: 'record', id: 'x' } });
    // A restricted record: a steward's read has risk 70, so it needs approval, not a permit.
    expect(records.body).toEqual({ results: [] });
  });

  it('action search: the actions the subject may take on the resource', async () => {
    const r = await post(app, '/access/v1/search/action', { subject: { type: 'user', id: 'bob' }, resource: doc('roadmap') });
    expect(r.body).toEqual({ results: [{ name: 'can_read' }, { name: 'can_write' }, { name: 'can_delete' }, { name: 'can_share' }] });
    const alice = await post(app, '/access/v1/search/action', { subject: { type: 'user', id: 'alice' }, action: { name: 'ignored' }, resource: doc('roadmap') });
    expect(alice.body).toEqual({ results: [{ name: 'can_read' }] });
  });

  it('unknown types or ids give an empty result', async () => {
    expect((await post(app, '/access/v1/search/subject', { subject: { type: 'robot' }, action: { name: 'can_read' }, resource: doc('roadmap') })).body).toEqual({ results: [] });
    expect((await post(app, '/access/v1/search/resource', { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: { type: 'spreadsheet' } })).body).toEqual({ results: [] });
    expect((await post(app, '/access/v1/search/action', { subject: { type: 'user', id: 'nobody' }, resource: doc('roadmap') })).body).toEqual({ results: [] });
  });

  it('pages with opaque tokens', async () => {
    const first = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read' }, resource: doc('roadmap'), page: { limit: 2 } });
    expect(first.body.results).toEqual([{ type: 'user', id: 'alice' }, { type: 'user', id: 'bob' }]);
    expect(first.body.page).toMatchObject({ count: 2, total: 3 });
    expect(typeof first.body.page.next_token).toBe('string');
    const second = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read' }, resource: doc('roadmap'), page: { limit: 2, token: first.body.page.next_token } });
    expect(second.body.results).toEqual([{ type: 'user', id: 'erin' }]);
    expect(second.body.page).toEqual({ next_token: '', count: 1, total: 3 });
    // A token from another search, or a made-up one, is refused.
    const other = await post(app, '/access/v1/search/subject', { subject: { type: 'agent' }, action: { name: 'can_read' }, resource: doc('roadmap'), page: { token: first.body.page.next_token } });
    expect(other.status).toBe(400);
    const junk = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read' }, resource: doc('roadmap'), page: { token: 'not-a-token' } });
    expect(junk.status).toBe(400);
    const badLimit = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read' }, resource: doc('roadmap'), page: { limit: 0 } });
    expect(badLimit.status).toBe(400);
  });

  it('answers 400 when the other entities are missing or malformed', async () => {
    const noAction = await post(app, '/access/v1/search/subject', { subject: { type: 'user' }, resource: doc('roadmap') });
    expect(noAction.status).toBe(400);
    expect(noAction.body.error.issues[0].path).toBe('action');
    const noType = await post(app, '/access/v1/search/resource', { subject: { type: 'user', id: 'bob' }, action: { name: 'can_read' }, resource: {} });
    expect(noType.body.error.issues[0].path).toBe('resource.type');
    const noSubjectId = await post(app, '/access/v1/search/action', { subject: { type: 'user' }, resource: doc('roadmap') });
    expect(noSubjectId.body.error.issues[0].path).toBe('subject.id');
  });
});

describe('AuthZEN with authentication and without policies', () => {
  it('runs the auth hook: 401 with WWW-Authenticate without a key; the metadata stays public', async () => {
    const app = await makeApp({ auth: createAuth({ apiKeys: ['pep-key-1'] }) });
    const body = { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap') };
    const anon = await post(app, '/access/v1/evaluation', body);
    expect(anon.status).toBe(401);
    expect(anon.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await post(app, '/access/v1/search/action', body, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    const ok = await post(app, '/access/v1/evaluation', body, { authorization: 'Bearer pep-key-1' });
    expect(ok.body).toEqual({ decision: true });
    const meta = await app.inject({ method: 'GET', url: '/.well-known/authzen-configuration' });
    expect(meta.statusCode).toBe(200);
    await app.close();
  });

  it('answers 503, not a deny, while no policy set is loaded', async () => {
    const app = Fastify({ logger: false });
    await app.register(authzenRoutes, { decider: decider({ current: undefined }), catalog: () => CATALOG });
    const body = { subject: { type: 'user', id: 'alice' }, action: { name: 'can_read' }, resource: doc('roadmap') };
    expect((await post(app, '/access/v1/evaluation', body)).status).toBe(503);
    expect((await post(app, '/access/v1/evaluations', { ...body, evaluations: [{}, {}] })).status).toBe(503);
    expect((await post(app, '/access/v1/search/action', body)).status).toBe(503);
    await app.close();
  });

  it('storeCatalog lists registered agents and the actions policy targets name', async () => {
    const catalog = storeCatalog(store, { current: policySet }, () => [{ type: 'document', id: 'roadmap' }]);
    const c = await catalog();
    expect(c.actions).toEqual(['can_delete', 'can_read', 'can_share', 'can_write']);
    expect(c.subjects).toEqual(expect.arrayContaining([{ type: 'agent', id: 'alice' }, { type: 'agent', id: 'summarizer-1' }]));
    expect(c.resources).toEqual([{ type: 'document', id: 'roadmap' }]);
  });
});
