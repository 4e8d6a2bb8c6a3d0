import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CloseCode } from '../protocol/close-codes.js';

/** Routes are user-chosen: past this many distinct values a metric counts them as `other`. */
const MAX_ROUTE_LABELS = 100;
/** wsgw's own 4xxx close codes, labelled individually. */
const KNOWN_4XXX = new Set(Object.values(CloseCode).filter((c) => c >= 4000) as number[]);

/** A route's frames and bytes since start, and how much of them the counters already hold. */
interface RouteTally {
  frames: number;
  bytes: number;
  copiedFrames: number;
  copiedBytes: number;
}

/**
 * Counts taken on the per-frame path: plain numbers (a prom-client `inc` hashes its labels on every
 * call), copied into the counters when the registry is scraped.
 */
export interface HotTally {
  framesOut: number;
  bytesOut: number;
  backpressureDropped: number;
  noResponders: number;
  workerOpens: number;
  workerMessages: number;
  workerCloses: number;
  bridgeDelivered: number;
  bridgeServerErrors: number;
  bridgeRetried: number;
  bridgeGivenUp: number;
}

/** HTTP statuses counted per index (100-599). */
const STATUS_SLOTS = 600;

/**
 * Every wsgw metric, in one registry per process. Label sets are bounded: no connection ids; routes
 * capped at MAX_ROUTE_LABELS; close codes and HTTP statuses are small sets by nature.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly connections: Gauge;
  readonly opens: Counter;
  readonly closes: Counter<'code'>;
  readonly framesIn: Counter<'route'>;
  readonly bytesIn: Counter<'route'>;
  readonly framesOut: Counter;
  readonly bytesOut: Counter;
  readonly backpressureDropped: Counter;
  readonly outageBuffered: Gauge;
  readonly outageRefused: Counter;
  readonly noResponders: Counter;
  readonly publishFailures: Counter;
  readonly natsConnected: Gauge;
  readonly natsReconnects: Counter;
  readonly lostReported: Counter;
  readonly kvLatency: Histogram<'op'>;
  readonly upgradesRefused: Counter<'status'>;
  readonly apiRequests: Counter<'status'>;
  readonly bridgeRequests: Counter<'outcome'>;
  readonly bridgeLatency: Histogram;
  readonly workerEvents: Counter<'kind'>;
  readonly handlerErrors: Counter;
  /** Increment these on the hot path; `text()` moves them into the counters. */
  readonly hot: HotTally = { framesOut: 0, bytesOut: 0, backpressureDropped: 0, noResponders: 0, workerOpens: 0, workerMessages: 0, workerCloses: 0, bridgeDelivered: 0, bridgeServerErrors: 0, bridgeRetried: 0, bridgeGivenUp: 0 };
  #copied: HotTally = { ...this.hot };
  readonly #routes = new Map<string, RouteTally>();
  /** API answers by status since start, and how many of them the counter already holds. */
  readonly #statuses = new Float64Array(STATUS_SLOTS);
  readonly #copiedStatuses = new Float64Array(STATUS_SLOTS);
  /** Upgrades refused, by HTTP status (a connect flood refuses thousands a second). */
  readonly #refusals = new Float64Array(STATUS_SLOTS);
  readonly #copiedRefusals = new Float64Array(STATUS_SLOTS);

  constructor(service: string, labels: Record<string, string> = {}) {
    this.registry.setDefaultLabels({ service, ...labels });
    collectDefaultMetrics({ register: this.registry });
    const r = [this.registry];
    this.connections = new Gauge({ name: 'wsgw_connections', help: 'Open WebSocket connections on this gateway', registers: r });
    this.opens = new Counter({ name: 'wsgw_opens_total', help: 'Connections opened', registers: r });
    this.closes = new Counter({ name: 'wsgw_closes_total', help: 'Connections closed, by close code', labelNames: ['code'], registers: r });
    this.framesIn = new Counter({ name: 'wsgw_frames_in_total', help: 'Frames received from clients, by route', labelNames: ['route'], registers: r });
    this.bytesIn = new Counter({ name: 'wsgw_bytes_in_total', help: 'Bytes received from clients, by route', labelNames: ['route'], registers: r });
    this.framesOut = new Counter({ name: 'wsgw_frames_out_total', help: 'Frames sent to clients (direct sends)', registers: r });
    this.bytesOut = new Counter({ name: 'wsgw_bytes_out_total', help: 'Bytes sent to clients (direct sends)', registers: r });
    this.backpressureDropped = new Counter({ name: 'wsgw_backpressure_dropped_total', help: 'Frames dropped because a client read too slowly (policy drop)', registers: r });
    this.outageBuffered = new Gauge({ name: 'wsgw_outage_buffered', help: 'Inbound events held while NATS is away (or, durable, not yet acknowledged)', registers: r });
    this.outageRefused = new Counter({ name: 'wsgw_outage_refused_total', help: 'Frames refused (client closed with 4101) because the outage buffer was full', registers: r });
    this.noResponders = new Counter({ name: 'wsgw_no_responders_total', help: 'Frames that reached no worker (core NATS; lost)', registers: r });
    this.publishFailures = new Counter({ name: 'wsgw_publish_failures_total', help: 'Publishes refused by the NATS client or not acknowledged by the stream (retried in durable mode)', registers: r });
    this.natsConnected = new Gauge({ name: 'wsgw_nats_connected', help: '1 while connected to NATS', registers: r });
    this.natsReconnects = new Counter({ name: 'wsgw_nats_reconnects_total', help: 'Reconnects to NATS', registers: r });
    this.lostReported = new Counter({ name: 'wsgw_lost_connections_reported_total', help: 'Connections of dead or fenced gateways reported closed (lost) by this process', registers: r });
    this.kvLatency = new Histogram({ name: 'wsgw_kv_operation_seconds', help: 'KV operation latency', labelNames: ['op'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: r });
    this.upgradesRefused = new Counter({ name: 'wsgw_upgrades_refused_total', help: 'WebSocket upgrades refused before completing, by HTTP status (shutting down or full: 503; origin: 403; rate or per-address limit: 429; token: 401; authorizer: its status)', labelNames: ['status'], registers: r });
    this.apiRequests = new Counter({ name: 'wsgw_api_requests_total', help: 'Connections API requests, by HTTP status', labelNames: ['status'], registers: r });
    this.bridgeRequests = new Counter({ name: 'wsgw_bridge_requests_total', help: 'Bridge events by outcome (delivered, retried, given_up)', labelNames: ['outcome'], registers: r });
    this.workerEvents = new Counter({ name: 'wsgw_worker_events_total', help: 'Events a worker handed to its handler, by kind (open, message, close)', labelNames: ['kind'], registers: r });
    this.handlerErrors = new Counter({ name: 'wsgw_handler_errors_total', help: 'Handler callbacks that threw or rejected', registers: r });
    this.bridgeLatency = new Histogram({ name: 'wsgw_bridge_request_seconds', help: 'Application answer time seen by the bridge', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: r });
  }

  /** Counts one inbound frame: a map lookup and two additions. */
  frameIn(route: string, bytes: number): void {
    let t = this.#routes.get(route);
    if (!t) {
      const key = this.#routes.size < MAX_ROUTE_LABELS ? route : 'other';
      t = this.#routes.get(key);
      if (!t) this.#routes.set(key, (t = { frames: 0, bytes: 0, copiedFrames: 0, copiedBytes: 0 }));
    }
    t.frames++;
    t.bytes += bytes;
  }

  /** Counts one connections API answer by its status (the send API answers thousands a second). */
  apiAnswered(status: number): void {
    if (status >= 100 && status < STATUS_SLOTS) this.#statuses[status]!++;
  }

  /** Counts one refused upgrade by its status. */
  upgradeRefused(status: number): void {
    if (status >= 100 && status < STATUS_SLOTS) this.#refusals[status]!++;
  }

  /** Moves what the hot path counted since the last scrape into the prom-client counters. */
  #copyHot(): void {
    for (const [route, t] of this.#routes) {
      this.framesIn.inc({ route }, t.frames - t.copiedFrames);
      this.bytesIn.inc({ route }, t.bytes - t.copiedBytes);
      t.copiedFrames = t.frames;
      t.copiedBytes = t.bytes;
    }
    const h = this.hot;
    const c = this.#copied;
    this.framesOut.inc(h.framesOut - c.framesOut);
    this.bytesOut.inc(h.bytesOut - c.bytesOut);
    this.backpressureDropped.inc(h.backpressureDropped - c.backpressureDropped);
    this.noResponders.inc(h.noResponders - c.noResponders);
    this.workerEvents.inc({ kind: 'open' }, h.workerOpens - c.workerOpens);
    this.workerEvents.inc({ kind: 'message' }, h.workerMessages - c.workerMessages);
    this.workerEvents.inc({ kind: 'close' }, h.workerCloses - c.workerCloses);
    // only outcomes that happened: a process that never bridged shows no bridge series
    const outcome = (label: string, delta: number) => {
      if (delta > 0) this.bridgeRequests.inc({ outcome: label }, delta);
    };
    outcome('delivered', h.bridgeDelivered - c.bridgeDelivered);
    outcome('server_error', h.bridgeServerErrors - c.bridgeServerErrors);
    outcome('retried', h.bridgeRetried - c.bridgeRetried);
    outcome('given_up', h.bridgeGivenUp - c.bridgeGivenUp);
    this.#copied = { ...h };
    for (let status = 100; status < STATUS_SLOTS; status++) {
      const delta = this.#statuses[status]! - this.#copiedStatuses[status]!;
      if (delta > 0) this.apiRequests.inc({ status: String(status) }, delta);
    }
    this.#copiedStatuses.set(this.#statuses);
    for (let status = 100; status < STATUS_SLOTS; status++) {
      const delta = this.#refusals[status]! - this.#copiedRefusals[status]!;
      if (delta > 0) this.upgradesRefused.inc({ status: String(status) }, delta);
    }
    this.#copiedRefusals.set(this.#refusals);
  }

  /** Close codes as a bounded label: known codes as themselves, application codes by range. */
  closed(code: number): void {
    const label = code < 3000 ? String(code) : code < 4000 ? '3xxx' : KNOWN_4XXX.has(code) ? String(code) : '4xxx';
    this.closes.labels(label).inc();
  }

  /** Prometheus text format. */
  text(): Promise<string> {
    this.#copyHot();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
