import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Inbound publishes (open, frames, close) queued within one event-loop turn and handed to nats.js in
 * one synchronous burst, which nats.js writes to its socket with one syscall. Order is the order of
 * `publish` calls, so a connection's open, frames and close stay in order.
 *
 * While held (NATS away, or reconnected but the gateway's lease not yet confirmed) nothing is handed
 * over (nats.js would silently drop it): up to `outageLimit` entries wait here and go out on release;
 * past that `publish` returns false and the caller refuses the frame visibly.
 */
export class InboundPublisher {
  #subjects: string[] = [];
  #payloads: Uint8Array[] = [];
  #headers: Array<MsgHdrs | undefined> = [];
  #replies: string[] = [];
  #scheduled = false;
  #held = false;
  readonly #nc: NatsConnection;
  readonly #outageLimit: number;
  readonly #log: Logger;
  readonly #flush = () => this.flush();

  constructor(nc: NatsConnection, outageLimit: number, log: Logger) {
    this.#nc = nc;
    this.#outageLimit = outageLimit;
    this.#log = log;
  }

  /** Entries waiting to be handed to NATS. */
  get pending(): number {
    return this.#subjects.length;
  }

  /** Queues one message; returns false (and queues nothing) when NATS is away and the buffer is full. */
  publish(subject: string, payload: Uint8Array, headers: MsgHdrs | undefined, reply: string): boolean {
    if (this.#held && this.#subjects.length >= this.#outageLimit) return false;
    this.#subjects.push(subject);
    this.#payloads.push(payload);
    this.#headers.push(headers);
    this.#replies.push(reply);
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
    this.#subjects = [];
    this.#payloads = [];
    this.#headers = [];
    this.#replies = [];
    for (let i = 0; i < n; i++) {
      try {
        const h = headers[i];
        const r = replies[i];
        this.#nc.publish(subjects[i]!, payloads[i], h === undefined && r === '' ? undefined : { headers: h, reply: r === '' ? undefined : r });
      } catch (err) {
        // only a payload over the server's max_payload gets here; the frame limit should prevent it
        this.#log.error({ err, subject: subjects[i] }, 'publish refused by the NATS client');
      }
    }
  }
}
