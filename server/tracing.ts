// OpenTelemetry for decisions: one span per decision through @opentelemetry/api, skipped
// entirely while no SDK is registered (the default), the W3C `traceparent` reading that
// gives the audit log its `trace_id` even without an SDK, and the SDK wiring used when
// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

import {
  context,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

// A fresh proxy always delegates to the API's no-op provider singleton: that is what the
// global provider delegates to until an SDK registers itself.
const NOOP_PROVIDER: TracerProvider = new ProxyTracerProvider().getDelegate();

// `trace.getTracerProvider()` checks the global registry's version on every call (~100 ns);
// the proxy it returns is the object an SDK's `register()` later delegates to, so it is
// looked up once and again only after `trace.disable()` (which replaces it).
let globalProxy: ProxyTracerProvider | null = null;
let globalProvider: TracerProvider = NOOP_PROVIDER;

function refreshProvider(): void {
  const p = trace.getTracerProvider();
  globalProxy = p instanceof ProxyTracerProvider ? p : null;
  globalProvider = p;
}
refreshProvider();

/** True once an SDK tracer provider is registered globally: one call, no allocation. */
export function tracingActive(): boolean {
  return globalProxy !== null ? globalProxy.getDelegate() !== NOOP_PROVIDER : globalProvider !== NOOP_PROVIDER;
}

type HeaderBag = Record<string, string | string[] | undefined>;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The trace id of a W3C `traceparent` value, or undefined when it is absent or invalid. */
export function parseTraceparent(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.length < 55 || v.length > 512) return undefined;
  const m = TRACEPARENT.exec(v.trim().toLowerCase());
  if (m === null) return undefined;
  const [, version, traceId, spanId] = m;
  // Version ff is invalid; version 00 has no trailing fields; all-zero ids are invalid.
  if (version === 'ff' || (version === '00' && m[5] !== undefined)) return undefined;
  if (traceId === '00000000000000000000000000000000' || spanId === '0000000000000000') return undefined;
  return traceId;
}

/**
 * The trace id to record for a request: the given span's (or the active span's) when it is
 * a real, sampled-or-not span, else the incoming `traceparent` header's.
 */
export function traceIdOf(source?: { headers?: HeaderBag; span?: Span | undefined }): string | undefined {
  const span = source?.span ?? trace.getActiveSpan();
  if (span !== undefined) {
    const ctx = span.spanContext();
    if (trace.isSpanContextValid(ctx)) return ctx.traceId;
  }
  return parseTraceparent(source?.headers?.['traceparent']);
}

export interface DecisionSpanStart {
  /** Incoming headers, for the `traceparent` parent context. */
  headers?: HeaderBag;
  requestId?: string;
  /** The API that received the call (`decide`, `connect`, `authzen`). */
  api?: string;
}

export interface DecisionSpanEnd {
  agent?: string | null;
  action?: string | null;
  resourceType?: string | null;
  effect?: string;
  risk?: number;
  revision?: string;
  decisionId?: string;
  /** Set when the request got no decision (HTTP status of the rejection). */
  status?: number;
  errorCode?: string;
}

/**
 * Starts the span of one decision, child of the incoming `traceparent` (or the active
 * context). Returns undefined, allocating nothing, while no SDK is registered.
 */
export function startDecisionSpan(start?: DecisionSpanStart): Span | undefined {
  if (!tracingActive()) return undefined;
  const parent = start?.headers?.['traceparent'] !== undefined ? propagation.extract(ROOT_CONTEXT, start.headers) : context.active();
  const attributes: Attributes = {};
  if (start?.requestId !== undefined) attributes['agp.request_id'] = start.requestId;
  if (start?.api !== undefined) attributes['agp.api'] = start.api;
  return trace.getTracer('agp').startSpan('agp.decide', { kind: SpanKind.INTERNAL, attributes }, parent);
}

/** Records the outcome on the span and ends it. No token or attribute value is recorded. */
export function endDecisionSpan(span: Span | undefined, end: DecisionSpanEnd): void {
  if (span === undefined) return;
  const a: Attributes = {};
  if (typeof end.agent === 'string') a['agp.agent.id'] = end.agent;
  if (typeof end.action === 'string') a['agp.action'] = end.action;
  if (typeof end.resourceType === 'string') a['agp.resource.type'] = end.resourceType;
  if (end.effect !== undefined) a['agp.effect'] = end.effect;
  if (end.risk !== undefined) a['agp.risk'] = end.risk;
  if (end.revision !== undefined) a['agp.revision'] = end.revision;
  if (end.decisionId !== undefined) a['agp.decision_id'] = end.decisionId;
  if (end.status !== undefined) a['http.response.status_code'] = end.status;
  if (end.errorCode !== undefined) a['agp.error.code'] = end.errorCode;
  span.setAttributes(a);
  if (end.status !== undefined && end.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: end.errorCode ?? 'error' });
  span.end();
}

export interface StartTracingOptions {
  /** Export here instead of OTLP (tests: an InMemorySpanExporter). */
  exporter?: SpanExporter;
  /** `simple` exports each span at once (tests); `batch` (default) buffers. */
  processor?: 'batch' | 'simple';
  serviceName?: string;
  env?: Record<string, string | undefined>;
}

/**
 * Registers the OpenTelemetry SDK globally when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or an
 * exporter is given), exporting with a batch span processor over OTLP/HTTP. Returns the
 * shutdown function, which flushes pending spans; a no-op when tracing stays off.
 */
export async function startTracing(options: StartTracingOptions = {}): Promise<() => Promise<void>> {
  const env = options.env ?? process.env;
  const endpoint = env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (options.exporter === undefined && (endpoint === undefined || endpoint === '')) return async () => {};
  // Loaded only when wanted: the SDK costs startup time and memory.
  const [{ NodeTracerProvider }, base, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  let exporter = options.exporter;
  if (exporter === undefined) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    // OTLP/HTTP: the traces endpoint is the base endpoint + `/v1/traces` unless given
    // itself; headers and timeouts come from the standard OTEL_EXPORTER_OTLP_* variables.
    const url = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || `${(endpoint ?? '').replace(/\/+$/, '')}/v1/traces`;
    exporter = new OTLPTraceExporter({ url });
  }
  const processor = options.processor === 'simple' ? new base.SimpleSpanProcessor(exporter) : new base.BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName ?? env['OTEL_SERVICE_NAME'] ?? 'agp' }),
    spanProcessors: [processor],
  });
  // Also installs the W3C trace-context propagator and the async-hooks context manager.
  provider.register();
  refreshProvider();
  return async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
    refreshProvider();
  };
}

