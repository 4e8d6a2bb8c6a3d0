import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { encodeHeaders, RawPublisher, type AnyHeaders } from '../nats/raw-publish.js';

/**
 * Inbound publishes (open, frames, close), in the order of `publish` calls, so a connection's open,
 * frames and close stay in order.
 *
 * Core mode: each publish is written at once as NATS protocol bytes (RawPublisher; the payload may be
 * a view that is only valid during the call, such as a uWebSockets.js message) and everything written
 * in one event-loop turn is handed to nats.js as one block, which it writes with one syscall.
 *
 * While held (NATS away, or reconnected but the gateway's lease not yet confirmed) nothing is handed
 * over (nats.js would silently drop it): up to `outageLimit` entries wait here, copied, and go out on
 * release; past that `publish` returns false and the caller refuses the frame visibly. What was
 * written but not handed over when the hold began is taken back and waits with them.
 *
 * Durable mode (`js` given): each message is a JetStream publish with a message id (the stream
 * de-duplicates retries) and is retried until the stream acknowledges it. Unacknowledged publishes
 * count against the same bound. A retried publish may land after later ones of the same connection.
 */
/** Values per queued entry. */
const STRIDE = 6;

export class InboundPublisher {
  /**
   * Entries waiting (held, or durable until the next turn), flat: subject, payload, headers, reply,
   * msgId, onAcked, then the next. A null subject is a block of protocol bytes taken back from the
   * writer.
   */
  #q: unknown[] = [];
  /** Callbacks of messages written (or taken back while held), run in order once they are handed over. */
  #acks: Array<() => void> = [];
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
    this.#raw = new RawPublisher(nc, null, true);
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
   * Publishes one message (text is sent as UTF-8); returns false (and keeps nothing) when the buffer
   * is full: NATS away, or (in durable mode) the stream not acknowledging. `payload` and `headers`
   * are copied before this returns. Durable mode needs MsgHdrs (JetStream adds its own). `msgId`
   * de-duplicates durable publishes; `onAcked` runs once the message is handed over (core) or
   * acknowledged by the stream (durable).
   */
  publish(subject: string, payload: Uint8Array | string, headers: AnyHeaders | undefined, reply: string, msgId = '', onAcked?: () => void): boolean {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
    if (this.#held || this.#js) {
      if (this.pending >= this.#outageLimit) return false;
      const h = headers === undefined || this.#js ? headers : encodeHeaders(headers);
      // a copy (Buffer.from copies; a Node Buffer's own slice() would be a view)
      this.#q.push(subject, Buffer.from(payload), h, reply, msgId, onAcked);
      return true;
    }
    this.#write(subject, payload, headers, reply);
    if (onAcked) this.#acks.push(onAcked);
    return true;
  }

  #write(subject: string, payload: Uint8Array | string, headers: AnyHeaders | undefined, reply: string): void {
    try {
      this.#raw.publish(subject, payload, headers, reply);
    } catch (err) {
      // a payload over the server's max_payload (the frame limit should prevent it), or NATS closed
      this.#onFailure();
      this.#log.error({ err, subject }, 'publish refused by the NATS client');
    }
  }

  /**
   * Stops handing messages to nats.js (NATS went away); what this turn wrote waits with the rest, and
   * its callbacks (still in `#acks`) run after the release hands it over.
   */
  hold(): void {
    this.#held = true;
    const taken = this.#raw.takePending();
    if (taken) this.#q.push(null, taken, undefined, '', '', undefined);
  }

  /** Hands everything held to nats.js, in order, and resumes. */
  release(): void {
    this.#held = false;
    this.flush();
  }

  /** Drops everything held (the gateway was fenced: these connections were already reported closed). */
  discard(): void {
    this.#q = [];
    this.#acks = [];
  }

  /** Hands everything written or queued to nats.js now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#held || this.#nc.isClosed()) return;
    const q = this.#q;
    if (q.length > 0) {
      this.#q = [];
      for (let i = 0; i < q.length; i += STRIDE) {
        const subject = q[i] as string | null;
        const payload = q[i + 1] as Uint8Array;
        const onAcked = q[i + 5] as (() => void) | undefined;
        if (this.#js) {
          this.#durable(subject!, payload, q[i + 2] as MsgHdrs | undefined, q[i + 4] as string, 0, onAcked);
          continue;
        }
        if (onAcked) this.#acks.push(onAcked);
        if (subject === null) this.#raw.writeBytes(payload);
        else this.#write(subject, payload, q[i + 2] as AnyHeaders | undefined, q[i + 3] as string);
      }
    }
    this.#raw.flush();
    if (this.#acks.length === 0) return;
    // core NATS acknowledges nothing: handed over is as far as it goes (and what the callbacks
    // publish goes out after these)
    const acks = this.#acks;
    this.#acks = [];
    for (const ack of acks) ack();
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
