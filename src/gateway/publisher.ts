import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';

/**
 * Inbound publishes (open, frames, close) queued within one event-loop turn and handed to nats.js in
 * one synchronous burst, which nats.js writes to its socket with one syscall. Order is the order of
 * `publish` calls, so a connection's open, frames and close stay in order.
 *
 * While held (NATS away, or reconnected but the gateway's lease not yet confirmed) nothing is handed
 * over (nats.js would silently drop it): up to `outageLimit` entries wait here and go out on release;
 * past that `publish` returns false and the caller refuses the frame visibly.
 *
 * Durable mode (`js` given): each message is a JetStream publish with a message id (the stream
 * de-duplicates retries) and is retried until the stream acknowledges it. Unacknowledged publishes
 * count against the same bound. A retried publish may land after later ones of the same connection.
 */
export class InboundPublisher {
  #subjects: string[] = [];
  #payloads: Uint8Array[] = [];
  #headers: Array<MsgHdrs | undefined> = [];
  #replies: string[] = [];
  #ids: string[] = [];
  #acked: Array<(() => void) | undefined> = [];
  #scheduled = false;
  #unacked = 0;
  #failures = 0;
  #held = false;
  readonly #nc: NatsConnection;
  readonly #outageLimit: number;
  readonly #log: Logger;
  readonly #flush = () => this.flush();

  readonly #js: JetStreamClient | null;
  readonly #onFailure: () => void;

  constructor(nc: NatsConnection, outageLimit: number, log: Logger, js: JetStreamClient | null = null, onFailure: () => void = () => undefined) {
    this.#nc = nc;
    this.#js = js;
    this.#onFailure = onFailure;
    this.#outageLimit = outageLimit;
    this.#log = log;
  }

  /** Entries waiting to be handed to NATS, plus durable publishes not yet acknowledged. */
  get pending(): number {
    return this.#subjects.length + this.#unacked;
  }

  /**
   * Queues one message; returns false (and queues nothing) when the buffer is full: NATS away, or (in
   * durable mode) the stream not acknowledging. `msgId` de-duplicates durable publishes.
   */
  publish(subject: string, payload: Uint8Array, headers: MsgHdrs | undefined, reply: string, msgId = '', onAcked?: () => void): boolean {
    if ((this.#held || this.#js) && this.#subjects.length + this.#unacked >= this.#outageLimit) return false;
    this.#subjects.push(subject);
    this.#payloads.push(payload);
    this.#headers.push(headers);
    this.#replies.push(reply);
    this.#ids.push(msgId);
    this.#acked.push(onAcked);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
    return true;
  }

  /** Stops handing messages to nats.js (NATS went away). */
  hold(): void {
    this.#held = true;
  }

  /** Hands everything held to nats.js, in order, and resumes. */
  release(): void {
    this.#held = false;
    this.flush();
  }

  /** Drops everything held (the gateway was fenced: these connections were already reported closed). */
  discard(): void {
    this.#subjects = [];
    this.#payloads = [];
    this.#headers = [];
    this.#replies = [];
    this.#ids = [];
    this.#acked = [];
  }

  /** Hands everything queued to nats.js now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#held || this.#nc.isClosed()) return;
    const n = this.#subjects.length;
    if (n === 0) return;
    const subjects = this.#subjects;
    const payloads = this.#payloads;
    const headers = this.#headers;
    const replies = this.#replies;
    const ids = this.#ids;
    const acked = this.#acked;
    this.#subjects = [];
    this.#payloads = [];
    this.#headers = [];
    this.#replies = [];
    this.#ids = [];
    this.#acked = [];
    if (this.#js) {
      for (let i = 0; i < n; i++) this.#durable(subjects[i]!, payloads[i]!, headers[i], ids[i]!, 0, acked[i]);
      return;
    }
    for (let i = 0; i < n; i++) {
      try {
        const h = headers[i];
        const r = replies[i];
        this.#nc.publish(subjects[i]!, payloads[i], h === undefined && r === '' ? undefined : { headers: h, reply: r === '' ? undefined : r });
      } catch (err) {
        // only a payload over the server's max_payload gets here; the frame limit should prevent it
        this.#onFailure();
        this.#log.error({ err, subject: subjects[i] }, 'publish refused by the NATS client');
      }
      // core NATS acknowledges nothing: handed over is as far as it goes
      acked[i]?.();
    }
  }

  /** One durable publish, retried with backoff until the stream acknowledges it. */
  #durable(subject: string, payload: Uint8Array, headers: MsgHdrs | undefined, msgId: string, attempt: number, onAcked: (() => void) | undefined): void {
    this.#unacked++;
    this.#js!.publish(subject, payload, { msgID: msgId, headers, timeout: 5_000 }).then(
      () => {
        this.#unacked--;
        onAcked?.();
      },
      (err: unknown) => {
        this.#unacked--;
        this.#failures++;
        this.#onFailure();
        if (this.#failures === 1 || this.#failures % 100 === 0) {
          this.#log.warn({ err: { message: (err as Error).message }, failures: this.#failures, subject }, 'durable publish not acknowledged; retrying');
        }
        if (this.#nc.isClosed()) return this.#log.error({ subject, msgId }, 'durable publish lost: NATS connection closed');
        // keep the slot: the message still counts against the bound while it waits to be retried
        this.#unacked++;
        setTimeout(() => {
          this.#unacked--;
          this.#durable(subject, payload, headers, msgId, attempt + 1, onAcked);
        }, Math.min(2_000, 100 * 2 ** attempt));
      },
    );
  }
}
