import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { STATUS_CODES } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';

/** What a route answers; written once, corked, unless the client went away. */
export interface Reply {
  readonly status: number;
  /** JSON-serialized unless it is a string or bytes. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An API error: a stable machine code and a human message. */
export function errorReply(status: number, error: string, message: string): Reply {
  return { status, body: { error, message } };
}

const statusLines = new Map<number, string>();
function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) statusLines.set(status, (line = `${status} ${STATUS_CODES[status] ?? ''}`));
  return line;
}

/** What every route behind a bearer token answers without it. */
export const UNAUTHORIZED: Reply = errorReply(401, 'unauthorized', 'missing or wrong bearer token (Authorization: Bearer <token>)');

const JSON_HEADERS = Object.freeze({ 'Content-Type': 'application/json' });
/** A reply serialized once, here, rather than on every write (for the hottest answers). */
export function constantReply(status: number, body: object): Reply {
  return Object.freeze({ status, body: JSON.stringify(body), headers: JSON_HEADERS });
}

function write(res: HttpResponse, reply: Reply): void {
  res.writeStatus(statusLine(reply.status));
  if (reply.headers) for (const k in reply.headers) res.writeHeader(k, reply.headers[k]!);
  const body = reply.body;
  if (body === undefined || reply.status === 204) {
    res.end();
  } else if (typeof body === 'string' || body instanceof Uint8Array) {
    res.end(body);
  } else {
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify(body));
  }
}

const INTERNAL = errorReply(500, 'internal', 'internal error');

/** How a route's answer is given: `answer` writes a reply, `fail` maps an error to one. */
export interface Responder {
  answer(reply: Reply): void;
  fail(err: unknown): void;
}

/**
 * The callback form of `serve`, for routes that run on every message (the send API): registers
 * onAborted now (uWS requires it before any async gap) and answers corked, once, unless the client
 * went away. `fail` turns an expected error into its reply through `mapError` (bad input found after
 * the body arrived) and anything else into a 500.
 */
export function responder(res: HttpResponse, onError: (err: unknown) => void, onStatus?: (status: number) => void, mapError?: (err: unknown) => Reply | null): Responder {
  let aborted = false;
  let answered = false;
  res.onAborted(() => {
    aborted = true;
  });
  const answer = (reply: Reply): void => {
    if (answered) return;
    answered = true;
    onStatus?.(reply.status);
    // inside the route's own callback uWS is corked already and cork() just runs the writer
    if (!aborted) res.cork(() => write(res, reply));
  };
  const fail = (err: unknown): void => {
    const mapped = mapError?.(err);
    if (!mapped) onError(err);
    answer(mapped ?? INTERNAL);
  };
  return { answer, fail };
}

/**
 * Runs a route that answers at once or with a promise: see `responder`. An unexpected error becomes
 * a 500 without touching a dead response.
 */
export function serve(res: HttpResponse, work: () => Promise<Reply> | Reply, onError: (err: unknown) => void, onStatus?: (status: number) => void, mapError?: (err: unknown) => Reply | null): void {
  const r = responder(res, onError, onStatus, mapError);
  let result: Promise<Reply> | Reply;
  try {
    result = work();
  } catch (err) {
    r.fail(err);
    return;
  }
  if (result instanceof Promise) result.then(r.answer, r.fail);
  else r.answer(result);
}

export class BodyTooLargeError extends Error {}

/**
 * Collects a request body up to `limit` bytes and calls `done` once with it, or with null when it is
 * larger (then nothing more is read; a declared Content-Length past the limit is refused before the
 * body arrives, synchronously). Must be called synchronously in the route handler (uWS delivers data
 * only to a handler attached before the handler returns).
 */
export function onBody(res: HttpResponse, req: HttpRequest, limit: number, done: (body: Buffer | null) => void): void {
  const declared = Number(req.getHeader('content-length') || '0');
  if (declared > limit) {
    // answer without reading: the client is told at once
    done(null);
    return;
  }
  let chunks: Buffer[] | null = null;
  let size = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    size += chunk.byteLength;
    if (size > limit) {
      failed = true;
      done(null);
      return;
    }
    // copy: uWS reuses the chunk's memory after this callback. Into Node's buffer pool, not with
    // ArrayBuffer#slice (~0.9 µs for 64 bytes, a backing store of its own, against ~0.1 µs)
    const copy = Buffer.from(new Uint8Array(chunk));
    if (isLast && chunks === null) return done(copy);
    (chunks ??= []).push(copy);
    if (isLast) done(Buffer.concat(chunks));
  });
}

/** `onBody` as a promise, rejected with BodyTooLargeError past the limit. */
export function readBody(res: HttpResponse, req: HttpRequest, limit: number): Promise<Buffer> {
  const body = new Promise<Buffer>((resolve, reject) => onBody(res, req, limit, (b) => (b ? resolve(b) : reject(new BodyTooLargeError()))));
  // the route may answer (a 400) before it awaits the body: a rejection then is expected, not a crash
  body.catch(() => undefined);
  return body;
}

/** Compares a bearer token in constant time (hashes first, so lengths leak nothing either). */
export function bearerMatches(header: string, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!.trim()).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
