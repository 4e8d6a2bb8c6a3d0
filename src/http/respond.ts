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

/**
 * Runs an async route: registers onAborted before the first await (uWS requires it), corks the
 * answer after the async gap, and turns an unexpected error into a 500 without touching a dead response.
 * `mapError` turns an expected error (bad input found after an await) into its reply first.
 */
export function serve(res: HttpResponse, work: () => Promise<Reply> | Reply, onError: (err: unknown) => void, onStatus?: (status: number) => void, mapError?: (err: unknown) => Reply | null): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const failed = (err: unknown): Reply => {
    const mapped = mapError?.(err);
    if (mapped) return mapped;
    onError(err);
    return INTERNAL;
  };
  let result: Promise<Reply> | Reply;
  try {
    result = work();
  } catch (err) {
    result = failed(err);
  }
  if (!(result instanceof Promise)) {
    onStatus?.(result.status);
    write(res, result);
    return;
  }
  // one reaction for both outcomes: this runs for every API request
  const answer = (reply: Reply) => {
    onStatus?.(reply.status);
    if (!aborted) res.cork(() => write(res, reply));
  };
  result.then(answer, (err: unknown) => answer(failed(err)));
}

export class BodyTooLargeError extends Error {}

/**
 * Collects a request body up to `limit` bytes. Must be called synchronously in the route handler
 * (uWS delivers data only to a handler attached before the handler returns).
 */
export function readBody(res: HttpResponse, req: HttpRequest, limit: number): Promise<Buffer> {
  const declared = Number(req.getHeader('content-length') || '0');
  const body = new Promise<Buffer>((resolve, reject) => {
    if (declared > limit) {
      // answer without reading: the client is told at once
      reject(new BodyTooLargeError());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        reject(new BodyTooLargeError());
        return;
      }
      // copy: uWS reuses the chunk's memory after this callback
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
  });
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
