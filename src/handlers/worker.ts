import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { BINARY_HEADER_BYTES, CONTROL_TIMEOUT_MS, orderedControl, topicHeaderBytes } from '../nats/control.js';
import { RawPublisher } from '../nats/raw-publish.js';
import type { Logger } from 'pino';
import { readFrameMeta } from './frame-meta.js';
import { InternedText, subjectTail } from '../nats/message-text.js';
import type { AuthReply, AuthRequest, CloseEvent, OpenEvent, RequestInfo } from '../protocol/events.js';
import { InvalidMetaError, metaJson, MetaView, parseMetaPatch } from '../protocol/meta.js';
import type { Subjects } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import { parseConnectionId } from '../protocol/ids.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import { FrameMessage, HandlerRuntime, HostConn, type ConnectionHost, type Done } from './runtime.js';
import { consumeDurable, MAX_DELIVER, type DurableConsumer } from '../nats/durable.js';
import { StreamHistory } from '../nats/history.js';
import type { Conn, Handler } from './types.js';
import type { Metrics } from '../metrics/metrics.js';

export interface WorkerOptions {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  /** Used to resolve `conn.request` for connections this worker did not see open. */
  readonly directory: ConnectionDirectory;
  readonly handler: Handler;
  /** Queue group; workers in one group share the load. */
  readonly queue: string;
  readonly log: Logger;
  /** Connections whose request info is cached (least recently opened evicted first). */
  readonly cacheSize?: number;
  /** Durable mode: consume the inbound stream through the durable consumer named like the queue group. */
  readonly durable?: { readonly ackWaitMs: number };
  readonly metrics?: Metrics;
}

export interface Worker {
  /** Events handled so far (open + message + close). */
  readonly handled: number;
  /** Drains its subscriptions (in-flight handlers finish) and stops. */
  close(): Promise<void>;
}

const DEFAULT_CACHE_SIZE = 50_000;

/** A connection as the worker keeps it: with its metadata view once the connection has metadata. */
class WorkerConn extends HostConn {
  view: MetaView | null = null;
  /** Shows the metadata an event carries (`json`, '' for none; `seq` as MetaView.see takes it). */
  see(json: string, seq: number): void {
    if (json === '' && this.view === null) return;
    this.meta = (this.view ??= new MetaView()).see(json, seq);
  }
}

/**
 * Runs a handler module against NATS: joins the queue group on `P.in.open`, `P.in.msg.>` and
 * `P.in.close`, and turns the handler's actions into `P.out`, `P.ctl` and `P.topic` publishes.
 * Resolves once the server has registered its subscriptions.
 */
