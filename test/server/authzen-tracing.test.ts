// Tracing of decisions (server/tracing.ts), driven through the AuthZEN endpoint: no spans and
// no SDK cost by default, one span per decision once an SDK is registered, OTLP export when
// OTEL_EXPORTER_OTLP_ENDPOINT is set. This file registers a global provider, so it runs alone
// in its own worker (vitest's forks pool).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { readPolicySources } from '../../server/policy-files.js';
import { loadPolicySet } from '../../engine/load.js';
import type { PolicySet } from '../../engine/decision.js';
import { createDecider } from '../../server/decider.js';
import { createEmbeddedStore } from '../../server/context/embedded.js';
import type { AuditEntry } from '../../server/audit.js';
import { authzenRoutes } from '../../server/routes/authzen.js';
import { parseTraceparent, startDecisionSpan, startTracing, traceIdOf, tracingActive } from '../../server/tracing.js';

let policySet: PolicySet;
const audit: AuditEntry[] = [];
const store = createEmbeddedStore();
let app: FastifyInstance;

beforeAll(async () => {
  const read = await readPolicySources(['examples/authzen'], { includeTests: false });
  policySet = loadPolicySet(read.sources).policySet!;
  app = Fastify({ logger: false });
  const decider = createDecider({ policies: { current: policySet }, store, audit: { write: (e) => audit.push(e) }, requireRegisteredAgents: false });
  await app.register(authzenRoutes, { decider, catalog: () => ({ subjects: [], resources: [], actions: [] }) });
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await store.close();
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${PARENT_SPAN}-01`;

function evaluate(headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/access/v1/evaluation',
    headers: { 'content-type': 'application/json', ...headers },
    payload: {
      subject: { type: 'agent', id: 'reader-1', properties: { roles: ['viewer'], token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' } },
      action: { name: 'can_read' },
      resource: { type: 'document', id: 'roadmap', properties: { owner: 'bob', sensitivity: 'internal' } },
    },
  });
}

describe('traceparent', () => {
  it('reads the trace id of a valid W3C traceparent and rejects invalid ones', () => {
    expect(parseTraceparent(TRACEPARENT)).toBe(TRACE);
    expect(parseTraceparent(`01-${TRACE}-${PARENT_SPAN}-01-future`)).toBe(TRACE);
    expect(parseTraceparent(`00-${TRACE}-${PARENT_SPAN}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`ff-${TRACE}-${PARENT_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${'0'.repeat(32)}-${PARENT_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE.slice(1)}x-${PARENT_SPAN}-01`)).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
    expect(traceIdOf({ headers: { traceparent: TRACEPARENT.toUpperCase() } })).toBe(TRACE);
  });
});

describe('decision spans', () => {
  it('without an SDK: no span is created and the audit still gets the incoming trace id', async () => {
    expect(tracingActive()).toBe(false);
    expect(startDecisionSpan({ requestId: 'r' })).toBeUndefined();
    audit.length = 0;
    const res = await evaluate({ traceparent: TRACEPARENT });
    expect(res.json()).toEqual({ decision: true });
    expect(audit[0]).toMatchObject({ kind: 'decision', trace_id: TRACE });
  });

  it('with an SDK: one span per decision, child of traceparent, with the decision attributes and no secrets', async () => {
    const exporter = new InMemorySpanExporter();
    const stop = await startTracing({ exporter, processor: 'simple' });
    try {
      expect(tracingActive()).toBe(true);
      audit.length = 0;
      const res = await evaluate({ traceparent: TRACEPARENT, 'x-request-id': 'req-span' });
      expect(res.json()).toEqual({ decision: true });
      const spans = exporter.getFinishedSpans();
      expect(spans).toHaveLength(1);
      const span = spans[0]!;
      expect(span.name).toBe('agp.decide');
      expect(span.spanContext().traceId).toBe(TRACE);
      expect(span.parentSpanContext?.spanId).toBe(PARENT_SPAN);
      expect(span.attributes).toMatchObject({
        'agp.agent.id': 'reader-1',
        'agp.action': 'can_read',
        'agp.resource.type': 'document',
        'agp.effect': 'permit',
        'agp.risk': 25, // internal 10 + unattended agent 15
        'agp.revision': policySet.revision,
        'agp.request_id': 'req-span',
        'agp.api': 'authzen',
      });
      expect(JSON.stringify(span.attributes)).not.toContain('eyJ');
      expect(audit[0]).toMatchObject({ trace_id: TRACE });
      // Without a traceparent the span starts a new trace, and the audit line names it.
      exporter.reset();
      audit.length = 0;
      await evaluate();
      const [root] = exporter.getFinishedSpans();
      expect(root).toBeDefined();
      expect(root!.parentSpanContext).toBeUndefined();
      expect(audit[0]).toMatchObject({ trace_id: root!.spanContext().traceId });
      // Three evaluations in one call: three spans.
      exporter.reset();
      const many = await app.inject({
        method: 'POST',
        url: '/access/v1/evaluations',
        headers: { 'content-type': 'application/json', traceparent: TRACEPARENT },
        payload: {
          subject: { type: 'user', id: 'bob', properties: { roles: [] } },
          resource: { type: 'document', id: 'roadmap', properties: { owner: 'bob', sensitivity: 'internal' } },
          evaluations: [{ action: { name: 'can_read' } }, { action: { name: 'can_write' } }, { action: { name: 'can_share' } }],
        },
      });
      expect(many.json()).toEqual({ evaluations: [{ decision: true }, { decision: true }, { decision: true }] });
      expect(exporter.getFinishedSpans().map((s) => s.attributes['agp.action'])).toEqual(['can_read', 'can_write', 'can_share']);
    } finally {
      await stop();
    }
    expect(tracingActive()).toBe(false);
  });

  it('is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then spans are exported over OTLP/HTTP', async () => {
    const noop = await startTracing({ env: {} });
    expect(tracingActive()).toBe(false);
    await noop();

    const received: { url: string | undefined; type: string | undefined; body: Buffer }[] = [];
    const collector: Server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url, type: req.headers['content-type'], body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const port = (collector.address() as AddressInfo).port;
    try {
      const stop = await startTracing({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/` } });
      expect(tracingActive()).toBe(true);
      await evaluate({ traceparent: TRACEPARENT });
      // Shutdown flushes the batch processor.
      await stop();
      expect(received).toHaveLength(1);
      expect(received[0]!.url).toBe('/v1/traces');
      const text = received[0]!.body.toString('utf8');
      expect(text).toContain('agp.decide');
      expect(text).toContain('reader-1');
      expect(text).toContain('service.name');
    } finally {
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });
});
