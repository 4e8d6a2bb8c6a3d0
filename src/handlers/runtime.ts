import type { Logger } from 'pino';
import { parseAuthReply, type AuthReply, type AuthRequest, type ConnectionRecord, type RequestInfo } from '../protocol/events.js';
import { EMPTY_META, type Meta, type MetaPatch } from '../protocol/meta.js';
import { KeyedSerializer } from './serializer.js';
import type { AuthDecision, CloseInfo, Conn, Context, FrameData, Handler, Message, PublishOptions, SendOptions } from './types.js';
import { parseConnectionId } from '../protocol/ids.js';
import { parseHistoryQuery, type HistoryEntry, type HistoryQuery } from '../protocol/history.js';
import { assertToken } from '../protocol/tokens.js';
import { FrameBytes } from '../protocol/frame-bytes.js';

/**
 * Where a handler's actions go. The gateway implements it in-process (local sockets first, NATS for
 * the rest); the worker implements it over NATS. Conn and Context are the same objects on both, which
 * is what lets one handler module run unchanged in every mode.
 */
export interface ConnectionHost {
  readonly node: string;
  send(connectionId: string, data: FrameData, binary: boolean): void;
  close(connectionId: string, code: number | undefined, reason: string | undefined): void;
  subscribe(connectionId: string, topic: string): Promise<void>;
  unsubscribe(connectionId: string, topic: string): Promise<void>;
  /** Sets metadata on the connection and updates `conn.meta`; resolves once the owning gateway applied it. */
  setMeta(conn: HostConn, patch: MetaPatch): Promise<void>;
  /** `except`: a connection id left out of the broadcast (already checked). */
  publish(topic: string, data: FrameData, binary: boolean, except?: string): void;
  lookup(connectionId: string): Promise<ConnectionRecord | null>;
  /** The query is checked; the topic is a valid token. */
  history(topic: string, query: HistoryQuery): Promise<HistoryEntry[]>;
}

function isBinary(data: FrameData, options?: SendOptions): boolean {
  return options?.binary ?? typeof data !== 'string';
}

export class HostConn implements Conn {
  readonly id: string;
  readonly gateway: string;
  request: RequestInfo | undefined;
  /** Kept current by the host: the gateway's own, or what the event being handled carried. */
  meta: Meta = EMPTY_META;
  readonly #host: ConnectionHost;

  constructor(host: ConnectionHost, id: string, gateway: string, request: RequestInfo | undefined) {
    this.#host = host;
    this.id = id;
    this.gateway = gateway;
    this.request = request;
  }
  send(data: FrameData, options?: SendOptions): void {
    this.#host.send(this.id, data, isBinary(data, options));
  }
  close(code?: number, reason?: string): void {
    this.#host.close(this.id, code, reason);
  }
  subscribe(topic: string): Promise<void> {
    return this.#host.subscribe(this.id, topic);
  }
  unsubscribe(topic: string): Promise<void> {
    return this.#host.unsubscribe(this.id, topic);
  }
  setMeta(patch: MetaPatch): Promise<void> {
    return this.#host.setMeta(this, patch);
  }
  toJSON(): { id: string; gateway: string } {
    return { id: this.id, gateway: this.gateway };
  }
}

export class FrameMessage extends FrameBytes implements Message {
  readonly route: string;
  readonly seq: number;
  constructor(data: Uint8Array, binary: boolean, route: string, seq: number) {
    super(data, binary);
    this.route = route;
    this.seq = seq;
  }
}

export function createContext(host: ConnectionHost, log: Logger): Context {
  return Object.freeze({
    node: host.node,
    log,
    send: (id: string, data: FrameData, options?: SendOptions) => host.send(id, data, isBinary(data, options)),
    close: (id: string, code?: number, reason?: string) => host.close(id, code, reason),
    publish: (topic: string, data: FrameData, options?: PublishOptions) => host.publish(topic, data, isBinary(data, options), options?.except === undefined ? undefined : (parseConnectionId(options.except), options.except)),
    lookup: (id: string) => host.lookup(id),
    // checked here, so a bad query rejects the same way in every mode
    history: async (topic: string, query?: HistoryQuery) => host.history(assertToken('topic', topic), parseHistoryQuery(query)),
  });
}

