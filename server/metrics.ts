// Prometheus metrics of one AGP app: a registry per app (tests build many apps), the
// decision counters fed by the decider, policy reload counts, store and audit figures
// read at scrape time. The per-decision figures are plain counters on the hot path that
// prom-client reads at scrape time (a prom-client update costs more than the decision).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Effect } from '../engine/decision.js';
import type { DecideErrorCode, DecisionObserver } from './decider.js';

/** Read at scrape time; every member optional so a missing component simply reports nothing. */
export interface ScrapeSources {
  storeHealth?: () => { kind: string; state: string };
  /** Cache hits and misses since start, if the store keeps them. */
  cacheStats?: () => { hits: number; misses: number } | undefined;
  /** Errors the store met talking to its backend (Redis commands, counter flushes). */
  storeBackendErrors?: () => number;
  auditStats?: () => { written: number; dropped: number; buffered: number; suppressed?: number };
  policyRevision?: () => string | undefined;
}

export interface AppMetrics extends DecisionObserver {
  readonly registry: Registry;
  policyReload(ok: boolean, seconds: number): void;
  storeError(operation: string): void;
  /** An anomaly the behaviour analytics reported (`rate`, `deny_ratio`, `new_resource`). */
  anomaly(kind: string): void;
  setSources(sources: ScrapeSources): void;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

/** A label-less histogram whose observations are plain array increments, read at scrape time. */
type Exposition = Awaited<ReturnType<Histogram['get']>>;

class LocalHistogram extends Histogram {
  private readonly metricName: string;
  private readonly metricHelp: string;
  private readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  private readonly counts: Float64Array;
  private total = 0;
  private sum = 0;

  constructor(config: { name: string; help: string; buckets: number[]; registers: Registry[] }) {
    super(config);
    this.metricName = config.name;
    this.metricHelp = config.help;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    this.counts = new Float64Array(this.bounds.length + 1);
  }

  record(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.total++;
  }

  /** The exposition prom-client's registry reads (same shape as its own histograms). */
  getForPromString(): Promise<Exposition> {
    const name = this.metricName;
    const values: Exposition['values'] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!;
      values.push({ labels: { le: this.bounds[i]! }, value: acc, metricName: `${name}_bucket` });
    }
    values.push({ labels: { le: '+Inf' }, value: this.total, metricName: `${name}_bucket` });
    values.push({ labels: {}, value: this.sum, metricName: `${name}_sum` });
    values.push({ labels: {}, value: this.total, metricName: `${name}_count` });
    // `type` is the text prom-client writes after `# TYPE` (its typings call it an enum).
    return Promise.resolve({ name, help: this.metricHelp, type: 'histogram', values, aggregator: 'sum' } as unknown as Exposition);
  }

