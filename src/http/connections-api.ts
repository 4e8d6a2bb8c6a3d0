import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { InvalidTokenError, WsgwError } from '../errors/errors.js';
import { isApplicationCloseCode, MAX_CLOSE_REASON_BYTES } from '../protocol/close-codes.js';
import type { ControlCommand, ControlReply } from '../protocol/events.js';
import { parseConnectionId } from '../protocol/ids.js';
import { InvalidMetaError, parseMetaPatch } from '../protocol/meta.js';
import type { Subjects } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import type { DirectoryView } from './directory-view.js';
import type { Metrics } from '../metrics/metrics.js';
import { NoRespondersError, RequestTimeoutError, Requester } from '../nats/requester.js';
import { BINARY_HEADER_BYTES, topicHeaderBytes } from '../nats/control.js';
import { OK_BYTES } from '../nats/acks.js';
import { bytesAre } from '../nats/message-text.js';
import { StreamHistory } from '../nats/history.js';
import { HistoryOffError, historyQueryOf, InvalidHistoryQueryError } from '../protocol/history.js';
import { BodyTooLargeError, bearerMatches, constantReply, errorReply, onBody, readBody, responder, serve, UNAUTHORIZED, type Reply } from './respond.js';

export interface ConnectionsApiOptions {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly directory: ConnectionDirectory;
  readonly view: DirectoryView;
  /** Bearer token required on every route but /healthz; none when empty. */
  readonly token: string;
  /** Largest body accepted (413 past it). */
  readonly maxPayload: number;
  /** How long to wait for the owning gateway (504 past it). */
  readonly requestTimeout: number;
  readonly log: Logger;
  /** Counts requests by status. */
  readonly metrics?: Metrics;
  /** Connections this process owns (a gateway mounting the API): served without a NATS round trip. */
  readonly local?: LocalConnections;
}

/**
 * A gateway's own connections, for the API it mounts with `--api`. Each method answers `undefined`
 * when another gateway owns the id (the request then goes over NATS), `false` when the connection was
 * here and is gone, `true` when it was delivered or queued.
 */
export interface LocalConnections {
  send(id: string, data: Uint8Array, binary: boolean): boolean | undefined;
  /** A command with an answer of its own (metadata) gives that answer instead of `true`. */
  control(id: string, cmd: ControlCommand): Promise<boolean> | boolean | ControlReply | undefined;
}

const SENT = constantReply(200, { ok: true });
const ACCEPTED = constantReply(202, { ok: true });
const NO_CONTENT: Reply = Object.freeze({ status: 204 });
const OCTET_STREAM = /^application\/octet-stream\b/i;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
/** Longest user (an identity's `sub`) accepted in a path or a filter, in UTF-8 bytes. */
const MAX_USER_BYTES = 1024;

/** A 400 for bad input, raised before any NATS call. */
class BadRequest extends WsgwError {
  constructor(
    readonly error: string,
    message: string,
  ) {
    super('WSGW_BAD_REQUEST', message);
  }
}

const PAYLOAD_TOO_LARGE = errorReply(413, 'payload_too_large', 'body exceeds the maximum payload');

/** A user from a query or a (percent-encoded) path segment: 1-1024 bytes of UTF-8, else a 400. */
function userParam(text: string, encoded: boolean): string {
  let user = text;
  if (encoded) {
    try {
      user = decodeURIComponent(text);
    } catch {
      throw new BadRequest('invalid_user', 'the user is not valid percent-encoded UTF-8');
    }
  }
  if (user === '' || Buffer.byteLength(user) > MAX_USER_BYTES) throw new BadRequest('invalid_user', `a user is 1 to ${MAX_USER_BYTES} bytes of UTF-8`);
  return user;
}

function toReply(err: unknown): Reply | null {
  if (err instanceof InvalidTokenError) return errorReply(400, err.kind === 'connection id' ? 'invalid_id' : `invalid_${err.kind.replace(/ /g, '_')}`, err.message);
  if (err instanceof BadRequest) return errorReply(400, err.error, err.message);
  if (err instanceof BodyTooLargeError) return PAYLOAD_TOO_LARGE;
  if (err instanceof InvalidMetaError) return errorReply(400, 'invalid_meta', err.message);
  if (err instanceof InvalidHistoryQueryError) return errorReply(400, 'invalid_history_query', err.message);
  if (err instanceof HistoryOffError) return errorReply(404, 'history_off', err.message);
  return null;
}

