import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, WebSocket } from 'uWebSockets.js';
import { isUtf8 } from 'node:buffer';
import { headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ListenError } from '../errors/errors.js';
import { CloseCode, truncateReason } from '../protocol/close-codes.js';
import { type AuthRequest, type CloseEvent, type ConnectionRecord, type ControlCommand, type ControlReply, type OpenEvent, type RequestInfo } from '../protocol/events.js';
import { applyMetaPatch, EMPTY_META, metaJson, parseMetaPatch, type Meta, type MetaPatch } from '../protocol/meta.js';
import { Header } from '../protocol/headers.js';
import { formatConnectionId, isConnectionId, newToken, parseConnectionId } from '../protocol/ids.js';
import type { Subjects } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import { watchStatus, within } from '../nats/connect.js';
import { BINARY_HEADERS, CONTROL_TIMEOUT_MS, requestControl, topicHeaders } from '../nats/control.js';
import { LeaseKeeper } from '../nats/lease.js';
import { purgePolicy, startSweeper, type Sweeper } from '../nats/sweeper.js';
import { FrameMessage, HandlerRuntime, HostConn, type ConnectionHost } from '../handlers/runtime.js';
import type { FrameData, Handler } from '../handlers/types.js';
import { InboundPublisher } from './publisher.js';
import { Deadlines } from './deadlines.js';
import { Tally } from '../util/tally.js';
import { FrameHeaderEncoder, frameHeaders } from './frame-headers.js';
import { Metrics } from '../metrics/metrics.js';
import { mountOpsRoutes } from '../metrics/ops-routes.js';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { ensureInboundStream, inboundStreamConfig } from '../nats/durable.js';
import { StreamHistory } from '../nats/history.js';
import { HistoryOffError, MemoryHistory, historyLimits } from '../protocol/history.js';
import { mountConnectionsApi } from '../http/connections-api.js';
import { mountClient, mountPage } from '../http/ui.js';
import { createApp, tlsFiles } from '../http/app.js';
import type { DirectoryView } from '../http/directory-view.js';
import { routeFromField } from './route.js';
import { Admission, type AuthorizerGrant, type UpgradeRequest } from './admission.js';
import { ClientAddress } from './client-address.js';
import { subscribeCommands, type CommandSubscriptions } from './commands.js';

/** What the gateway needs from NATS; absent in local mode. */
export interface GatewayNats {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly directory: ConnectionDirectory;
}

export interface GatewayOptions {
  readonly config: Config;
  /** Gateway id, a safe token; the first part of every connection id it issues. */
  readonly id: string;
  readonly log: Logger;
  /** In-process handler (local mode, or `gateway --handler`). Without it frames are published to NATS. */
  readonly handler?: Handler;
  readonly nats?: GatewayNats;
  /** Serve the connections HTTP API on the gateway's port too (`--api`); needs `nats`. */
  readonly api?: { readonly view: DirectoryView };
  /** Where to count; served at `GET /metrics` on the gateway port. A private registry when absent. */
  readonly metrics?: Metrics;
}

export interface Gateway {
  readonly id: string;
  /** The port actually listened on (useful with port 0). */
  readonly port: number;
  /** Open connections on this gateway. */
  readonly connections: number;
  /**
   * Shuts down in order: stops accepting (other gateways on the port take new clients), closes the
   * clients with 4100 spread evenly over `drainMs` (0: all at once, with 1001), publishes their close
   * events, removes their records and the lease. Resolves when done; NATS is the caller's to drain.
   */
  close(drainMs?: number): Promise<void>;
}

/** Per-socket state, created at upgrade from data copied out of the request. */
/** A connection's metadata and its JSON (ASCII, metaJson): the JSON goes on every frame's headers and record write. */
interface KeptMeta {
  readonly value: Meta;
  readonly json: string;
}
const kept = (meta: Meta | null): KeptMeta | null => (meta === null ? null : { value: meta, json: metaJson(meta) });

interface ConnData {
  readonly id: string;
  readonly token: string;
  readonly request: RequestInfo;
  /** Set when the authorizer accepted the upgrade: topics and a first frame to apply on open. */
  readonly authorized: AuthorizerGrant | null;
  readonly connectedAt: number;
  /** `P.in.msg.<route>` for the path route (remote mode). */
  readonly msgSubject: string;
  readonly route: string;
  /** `P.out.<connId>`: the reply subject on every inbound frame (made on the first frame). */
  outSubject: string | null;
  /** Its frames' NATS headers, encoded once (remote mode, made on the first frame). */
  headers?: FrameHeaderEncoder;
  ws: WebSocket<Slot> | null;
  topics: Set<string> | null;
  /** Metadata set by the application, carried by every later event; with its JSON, made once per change. */
  meta: KeptMeta | null;
  seq: number;
  closed: boolean;
  /** Outbound frames waiting for the corked flush: data, binary, data, binary, ... (made on the first send: an idle connection holds none) */
  outq: Array<FrameData | boolean> | null;
  /** The queued frames' size (bytes, or UTF-16 units of text). */
  outBytes: number;
  conn: HostConn | null;
  /** Reported lost by a sweeper already: its close must not be published or handled again. */
  swept?: boolean;
  /** Per-connection message rate bucket (`--message-rate`). */
  rateTokens: number;
  rateAt: number;
}

/** Own records are reconciled with live connections every this many lease lengths. */
const RECONCILE_LEASES = 4;
/**
 * A connection's queued frames are written at once, not at the end of the turn, past this size: a
 * turn then holds at most this much per connection (a handler looping on send, a burst from NATS),
 * and a write this large gains nothing from waiting for more.
 */