  override get(): Promise<Exposition> {
    return this.getForPromString();
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class's fields exist.
    (this.counts as Float64Array | undefined)?.fill(0);
    this.total = 0;
    this.sum = 0;
  }
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): AppMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'agp_' });
  let sources: ScrapeSources = {};

  const latency = new LocalHistogram({
    name: 'agp_decision_duration_seconds',
    help: 'Time spent deciding one request inside AGP (store lookup, validation, engine)',
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
    registers: [registry],
  });
  // Decisions by effect since the last scrape, added to the counter when it is read.
  const pending: Record<Effect, number> = { permit: 0, deny: 0, escalate: 0 };
  const decisions = new Counter({
    name: 'agp_decisions_total',
    help: 'Decisions made, by effect',
    labelNames: ['effect'] as const,
    registers: [registry],
    collect() {
      for (const effect of ['permit', 'deny', 'escalate'] as const) {
        if (pending[effect] > 0) this.inc({ effect }, pending[effect]);
        pending[effect] = 0;
      }
    },
  });
  const rejected = new Counter({
    name: 'agp_requests_rejected_total',
    help: 'Decision requests refused without a decision, by code (invalid_request, policies_unavailable)',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const contextDenies = new Counter({
    name: 'agp_context_denies_total',
    help: 'Denies decided before the policies: unknown or inactive agent, store unavailable, request outside the agent token scope',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const anomalies = new Counter({
    name: 'agp_anomalies_total',
    help: 'Anomalies the behaviour analytics reported, by kind (rate, deny_ratio, new_resource)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'agp_policy_reloads_total',
    help: 'Policy set reloads, by result (ok, failed)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const reloadDuration = new Histogram({
    name: 'agp_policy_reload_duration_seconds',
    help: 'Time to read, check and compile a policy set',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'agp_store_errors_total',
    help: 'Context store failures seen by AGP (decisions failed closed, admin calls answered 503)',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'agp_store_up',
    help: 'Context store state: 1 ok, 0.5 degraded, 0 down',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const h = sources.storeHealth?.();
      this.reset();
      if (h !== undefined) this.set({ kind: h.kind }, h.state === 'ok' ? 1 : h.state === 'degraded' ? 0.5 : 0);
    },
  });
  new Gauge({
    name: 'agp_store_cache_hit_ratio',
    help: 'Share of agent context lookups answered from the in-process cache since start',
    registers: [registry],
    collect() {
      const s = sources.cacheStats?.();
      this.reset();
      if (s !== undefined && s.hits + s.misses > 0) this.set(s.hits / (s.hits + s.misses));
    },
  });
  new Gauge({
    name: 'agp_store_backend_errors',
    help: 'Errors the context store met talking to Redis since start (commands and counter flushes)',
    registers: [registry],
    collect() {
      const n = sources.storeBackendErrors?.();
      this.reset();
      if (n !== undefined) this.set(n);
    },
  });
  new Gauge({
    name: 'agp_audit_dropped_entries',
    help: 'Audit entries lost since start (buffer full or sink failure); should stay 0',
    registers: [registry],
    collect() {
      const s = sources.auditStats?.();
      this.reset();
      if (s !== undefined) this.set(s.dropped);
    },
  });
  new Gauge({
    name: 'agp_audit_suppressed_entries',
    help: 'Audit entries held back by flood control since start (each window summarized in an audit_suppressed line)',
    registers: [registry],
    collect() {
      const s = sources.auditStats?.();
      this.reset();
      if (s?.suppressed !== undefined) this.set(s.suppressed);
    },
  });
  new Gauge({
    name: 'agp_audit_buffered_entries',
    help: 'Audit entries waiting for the writer',
    registers: [registry],
    collect() {
      const s = sources.auditStats?.();
      this.reset();
      if (s !== undefined) this.set(s.buffered);
    },
  });
  new Gauge({
    name: 'agp_policy_set_info',
    help: 'The serving policy set revision (value 1); absent when no valid set is loaded',
    labelNames: ['revision'] as const,
    registers: [registry],
    collect() {
      const r = sources.policyRevision?.();
      this.reset();
      if (r !== undefined) this.set({ revision: r }, 1);
    },
  });

  for (const effect of ['permit', 'deny', 'escalate'] as const) decisions.labels(effect).inc(0);
  const byCode: Record<DecideErrorCode, Counter.Internal> = {
    invalid_request: rejected.labels('invalid_request'),
    policies_unavailable: rejected.labels('policies_unavailable'),
  };
  // Present from the start so that dashboards see zeros rather than missing series.
  for (const s of ['unknown', 'inactive', 'unavailable'] as const) contextDenies.labels(s).inc(0);
  reloads.labels('ok').inc(0);
  reloads.labels('failed').inc(0);

  return {
    registry,
    contentType: registry.contentType,
    decision(effect, seconds) {
      latency.record(seconds);
      pending[effect]++;
    },
    rejected(code) {
      byCode[code].inc();
    },
    contextDeny(status) {
      contextDenies.labels(status).inc();
      if (status === 'unavailable') storeErrors.labels('decide').inc();
    },
    policyReload(ok, seconds) {
      reloads.labels(ok ? 'ok' : 'failed').inc();
      reloadDuration.observe(seconds);
    },
    storeError(operation) {
      storeErrors.labels(operation).inc();
    },
    anomaly(kind) {
      anomalies.labels(kind).inc();
    },
    setSources(s) {
      sources = s;
    },
    render() {
      return registry.metrics();
    },
  };
}
