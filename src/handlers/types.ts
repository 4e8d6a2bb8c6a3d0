import type { Logger } from 'pino';
import type { AuthRequest, ConnectionRecord, RequestInfo } from '../protocol/events.js';
import type { Meta, MetaPatch } from '../protocol/meta.js';
import type { HistoryEntry, HistoryQuery } from '../protocol/history.js';

/** Text (string) or binary (Uint8Array) frame data. */
export type FrameData = string | Uint8Array;

export interface SendOptions {
  /** Send as a binary frame. Default: true for Uint8Array data, false for strings. */
  readonly binary?: boolean;
}

export interface PublishOptions extends SendOptions {
  /** A connection id that does not get this broadcast (the sender of a chat line, say), on whichever gateway it is. */
  readonly except?: string;
}

/** One frame from a client. */
export interface Message {
  /** Raw frame bytes (valid until the handler's promise settles; copy to keep longer). */
  readonly data: Uint8Array;
  readonly binary: boolean;
  /** The route the frame was selected for (`default` when none). */
  readonly route: string;
  /** Per-connection sequence number, from 1. */
  readonly seq: number;
  /** The frame decoded as UTF-8. */
  text(): string;
  /** The frame parsed as JSON (throws on invalid JSON). */
  json<T = unknown>(): T;
}

export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
  /** True when the gateway that held the connection died and another process reported the close. */
  readonly lost: boolean;
}

/** A client connection, as a handler sees it in every mode. */
export interface Conn {
  /** `<gatewayId>.<token>` */
  readonly id: string;
  /** Id of the gateway holding the connection. */
  readonly gateway: string;
  /**
   * The upgrade request (path, query, selected headers, remote address, subprotocol, identity).
   * Always set in `open`; in other callbacks set unless the connection record is already gone.
   */
  readonly request: RequestInfo | undefined;
  /** Queues a frame; bytes are copied before this returns, so the caller may reuse them. */
  send(data: FrameData, options?: SendOptions): void;
  close(code?: number, reason?: string): void;
  /** Resolves once broadcasts to `topic` reach this connection. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /**
   * The connection's metadata (string values set with `setMeta`, by the authorizer, the bridge's
   * answers or the connection service), as of the event being handled.
   */
  readonly meta: Meta;
  /**
   * Sets metadata keys (a null value removes one). `conn.meta` shows the change at once; every later
   * event of the connection carries it, in every mode and to every worker, the bridge's application
   * too. Resolves once the owning gateway applied it; rejects with InvalidMetaError
   * (`WSGW_INVALID_META`) past the limits (32 keys of `A-Za-z0-9_-`, values up to 1,024 characters,
   * 4 KiB in all).
   */
  setMeta(patch: MetaPatch): Promise<void>;
}

/** What a handler can do beyond its own connection. */
export interface Context {
  /** Id of the process running the handler (gateway id, or `worker`). */
  readonly node: string;
  readonly log: Logger;
  /** Sends to any connection on any gateway; bytes are copied before this returns. Unknown or closed ids are ignored (use the connection service for acknowledged sends). */
  send(connectionId: string, data: FrameData, options?: SendOptions): void;
  close(connectionId: string, code?: number, reason?: string): void;
  /** Broadcasts to every connection subscribed to `topic`, on every gateway (but `options.except`). */
  publish(topic: string, data: FrameData, options?: PublishOptions): void;
  /** The directory record of a connection, or null when it is not open. */
  lookup(connectionId: string): Promise<ConnectionRecord | null>;
  /**
   * A topic's last broadcasts, oldest first (`--history`): all that are kept, or those `after` a
   * sequence number, `since` a time (ms), at most `limit` of the newest. Rejects with HistoryOffError
   * (`WSGW_HISTORY_OFF`) when history is off, InvalidHistoryQueryError on a bad query.
   */
  history(topic: string, query?: HistoryQuery): Promise<HistoryEntry[]>;
}

/**
 * A handler module's default export. Every callback is optional and may return a promise: events of
 * one connection are handled one at a time, in order; different connections run concurrently.
 */
/**
 * What `authorize` answers: `true` accepts, `false` refuses with 403; or an object as an authorizer's
 * reply (docs/protocol.md, AuthRequest): `{ ok: true, identity, topics, meta, message }` accepts (every
 * field optional; `message` a first frame, text or bytes), `{ ok: false, status, message }` refuses with
 * that HTTP status (400-599) and message.
 */
export type AuthDecision =
  | boolean
  | {
      readonly ok: true;
      readonly identity?: Readonly<Record<string, unknown>> | null;
      readonly topics?: readonly string[];
      readonly meta?: Readonly<Record<string, string>> | null;
      readonly message?: FrameData;
    }
  | { readonly ok: false; readonly status?: number; readonly message?: string };

export interface Handler {
  /**
   * Optional: decides each upgrade before it completes, with the request's credentials
   * (`request.headers.authorization`, `.cookie`, the query) and a verified JWT's claims
   * (`request.identity`). In-process in local and shared-state modes; through `P.auth` with `wsgw
   * worker` (gateways run with `--authorize`). A throw or a malformed answer refuses with 500.
   */
  authorize?(request: AuthRequest, ctx: Context): AuthDecision | Promise<AuthDecision>;
  open?(conn: Conn, ctx: Context): unknown;
  message?(conn: Conn, message: Message, ctx: Context): unknown;
  close?(conn: Conn, info: CloseInfo, ctx: Context): unknown;
}
