// The Connect protocol (unary, JSON) against a real listening server, with a stock client
// generated from proto/agp/v1/decision.proto, plus raw HTTP checks of the protocol rules.

import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { AgentContext, ContextStore } from '../../server/context/types.js';
import { DecisionService, ValidationIssuesSchema } from '../../server/gen/agp/v1/decision_pb.js';
import { PolicyHolder } from '../../server/policy-holder.js';
import { fakePolicySet, fakeRequest } from './fake-policy-set.js';
import { fraudRequest, makeApp, type TestApp } from './helpers.js';

const KEY = 'pep-key-0123456789abcdef';
let t: TestApp;
let baseUrl: string;
const inner = createEmbeddedStore();
// Agent `slow-*` lookups take 300 ms (a cache miss on a slow Redis).
const store: ContextStore = Object.assign(Object.create(inner) as ContextStore, {
  agentContext: (id: string, now: number): AgentContext | Promise<AgentContext> =>
    id.startsWith('slow') ? new Promise((res) => setTimeout(() => res(inner.agentContext(id, now) as AgentContext), 300)) : inner.agentContext(id, now),
});

beforeAll(async () => {
  t = await makeApp({ holder: PolicyHolder.of(fakePolicySet()), store, apiKeys: [KEY] });
  baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await t.close();
  await inner.close();
});

