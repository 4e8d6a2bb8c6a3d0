import { Pool } from 'undici';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { isApplicationCloseCode, truncateReason } from '../protocol/close-codes.js';
import type { AuthReply, CloseEvent, OpenEvent } from '../protocol/events.js';
import { applyMetaPatch, metaJson, MetaView, parseMetaPatch, type Meta, type MetaPatch } from '../protocol/meta.js';
import { BINARY_HEADER_BYTES, orderedControl, topicHeaderBytes } from '../nats/control.js';
import { readFrameMeta } from '../handlers/frame-meta.js';
import { isConnectionId } from '../protocol/ids.js';
import type { Subjects } from '../protocol/subjects.js';
import { isToken } from '../protocol/tokens.js';
import { within } from '../nats/connect.js';
import { RawPublisher } from '../nats/raw-publish.js';
import { consumeDurable, type DurableConsumer } from '../nats/durable.js';
import type { JsMsg } from '@nats-io/jetstream';
import { OrderedQueue } from './ordered-queue.js';
import { sign } from './signature.js';
import type { Metrics } from '../metrics/metrics.js';

export interface BridgeOptions {
  readonly config: Config;
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly metrics?: Metrics;
}

export interface BridgeStats {
  /** Requests answered by the application (any status). */
  readonly delivered: number;
  /** Attempts repeated after a 5xx, a timeout or a connection error. */
  readonly retried: number;
  /** Events given up (retries exhausted, queue full, answer too large). */
  readonly givenUp: number;
}

export interface Bridge {
  readonly stats: BridgeStats;
  /** Stops taking events, lets those in flight finish (bounded), closes the HTTP pool. */
  close(): Promise<void>;
}

type EventKind = 'open' | 'message' | 'close';

interface BridgeEvent {
  readonly kind: EventKind;
  readonly id: string;
  readonly gateway: string;
  readonly body: Uint8Array;
  readonly route?: string;
  readonly binary?: boolean;
  readonly seq?: string;
  /** The connection's metadata the event carries (JSON, '' for none). */
  readonly meta: string;
  /** Set for the pre-upgrade authorization (`P.auth`): the gateway waits for our answer. */
  readonly authorize?: Msg;
  /** Durable mode: the stream's message, acknowledged once the event is done (answered or given up). */
  readonly durable?: JsMsg;
}

/** Application answer headers (lower-case, as undici gives them). */
const ANSWER = {
  subscribe: 'wsgw-subscribe',
  unsubscribe: 'wsgw-unsubscribe',
  close: 'wsgw-close',
  closeReason: 'wsgw-close-reason',
  identity: 'wsgw-identity',
  /** `Wsgw-Publish: <topic>`: the body is broadcast to the topic instead of sent to the connection. */
  publish: 'wsgw-publish',
  /** `Wsgw-Publish-Except: <connId>`: a connection left out of that broadcast (the sender, say). */
  publishExcept: 'wsgw-publish-except',
  /** `Wsgw-Set-Meta-<key>: <value>` sets a metadata key (an empty value removes it). */
  setMetaPrefix: 'wsgw-set-meta-',
} as const;

/** Connections whose metadata view the bridge keeps (least recently made forgotten first). */
const META_VIEWS = 50_000;

const MAX_BACKOFF_MS = 2_000;

class AnswerTooLarge extends Error {}

type AnswerHeaders = Record<string, string | string[] | undefined>;

interface Answer {
  readonly status: number;
  readonly headers: AnswerHeaders;
  readonly body: Buffer;
}

const NONE: readonly string[] = Object.freeze([]);