const TURN_BYTES = 64 * 1024;
/** Outbound frames shorter than this go uncompressed even with `--compression` (deflate gains nothing on them). */
const COMPRESS_MIN = 128;
/** `--compression` as uWebSockets.js options; inbound frames are inflated with the shared decompressor (no memory per connection). */
const COMPRESSION = {
  off: uWS.DISABLED,
  shared: uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR,
  dedicated: uWS.DEDICATED_COMPRESSOR_4KB | uWS.SHARED_DECOMPRESSOR,
} as const;
/** How often connections past their deadline (token expiry, maximum age) are looked for. */
const DEADLINE_TICK_MS = 1000;
/** Granularity of the drain schedule. */
const DRAIN_TICK_MS = 50;

/**
 * What a socket carries: uWebSockets.js copies the upgrade's user data onto its WebSocket object as
 * dynamic properties (a ~800-byte dictionary per socket for ConnData's fields); one property pointing
 * at the ConnData keeps that to a slot.
 */
interface Slot {
  readonly d: ConnData;
}

/** Shared by every connection whose request had none of the copied headers. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function copyHeaders(req: HttpRequest, names: readonly string[]): Readonly<Record<string, string>> {
  let out: Record<string, string> | null = null;
  for (const name of names) {
    const v = req.getHeader(name);
    if (v !== '') (out ??= {})[name] = v;
  }
  return out ?? NO_HEADERS;
}

/**
 * A uWebSockets.js WebSocket frontend. With a handler it runs it in-process (local mode without NATS,
 * or shared-state mode with NATS); without one it publishes every event to NATS and delivers what
 * comes back on its fixed subscriptions (`P.out.<gw>.*`, `P.ctl.<gw>.*`, one per subscribed topic).
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, log, nats } = options;
  const gatewayId = assertToken('gateway id', options.id);
  const base = config.path.length > 1 && config.path.endsWith('/') ? config.path.slice(0, -1) : config.path;
  const conns = new Map<string, ConnData>();
  const topicSubs = new Map<string, { count: number; sub: Subscription | null }>();
  const subs: Subscription[] = [];
  let pendingUpgrades = 0;
  let listenSocket: us_listen_socket | false = false;
  let closing = false;
  // connections closed at a time of their own (a token's exp, --max-connection-age): one timer for all
  const deadlines = new Deadlines<ConnData>(Date.now());
  const closesAtExpiry = config.tokenExpiry === 'close';
  const maxAgeMs = config.maxConnectionAge * 1000;
  // --max-connections-per-ip: connections open or being admitted, per address
  const perAddress = config.maxConnectionsPerIp > 0 ? new Tally<string>() : null;
  const deadlineTimer = closesAtExpiry || maxAgeMs > 0 ? setInterval(() => deadlines.fire(Date.now(), closeAtDeadline), DEADLINE_TICK_MS) : null;
  deadlineTimer?.unref();
  const app: TemplatedApp = createApp(tlsFiles(config));
  const metrics = options.metrics ?? new Metrics('gateway', { gateway: gatewayId });
  if (options.nats) {
    const kv = { put: metrics.kvLatency.labels('put'), delete: metrics.kvLatency.labels('delete'), lease: metrics.kvLatency.labels('lease') };
    options.nats.directory.observe = (op, seconds) => kv[op].observe(seconds);
  }
  // an in-process handler that exports authorize decides upgrades itself (runtime is made below, before any upgrade)
  const authorize = typeof options.handler?.authorize === 'function' ? (request: AuthRequest) => runtime!.authorize(request) : undefined;
  const admission = new Admission({ config, gatewayId, base, log, nats: options.nats ?? null, authorize });
  const clientAddress = new ClientAddress(config.trustedProxies);
  const messageBurst = config.messageRate * 2;
  // durable mode applies to published events only (not to in-process handlers)
  const durable = config.durable && !options.handler && !!options.nats;

  /** `P.in.msg.<route>`, one string per route shared by its connections (not one per connection). */
  const inMsgSubjects = new Map<string, string>();
  const inMsgSubject = (route: string): string => {
    if (!nats) return '';
    let subject = inMsgSubjects.get(route);
    if (subject === undefined) {
      subject = nats.subjects.inMsg(route);
      if (inMsgSubjects.size < 1_000) inMsgSubjects.set(route, subject);
    }
    return subject;
  };

  /** The last upgrade's path, shared by the next connections with the same one. */
  let lastUpgradePath = '';

  // --- outbound: corked, batched per socket -------------------------------------------------
  let dirty: ConnData[] = [];
  let flushScheduled = false;
  const hot = metrics.hot;
  const compress = config.compression !== 'off';
  /** Large enough for deflate to gain anything (asked only when `compress`). */
  const worthCompressing = (data: FrameData): boolean => (typeof data === 'string' ? data.length : data.byteLength) >= COMPRESS_MIN;
  /** Writes a connection's queued frames, corked (uWS applies the backpressure policy to each). */
  function sendQueued(d: ConnData): void {
    const q = d.outq;
    if (q === null || q.length === 0) return;
    const ws = d.ws;
    if (!d.closed && ws) {
      ws.cork(() => {
        for (let i = 0; i < q.length; i += 2) if (ws.send(q[i] as FrameData, q[i + 1] as boolean, compress && worthCompressing(q[i] as FrameData)) === 2) hot.backpressureDropped++;
        hot.framesOut += q.length / 2;
        // the queue's size, summed as it was filled
        hot.bytesOut += d.outBytes;
      });
    }
    q.length = 0;
    d.outBytes = 0;
  }
  const flushOut = () => {
    flushScheduled = false;
    const list = dirty;
    dirty = [];
    // a connection written early (TURN_BYTES) and queued again is listed twice; its second turn finds its queue empty
    for (const d of list) sendQueued(d);
  };
  /** Sends every queued frame now: call before anything that bypasses the queue (fan-out, shutdown; a close uses endWith). */
  function flushOutNow(): void {
    if (dirty.length) flushOut();
  }
  /**
   * Queues a frame; the connection's frames go out corked, one socket write, once per event-loop
   * turn. A turn, not a microtask: the API's sends and a local handler's replies each arrive in a uWS
   * callback of their own, and a microtask runs after each (one write per frame); the check phase
   * comes once the turn's I/O callbacks have all run. `borrowed` bytes (a handler's, which it may
   * reuse) are copied when they wait for the turn's end, not when they go out at once.
   */
  function enqueueOut(d: ConnData, data: FrameData, binary: boolean, borrowed = false): void {
    if (d.closed) return;
    const q = (d.outq ??= []);
    const atOnce = (d.outBytes += typeof data === 'string' ? data.length : data.byteLength) >= TURN_BYTES;
    // a copy of borrowed bytes (Buffer.from copies; a Node Buffer's own slice() would be a view)
    q.push(borrowed && !atOnce && typeof data !== 'string' ? Buffer.from(data) : data, binary);
    if (atOnce) return sendQueued(d);
    // listed when its queue starts (again), and only when a flush will come for the list
    if (q.length === 2) dirty.push(d);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushOut);
    }
  }

  // --- topics ---------------------------------------------------------------------------------
  function topicRef(topic: string): void {
    const entry = topicSubs.get(topic);
    if (entry) {
      entry.count++;
      return;
    }
    let sub: Subscription | null = null;
    if (nats) {
      sub = nats.nc.subscribe(nats.subjects.topic(topic), {
        callback: (err, msg) => {
          if (err) return log.warn({ err, topic }, 'topic subscription failed');
          const h = msg.headers;
          // our own broadcast, already fanned out locally when it was published
          if (h?.get(Header.Origin) === gatewayId) return;
          flushOutNow();
          publishLocal(topic, msg.data, h?.get(Header.Binary) === '1', h?.get(Header.Except) || undefined);
        },
      });
    }
    topicSubs.set(topic, { count: 1, sub });
  }
  /**
   * A broadcast to this gateway's subscribers of `topic`, but `except` when it is one of them: published
   * from its own socket, which uWebSockets.js leaves out.
   */
  function publishLocal(topic: string, data: FrameData, binary: boolean, except: string | undefined): void {
    const c = compress && worthCompressing(data);
    const d = except !== undefined && isConnectionId(except) ? localOf(except) : null;
    if (d && !d.closed && d.ws && d.topics?.has(topic)) d.ws.publish(topic, data, binary, c);
    else app.publish(topic, data, binary, c);
  }
  function topicUnref(topic: string): void {
    const entry = topicSubs.get(topic);
    if (!entry) return;
    if (--entry.count > 0) return;
    topicSubs.delete(topic);
    entry.sub?.unsubscribe();
  }
  /** A connection's open event without its metadata and authorized flag: the fields it shares with the record, in the record's order. */
  function openEvent(d: ConnData): OpenEvent {
    return { id: d.id, gateway: gatewayId, connectedAt: d.connectedAt, ...d.request };
  }
  const topicList = (d: ConnData): string[] => (d.topics ? [...d.topics] : []);
  /** `,"meta":{...}` when the connection has metadata, else nothing: the last field of its record, and of its open event. */
  const metaField = (d: ConnData): string => (d.meta === null ? '' : `,"meta":${d.meta.json}`);
  function record(d: ConnData): ConnectionRecord {
    return { ...openEvent(d), topics: topicList(d), ...(d.meta !== null && { meta: d.meta.value }) };
  }
  /** Subscribes the socket to `topic`; false when it already was, or is gone. The record is the caller's to write. */
  function joinTopic(d: ConnData, topic: string): boolean {
    if (d.closed || !d.ws) return false;
    d.topics ??= new Set();
    if (d.topics.has(topic)) return false;
    d.topics.add(topic);
    d.ws.subscribe(topic);
    topicRef(topic);
    return true;
  }
  /** A record's JSON from the open event's JSON without its closing brace (`shared`), and its topics and metadata now. */
  const recordJson = (d: ConnData, shared: string): string => `${shared},"topics":${JSON.stringify(topicList(d))}${metaField(d)}}`;
  /**
   * Connections opened (with an in-process handler), or whose topics changed, this turn: each record
   * is written once at the turn's end, with every change in it (a handler joining a room at open
   * writes one record, not two; three subscribe commands in one NATS read write one, not three). A
   * connection closed meanwhile is not written: its record is being removed. The value is the open
   * event's JSON for a connection opened this turn (the record is made from it), else undefined.
   */
  const dirtyRecords = new Map<ConnData, string | undefined>();
  function writeRecord(d: ConnData, opened?: string): void {
    if (!nats) return;
    if (dirtyRecords.size === 0) setImmediate(writeDirtyRecords);
    if (opened !== undefined || !dirtyRecords.has(d)) dirtyRecords.set(d, opened);
  }
  function writeDirtyRecords(): void {
    for (const [d, opened] of dirtyRecords) {
      if (d.closed) continue;
      if (opened === undefined) nats!.directory.put(record(d));
      else nats!.directory.putJson(d.id, recordJson(d, opened));
    }
    dirtyRecords.clear();
  }
  function subscribeLocal(d: ConnData, topic: string): void {
    if (joinTopic(d, topic)) writeRecord(d);
  }
  function unsubscribeLocal(d: ConnData, topic: string): void {
    if (d.closed || !d.ws || !d.topics?.delete(topic)) return;
    d.ws.unsubscribe(topic);
    topicUnref(topic);
    writeRecord(d);
  }
  /** When the connection's token expires (its identity's `exp`, in seconds), in ms; null without one. */
  function tokenExpiryOf(d: ConnData): number | null {
    const exp = d.request.identity?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  }
  function scheduleDeadline(d: ConnData): void {
    const expiry = closesAtExpiry ? tokenExpiryOf(d) : null;
    // each at a random point of the age's last tenth: a burst of connections does not come back at once
    const aged = maxAgeMs > 0 ? d.connectedAt + maxAgeMs * (0.9 + 0.1 * Math.random()) : null;
    const at = expiry === null ? aged : aged === null ? expiry : Math.min(expiry, aged);
    if (at !== null) deadlines.add(d, at);
  }
  function closeAtDeadline(d: ConnData): void {
    if (d.closed || !d.ws) return;
    const expiry = closesAtExpiry ? tokenExpiryOf(d) : null;
    if (expiry !== null && expiry <= Date.now()) endWith(d, d.ws, CloseCode.TokenExpired, 'token expired; reconnect with a new one');
    else endWith(d, d.ws, CloseCode.MaxAgeReached, 'connection reached its maximum age; reconnect');
  }
  /**
   * Sets metadata keys: frames published from now on carry the result, the record is rewritten.
   * Answers with the last frame published without it (a worker or the bridge shows the change on
   * events up to that one themselves). Throws InvalidMetaError past the limits.
   */
  function setMeta(d: ConnData, patch: MetaPatch): ControlReply {
    const meta = applyMetaPatch(d.meta?.value ?? null, patch);
    d.meta = kept(meta);
    d.headers?.setMeta(d.meta?.json ?? '');
    if (d.conn) d.conn.meta = meta ?? EMPTY_META;
    writeRecord(d);
    return { ok: true, seq: d.seq, meta: meta ?? EMPTY_META };
  }
  function closeLocal(d: ConnData, code: number | undefined, reason: string | undefined): void {
    if (d.closed || !d.ws) return;
    endWith(d, d.ws, code ?? CloseCode.ClosedByApplication, truncateReason(reason ?? ''));
  }
  /** Closes a connection after the frames queued for it (sent before the close, so they go out before it). */
  function endWith(d: ConnData, ws: WebSocket<Slot>, code: number, reason: string): void {
    sendQueued(d);
    ws.end(code, reason);
  }
  /** A frame for a connection from P.out or the API: no binary flag means text, unless it is not UTF-8 (a client's decoder must never see invalid text). */
  function deliverFrame(d: ConnData, data: Uint8Array, binary: boolean): void {
    enqueueOut(d, data, binary || !isUtf8(data));
  }
  /**
   * A control command (P.ctl, or the API for this gateway's own connections). A subscribe resolves
   * once the NATS server has the topic subscription, so a publish made after the answer arrives.
   */
  function applyControl(d: ConnData, cmd: ControlCommand): Promise<void> | ControlReply | undefined {
    switch (cmd.op) {
      case 'meta':
        return setMeta(d, cmd.set);
      case 'close':
        closeLocal(d, cmd.code, cmd.reason);
        return undefined;
      case 'unsubscribe':
        unsubscribeLocal(d, cmd.topic);
        return undefined;
      case 'subscribe':
        subscribeLocal(d, cmd.topic);
        return nats?.nc.flush().catch(() => undefined);
    }
  }

  // --- the in-process host (local and shared-state modes) -------------------------------------
  function localOf(connectionId: string): ConnData | null | undefined {
    const { gateway, token } = parseConnectionId(connectionId);
    return gateway === gatewayId ? (conns.get(token) ?? null) : undefined;
  }
  const host: ConnectionHost = {
    node: gatewayId,
    send(id, data, binary) {
      const d = localOf(id);
      // the handler may reuse its bytes once this returns
      if (d) enqueueOut(d, data, binary, true);
      else if (d === undefined && nats) nats.nc.publish(nats.subjects.out(id), data, binary ? { headers: BINARY_HEADERS } : undefined);
    },
    close(id, code, reason) {
      const d = localOf(id);
      if (d) closeLocal(d, code, reason);
      else if (d === undefined && nats) nats.nc.publish(nats.subjects.ctl(id), JSON.stringify({ op: 'close', code, reason }));
    },
    async subscribe(id, topic) {
      assertToken('topic', topic);
      const d = localOf(id);
      if (d) subscribeLocal(d, topic);
      else if (d === undefined && nats) await requestControl(nats.nc, nats.subjects, id, { op: 'subscribe', topic }, CONTROL_TIMEOUT_MS, log);
    },
    async unsubscribe(id, topic) {
      assertToken('topic', topic);
      const d = localOf(id);
      if (d) unsubscribeLocal(d, topic);
      else if (d === undefined && nats) await requestControl(nats.nc, nats.subjects, id, { op: 'unsubscribe', topic }, CONTROL_TIMEOUT_MS, log);
    },
    // a handler's connections are this gateway's own (one closed meanwhile is no longer here)
    async setMeta(conn, patch) {
      const set = parseMetaPatch(patch);
      const d = localOf(conn.id);
      if (d) setMeta(d, set);
    },
    publish(topic, data, binary, except) {
      assertToken('topic', topic);
      // local subscribers first, in order with the sends queued before; other gateways through NATS
      flushOutNow();
      publishLocal(topic, data, binary, except);
      memoryHistory?.append(topic, data, binary);
      if (!nats) return;
      const headers = except === undefined ? (binary ? ORIGIN_BINARY_HEADERS : ORIGIN_HEADERS) : topicHeaders(binary, except, gatewayId);
      nats.nc.publish(nats.subjects.topic(topic), data, { headers });
    },
    async lookup(id) {
      const d = localOf(id);
      if (d) return record(d);
      if (d === null || !nats) return null;
      return nats.directory.get(id);
    },
    async history(topic, query) {
      if (memoryHistory) return memoryHistory.read(topic, query);
      if (streamHistory) return streamHistory.read(topic, query);
      throw new HistoryOffError('start wsgw local with --history <n>');
    },
  };
  // local mode keeps history itself; with NATS the stream keeps every broadcast published to P.topic.>
  const memoryHistory = !nats && config.history > 0 ? new MemoryHistory(historyLimits(config)) : null;
  const streamHistory = nats ? new StreamHistory(nats.nc, nats.subjects) : null;
  const ORIGIN_HEADERS = natsHeaders();
  ORIGIN_HEADERS.set(Header.Origin, gatewayId);
  const ORIGIN_BINARY_HEADERS = natsHeaders();
  ORIGIN_BINARY_HEADERS.set(Header.Origin, gatewayId);
  ORIGIN_BINARY_HEADERS.set(Header.Binary, '1');
  const runtime = options.handler ? new HandlerRuntime(options.handler, host, log.child({ component: 'handler' })) : null;
  function connOf(d: ConnData): HostConn {
    if (d.conn === null) {
      d.conn = new HostConn(host, d.id, gatewayId, d.request);
      if (d.meta !== null) d.conn.meta = d.meta.value;
    }
    return d.conn;
  }

  // --- NATS wiring (remote-handler and shared-state modes) ------------------------------------
  let publisher: InboundPublisher | null = null;
  /** Frames and controls for this gateway's connections, from P.out and P.ctl (remote-handler and shared-state modes). */
  let commands: CommandSubscriptions | null = null;
  let lease: LeaseKeeper | null = null;
  let sweeper: Sweeper | null = null;
  let reconcileTimer: NodeJS.Timeout | null = null;
  /**
   * A sweeper declared this gateway dead while NATS was away and published a lost close for each of
   * its connections: drop them all without publishing or removing anything again.
   */
  function fence(): void {
    publisher?.discard();
    flushOutNow();
    for (const d of [...conns.values()]) {
      d.swept = true;
      // out of the map now: uWS may run the close handler later, and nothing may re-register these
      conns.delete(d.token);
      d.ws?.end(CloseCode.LeaseLost, 'gateway lost contact with NATS; reconnect');
    }
    // records the sweeper did not reach (written after its claim) are ours to report, once
    void sweeper?.reconcile(isLive, 0);
  }
  const isLive = (id: string) => conns.has(id.slice(gatewayId.length + 1));
  if (nats) {
    const { nc, subjects, directory } = nats;
    watchStatus(nc, log, {
      onDisconnect() {
        metrics.natsConnected.set(0);
        publisher?.hold();
      },
      onReconnect() {
        metrics.natsConnected.set(1);
        metrics.natsReconnects.inc();
        const resume = () => {
          publisher?.release();
          // records written while NATS was away were lost: write them all again
          for (const d of conns.values()) directory.put(record(d));
        };
        if (lease!.stillHeld()) {
          // a short blip: no sweeper can have taken the lease, so resume now (a cluster failover may
          // keep KV writes waiting for a new stream leader for seconds) and renew in the background
          resume();
          void lease!.renew();
          return;
        }
        // a long outage: confirm the lease before anything else goes out; if it was taken, fence()
        // runs first and the connections it dropped are neither published for nor registered again
        void lease!.confirm(() => closing).then(resume);
      },
    });
    if (!runtime) {
      let js: JetStreamClient | null = null;
      if (config.durable) {
        const streamOptions = { subjects, replicas: config.kvReplicas, maxAgeS: config.durableMaxAge, maxBytes: config.durableMaxBytes, log };
        await ensureInboundStream(nc, streamOptions);
        js = jetstream(nc);
        // lost with a store, or deleted by hand: created again by the directory's looks at its buckets
        directory.keepStream(inboundStreamConfig(streamOptions));
      }
      publisher = new InboundPublisher(nc, config.outageBuffer, log, js, () => {
        metrics.publishFailures.inc();
        // in durable mode, a failed publish may mean the stream is gone: look (at most once a second)
        if (js) void directory.checkBuckets();
      });
    }
    commands = subscribeCommands(
      nc,
      subjects,
      gatewayId,
      {
        connection(token) {
          const d = conns.get(token);
          return d && !d.closed ? d : undefined;
        },
        deliver: deliverFrame,
        control: applyControl,
        serverStatus(code) {
          // 503: frames published with this reply subject found no subscriber (no worker listening) and are lost
          const n = ++hot.noResponders;
          if (n === 1 || n % 1000 === 0) log.warn({ noResponders: n, status: code }, 'frames reached no worker (no responders on P.in.msg)');
        },
      },
      { maxConnections: config.maxConnections, log },
    );
    if (runtime) {
      // shared-state mode: lost closes (published by whichever process swept a dead gateway) reach
      // exactly one gateway's in-process handler through this queue group
      subs.push(
        nc.subscribe(subjects.inClose, {
          queue: `${subjects.prefix}-lost-closes`,
          callback: (err, msg) => {
            if (err) return;
            let ev: CloseEvent;
            try {
              ev = msg.json<CloseEvent>();
              parseConnectionId(ev.id);
            } catch {
              return;
            }
            if (ev.lost) runtime.close(new HostConn(host, ev.id, ev.gateway, undefined), { code: ev.code, reason: ev.reason, lost: true });
          },
        }),
      );
    }
    lease = new LeaseKeeper({ directory, id: gatewayId, leaseMs: config.leaseMs, log, connections: () => conns.size, onFenced: fence });
    // the connections bucket deleted and created again (a NATS server back without its JetStream
    // store): every record went with it, so all are written again, after the lease when that went too
    // (a record with no lease looks orphaned to the other sweepers)
    directory.onRenewed((renewed) => {
      if (!renewed.connections) return;
      const rewrite = () => {
        if (!closing) for (const d of conns.values()) directory.put(record(d));
      };
      if (renewed.gateways) void lease!.renew().then(rewrite);
      else rewrite();
    });
    await lease.start();
    metrics.natsConnected.set(1);
    sweeper = startSweeper({ nc, subjects, directory, log, intervalMs: Math.max(250, Math.floor(config.leaseMs / 3)), purge: purgePolicy(config.goneRetention), self: gatewayId, onLost: (n) => metrics.lostReported.inc(n) });
    // anti-entropy, now and then: a look at the buckets (one deleted and created again while every
    // write succeeded, so that no failure asked for a look, is found here), and records of ours without
    // a live connection (a removal lost in an outage) removed and reported; the grace covers records of
    // connections still opening
    reconcileTimer = setInterval(() => {
      void directory.checkBuckets();
      void sweeper!.reconcile(isLive, 2 * config.leaseMs);
    }, RECONCILE_LEASES * config.leaseMs);
    reconcileTimer.unref();
  }

  // --- WebSocket behavior ---------------------------------------------------------------------
  /** An upgrade refused before it completes: answered with its status, and counted by it. */
  function refuseUpgrade(res: HttpResponse, status: string, message: string): void {
    metrics.upgradeRefused(Number.parseInt(status, 10));
    refuse(res, status, message);
  }
  function refuse(res: HttpResponse, status: string, message: string): void {
    res.cork(() => {
      res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(JSON.stringify({ error: status.slice(4).toLowerCase().replace(/ /g, '_'), message }));
    });
  }

  const behavior: uWS.WebSocketBehavior<Slot> = {
    // uWS drops an oversized frame's TCP connection without a close frame (the client sees 1006);
    // letting it buffer up to twice the limit lets us close frames just over it with 1009 and a reason
    maxPayloadLength: config.maxPayload * 2,
    idleTimeout: config.idleTimeout,
    maxBackpressure: config.maxBackpressure,
    // typed as number in index.d.ts, read as a flag by the addon
    closeOnBackpressureLimit: config.backpressurePolicy === 'close' ? 1 : 0,
    sendPingsAutomatically: true,
    compression: COMPRESSION[config.compression as keyof typeof COMPRESSION],
    upgrade(res, req, context) {
      // copy req data now: it dies with this callback; the path is kept in the connection's record,
      // and most clients share one, so an equal path reuses the previous connection's string
      let url = req.getUrl();
      if (url === lastUpgradePath) url = lastUpgradePath;
      else lastUpgradePath = url;
      const key = req.getHeader('sec-websocket-key');
      const extensions = req.getHeader('sec-websocket-extensions');
      const r: UpgradeRequest = {
        url,
        query: req.getQuery() ?? '',
        origin: req.getHeader('origin'),
        offered: req.getHeader('sec-websocket-protocol'),
        headers: copyHeaders(req, config.headers),
        authorization: admission.readsAuthorization ? req.getHeader('authorization') : '',
        cookie: admission.readsCookie ? req.getHeader('cookie') : '',
        // X-Forwarded-For is read only when some proxy is trusted
        remoteAddress: clientAddress.resolve(Buffer.from(res.getRemoteAddressAsText()).toString(), clientAddress.enabled ? req.getHeader('x-forwarded-for') : ''),
      };

      // cheap refusals first, before anything async or anything published
      if (closing) return refuseUpgrade(res, '503 Service Unavailable', 'gateway is shutting down');
      if (conns.size + pendingUpgrades >= config.maxConnections) return refuseUpgrade(res, '503 Service Unavailable', 'too many connections');
      const admitted = admission.check(r);
      if ('refuse' in admitted) return refuseUpgrade(res, ...admitted.refuse);
      // a place is held while open (taken in open, released in close) and while the asynchronous
      // checks run (released once decided): a socket uWebSockets.js upgrades but never opens holds none
      if (perAddress !== null && perAddress.get(r.remoteAddress) >= config.maxConnectionsPerIp) return refuseUpgrade(res, '429 Too Many Requests', `too many connections from this address (at most ${config.maxConnectionsPerIp})`);
      const { route, query, subprotocol } = admitted;

      const token = newToken();
      const id = formatConnectionId(gatewayId, token);
      const makeData = (identity: Readonly<Record<string, unknown>> | null, authorized: AuthorizerGrant | null): ConnData => ({
        id,
        token,
        connectedAt: Date.now(),
        request: { path: url, query, headers: r.headers, remoteAddress: r.remoteAddress, subprotocol, identity },
        authorized,
        route,
        msgSubject: inMsgSubject(route),
        outSubject: null,
        ws: null,
        topics: null,
        meta: kept(authorized?.meta ?? null),
        seq: 0,
        closed: false,
        outq: null,
        outBytes: 0,
        conn: null,
        rateTokens: config.messageRate * 2,
        rateAt: 0,
      });
      if (!admission.waits) {
        res.upgrade({ d: makeData(null, null) }, key, subprotocol, extensions, context);
        return;
      }

      // verify the token and ask the authorizer; the client waits, nothing is published before
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      pendingUpgrades++;
      perAddress?.add(r.remoteAddress);
      admission.decide(r, admitted, id).then(
        (outcome) => {
          pendingUpgrades--;
          perAddress?.remove(r.remoteAddress);
          if (aborted) return;
          if ('refuse' in outcome) return refuseUpgrade(res, ...outcome.refuse);
          res.cork(() => res.upgrade({ d: makeData(outcome.identity, outcome.grant) }, key, subprotocol, extensions, context));
        },
        (err) => {
          pendingUpgrades--;
          perAddress?.remove(r.remoteAddress);
          log.error({ err }, 'upgrade failed');
          if (!aborted) refuseUpgrade(res, '500 Internal Server Error', 'internal error');
        },
      );
    },
    open(ws) {
      const d = ws.getUserData().d;
      d.ws = ws;
      conns.set(d.token, d);
      metrics.opens.inc();
      if (deadlineTimer !== null) scheduleDeadline(d);
      perAddress?.add(d.request.remoteAddress);
      if (d.authorized) {
        // the record written below carries these topics: no record write per topic
        for (const t of d.authorized.topics) joinTopic(d, t);
        if (d.authorized.message !== undefined) enqueueOut(d, d.authorized.message, d.authorized.binary);
      }
      if (nats) {
        // the record and the open event share every field but their last: serialised once, the
        // record is that JSON with its topics and metadata, the event with its metadata and
        // authorized flag (the same bytes as serialising each: the fields in the same order)
        const shared = JSON.stringify(openEvent(d)).slice(0, -1);
        if (runtime) {
          // an in-process handler may join topics as it opens: the record is written at the turn's
          // end, with them (one write, not two). Without one nothing can join now: written at once,
          // so a connect burst keeps no record waiting (they outlived young-generation collections)
          writeRecord(d, shared);
        } else {
          nats.directory.putJson(d.id, recordJson(d, shared));
        }
        if (publisher) {
          // with the authorizer's metadata, when it gave some
          publisher.publish(nats.subjects.inOpen, `${shared}${metaField(d)}${d.authorized ? ',"authorized":true' : ''}}`, undefined, '', durable ? `${d.id}-open` : '');
        }
      }
      log.debug({ conn: d.id, path: d.request.path }, 'open');
      runtime?.open(connOf(d));
    },
    message(ws, message, isBinary) {
      const d = ws.getUserData().d;
      if (config.messageRate > 0) {
        const now = Date.now();
        d.rateTokens = Math.min(messageBurst, d.rateTokens + ((now - d.rateAt) * config.messageRate) / 1000);
        d.rateAt = now;
        if (d.rateTokens < 1) {
          endWith(d, ws, CloseCode.PolicyViolation, `more than ${config.messageRate} frames per second`);
          return;
        }
        d.rateTokens--;
      }
      if (message.byteLength > config.maxPayload) {
        endWith(d, ws, CloseCode.MessageTooBig, `frame of ${message.byteLength} bytes exceeds the ${config.maxPayload}-byte limit`);
        return;
      }
      let subject = d.msgSubject;
      let route = d.route;
      if (config.routeField !== '' && !isBinary) {
        const r = routeFromField(config.routeField, message, d.route);
        if (typeof r !== 'string') {
          endWith(d, ws, CloseCode.PolicyViolation, truncateReason(`invalid route ${JSON.stringify(r.invalid)}`));
          return;
        }
        if (r !== route) {
          route = r;
          subject = inMsgSubject(r);
        }
      }
      metrics.frameIn(route, message.byteLength);
      const seq = ++d.seq;
      if (runtime) {
        // copy: uWS detaches the ArrayBuffer when this callback returns. Into Node's buffer pool, not
        // with ArrayBuffer#slice, which costs ~0.9 µs for a 64-byte frame (a backing store of its
        // own) against ~0.1 µs; a handler keeps `data` only until it settles (types.ts)
        runtime.message(connOf(d), new FrameMessage(Buffer.from(new Uint8Array(message)), isBinary, route, seq));
        return;
      }
      // the publisher copies the frame (into its protocol buffer) before this callback returns
      const h = durable ? frameHeaders(d.id, gatewayId, seq, isBinary, d.meta?.json) : (d.headers ??= new FrameHeaderEncoder(d.id, gatewayId, d.meta?.json)).at(seq, isBinary);
      if (!publisher!.publish(subject, new Uint8Array(message), h, (d.outSubject ??= nats!.subjects.out(d.id)), durable ? `${d.id}-${seq}` : '')) {
        metrics.outageRefused.inc();
        endWith(d, ws, CloseCode.NatsUnavailable, 'message queue unavailable; retry later');
      }
    },
    close(ws, code, message) {
      const d = ws.getUserData().d;
      d.closed = true;
      d.ws = null;
      conns.delete(d.token);
      metrics.closed(code);
      const reason = Buffer.from(message).toString();
      if (d.topics) for (const t of d.topics) topicUnref(t);
      deadlines.delete(d);
      perAddress?.remove(d.request.remoteAddress);
      if (d.swept) return;
      if (nats) {
        const { directory } = nats;
        if (publisher) {
          // the record goes once the close event is out (acknowledged by the stream in durable mode):
          // if this gateway dies in between, a sweeper finds the record and reports the close instead
          // (with the same message id, so the durable stream keeps one)
          const ev: CloseEvent = { id: d.id, gateway: gatewayId, code, reason, lost: false, ...(d.meta !== null && { meta: d.meta.value }) };
          const removeRecord = () => directory.remove(d.id);
          if (!publisher.publish(nats.subjects.inClose, JSON.stringify(ev), undefined, '', durable ? `${d.id}-close` : '', removeRecord)) removeRecord();
        } else {
          directory.remove(d.id);
        }
      }
      log.debug({ conn: d.id, code, reason }, 'close');
      runtime?.close(connOf(d), { code, reason, lost: false });
    },
  };
  app.ws(base, behavior);
  if (base !== '/') app.ws(base + '/*', behavior);
  const api =
    options.api && nats
      ? mountConnectionsApi(app, {
          ...nats,
          view: options.api.view,
          token: config.token,
          maxPayload: config.maxPayload,
          requestTimeout: config.requestTimeout,
          log,
          // this gateway's own connections skip the NATS round trip; the same checks and order apply
          local: {
            send(id, data, binary) {
              const d = localOf(id);
              if (d === undefined) return undefined;
              if (!d || d.closed) return false;
              deliverFrame(d, data, binary);
              return true;
            },
            control(id, cmd) {
              const d = localOf(id);
              if (d === undefined) return undefined;
              if (!d || d.closed) return false;
              const done = applyControl(d, cmd);
              return done instanceof Promise ? done.then(() => true) : (done ?? true);
            },
          },
        })
      : null;
  app.get('/healthz', (res) => {
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ ok: true, gateway: gatewayId, connections: conns.size }));
  });
  if (config.demo) mountPage(app, '/', 'chat.html');
  mountClient(app);
  // ready: accepting, NATS connected, and the lease (a KV write) confirmed recently
  mountOpsRoutes(
    app,
    metrics,
    () => (closing ? 'draining' : nats && (nats.nc.isClosed() || !lease?.stillHeld()) ? 'NATS or KV not confirmed' : null),
    () => {
      metrics.connections.set(conns.size);
      metrics.outageBuffered.set(publisher?.pending ?? 0);
    },
  );
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    refuse(res, '404 Not Found', `nothing at ${url}; WebSocket clients connect to ${base}`);
  });

  const port = await new Promise<number>((resolve, reject) => {
    app.listen(config.host, config.port, (token) => {
      if (!token) return reject(new ListenError(config.host, config.port));
      listenSocket = token;
      resolve(uWS.us_socket_local_port(token));
    });
  });
  log.info({ gateway: gatewayId, port, path: base, mode: runtime ? (nats ? 'shared-state' : 'local') : 'remote-handlers' }, 'gateway listening');

  return {
    id: gatewayId,
    port,
    get connections() {
      return conns.size;
    },
    async close(drainMs = 0) {
      if (closing) return;
      closing = true;
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = false;
      flushOutNow();
      if (drainMs > 0 && conns.size > 0) {
        // spread the reconnects so the clients do not stampede the remaining gateways
        const victims = [...conns.values()];
        const steps = Math.max(1, Math.min(victims.length, Math.floor(drainMs / DRAIN_TICK_MS)));
        const perStep = Math.ceil(victims.length / steps);
        log.info({ connections: victims.length, drainMs }, 'draining');
        for (let i = 0; i < victims.length; i += perStep) {
          flushOutNow();
          for (const d of victims.slice(i, i + perStep)) d.ws?.end(CloseCode.GatewayDraining, 'gateway draining; reconnect');
          if (i + perStep < victims.length) await new Promise((r) => setTimeout(r, drainMs / steps));
        }
      }
      for (const d of [...conns.values()]) d.ws?.end(CloseCode.GoingAway, 'gateway shutting down');
      if (reconcileTimer) clearInterval(reconcileTimer);
      if (deadlineTimer) clearInterval(deadlineTimer);
      await sweeper?.close();
      if (nats) {
        publisher?.flush();
        commands?.flush();
        commands?.unsubscribe();
        for (const s of subs) s.unsubscribe();
        for (const t of topicSubs.values()) t.sub?.unsubscribe();
        // bounded: with NATS unreachable these would wait for a reconnect that may never come
        const done = await within(
          lease!.stop().then(() => nats.nc.flush()).then(
            () => true,
            (err) => (log.warn({ err }, 'could not remove the gateway lease'), true),
          ),
          2_000,
        );
        if (!done) log.warn('NATS unreachable at shutdown: the gateway lease will expire instead of being removed');
      }
      options.api?.view.stop();
      api?.close();
      app.close();
      if (hot.backpressureDropped) log.info({ droppedFrames: hot.backpressureDropped }, 'frames dropped by backpressure during this run');
    },
  };
}
