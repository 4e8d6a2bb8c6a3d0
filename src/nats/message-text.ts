/**
 * Text and numbers read straight from the bytes of a NATS message (subjects, header values, control
 * line arguments), without building a string for what is only compared or counted.
 */

const decoder = new TextDecoder();

type Latin1Slice = (this: Uint8Array, from: number, to: number) => string;
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice;

/** Latin-1 text of b[from, to): Node's native slice (a Buffer's or a plain Uint8Array's), else a character at a time. */
export function latin1(b: Uint8Array, from: number, to: number): string {
  if (latin1Slice !== undefined) return latin1Slice.call(b, from, to);
  let out = '';
  for (let i = from; i < to; i++) out += String.fromCharCode(b[i]!);
  return out;
}

/** True when b[from, to) holds exactly the bytes of `expected`. */
export function bytesAre(b: Uint8Array, from: number, to: number, expected: Uint8Array): boolean {
  if (from < 0 || to - from !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[from + i] !== expected[i]) return false;
  return true;
}

const ZERO = 48;
const NINE = 57;

/** The decimal number b[from, to) spells; -1 when it is empty, longer than 15 digits, or not all digits. */
export function digits(b: Uint8Array, from: number, to: number): number {
  if (from >= to || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = b[i]!;
    if (c < ZERO || c > NINE) return -1;
    n = n * 10 + (c - ZERO);
  }
  return n;
}

/**
 * Strings for short byte runs that repeat from message to message (a connection id in a subject or a
 * header), found by a hash of the bytes and checked byte for byte against the string kept for it.
 * Decoding them per message cost a gateway and a worker about 4% of their busy time (a TextDecoder
 * call or a native slice, a new string, and its hash again in every Map lookup); a kept string is
 * compared in place and comes back with its hash already computed.
 *
 * Runs with a byte over 127 are decoded as UTF-8 each time and not kept. At most `max` strings are
 * kept; when full, all are dropped (the hot ones come back on their next message).
 */
export class InternedText {
  readonly #max: number;
  readonly #byHash = new Map<number, string>();

  constructor(max = 65_536) {
    this.#max = max;
  }

  /** The text of b[from, to). */
  get(b: Uint8Array, from: number, to: number): string {
    let hash = to - from;
    let high = 0;
    for (let i = from; i < to; i++) {
      const c = b[i]!;
      high |= c;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    if (high > 127) return decoder.decode(b.subarray(from, to));
    const kept = this.#byHash.get(hash);
    if (kept !== undefined && kept.length === to - from) {
      let i = 0;
      while (i < kept.length && kept.charCodeAt(i) === b[from + i]) i++;
      if (i === kept.length) return kept;
    }
    const text = latin1(b, from, to);
    if (this.#byHash.size >= this.#max) this.#byHash.clear();
    this.#byHash.set(hash, text);
    return text;
  }

  /** Strings kept now. */
  get size(): number {
    return this.#byHash.size;
  }
}

interface SubjectSource {
  readonly subject: string;
}

/** The bytes nats.js keeps for a core message's subject or reply (`_msg.subject`, `_msg.reply`); null for another message shape, undefined for no reply. */
function kept(msg: object, field: 'subject' | 'reply'): Uint8Array | null | undefined {
  const raw = (msg as { _msg?: Record<string, unknown> | null })._msg;
  if (raw === undefined || raw === null || typeof raw !== 'object') return null;
  const v = raw[field];
  if (v === undefined) return undefined;
  return v instanceof Uint8Array ? v : null;
}

/** A core nats.js message's subject bytes, or null for any other message shape (then use `msg.subject`). */
export function subjectBytes(msg: SubjectSource): Uint8Array | null {
  return kept(msg, 'subject') ?? null;
}

/** A core nats.js message's reply subject bytes: undefined when it has none, null for any other message shape (then use `msg.reply`). */
export function replyBytes(msg: { readonly reply?: string }): Uint8Array | null | undefined {
  return kept(msg, 'reply');
}

/**
 * `msg.subject.slice(offset)` for a core nats.js message, read from the subject bytes it keeps
 * through `texts`: no TextDecoder call and no new string per message. Anything else (another
 * message shape, a future nats.js) takes the public `subject`.
 */
export function subjectTail(msg: SubjectSource, offset: number, texts: InternedText): string {
  const subject = subjectBytes(msg);
  if (subject !== null && subject.length >= offset) return texts.get(subject, offset, subject.length);
  return msg.subject.slice(offset);
}

/**
 * A core nats.js message's reply subject ('' for none), read from the bytes it keeps: nats.js's
 * `reply` getter runs a TextDecoder on every call when there is none (it caches the empty string,
 * which reads as "not cached"), once per frame on a gateway's outbound subscription. Reply subjects
 * are unique per request, so they are not interned. Anything but plain ASCII bytes, and any other
 * message shape, takes the public `reply`. `r` is `replyBytes(msg)`, for a caller that read it already.
 */
export function replySubject(msg: { readonly reply?: string }, r: Uint8Array | null | undefined = replyBytes(msg)): string {
  if (r === undefined) return '';
  if (r !== null) {
    let high = 0;
    for (let i = 0; i < r.length; i++) high |= r[i]!;
    if (high < 128) return latin1(r, 0, r.length);
  }
  return msg.reply ?? '';
}