function list(value: string | string[] | undefined): readonly string[] {
  if (value === undefined) return NONE;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** An answer sent as `application/octet-stream` becomes a binary frame; anything else, text. */
function isBinary(headers: AnswerHeaders): boolean {
  return /^application\/octet-stream\b/i.test(one(headers['content-type']) ?? '');
}

/**
 * `wsgw bridge`: consumes the inbound subjects in a queue group and POSTs each event to the
 * application; the application's answers become frames, topic changes and closes. One request in
 * flight per connection (order), bounded overall; retries with backoff, then a visible give-up.
 */
export async function createBridge(options: BridgeOptions): Promise<Bridge> {
  const { config, nc, subjects, log } = options;
  const target = new URL(config.target);
  const path = target.pathname + target.search;
  // the timeout bounds each phase: connecting, waiting for the answer's headers, and each body chunk
  const pool = new Pool(target.origin, { connections: config.bridgeConcurrency, keepAliveTimeout: 30_000, pipelining: 1, connectTimeout: config.bridgeTimeout });
  // answers become publishes handed to nats.js once per event-loop turn: each HTTP answer arrives in
  // its own I/O callback, and nats.js would otherwise write its socket once per answer
  const out = new RawPublisher(nc, setImmediate, true);
  const stats = { delivered: 0, retried: 0, givenUp: 0 };
  const queue = new OrderedQueue<BridgeEvent>(config.bridgeConcurrency, config.bridgeQueue, (_key, ev, done) =>
    deliver(ev, ev.durable ? () => (settle(ev.durable!, 'ack'), done()) : done, 0),
  );
  /** Durable mode: the stream's messages this bridge holds (queued or in flight), kept from redelivery while it lives. */
  const held = new Set<JsMsg>();
  /**
   * Durable mode: done with a message. An event answered or given up (visibly, as in core mode) is
   * acknowledged; one that found the queue full is handed back, to be delivered again in a second.
   */
  function settle(m: JsMsg, how: 'ack' | 'nak'): void {
    held.delete(m);
    if (how === 'ack') m.ack();
    else m.nak(1_000);
  }
  // counted as plain numbers, copied into the counter at scrape (prom-client hashes labels per inc)
  const hot = options.metrics?.hot;

  /** One POST; `done` gets the answer or the error (callbacks: no promise per request on the hot path). */
  function post(ev: BridgeEvent, done: (err: Error | null, answer?: Answer) => void): void {
    const h: Record<string, string> = {
      'wsgw-timestamp': String(Date.now()),
      'wsgw-event': ev.kind,
      'wsgw-conn': ev.id,
      'wsgw-gateway': ev.gateway,
      'content-type': ev.kind === 'message' ? (ev.binary ? 'application/octet-stream' : 'text/plain; charset=utf-8') : 'application/json',
    };
    if (ev.kind === 'message') {
      h['wsgw-route'] = ev.route!;
      h['wsgw-binary'] = ev.binary ? '1' : '0';
      h['wsgw-seq'] = ev.seq!;
    }
    if (ev.authorize) h['wsgw-authorize'] = '1';
    // what the event carries, with what this bridge set that the event may predate
    const view = metaViews.get(ev.id);
    const meta = view ? view.seeJson(ev.meta, ev.kind === 'message' ? Number(ev.seq) : ev.kind === 'open' ? 0 : Infinity) : ev.meta;
    if (meta !== '' && meta !== '{}') h['wsgw-meta'] = meta;
    if (config.secret !== '') h['wsgw-signature'] = sign(config.secret, h, ev.body);
    // undici's dispatch with a plain handler: no Readable body stream or async iterator per answer
    let status = 0;
    let answerHeaders: AnswerHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    // once only: a throw out of the dispatch below must not report an attempt that already reported
    let reported = false;
    const answered = (err: Error | null, answer?: Answer) => {
      if (reported) return;
      reported = true;
      done(err, answer);
    };
    try {
      pool.dispatch(
        { path, method: 'POST', headers: h, body: ev.body, headersTimeout: config.bridgeTimeout, bodyTimeout: config.bridgeTimeout },
        {
          // undici tells the handler API apart by this method (without it, it asks for the legacy onConnect)
          onRequestStart() {},
          onResponseStart(_controller, statusCode, headers) {
            status = statusCode;
            answerHeaders = headers;
          },
          onResponseData(controller, chunk) {
            size += chunk.length;
            if (size > config.maxPayload) {
              tooLarge = true;
              controller.abort(new AnswerTooLarge(`answer larger than ${config.maxPayload} bytes`));
              return;
            }
            chunks.push(chunk);
          },
          onResponseEnd() {
            answered(null, { status, headers: answerHeaders, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
          },
          onResponseError(_controller, err) {
            answered(tooLarge ? new AnswerTooLarge(`answer larger than ${config.maxPayload} bytes`) : err);
          },
        },
      );
    } catch (err) {
      // undici reports through the handler; a throw here (a request it refuses outright) is an attempt's error too
      answered(err as Error);
    }
  }

  const control = orderedControl(out, nc, subjects, config.bridgeTimeout, log);
  /** Per connection this bridge set metadata on: the changes shown on its events until they carry them. */
  const metaViews = new Map<string, MetaView>();

  /** The answer's `Wsgw-Set-Meta-<key>` headers as a patch (an empty value removes the key), or null; invalid ones are logged and ignored. */
  function metaPatchOf(id: string, headers: AnswerHeaders): MetaPatch | null {
    let patch: Record<string, string | null> | null = null;
    for (const name in headers) {
      if (!name.startsWith(ANSWER.setMetaPrefix)) continue;
      const value = one(headers[name]) ?? '';
      (patch ??= {})[name.slice(ANSWER.setMetaPrefix.length)] = value === '' ? null : value;
    }
    if (patch === null) return null;
    try {
      return parseMetaPatch(patch);
    } catch (err) {
      log.warn({ conn: id, err: (err as Error).message }, 'Wsgw-Set-Meta headers ignored');
      return null;
    }
  }

  /** An authorization answer's `Wsgw-Set-Meta-<key>` headers: the connection's first metadata, or null. */
  function firstMeta(id: string, headers: AnswerHeaders): Meta | null {
    const patch = metaPatchOf(id, headers);
    try {
      return patch === null ? null : applyMetaPatch(null, patch);
    } catch (err) {
      log.warn({ conn: id, err: (err as Error).message }, 'Wsgw-Set-Meta headers ignored');
      return null;
    }
  }

  /**
   * Asks the owning gateway to set metadata; this connection's later events show it at once (those
   * already on their way from the gateway too), and the gateway's own once they carry it.
   */
  function setMeta(id: string, patch: MetaPatch): void {
    let view = metaViews.get(id);
    if (view === undefined) {
      view = new MetaView();
      metaViews.set(id, view);
      if (metaViews.size > META_VIEWS) metaViews.delete(metaViews.keys().next().value!);
    }
    const asked = view.ask(patch);
    const v = view;
    void control(id, { op: 'meta', set: patch }).then((reply) => (reply?.ok ? v.applied(asked, reply.seq ?? 0) : v.dropped(asked)));
  }

  /**
   * Applies the application's answer: topics, then the body as a frame, then a close. Synchronous
   * unless the answer names topics (those wait for the gateway, so the frame follows the subscription).
   */
  function apply(ev: BridgeEvent, answer: Answer): Promise<void> | void {
    const { status, headers, body } = answer;
    if (ev.authorize) {
      const reply: AuthReply =
        status >= 200 && status < 300
          ? {
              ok: true,
              identity: parseIdentity(one(headers[ANSWER.identity]), ev.id),
              topics: validTopics(ev.id, list(headers[ANSWER.subscribe])),
              meta: firstMeta(ev.id, headers),
              ...(body.length > 0 && status !== 204 ? messageOf(body, headers) : {}),
            }
          : { ok: false, status: status >= 400 && status <= 599 ? status : 403, message: body.toString('utf8', 0, Math.min(body.length, 200)) };
      ev.authorize.respond(JSON.stringify(reply));
      return;
    }
    if (ev.kind === 'close') {
      metaViews.delete(ev.id);
      return;
    }
    const patch = metaPatchOf(ev.id, headers);
    if (patch !== null) setMeta(ev.id, patch);
    const subscribe = validTopics(ev.id, list(headers[ANSWER.subscribe]));
    const unsubscribe = validTopics(ev.id, list(headers[ANSWER.unsubscribe]));
    if (subscribe.length === 0 && unsubscribe.length === 0) return finish(ev, answer);
    return (async () => {
      for (const topic of subscribe) await control(ev.id, { op: 'subscribe', topic });
      for (const topic of unsubscribe) await control(ev.id, { op: 'unsubscribe', topic });
      finish(ev, answer);
    })();
  }

  /** The answer's frame and close, after its topics. */
  function finish(ev: BridgeEvent, { status, headers, body }: Answer): void {
    if (body.length > 0 && status !== 204) {
      const topic = one(headers[ANSWER.publish]);
      if (topic === undefined) out.publish(subjects.out(ev.id), body, isBinary(headers) ? BINARY_HEADER_BYTES : undefined);
      else if (validTopics(ev.id, [topic]).length === 1) {
        // a broadcast from the answer: no call to the connection service, in order with this connection's other answers
        const except = one(headers[ANSWER.publishExcept]);
        if (except !== undefined && !isConnectionId(except)) log.warn({ conn: ev.id }, 'Wsgw-Publish-Except is not a connection id; the broadcast goes to all');
        out.publish(subjects.topic(topic), body, topicHeaderBytes(isBinary(headers), except !== undefined && isConnectionId(except) ? except : undefined));
      }
    }
    const closeHeader = one(headers[ANSWER.close]);
    if (closeHeader !== undefined) {
      const code = Number(closeHeader);
      const reason = one(headers[ANSWER.closeReason]);
      out.publish(subjects.ctl(ev.id), JSON.stringify({ op: 'close', code: isApplicationCloseCode(code) ? code : undefined, reason: reason === undefined ? undefined : truncateReason(reason) }));
    } else if (ev.kind === 'open' && status >= 400 && status < 500) {
      // the application refused the connection after the upgrade: 403 -> close 4403
      out.publish(subjects.ctl(ev.id), JSON.stringify({ op: 'close', code: 4000 + status, reason: `refused by the application (${status})` }));
    }
  }

  /** Topics named by the application, unsafe ones dropped with a warning (never reach a subject). */
  function validTopics(id: string, topics: readonly string[]): readonly string[] {
    if (topics.length === 0) return topics;
    return topics.filter((topic) => {
      if (isToken(topic)) return true;
      log.warn({ conn: id, topic: JSON.stringify(String(topic).slice(0, 64)) }, 'invalid topic from the application ignored');
      return false;
    });
  }

  function parseIdentity(value: string | undefined, id: string): Record<string, unknown> | null {
    if (value === undefined) return null;
    try {
      const v: unknown = JSON.parse(value);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // fall through
    }
    log.warn({ conn: id }, 'Wsgw-Identity is not a JSON object; ignored');
    return null;
  }

  function messageOf(body: Buffer, headers: AnswerHeaders): { message: string; binary: boolean } {
    const binary = isBinary(headers);
    return { message: binary ? body.toString('base64') : body.toString('utf8'), binary };
  }

  function giveUp(ev: BridgeEvent, reason: string): void {
    stats.givenUp++;
    if (hot) hot.bridgeGivenUp++;
    log.warn({ conn: ev.id, event: ev.kind, reason, givenUp: stats.givenUp }, 'bridge gave up an event');
    if (ev.authorize) {
      ev.authorize.respond(JSON.stringify({ ok: false, status: 503, message: 'application unavailable' } satisfies AuthReply));
      return;
    }
    if (config.bridgeErrorFrame && ev.kind !== 'close') {
      out.publish(subjects.out(ev.id), JSON.stringify({ error: 'bridge_unavailable', message: 'the application did not answer; the frame was not processed' }));
    }
  }

  /**
   * One event, attempt by attempt: a 5xx, a timeout or a connection error is retried after a backoff,
   * then given up; `done` frees the connection's turn. Callbacks rather than an async loop: this runs
   * for every frame, and dropping the promises of the loop, the request and the answer cut the
   * bridge's CPU per frame by about a tenth.
   */
  function deliver(ev: BridgeEvent, done: () => void, attempt: number): void {
    const started = performance.now();
    post(ev, (err, answer) => {
      if (err) {
        if (err instanceof AnswerTooLarge) {
          giveUp(ev, err.message);
          return done();
        }
        return retry(ev, done, attempt, (err as { code?: string }).code ?? err.message);
      }
      const { status } = answer!;
      options.metrics?.bridgeLatency.observe((performance.now() - started) / 1000);
      stats.delivered++;
      if (status >= 500) {
        if (hot) hot.bridgeServerErrors++;
        return retry(ev, done, attempt, `HTTP ${status}`);
      }
      if (hot) hot.bridgeDelivered++;
      if (status >= 400) log.debug({ conn: ev.id, event: ev.kind, status }, 'application answered with a client error');
      let applied: Promise<void> | void;
      try {
        applied = apply(ev, answer!);
      } catch (e) {
        log.error({ err: e, conn: ev.id }, 'applying the application answer failed');
        return done();
      }
      if (applied) applied.catch((e: unknown) => log.error({ err: e, conn: ev.id }, 'applying the application answer failed')).finally(done);
      else done();
    });
  }

  function retry(ev: BridgeEvent, done: () => void, attempt: number, reason: string): void {
    if (attempt >= config.bridgeRetries) {
      giveUp(ev, reason);
      return done();
    }
    stats.retried++;
    if (hot) hot.bridgeRetried++;
    const backoff = Math.min(MAX_BACKOFF_MS, 100 * 2 ** attempt) * (0.75 + Math.random() / 2);
    setTimeout(() => deliver(ev, done, attempt + 1), backoff);
  }

  function enqueue(ev: BridgeEvent): void {
    if (queue.push(ev.id, ev)) return;
    // durable: the stream keeps it, and delivers it again in a second
    if (ev.durable) return settle(ev.durable, 'nak');
    giveUp(ev, `bridge queue full (${config.bridgeQueue} events waiting)`);
  }

  /**
   * The event an inbound message stands for, or null (logged) when it is malformed or not for the
   * application; `durable` is the stream's message in durable mode.
   */
  function openEvent(msg: Pick<Msg, 'json' | 'data'>, durable?: JsMsg): BridgeEvent | null {
    let ev: OpenEvent & { authorized?: boolean };
    try {
      ev = msg.json();
    } catch {
      log.warn('malformed open event ignored');
      return null;
    }
    if (!isConnectionId(ev.id)) {
      log.warn('open event without a valid id ignored');
      return null;
    }
    // the application already saw this connection at authorization time
    if (ev.authorized) return null;
    return { kind: 'open', id: ev.id, gateway: ev.gateway, body: msg.data, meta: metaJson(ev.meta ?? null), durable };
  }
  function frameEvent(msg: Pick<Msg, 'subject' | 'data' | 'headers'>, durable?: JsMsg): BridgeEvent | null {
    const frame = readFrameMeta(msg);
    if (!frame || !isConnectionId(frame.conn)) {
      log.warn({ subject: msg.subject }, 'frame without a valid connection id ignored');
      return null;
    }
    return {
      kind: 'message',
      id: frame.conn,
      gateway: frame.gateway,
      body: msg.data,
      route: msg.subject.slice(subjects.inMsgAll.length - 1),
      binary: frame.binary,
      seq: String(frame.seq),
      meta: frame.meta,
      durable,
    };
  }
  function closeEvent(msg: Pick<Msg, 'json' | 'data'>, durable?: JsMsg): BridgeEvent | null {
    let ev: CloseEvent;
    try {
      ev = msg.json();
    } catch {
      log.warn('malformed close event ignored');
      return null;
    }
    if (!isConnectionId(ev.id)) return null;
    return { kind: 'close', id: ev.id, gateway: ev.gateway, body: msg.data, meta: metaJson(ev.meta ?? null), durable };
  }
  const inbound: ReadonlyArray<readonly [subject: string, kind: EventKind, parse: (msg: Msg, durable?: JsMsg) => BridgeEvent | null]> = [
    [subjects.inOpen, 'open', openEvent],
    [subjects.inMsgAll, 'message', frameEvent],
    [subjects.inClose, 'close', closeEvent],
  ];

  const subs: Subscription[] = [];
  const queueGroup = config.queue;
  let durable: DurableConsumer | null = null;
  let working: NodeJS.Timeout | null = null;
  if (config.durable) {
    // durable mode: the group's durable consumer on the inbound stream; a message is acknowledged once
    // its event is done, so events of a bridge that dies are delivered again to another; at most
    // --bridge-queue unacknowledged over the group, so the stream never overfills a bridge's queue
    durable = await consumeDurable({
      nc,
      prefix: subjects.prefix,
      name: queueGroup,
      ackWaitMs: config.durableAckWait,
      maxAckPending: config.bridgeQueue,
      log,
      handle(m) {
        const ev = m.subject === subjects.inOpen ? openEvent(m, m) : m.subject === subjects.inClose ? closeEvent(m, m) : frameEvent(m, m);
        if (!ev) return m.ack();
        held.add(m);
        enqueue(ev);
      },
    });
    // an event can wait longer than the ack wait (behind a slow event of its connection, or retried):
    // tell the stream it is being worked on, so it is not delivered again while this bridge lives
    working = setInterval(() => {
      for (const m of held) m.working();
    }, Math.max(250, Math.floor(config.durableAckWait / 3)));
    working.unref();
  } else {
    for (const [subject, kind, parse] of inbound) {
      subs.push(
        nc.subscribe(subject, {
          queue: queueGroup,
          callback: (err, msg) => {
            if (err) return log.warn({ err }, `${kind} subscription failed`);
            const ev = parse(msg);
            if (ev) enqueue(ev);
          },
        }),
      );
    }
  }
  subs.push(
    nc.subscribe(subjects.auth, {
      queue: queueGroup,
      callback: (err, msg) => {
        if (err) return log.warn({ err }, 'auth subscription failed');
        let req: { id?: unknown; gateway?: unknown } = {};
        try {
          req = msg.json();
        } catch {
          // answered below as malformed
        }
        if (!isConnectionId(req.id) || typeof req.gateway !== 'string') {
          msg.respond(JSON.stringify({ ok: false, status: 400, message: 'malformed authorization request' } satisfies AuthReply));
          return;
        }
        enqueue({ kind: 'open', id: req.id, gateway: req.gateway, body: msg.data, meta: '', authorize: msg });
      },
    }),
  );
  await nc.flush();
  log.info({ target: target.origin + target.pathname, queue: queueGroup, signed: config.secret !== '', durable: config.durable }, 'bridge subscribed');

  return {
    stats,
    async close() {
      await durable?.close();
      await Promise.all(subs.map((s) => s.drain().catch(() => undefined)));
      await within(queue.idle(), config.bridgeTimeout);
      if (working) clearInterval(working);
      // durable: what is still held is delivered again, after the ack wait, to another bridge
      out.flush(); // the last answers' publishes go out
      await pool.close();
    },
  };
}
