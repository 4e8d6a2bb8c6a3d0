import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';

/** The part of nats.js's protocol handler this writer uses (not public API; checked at construction). */
interface ProtocolWriter {
  sendCommand(cmd: Uint8Array): void;
  readonly info?: { readonly max_payload?: number };
  readonly noMorePublishing?: boolean;
}

/** Headers that write their own encoding (no intermediate array): `byteLength` bytes at `at`. */
export interface HeaderWriter {
  readonly byteLength: number;
  writeTo(buf: Uint8Array, at: number): void;
}

/** Headers in any of the forms a caller holds. */
export type AnyHeaders = Uint8Array | HeaderWriter | MsgHdrs;

/** The encoded bytes of any headers (a copy for a HeaderWriter, which may be reused). */
export function encodeHeaders(headers: AnyHeaders): Uint8Array {
  if (headers instanceof Uint8Array) return headers;
  if (isWriter(headers)) {
    const out = new Uint8Array(headers.byteLength);
    headers.writeTo(out, 0);
    return out;
  }
  return (headers as unknown as { encode(): Uint8Array }).encode();
}

/** Encoded header bytes as a MsgHdrs for `nc.publish`, which asks a core publish's headers for nothing but `encode()`. */
export function encodedHeaders(bytes: Uint8Array): MsgHdrs {
  return { encode: () => bytes } as unknown as MsgHdrs;
}

function isWriter(h: AnyHeaders): h is HeaderWriter {
  return typeof (h as HeaderWriter).writeTo === 'function';
}

const SLAB_BYTES = 64 * 1024;
const CR = 13;
const LF = 10;
const SPACE = 32;
const ZERO = 48;
/** Line starts kept per map (see `#lineStart`). */
const MAX_KEPT = 4096;

/** Writes the decimal digits of `n` (a non-negative integer) at `at`; returns where they end. */
function writeDecimal(buf: Uint8Array, at: number, n: number): number {
  if (n < 10) {
    buf[at] = ZERO + n;
    return at + 1;
  }
  let end = at;
  for (let v = n; v > 0; v = Math.floor(v / 10)) end++;
  for (let i = end - 1, v = n; i >= at; i--, v = Math.floor(v / 10)) buf[i] = ZERO + (v % 10);
  return end;
}

/**
 * Core NATS publishes written straight into protocol bytes (`PUB`/`HPUB` lines, headers, payload) in
 * one growing buffer, handed to nats.js in one call per flush. nats.js's own `publish` builds a
 * template string per message, encodes it with a new TextEncoder array, validates both subjects
 * with a regular expression and later copies every piece into one buffer before its socket write:
 * about a sixth of a gateway's and of a worker's busy time at 64 B frames. What reaches the server
 * is byte for byte what `nc.publish` sends (`test/nats/raw-publish.test.ts`).
 *
 * Subjects are not validated here: callers build them with `Subjects`, whose builders validate every
 * token (a space would corrupt the protocol stream). When nats.js's internals are not what this
 * expects (another nats.js version), or the connection is closed or draining, every publish goes
 * through `nc.publish` instead, with its checks and errors.
 *
 * Messages are written in call order; a caller that also publishes through `nc` directly must
 * `flush()` first to keep the two in order. Given a `schedule` (`queueMicrotask`, `setImmediate`), the
 * writer flushes itself once per burst; without one, the caller flushes.
 *
 * This reaches into nats.js's private protocol writer, which the house style avoids. It is done here
 * because it is the largest single cost left on the per-frame path that wsgw controls (gateway CPU
 * per frame −25%, worker −32%, docs/performance.md), and it is fenced: the one method used is
 * feature-checked, every other case takes the public `nc.publish`, the lockfile pins nats.js, and
 * the byte-for-byte test fails in CI if a nats.js release changes what `sendCommand` accepts.
 */
