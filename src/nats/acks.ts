import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { bytesAre, digits, InternedText, replyBytes, replySubject } from './message-text.js';
import { RawPublisher } from './raw-publish.js';

/**
 * Batched acknowledgements (docs/protocol.md, "Batched acknowledgements"). A request whose reply
 * subject is `<prefix>.wsgw-acks.<n>` (n decimal digits) may have its success answered together with
 * other such requests of the same prefix: one message on `<prefix>.wsgw-acks.ok` whose body is the
 * numbers, separated by spaces. Failures are answered on the request's own reply subject, as usual.
 * A sender at thousands of requests a second then reads one answer per gateway turn instead of one
 * per request, and the server routes one message instead of many.
 */
export const ACKS_TOKEN = 'wsgw-acks';
/** The last token of a batch of acknowledgements (never digits, so never a request's own reply subject). */
export const ACKS_BATCH = 'ok';

/** What a batched acknowledgement stands for: the answer `{"ok":true}`. */
export const OK_TEXT = '{"ok":true}';
export const OK_BYTES: Uint8Array = new TextEncoder().encode(OK_TEXT);

/** Numbers per batch message: at most 200 × 16 bytes, far below any server's max_payload that carries frames. */
const MAX_BATCH = 200;
const DOT = 46;
/** `.wsgw-acks`, the end of a batching sender's reply prefix. */
const ACKS_BYTES = Buffer.from('.' + ACKS_TOKEN, 'latin1');

/**
 * A gateway's answers to requests on `P.out` and `P.ctl`: written as protocol bytes and handed to
 * nats.js once per event-loop turn, with the turn's successes for each batching sender joined into
 * one message.
 */
export class Acknowledger {
  readonly #out: RawPublisher;
  /** Reply prefix (`<prefix>.wsgw-acks`) → request numbers acknowledged this turn. */
  readonly #batches = new Map<string, number[]>();
  readonly #prefixes = new InternedText(1024);
  #scheduled = false;
  readonly #flush = () => this.flush();

  constructor(nc: NatsConnection) {
    this.#out = new RawPublisher(nc);
  }

  /** Answers `msg` with `body` on its own reply subject; nothing when it has none. */
  reply(msg: Msg, body: Uint8Array | string): void {
    this.#answer(replySubject(msg), body);
  }

  /** Answers `msg` with `{"ok":true}`: in this turn's batch for its sender when its reply subject asks for that. */
  ok(msg: Msg): void {
    const r = replyBytes(msg);
    // a worker's answer to a frame: nothing to acknowledge (the gateway's commonest P.out message)
    if (r === undefined) return;
    if (r !== null) {
      const dot = r.lastIndexOf(DOT);
      const n = digits(r, dot + 1, r.length);
      // a prefix with something before `.wsgw-acks`
      if (n >= 0 && dot > ACKS_BYTES.length && bytesAre(r, dot - ACKS_BYTES.length, dot, ACKS_BYTES)) {
        const prefix = this.#prefixes.get(r, 0, dot);
        let batch = this.#batches.get(prefix);
        if (batch === undefined) this.#batches.set(prefix, (batch = []));
        batch.push(n);
        if (batch.length >= MAX_BATCH) {
          this.#publish(`${prefix}.${ACKS_BATCH}`, batch.join(' '));
          batch.length = 0;
        }
        this.#schedule();
        return;
      }
    }
    // not a batching sender: answered on its own reply subject, from the bytes read above
    this.#answer(replySubject(msg, r), OK_BYTES);
  }

  /** Hands everything answered so far to nats.js. */
  flush(): void {
    this.#scheduled = false;
    for (const [prefix, batch] of this.#batches) if (batch.length > 0) this.#publish(`${prefix}.${ACKS_BATCH}`, batch.join(' '));
    this.#batches.clear();
    this.#out.flush();
  }

  /**
   * One answer. On a closed connection (an answer to a subscribe that completed during shutdown) it
   * is dropped: its sender's request times out, as for any answer lost with the connection.
   */
  #publish(subject: string, body: Uint8Array | string): void {
    try {
      this.#out.publish(subject, body);
    } catch {
      // closed or draining: nothing can be answered any more
    }
  }

  #answer(to: string, body: Uint8Array | string): void {
    if (to === '') return;
    this.#publish(to, body);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }
}

/** The request numbers in a batch's body (decimal, separated by single spaces); -1 for anything else in it. */
export function batchNumbers(body: Uint8Array, each: (n: number) => void): void {
  let from = 0;
  for (let i = 0; i <= body.length; i++) {
    if (i < body.length && body[i] !== 32) continue;
    if (i > from) each(digits(body, from, i));
    from = i + 1;
  }
}