/**
 * Dispatches events to a handler: one connection's events strictly in order (a callback's promise is
 * awaited before that connection's next event), different connections concurrently. Handler errors
 * are logged with the connection id and never take the process down.
 */
/** Completion callback of one event: called once, with the error when the handler failed. */
export type Done = (err?: unknown) => void;

/** A handler's `authorize` answer as an authorizer's reply; anything malformed refuses with 500 (parseAuthReply). */
export function authReplyOf(decision: AuthDecision): AuthReply {
  if (decision === true) return { ok: true };
  if (decision === false || decision === null || decision === undefined) return { ok: false, status: 403, message: 'refused' };
  if (typeof decision === 'object' && decision.ok === true && decision.message instanceof Uint8Array) {
    return parseAuthReply({ ...decision, message: Buffer.from(decision.message).toString('base64'), binary: true });
  }
  return parseAuthReply(decision);
}

export class HandlerRuntime {
  readonly context: Context;
  readonly #handler: Handler;
  readonly #serial: KeyedSerializer;
  readonly #log: Logger;
  readonly #onError: () => void;

  constructor(handler: Handler, host: ConnectionHost, log: Logger, onError: () => void = () => undefined) {
    this.#handler = handler;
    this.#log = log;
    this.#onError = onError;
    this.context = createContext(host, log);
    this.#serial = new KeyedSerializer((err, conn) => {
      onError();
      log.error({ err, conn }, 'handler failed');
    });
  }

  /** Whether the handler decides upgrades (exports `authorize`). */
  get authorizes(): boolean {
    return typeof this.#handler.authorize === 'function';
  }

  /** The handler's decision on an upgrade, as an authorizer's reply: a throw refuses with 500 (logged and counted). */
  async authorize(request: AuthRequest): Promise<AuthReply> {
    try {
      return authReplyOf(await this.#handler.authorize!(request, this.context));
    } catch (err) {
      this.#onError();
      this.#log.error({ err, conn: request.id }, 'authorize failed; upgrade refused');
      return { ok: false, status: 500, message: 'authorizer failed' };
    }
  }

  /** Connections with a handler promise still pending. */
  get busy(): number {
    return this.#serial.busy;
  }

  /** `done` (optional) is called once the handler finished: with the error if it failed. */
  open(conn: Conn, done?: Done): void {
    this.#dispatch(conn.id, this.#handler.open && (() => this.#handler.open!(conn, this.context)), done);
  }

  /** `before` (optional) runs when the event's turn comes, right before the handler (the worker shows the frame's metadata). */
  message(conn: Conn, message: Message, done?: Done, before?: (conn: Conn) => void): void {
    const task = before ? () => (before(conn), this.#handler.message!(conn, message, this.context)) : () => this.#handler.message!(conn, message, this.context);
    this.#dispatch(conn.id, this.#handler.message && task, done);
  }

  /** Like message, but resolves the connection first (the worker's cache miss); order is kept. */
  messageAfter(connId: string, resolve: () => Promise<Conn>, message: Message, done?: Done, before?: (conn: Conn) => void): void {
    const fn = this.#handler.message;
    this.#dispatch(
      connId,
      fn &&
        (async () => {
          const conn = await resolve();
          before?.(conn);
          return fn.call(this.#handler, conn, message, this.context);
        }),
      done,
    );
  }

  close(conn: Conn, info: CloseInfo, done?: Done, before?: (conn: Conn) => void): void {
    this.#dispatch(conn.id, this.#handler.close && (() => (before?.(conn), this.#handler.close!(conn, info, this.context))), done);
  }

  #dispatch(key: string, task: (() => unknown) | undefined, done: Done | undefined): void {
    if (!task) return done?.();
    if (!done) return this.#serial.run(key, task);
    this.#serial.run(key, () => {
      let result: unknown;
      try {
        result = task();
      } catch (err) {
        done(err);
        throw err;
      }
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        return (result as Promise<unknown>).then(
          (v) => (done(), v),
          (err: unknown) => {
            done(err);
            throw err;
          },
        );
      }
      done();
      return result;
    });
  }
}
