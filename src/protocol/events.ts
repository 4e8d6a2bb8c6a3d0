import { isApplicationCloseCode, truncateReason } from './close-codes.js';
import { assertToken } from './tokens.js';
import { WsgwError } from '../errors/errors.js';
import { applyMetaPatch, parseMetaPatch, type Meta, type MetaPatch } from './meta.js';

/** What the gateway knew about the HTTP upgrade request. Copied out of uWS before any async gap. */
export interface RequestInfo {
  /** URL path, e.g. `/ws/chat`. */
  readonly path: string;
  /** Raw query string without `?`, e.g. `room=lobby&name=ann`. */
  readonly query: string;
  /** Selected request headers (lower-case names), as configured by `headers`. */
  readonly headers: Readonly<Record<string, string>>;
  /** Remote address as text. */
  readonly remoteAddress: string;
  /** Negotiated subprotocol, or empty. */
  readonly subprotocol: string;
  /** Identity attached by authentication (claims), or null when anonymous. */
  readonly identity: Readonly<Record<string, unknown>> | null;
}

/** JSON body of `P.in.open`. */
export interface OpenEvent extends RequestInfo {
  readonly id: string;
  readonly gateway: string;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  /** Present (true) when the authorizer on `P.auth` accepted the upgrade: it has seen this connection. */
  readonly authorized?: true;
  /** The connection's metadata, when the authorizer gave some. */
  readonly meta?: Meta;
}

/** JSON body of `P.in.close`. */
export interface CloseEvent {
  readonly id: string;
  readonly gateway: string;
  readonly code: number;
  readonly reason: string;
  /** True when the gateway died and a survivor reported the close on its behalf. */
  readonly lost: boolean;
  /** The connection's metadata when it closed, when it had any. */
  readonly meta?: Meta;
}

/** The KV directory record of one open connection (value under key `<connId>`). */
export interface ConnectionRecord extends RequestInfo {
  readonly id: string;
  readonly gateway: string;
  readonly connectedAt: number;
  readonly topics: readonly string[];
  /** The connection's metadata, when it has any. */
  readonly meta?: Meta;
}

/** The KV lease of one live gateway (value under key `<gatewayId>`). */
export interface GatewayLease {
  readonly id: string;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  /** A lease older than this many ms is expired: the gateway is presumed dead. */
  readonly leaseMs: number;
  readonly connections: number;
}

/** JSON body of `P.ctl.<connId>`. */
export type ControlCommand =
  | { readonly op: 'close'; readonly code?: number; readonly reason?: string }
  | { readonly op: 'subscribe'; readonly topic: string }
  | { readonly op: 'unsubscribe'; readonly topic: string }
  /** Sets metadata keys (a null value removes one); later events of the connection carry the result. */
  | { readonly op: 'meta'; readonly set: MetaPatch };

/** JSON reply from the gateway to a `P.ctl` or `P.out` request that carried a reply subject. */
export type ControlReply =
  /** `seq` (a `meta` command's answer): the last frame published without the change; later frames carry it. */
  | { readonly ok: true; readonly seq?: number; readonly meta?: Meta }
  | { readonly ok: false; readonly error: 'gone' | 'invalid'; readonly message?: string };

export class InvalidControlError extends WsgwError {
  constructor(message: string) {
    super('WSGW_INVALID_CONTROL', message);
  }
}

/** Validates a decoded control command; throws InvalidControlError/InvalidTokenError with the reason. */
export function parseControlCommand(value: unknown): ControlCommand {
  if (typeof value !== 'object' || value === null) throw new InvalidControlError('control command must be a JSON object');
  const v = value as Record<string, unknown>;
  switch (v.op) {
    case 'close': {
      if (v.code !== undefined && !isApplicationCloseCode(v.code)) {
        throw new InvalidControlError('close code must be 1000 or 3000-4999');
      }
      if (v.reason !== undefined && typeof v.reason !== 'string') throw new InvalidControlError('close reason must be a string');
      return { op: 'close', code: v.code as number | undefined, reason: v.reason === undefined ? undefined : truncateReason(v.reason as string) };
    }
    case 'subscribe':
    case 'unsubscribe':
      return { op: v.op, topic: assertToken('topic', v.topic) };
    case 'meta':
      return { op: 'meta', set: parseMetaPatch(v.set) };
    default:
      throw new InvalidControlError(`unknown control op ${JSON.stringify(v.op)} (expected close, subscribe, unsubscribe or meta)`);
  }
}

/** JSON body of a `P.auth` request: the upgrade as the gateway saw it, before accepting it. */
export interface AuthRequest extends Omit<RequestInfo, 'identity'> {
  readonly id: string;
  readonly gateway: string;
  /** Claims of a JWT the gateway already verified (`--jwt-*`), when there is one. */
  readonly identity?: Readonly<Record<string, unknown>>;
}

/** JSON reply to `P.auth`. A refusal's `status` (400-599, default 403) is the client's HTTP status. */
export type AuthReply =
  | {
      readonly ok: true;
      /** Becomes the connection's identity (claims). */
      readonly identity?: Readonly<Record<string, unknown>> | null;
      /** Topics the connection is subscribed to when it opens. */
      readonly topics?: readonly string[];
      /** A first frame sent right after the upgrade (base64 when `binary`). */
      readonly message?: string;
      readonly binary?: boolean;
      /** The connection's first metadata: carried by every event of the connection, its open event too. */
      readonly meta?: Meta | null;
    }
  | { readonly ok: false; readonly status?: number; readonly message?: string };

/** Validates an authorizer reply; anything malformed is a refusal (fail closed) with status 500. */
export function parseAuthReply(value: unknown): AuthReply {
  const bad = (why: string): AuthReply => ({ ok: false, status: 500, message: `malformed authorizer reply: ${why}` });
  if (typeof value !== 'object' || value === null) return bad('not a JSON object');
  const v = value as Record<string, unknown>;
  if (v.ok === false) {
    const status = typeof v.status === 'number' && Number.isInteger(v.status) && v.status >= 400 && v.status <= 599 ? v.status : 403;
    return { ok: false, status, message: typeof v.message === 'string' ? v.message.slice(0, 200) : undefined };
  }
  if (v.ok !== true) return bad('"ok" must be true or false');
  if (v.identity !== undefined && v.identity !== null && (typeof v.identity !== 'object' || Array.isArray(v.identity))) return bad('identity must be an object');
  if (v.topics !== undefined && (!Array.isArray(v.topics) || v.topics.some((t) => typeof t !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(t)))) {
    return bad('topics must be safe tokens');
  }
  if (v.message !== undefined && typeof v.message !== 'string') return bad('message must be a string');
  let meta: Meta | null = null;
  if (v.meta !== undefined && v.meta !== null) {
    try {
      meta = applyMetaPatch(null, parseMetaPatch(v.meta));
    } catch (err) {
      return bad((err as Error).message);
    }
  }
  return {
    ok: true,
    identity: (v.identity as Record<string, unknown> | undefined) ?? null,
    topics: (v.topics as string[] | undefined) ?? [],
    message: v.message as string | undefined,
    binary: v.binary === true,
    meta,
  };
}
