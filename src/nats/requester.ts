import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { WsgwError } from '../errors/errors.js';
import { RawPublisher, type AnyHeaders } from './raw-publish.js';

/** Nobody subscribes to the request's subject (for wsgw: the owning gateway is gone). */
export class NoRespondersError extends WsgwError {
  constructor(subject: string) {
    super('WSGW_NO_RESPONDERS', `no responders on ${subject}`);
  }
}

/** No answer within the deadline. */
export class RequestTimeoutError extends WsgwError {
  constructor(subject: string, ms: number) {
    super('WSGW_REQUEST_TIMEOUT', `no answer on ${subject} within ${ms} ms`);
  }
}

/** Gets the answer, or the error (NoRespondersError, RequestTimeoutError, a closed connection). */
export type Answered = (err: Error | null, msg?: Msg) => void;

interface Pending {
  readonly subject: string;
  readonly deadline: number;
  readonly answered: Answered;
}

const SWEEP_MS = 50;

/**
 * Request/reply for the send API and KV record writes: one wildcard inbox subscription, a map of pending requests, and
 * one sweep timer for deadlines. nats.js's own `request()` builds two Error objects (for stack traces)
 * and a timer per call, which dominated the send API's profile; here nothing is allocated for a request
 * beyond its map entry, and errors are created only when a request actually fails. Publishes are
 * written as protocol bytes at once (RawPublisher) and handed to nats.js once per event-loop turn
 * (one socket write for a burst of requests). On a closed connection `send` and `publish` throw.
 */
export class Requester {
  readonly #timeoutMs: number;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #sub: Subscription;
  readonly #timer: NodeJS.Timeout;
  #next = 0;
  readonly #out: RawPublisher;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#out = new RawPublisher(nc, setImmediate);
    this.#timeoutMs = timeoutMs;
    this.#prefix = createInbox() + '.';
    this.#sub = nc.subscribe(this.#prefix + '*', {
      callback: (_err, msg) => {
        const token = msg.subject.slice(this.#prefix.length);
        const p = this.#pending.get(token);
        if (!p) return;
        this.#pending.delete(token);
        if (msg.headers && msg.headers.code === 503 && msg.data.length === 0) p.answered(new NoRespondersError(p.subject));
        else p.answered(null, msg);
      },
    });
    // deadlines are all `now + timeoutMs`, so the map's insertion order is deadline order
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const [token, p] of this.#pending) {
        if (p.deadline > now) break;
        this.#pending.delete(token);
        p.answered(new RequestTimeoutError(p.subject, this.#timeoutMs));
      }
    }, SWEEP_MS);
    this.#timer.unref();
  }

  /**
   * One request; `answered` is called once, never synchronously, with the answer or the error. A
   * callback rather than a promise: the send API and every KV record write make one per message. A
   * publish on a closed connection throws.
   */
  send(subject: string, payload: Uint8Array | string, headers: AnyHeaders | undefined, answered: Answered): void {
    const token = (this.#next++).toString(36);
    // each HTTP request arrives in its own uWS callback, and nats.js would write its socket after
    // each one; hand this turn's over together instead, so a burst of requests costs one write
    this.#out.publish(subject, payload, headers, this.#prefix + token);
    this.#pending.set(token, { subject, deadline: Date.now() + this.#timeoutMs, answered });
  }

  /** A plain publish, batched with this turn's requests. */
  publish(subject: string, payload: Uint8Array | string, headers?: AnyHeaders): void {
    this.#out.publish(subject, payload, headers);
  }

  /** Stops: what was published goes out now; requests still waiting fail. */
  close(): void {
    this.#out.flush();
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    for (const p of this.#pending.values()) p.answered(new RequestTimeoutError(p.subject, 0));
    this.#pending.clear();
  }
}
