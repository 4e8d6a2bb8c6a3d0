import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { RawPublisher } from '../nats/raw-publish.js';

/**
 * Inbound publishes (open, frames, close) queued within one event-loop turn and handed to nats.js as
 * one block of protocol bytes (RawPublisher), which nats.js writes to its socket with one syscall. Order is the order of
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
/** Values per queued entry. */
const STRIDE = 6;

export class InboundPublisher {
  /** Queued entries, flat: subject, payload, headers, reply, msgId, onAcked, then the next. */
  #q: unknown[] = [];
  #scheduled = false;
  #held = false;
  #unacked = 0;
  #failures = 0;
  readonly #nc: NatsConnection;
  readonly #raw: RawPublisher;
  readonly #outageLimit: number;
  readonly #log: Logger;
  readonly #flush = () => this.flush();
  readonly #js: JetStreamClient | null;
  readonly #onFailure: () => void;

  constructor(nc: NatsConnection, outageLimit: number, log: Logger, js: JetStreamClient | null = null, onFailure: () => void = () => undefined) {
    this.#nc = nc;
    this.#raw = new RawPublisher(nc);
    this.#js = js;
    this.#onFailure = onFailure;
    this.#outageLimit = outageLimit;
    this.#log = log;
  }

  /** Entries waiting to be handed to NATS, plus durable publishes not yet acknowledged. */
  get pending(): number {
    return this.#q.length / STRIDE + this.#unacked;
  }

  /**
   * Queues one message; returns false (and queues nothing) when the buffer is full: NATS away, or (in
   * durable mode) the stream not acknowledging. `msgId` de-duplicates durable publishes; `onAcked`
   * runs once the message is handed over (core) or acknowledged by the stream (durable).
   */
  publish(subject: string, payload: Uint8Array, headers: MsgHdrs | undefined, reply: string, msgId = '', onAcked?: () => void): boolean {
    if ((this.#held || this.#js) && this.pending >= this.#outageLimit) return false;
    this.#q.push(subject, payload, headers, reply, msgId, onAcked);
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
    this.#q = [];
  }

  /** Hands everything queued to nats.js now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#held || this.#nc.isClosed() || this.#q.length === 0) return;
    const q = this.#q;
    this.#q = [];
    for (let i = 0; i < q.length; i += STRIDE) {
      const subject = q[i] as string;
      const payload = q[i + 1] as Uint8Array;
      const headers = q[i + 2] as MsgHdrs | undefined;
      const reply = q[i + 3] as string;
      const onAcked = q[i + 5] as (() => void) | undefined;
      if (this.#js) {
        this.#durable(subject, payload, headers, q[i + 4] as string, 0, onAcked);
        continue;
      }
      try {
        this.#raw.publish(subject, payload, headers, reply);
      } catch (err) {
        // only a payload over the server's max_payload gets here; the frame limit should prevent it
        this.#onFailure();
        this.#log.error({ err, subject }, 'publish refused by the NATS client');
      }
    }
    this.#raw.flush();
    if (this.#js) return;
    // core NATS acknowledges nothing: handed over is as far as it goes (and what the callbacks
    // publish goes out after these)
    for (let i = 5; i < q.length; i += STRIDE) (q[i] as (() => void) | undefined)?.();
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
