import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { WsgwError } from '../errors/errors.js';
import { RawPublisher, type AnyHeaders } from './raw-publish.js';
import { ACKS_BATCH, ACKS_TOKEN, batchNumbers, OK_BYTES, OK_TEXT } from './acks.js';
import { digits, subjectBytes } from './message-text.js';

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

/** What a request's answer offers (a nats.js message, or the `{"ok":true}` of a batched acknowledgement). */
export type Answer = Pick<Msg, 'data' | 'string' | 'json'>;

/** Gets the answer, or the error (NoRespondersError, RequestTimeoutError, a closed connection). */
export type Answered = (err: Error | null, msg?: Answer) => void;

/** A batched acknowledgement, as each request in the batch sees it. */
const OK_ANSWER: Answer = Object.freeze({
  data: OK_BYTES,
  string: () => OK_TEXT,
  json: <T>() => ({ ok: true }) as T,
});

export interface RequesterOptions {
  /**
   * Ask for batched acknowledgements (reply subjects `<inbox>.wsgw-acks.<n>`, src/nats/acks.ts):
   * for requests a wsgw gateway answers; anything else answers each on its own subject, which works too.
   */
  readonly batchedAcks?: boolean;
}

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
  /** The prefix's length in bytes, where a reply subject's request number starts. */
  readonly #numberAt: number;
  readonly #pending = new Map<number, Pending>();
  readonly #sub: Subscription;
  readonly #timer: NodeJS.Timeout;
  #next = 0;
  readonly #out: RawPublisher;

  constructor(nc: NatsConnection, timeoutMs: number, options: RequesterOptions = {}) {
    this.#out = new RawPublisher(nc, setImmediate);
    this.#timeoutMs = timeoutMs;
    this.#prefix = createInbox() + (options.batchedAcks === true ? `.${ACKS_TOKEN}.` : '.');
    this.#numberAt = Buffer.byteLength(this.#prefix);
    const batch = this.#prefix + ACKS_BATCH;
    const acked = (n: number) => {
      const p = this.#pending.get(n);
      if (!p) return;
      this.#pending.delete(n);
      p.answered(null, OK_ANSWER);
    };
    this.#sub = nc.subscribe(this.#prefix + '*', {
      callback: (_err, msg) => {
        // the request number, read from the subject's bytes (no string per answer)
        const b = subjectBytes(msg);
        const n = b !== null ? digits(b, this.#numberAt, b.length) : digits(Buffer.from(msg.subject), this.#numberAt, Buffer.byteLength(msg.subject));
        if (n < 0) {
          if (options.batchedAcks === true && msg.subject === batch) batchNumbers(msg.data, acked);
          return;
        }
        const p = this.#pending.get(n);
        if (!p) return;
        this.#pending.delete(n);
        if (msg.headers && msg.headers.code === 503 && msg.data.length === 0) p.answered(new NoRespondersError(p.subject));
        else p.answered(null, msg);
      },
    });
    // deadlines are all `now + timeoutMs`, so the map's insertion order is deadline order
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const [n, p] of this.#pending) {
        if (p.deadline > now) break;
        this.#pending.delete(n);
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
    const n = this.#next;
    // request numbers stay within the 15 digits a reply subject's number is read as
    this.#next = n + 1 < 1e15 ? n + 1 : 0;
    // each HTTP request arrives in its own uWS callback, and nats.js would write its socket after
    // each one; hand this turn's over together instead, so a burst of requests costs one write
    this.#out.publish(subject, payload, headers, this.#prefix + n);
    this.#pending.set(n, { subject, deadline: Date.now() + this.#timeoutMs, answered });
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