function client(key = KEY) {
  const transport = createConnectTransport({
    httpVersion: '1.1',
    useBinaryFormat: false,
    baseUrl,
    interceptors: [
      (next) => (req) => {
        req.header.set('authorization', `Bearer ${key}`);
        return next(req);
      },
    ],
  });
  return createClient(DecisionService, transport);
}

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'connect-protocol-version': '1', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('agp.v1.DecisionService with a stock Connect client', () => {
  it('decides', async () => {
    const res = await client().decide(fakeRequest('delete', { level: 3 }) as any);
    expect(res.decision).toBe('escalate');
    expect(res.allowed).toBe(false);
    expect(res.risk).toBe(30);
    expect(res.factors).toEqual({ level: 30 });
    expect(res.policies).toEqual(['deletes']);
    expect(res.obligations).toEqual({ approver: 'ops', ttl_s: 600 });
    expect(res.decisionId).toMatch(/^[0-9A-Z]{26}$/);
    expect(res.revision).toBe('sha256:fake-1');
  });

  it('reports an invalid request as invalid_argument with the issues as a detail', async () => {
    const req = fakeRequest('read');
    (req['resource'] as Record<string, unknown>)['level'] = 'high';
    const err = await client()
      .decide(req as any)
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    const ce = err as ConnectError;
    expect(ce.code).toBe(Code.InvalidArgument);
    expect(ce.rawMessage).toBe('resource.level: expected a number');
    expect(ce.findDetails(ValidationIssuesSchema)[0]?.issues.map((i) => i.path)).toEqual(['resource.level']);
  });

  it('decides a batch in order with per-item errors', async () => {
    const bad = fakeRequest('read');
    delete (bad['resource'] as Record<string, unknown>)['id'];
    const res = await client().decideBatch({ requests: [fakeRequest('read'), bad, fakeRequest('drop'), { agent: { id: 'x' } }] as any });
    expect(res.decisions.map((d) => (d.result.case === 'decision' ? d.result.value.decision : d.result.value?.code))).toEqual([
      'permit',
      'invalid_argument',
      'deny',
      'invalid_argument',
    ]);
    const second = res.decisions[1]!.result;
    expect(second.case === 'error' && second.value.issues[0]?.path).toBe('resource.id');
  });

  it('explains exactly the batch items that ask for it', async () => {
    const real = await makeApp();
    try {
      const url = await real.app.listen({ host: '127.0.0.1', port: 0 });
      const c = createClient(DecisionService, createConnectTransport({ httpVersion: '1.1', useBinaryFormat: false, baseUrl: url }));
      const read = fraudRequest('read', { type: 'transactions', id: 't-1', sensitivity: 'internal' });
      const res = await c.decideBatch({ requests: [read, { ...read, explain: true }, read] as any });
      const explained = res.decisions.map((d) => (d.result.case === 'decision' ? d.result.value.explanation.length > 0 : 'error'));
      expect(explained).toEqual([false, true, false]);
    } finally {
      await real.close();
    }
  });

  it('maps a wrong credential to unauthenticated', async () => {
    const err = await client('wrong-key-0123456789')
      .decide(fakeRequest('read') as any)
      .then(() => undefined, (e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  });

  it('bounds the call with the client timeout (deadline_exceeded)', async () => {
    const err = await client()
      .decide(fakeRequest('read', { agent: { id: 'slow-1' } }) as any, { timeoutMs: 50 })
      .then(() => undefined, (e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    const ok = await client().decide(fakeRequest('read', { agent: { id: 'slow-2' } }) as any, { timeoutMs: 5000 });
    expect(ok.decision).toBe('permit');
  });
});

describe('the Connect unary JSON mapping on the wire', () => {
  it('uses lowerCamelCase JSON and emits every field', async () => {
    const r = await post('/agp.v1.DecisionService/Decide', fakeRequest('drop'));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await r.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['allowed', 'decision', 'decisionId', 'explanation', 'factors', 'obligations', 'policies', 'reasons', 'revision', 'risk']);
    expect(body['allowed']).toBe(false);
  });

  it('answers the server deadline with 504 and a Connect error body', async () => {
    const r = await post('/agp.v1.DecisionService/Decide', fakeRequest('read', { agent: { id: 'slow-3' } }), { 'connect-timeout-ms': '20' });
    expect(r.status).toBe(504);
    expect(await r.json()).toEqual({ code: 'deadline_exceeded', message: 'the deadline expired before the decision completed' });
  });

  it('checks the protocol headers and content type', async () => {
    const version = await post('/agp.v1.DecisionService/Decide', fakeRequest('read'), { 'connect-protocol-version': '2' });
    expect(version.status).toBe(400);
    expect(((await version.json()) as { code: string }).code).toBe('invalid_argument');
    const timeout = await post('/agp.v1.DecisionService/Decide', fakeRequest('read'), { 'connect-timeout-ms': 'soon' });
    expect(timeout.status).toBe(400);
    const proto = await post('/agp.v1.DecisionService/Decide', 'x', { 'content-type': 'application/proto' });
    expect(proto.status).toBe(415);
    const badJson = await post('/agp.v1.DecisionService/Decide', '{"agent":');
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { code: string }).code).toBe('invalid_argument');
    const wrongType = await post('/agp.v1.DecisionService/Decide', { action: 7 });
    expect(wrongType.status).toBe(400);
    const unknown = await post('/agp.v1.DecisionService/Nope', {});
    expect(unknown.status).toBe(404);
    const noAuth = await fetch(`${baseUrl}/agp.v1.DecisionService/Decide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(noAuth.status).toBe(401);
    expect(noAuth.headers.get('www-authenticate')).toBe('Bearer realm="agp"');
    expect(await noAuth.json()).toEqual({ code: 'unauthenticated', message: 'missing bearer credential' });
  });

  it('accepts the proto field names too and ignores unknown fields', async () => {
    const r = await post('/agp.v1.DecisionService/Decide', { ...fakeRequest('read'), future_field: 1 });
    expect(r.status).toBe(200);
  });
});

describe('Connect with no policy set', () => {
  it('answers unavailable (503)', async () => {
    const empty = await makeApp({ holder: PolicyHolder.of(undefined) });
    const r = await empty.app.inject({ method: 'POST', url: '/agp.v1.DecisionService/Decide', headers: { 'content-type': 'application/json' }, payload: fakeRequest('read') });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ code: 'unavailable', message: 'no valid policy set is loaded' });
    await empty.close();
  });
});