export async function createWorker(options: WorkerOptions): Promise<Worker> {
  const { nc, subjects, directory, log, queue } = options;
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const conns = new Map<string, WorkerConn>();
  let handled = 0;
  /** Keeps `value` under `id` in a cache of the `cacheSize` most recently added ids. */
  function remember<V>(cache: Map<string, V>, id: string, value: V): V {
    cache.set(id, value);
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
    return value;
  }
  /** `P.out.<id>` per recently seen connection: building it validates the id, on every send otherwise. */
  const outSubjects = new Map<string, string>();
  const outSubject = (id: string): string => outSubjects.get(id) ?? remember(outSubjects, id, subjects.out(id));

  // the handler's sends, closes and broadcasts, written as protocol bytes and handed to nats.js once
  // per microtask burst (every one of them goes through here, so they stay in call order; a control
  // request flushes them first)
  const out = new RawPublisher(nc, queueMicrotask, true);
  const control = orderedControl(out, nc, subjects, CONTROL_TIMEOUT_MS, log);

  const host: ConnectionHost = {
    node: 'worker',
    send(id, data, binary) {
      out.publish(outSubject(id), data, binary ? BINARY_HEADER_BYTES : undefined);
    },
    close(id, code, reason) {
      out.publish(subjects.ctl(id), JSON.stringify({ op: 'close', code, reason }));
    },
    subscribe: async (id, topic) => void (await control(id, { op: 'subscribe', topic: assertToken('topic', topic) })),
    unsubscribe: async (id, topic) => void (await control(id, { op: 'unsubscribe', topic: assertToken('topic', topic) })),
    async setMeta(conn, patch) {
      const set = parseMetaPatch(patch);
      const c = conn as WorkerConn;
      const view = (c.view ??= new MetaView());
      // shown at once, and on this connection's events until they carry it themselves
      const asked = view.ask(set);
      c.meta = view.current;
      const reply = await control(c.id, { op: 'meta', set });
      if (reply?.ok) return view.applied(asked, reply.seq ?? 0);
      view.dropped(asked);
      c.meta = view.current;
      if (reply?.error === 'invalid') throw new InvalidMetaError(reply.message ?? 'metadata refused by the gateway');
    },
    publish(topic, data, binary, except) {
      out.publish(subjects.topic(topic), data, topicHeaderBytes(binary, except));
    },
    lookup: (id) => directory.get(id),
    history: (topic, query) => history.read(topic, query),
  };
  const history = new StreamHistory(nc, subjects);
  const runtime = new HandlerRuntime(options.handler, host, log.child({ component: 'handler' }), () => options.metrics?.handlerErrors.inc());
  const hot = options.metrics?.hot;

  async function resolveConn(id: string, gateway: string): Promise<WorkerConn> {
    const known = conns.get(id);
    if (known) return known;
    let request: RequestInfo | undefined;
    try {
      request = (await directory.get(id)) ?? undefined;
    } catch (err) {
      log.warn({ err, conn: id }, 'could not read connection record');
    }
    return remember(conns, id, new WorkerConn(host, id, gateway, request));
  }

  /** An inbound event: from a core subscription, or a durable stream message (then `done` acks it). */
  type Inbound = { subject: string; data: Uint8Array; headers?: MsgHdrs; json<T>(): T };

  /** The event's JSON with a valid connection id, or null (logged, and acked: retrying cannot fix it). */
  function parseEvent<T extends { id: string }>(msg: Inbound, kind: string, done?: Done): T | null {
    try {
      const ev = msg.json<T>();
      parseConnectionId(ev.id);
      return ev;
    } catch (err) {
      log.warn({ err }, `malformed ${kind} event ignored`);
      done?.();
      return null;
    }
  }

  function onOpen(msg: Inbound, done?: Done): void {
    const ev = parseEvent<OpenEvent>(msg, 'open', done);
    if (!ev) return;
    handled++;
    if (hot) hot.workerOpens++;
    const { id, gateway, connectedAt: _c, authorized: _a, meta, ...request } = ev;
    const conn = remember(conns, id, new WorkerConn(host, id, gateway, request));
    if (meta !== undefined) conn.see(metaJson(meta), 0);
    runtime.open(conn, done);
  }

  const routeOffset = subjects.inMsgAll.length - 1;
  // connection ids and routes repeat from frame to frame: kept as strings, not decoded per frame
  const texts = new InternedText(Math.min(cacheSize * 2, 1 << 20));
  function onMessage(msg: Inbound, done?: Done): void {
    const frame = readFrameMeta(msg, texts);
    if (!frame) {
      log.warn({ subject: msg.subject }, 'frame without connection headers ignored');
      return done?.();
    }
    const { conn: id, gateway } = frame;
    handled++;
    if (hot) hot.workerMessages++;
    const message = new FrameMessage(msg.data, frame.binary, subjectTail(msg, routeOffset, texts), frame.seq);
    const conn = conns.get(id);
    // the metadata this frame carries is shown when its turn comes (earlier frames may still be handled)
    const json = frame.meta;
    const see = json === '' && (conn === undefined || conn.view === null) ? undefined : (c: Conn) => (c as WorkerConn).see(json, frame.seq);
    if (conn) runtime.message(conn, message, done, see);
    else runtime.messageAfter(id, () => resolveConn(id, gateway), message, done, see);
  }

  function onClose(msg: Inbound, done?: Done): void {
    const ev = parseEvent<CloseEvent>(msg, 'close', done);
    if (!ev) return;
    handled++;
    if (hot) hot.workerCloses++;
    const conn = conns.get(ev.id) ?? new WorkerConn(host, ev.id, ev.gateway, undefined);
    conns.delete(ev.id);
    outSubjects.delete(ev.id);
    const json = metaJson(ev.meta ?? null);
    runtime.close(conn, { code: ev.code, reason: ev.reason, lost: ev.lost === true }, done, (c) => (c as WorkerConn).see(json, Infinity));
  }

  const subs: Subscription[] = [];
  let durable: DurableConsumer | null = null;
  if (options.durable) {
    // durable mode: one durable consumer per queue group; ack after the handler, nak on failure
    durable = await consumeDurable({
      nc,
      prefix: subjects.prefix,
      name: queue,
      ackWaitMs: options.durable.ackWaitMs,
      log,
      handle(m) {
        const done: Done = (err) => {
          if (err === undefined) return m.ack();
          if (m.info.deliveryCount >= MAX_DELIVER) {
            log.error({ err, subject: m.subject, deliveries: m.info.deliveryCount }, 'event failed on every delivery; given up');
            return m.term('handler failed');
          }
          m.nak(1_000);
        };
        const event: Inbound = { subject: m.subject, data: m.data, headers: m.headers, json: <T>() => m.json<T>() };
        if (m.subject === subjects.inOpen) onOpen(event, done);
        else if (m.subject === subjects.inClose) onClose(event, done);
        else onMessage(event, done);
      },
    });
  } else {
    const sub = (subject: string, handle: (m: Msg) => void) =>
      subs.push(
        nc.subscribe(subject, {
          queue,
          callback: (err, msg) => {
            if (err) return log.warn({ err, subject }, 'subscription failed');
            handle(msg);
          },
        }),
      );
    sub(subjects.inOpen, (m) => onOpen(m));
    sub(subjects.inMsgAll, (m) => onMessage(m));
    sub(subjects.inClose, (m) => onClose(m));
  }
  if (runtime.authorizes) {
    // the handler decides upgrades: answer gateways started with --authorize, shared in the queue group
    subs.push(
      nc.subscribe(subjects.auth, {
        queue,
        callback: (err, msg) => {
          if (err) return log.warn({ err, subject: subjects.auth }, 'subscription failed');
          let request: AuthRequest;
          try {
            request = msg.json<AuthRequest>();
            parseConnectionId(request.id);
          } catch {
            log.warn('malformed authorization request refused');
            return void msg.respond(JSON.stringify({ ok: false, status: 400, message: 'malformed authorization request' } satisfies AuthReply));
          }
          void runtime.authorize(request).then((reply) => msg.respond(JSON.stringify(reply)));
        },
      }),
    );
  }
  // the log line promises the subscriptions are live: wait until the server has them
  await nc.flush();
  log.info({ queue, prefix: subjects.prefix, durable: !!options.durable, authorizes: runtime.authorizes }, 'worker subscribed');

  return {
    get handled() {
      return handled;
    },
    async close() {
      await durable?.close();
      await Promise.all(subs.map((s) => s.drain().catch(() => undefined)));
    },
  };
}