/**
 * The connections HTTP API, in the spirit of AWS's `@connections`: list, get, send, close, subscribe,
 * broadcast, gateways, health. Mounted by `wsgw connections` and by `wsgw gateway --api`.
 * Every id and topic is validated before any NATS call; sends and control requests are answered only
 * after the owning gateway accepted them.
 */
export function mountConnectionsApi(app: TemplatedApp, options: ConnectionsApiOptions): { close(): void } {
  const { nc, subjects, directory, view, log } = options;
  // sends are answered by gateways, which batch their acknowledgements for it
  const requester = new Requester(nc, options.requestTimeout, { batchedAcks: true });
  const history = new StreamHistory(nc, subjects);
  const onError = (err: unknown) => log.error({ err }, 'connections API failed');
  const metrics = options.metrics;
  const onStatus = metrics ? (status: number) => metrics.apiAnswered(status) : undefined;
  const authorized = (req: HttpRequest) => options.token === '' || bearerMatches(req.getHeader('authorization'), options.token);

  /** Copies what the route needs from req (it dies with the callback), checks the token, then serves. */
  function route(handler: (res: HttpResponse, req: HttpRequest) => () => Promise<Reply> | Reply) {
    return (res: HttpResponse, req: HttpRequest) => {
      let work: () => Promise<Reply> | Reply;
      if (!authorized(req)) {
        work = () => UNAUTHORIZED;
      } else {
        try {
          work = handler(res, req);
        } catch (err) {
          const reply = toReply(err);
          if (!reply) throw err;
          work = () => reply;
        }
      }
      // bad input found after an await (the body) still maps to its 4xx
      serve(res, work, onError, onStatus, toReply);
    };
  }

  /** 410 when the id is known to have existed, else 404. */
  async function missing(id: string): Promise<Reply> {
    let status = view.status(id);
    if (status === 'unknown') {
      const entry = await directory.connections.get(id).catch(() => null);
      if (entry) status = entry.operation === 'PUT' ? 'open' : 'gone';
    }
    return status === 'unknown' ? errorReply(404, 'not_found', `no connection ${id}`) : errorReply(410, 'gone', `connection ${id} is gone`);
  }

  /** A control command: straight to the connection when this process owns it, else through its gateway. */
  async function controlOf(id: string, cmd: ControlCommand): Promise<Reply> {
    const local = options.local?.control(id, cmd);
    if (local !== undefined) {
      const answer = await local;
      if (answer === false) return missing(id);
      return answer === true ? NO_CONTENT : withMeta(answer);
    }
    // a refused metadata change (past the limits once merged) answers as one refused here would
    return new Promise((resolve, reject) => overNats(id, subjects.ctl(id), JSON.stringify(cmd), undefined, NO_CONTENT, resolve, reject, cmd.op === 'meta' ? 'invalid_meta' : 'invalid'));
  }

  /**
   * A request to the owning gateway, its answer mapped to HTTP and given to `done` (or the error to
   * `failed`). Callbacks, not a promise: the send route runs this for every message.
   */
  function overNats(id: string, subject: string, payload: Uint8Array | string, headers: Uint8Array | undefined, success: Reply, done: (reply: Reply) => void, failed: (err: unknown) => void, invalid = 'invalid'): void {
    requester.send(subject, payload, headers, (err, m) => {
      // no gateway listens for this id: it died, or never existed
      if (err instanceof NoRespondersError) return void missing(id).then(done, failed);
      if (err instanceof RequestTimeoutError) return done(errorReply(504, 'gateway_timeout', `the gateway owning ${id} did not answer within ${options.requestTimeout} ms`));
      if (err) return failed(err);
      // the common answer, recognized without parsing
      if (bytesAre(m!.data, 0, m!.data.length, OK_BYTES)) return done(success);
      let answer: ControlReply;
      try {
        answer = m!.json<ControlReply>();
      } catch (e) {
        return failed(e);
      }
      if (answer.ok) done(answer.meta === undefined ? success : withMeta(answer));
      else if (answer.error === 'gone') missing(id).then(done, failed);
      else done(errorReply(400, invalid, answer.message ?? 'refused by the gateway'));
    });
  }

  /** A metadata command's answer: the connection's metadata now. */
  function withMeta(answer: ControlReply): Reply {
    return { status: 200, body: { ok: true, meta: (answer.ok && answer.meta) || {} } };
  }

  function query(req: HttpRequest): URLSearchParams {
    return new URLSearchParams(req.getQuery() ?? '');
  }

  /** The close asked for by `?code=&reason=` (both optional), checked. */
  function closeCommand(q: URLSearchParams): ControlCommand {
    const codeText = q.get('code');
    const code = codeText === null ? undefined : Number(codeText);
    if (code !== undefined && !isApplicationCloseCode(code)) throw new BadRequest('invalid_code', 'code must be 1000 or 3000-4999');
    const reason = q.get('reason') ?? undefined;
    if (reason !== undefined && Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) throw new BadRequest('invalid_reason', `reason must be at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8`);
    return { op: 'close', code, reason };
  }

  /**
   * Runs `one` for each of `user`'s open connections at once, and counts how each ended: `done`
   * (`sent` or `closed`: the owning gateway accepted it), `gone` (closed meanwhile: 404 or 410),
   * `failed` (not answered in time, or refused).
   */
  async function toEachOf(user: string, done: 'sent' | 'closed', one: (id: string) => Promise<Reply>): Promise<Reply> {
    const tally = { done: 0, gone: 0, failed: 0 };
    await Promise.all(
      view.ofUser(user).map((id) =>
        one(id).then(
          (reply) => (reply.status < 300 ? tally.done++ : reply.status === 404 || reply.status === 410 ? tally.gone++ : tally.failed++),
          (err: unknown) => {
            tally.failed++;
            log.warn({ err, conn: id }, 'a request to one of a user\'s connections failed');
          },
        ),
      ),
    );
    return { status: 200, body: { ok: tally.failed === 0, connections: tally.done + tally.gone + tally.failed, [done]: tally.done, gone: tally.gone, failed: tally.failed } };
  }

  /** A frame for one connection: straight to it when this process owns it, else through its gateway. */
  function sendTo(id: string, body: Uint8Array, binary: boolean, done: (reply: Reply) => void, failed: (err: unknown) => void): void {
    const local = options.local?.send(id, body, binary);
    if (local === undefined) overNats(id, subjects.out(id), body, binary ? BINARY_HEADER_BYTES : undefined, SENT, done, failed);
    else if (local) done(SENT);
    else missing(id).then(done, failed);
  }

  app.get(
    '/connections',
    route((_res, req) => {
      const q = query(req);
      const gateway = q.get('gateway') ?? undefined;
      const topic = q.get('topic') ?? undefined;
      const userText = q.get('user');
      const user = userText === null ? undefined : userParam(userText, false);
      const cursor = q.get('cursor') ?? undefined;
      const limitText = q.get('limit');
      const limit = limitText === null ? DEFAULT_PAGE : Number(limitText);
      if (gateway !== undefined) assertToken('gateway id', gateway);
      if (topic !== undefined) assertToken('topic', topic);
      if (cursor !== undefined) parseConnectionId(cursor);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new BadRequest('invalid_limit', `limit must be an integer from 1 to ${MAX_PAGE}`);
      return () => ({ status: 200, body: view.list({ gateway, topic, user, cursor, limit }) });
    }),
  );

  app.get(
    '/connections/:id',
    route((_res, req) => {
      const id = req.getParameter(0)!;
      parseConnectionId(id);
      return async () => {
        const record = view.records.get(id) ?? (await directory.get(id));
        return record ? { status: 200, body: record } : missing(id);
      };
    }),
  );

  // the hottest route: callbacks from the body to the answer (`route` and `serve` would make four
  // promises per message); the same checks, in the same order, and the same answers
  app.post('/connections/:id/messages', (res, req) => {
    const r = responder(res, onError, onStatus, toReply);
    if (!authorized(req)) return r.answer(UNAUTHORIZED);
    const id = req.getParameter(0)!;
    const binary = OCTET_STREAM.test(req.getHeader('content-type'));
    // a bad id is answered 400 even when the body is also too large, as on every other route
    let bad: unknown = null;
    try {
      parseConnectionId(id);
    } catch (err) {
      bad = err;
    }
    onBody(res, req, options.maxPayload, (body) => {
      if (bad !== null) return;
      if (body === null) return r.answer(PAYLOAD_TOO_LARGE);
      sendTo(id, body, binary, r.answer, r.fail);
    });
    if (bad !== null) r.fail(bad);
  });

  app.del(
    '/connections/:id',
    route((_res, req) => {
      const id = req.getParameter(0)!;
      parseConnectionId(id);
      const close = closeCommand(query(req));
      return () => controlOf(id, close);
    }),
  );

  for (const [method, op] of [
    ['put', 'subscribe'],
    ['del', 'unsubscribe'],
  ] as const) {
    app[method](
      '/connections/:id/topics/:topic',
      route((_res, req) => {
        const id = req.getParameter(0)!;
        const topic = req.getParameter(1)!;
        parseConnectionId(id);
        assertToken('topic', topic);
        return () => controlOf(id, { op, topic });
      }),
    );
  }

  app.patch(
    '/connections/:id/meta',
    route((res, req) => {
      const id = req.getParameter(0)!;
      const body = readBody(res, req, options.maxPayload);
      parseConnectionId(id);
      return async () => {
        let patch: unknown;
        try {
          patch = JSON.parse(Buffer.from(await body).toString('utf8'));
        } catch {
          throw new BadRequest('invalid_meta', 'the body must be a JSON object of strings (null removes a key)');
        }
        return controlOf(id, { op: 'meta', set: parseMetaPatch(patch) });
      };
    }),
  );

  app.post(
    '/topics/:topic/messages',
    route((res, req) => {
      const topic = req.getParameter(0)!;
      const binary = OCTET_STREAM.test(req.getHeader('content-type'));
      const except = query(req).get('except') ?? undefined;
      const body = readBody(res, req, options.maxPayload);
      assertToken('topic', topic);
      // a connection left out of the broadcast (its gateway skips it)
      if (except !== undefined) parseConnectionId(except);
      return async () => {
        requester.publish(subjects.topic(topic), await body, topicHeaderBytes(binary, except));
        return ACCEPTED;
      };
    }),
  );

  // how many are in a room: a count kept by the live copy, no pass over the room
  app.get(
    '/topics/:topic',
    route((_res, req) => {
      const topic = req.getParameter(0)!;
      assertToken('topic', topic);
      return () => ({ status: 200, body: { topic, connections: view.subscribers(topic) } });
    }),
  );

  // a topic's last broadcasts (--history), oldest first; JSON: text as is, bytes in base64
  app.get(
    '/topics/:topic/history',
    route((_res, req) => {
      const topic = req.getParameter(0)!;
      const q = historyQueryOf(query(req));
      assertToken('topic', topic);
      return async () => ({ status: 200, body: { topic, messages: await history.read(topic, q) } });
    }),
  );

  // a user's every connection, on any gateway: the user is its identity's `sub` (userOf)
  app.post(
    '/users/:user/messages',
    route((res, req) => {
      const binary = OCTET_STREAM.test(req.getHeader('content-type'));
      const body = readBody(res, req, options.maxPayload);
      const user = userParam(req.getParameter(0)!, true);
      return async () => {
        const bytes = await body;
        return toEachOf(user, 'sent', (id) => new Promise((resolve, reject) => sendTo(id, bytes, binary, resolve, reject)));
      };
    }),
  );

  app.del(
    '/users/:user',
    route((_res, req) => {
      const user = userParam(req.getParameter(0)!, true);
      const close = closeCommand(query(req));
      return () => toEachOf(user, 'closed', (id) => controlOf(id, close));
    }),
  );

  app.get(
    '/gateways',
    route(() => async () => ({ status: 200, body: { gateways: await view.gateways(directory) } })),
  );
  return { close: () => requester.close() };
}