export class RawPublisher {
  readonly #nc: NatsConnection;
  readonly #proto: ProtocolWriter | null;
  readonly #schedule: ((flush: () => void) => void) | null;
  #scheduled = false;
  readonly #scheduledFlush = () => {
    this.#scheduled = false;
    this.flush();
  };
  #slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  readonly #keepStarts: boolean;
  readonly #pubStarts = new Map<string, Map<string, Uint8Array>>();
  readonly #hpubStarts = new Map<string, Map<string, Uint8Array>>();
  /** Start of the bytes not yet handed over; everything before was handed to nats.js and is never written again. */
  #start = 0;
  #at = 0;

  /**
   * `keepStarts`: keep each `PUB` line's start as bytes per subject and reply (`#lineStart`), for a
   * writer whose publishes repeat them (a gateway's frames, a worker's answers); a writer of requests,
   * whose reply subjects are each new, writes the line from a string.
   */
  constructor(nc: NatsConnection, schedule: ((flush: () => void) => void) | null = null, keepStarts = false) {
    this.#nc = nc;
    this.#schedule = schedule;
    this.#keepStarts = keepStarts;
    const proto = (nc as unknown as { protocol?: ProtocolWriter }).protocol;
    this.#proto = proto && typeof proto.sendCommand === 'function' ? proto : null;
  }

  /** True when publishes are written as raw bytes (false: every publish is an `nc.publish`). */
  get raw(): boolean {
    return this.#proto !== null;
  }

  /** Bytes written and not yet handed to nats.js. */
  get pending(): number {
    return this.#at - this.#start;
  }

  /**
   * Queues one publish; `payload` (bytes, or text sent as UTF-8) and `headers` are copied before this
   * returns. `headers` are already-encoded header bytes (`NATS/1.0\r\n…\r\n\r\n`), a HeaderWriter or a
   * MsgHdrs; `reply` '' for none. Throws like `nc.publish` when the message is over the server's
   * max_payload or the connection is closed.
   */
  publish(subject: string, payload: Uint8Array | string, headers?: AnyHeaders, reply = ''): void {
    const proto = this.#proto;
    if (proto === null || proto.noMorePublishing === true || this.#nc.isClosed()) {
      this.flush();
      const h = headers === undefined ? undefined : encodedHeaders(encodeHeaders(headers));
      this.#nc.publish(subject, payload, h === undefined && reply === '' ? undefined : { headers: h, reply: reply === '' ? undefined : reply });
      return;
    }
    // undefined, or something that knows its length and writes itself (bytes are copied in)
    const h = headers === undefined || headers instanceof Uint8Array || isWriter(headers) ? headers : encodeHeaders(headers);
    const hlen = h === undefined ? 0 : h.byteLength;
    const text = typeof payload === 'string';
    const plen = text ? Buffer.byteLength(payload) : payload.length;
    const total = hlen + plen;
    const max = proto.info?.max_payload;
    if (max !== undefined && total > max) throw new Error(`payload of ${total} bytes is over the server's max_payload (${max})`);
    let slab: Buffer;
    let at: number;
    if (this.#keepStarts) {
      const start = this.#lineStart(h !== undefined, subject, reply);
      // the start, at most two 10-digit numbers, a space and CRLF, the message and its CRLF
      this.#reserve(start.length + 23 + total + 2);
      slab = this.#slab;
      at = this.#at;
      slab.set(start, at);
      at += start.length;
      if (h !== undefined) {
        at = writeDecimal(slab, at, hlen);
        slab[at++] = SPACE;
      }
      at = writeDecimal(slab, at, total);
      slab[at++] = CR;
      slab[at++] = LF;
    } else {
      const line = h === undefined ? (reply === '' ? `PUB ${subject} ${total}\r\n` : `PUB ${subject} ${reply} ${total}\r\n`) : reply === '' ? `HPUB ${subject} ${hlen} ${total}\r\n` : `HPUB ${subject} ${reply} ${hlen} ${total}\r\n`;
      // a UTF-8 character takes at most 3 bytes per UTF-16 unit
      this.#reserve(line.length * 3 + total + 2);
      slab = this.#slab;
      at = this.#at;
      at += slab.write(line, at);
    }
    if (h instanceof Uint8Array) slab.set(h, at);
    else if (h !== undefined) h.writeTo(slab, at);
    at += hlen;
    if (text) slab.write(payload, at);
    else slab.set(payload, at);
    at += plen;
    slab[at++] = CR;
    slab[at++] = LF;
    this.#at = at;
    if (this.#schedule !== null && !this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(this.#scheduledFlush);
    }
  }

  /** Hands everything written so far to nats.js (which writes it to its socket in its next microtask). */
  flush(): void {
    if (this.#at === this.#start) return;
    const bytes = this.#slab.subarray(this.#start, this.#at);
    this.#start = this.#at;
    this.#proto!.sendCommand(bytes);
  }

  /** Takes back what was written and not yet handed over (a copy), leaving nothing pending. */
  takePending(): Uint8Array | null {
    if (this.#at === this.#start) return null;
    const bytes = Uint8Array.prototype.slice.call(this.#slab, this.#start, this.#at);
    this.#at = this.#start;
    return bytes;
  }

  /** Writes back bytes taken with `takePending` (nats.js internals required: only they produce any). */
  writeBytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#slab.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  /**
   * `PUB <subject> [<reply> ]` or `HPUB ...` as bytes, kept per subject and reply: most publishes
   * repeat one (a connection's frames and their reply subject, a worker's answers to a connection),
   * and encoding the line anew cost a template string and a UTF-8 write per message. At most
   * MAX_KEPT subjects, and MAX_KEPT replies per subject, are kept (then that map starts over).
   */
  #lineStart(headers: boolean, subject: string, reply: string): Uint8Array {
    const bySubject = headers ? this.#hpubStarts : this.#pubStarts;
    let byReply = bySubject.get(subject);
    if (byReply === undefined) {
      if (bySubject.size >= MAX_KEPT) bySubject.clear();
      bySubject.set(subject, (byReply = new Map()));
    }
    let start = byReply.get(reply);
    if (start === undefined) {
      if (byReply.size >= MAX_KEPT) byReply.clear();
      start = Buffer.from(`${headers ? 'HPUB' : 'PUB'} ${subject} ${reply === '' ? '' : `${reply} `}`);
      byReply.set(reply, start);
    }
    return start;
  }

  #reserve(n: number): void {
    if (this.#at + n <= this.#slab.length) return;
    // the handed-over part of the slab belongs to nats.js now; move only what is pending, into a
    // slab with room for as much again (a large turn grows it geometrically, not per message)
    const pending = this.#at - this.#start;
    const next = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, 2 * (pending + n)));
    this.#slab.copy(next, 0, this.#start, this.#at);
    this.#slab = next;
    this.#start = 0;
    this.#at = pending;
  }
}
