const decoder = new TextDecoder();

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
    let text = '';
    const latin1 = (b as Uint8Array & { latin1Slice?(from: number, to: number): string }).latin1Slice;
    if (latin1 !== undefined) text = latin1.call(b, from, to);
    else for (let i = from; i < to; i++) text += String.fromCharCode(b[i]!);
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

/**
 * `msg.subject.slice(offset)` for a core nats.js message, read from the subject bytes it keeps
 * (`_msg.subject`) through `texts`: no TextDecoder call and no new string per message. Anything else
 * (another message shape, a future nats.js) takes the public `subject`.
 */
export function subjectTail(msg: SubjectSource, offset: number, texts: InternedText): string {
  const subject = (msg as unknown as { _msg?: { subject?: unknown } })._msg?.subject;
  if (subject instanceof Uint8Array && subject.length >= offset) return texts.get(subject, offset, subject.length);
  return msg.subject.slice(offset);
}

type Latin1Slice = (this: Uint8Array, from: number, to: number) => string;
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice;

/**
 * A core nats.js message's reply subject ('' for none), read from the bytes it keeps (`_msg.reply`):
 * nats.js's `reply` getter runs a TextDecoder on every call when there is none (it caches the empty
 * string, which reads as "not cached"), once per frame on a gateway's outbound subscription. Reply
 * subjects are unique per request, so they are not interned. Anything but plain ASCII bytes, and any
 * other message shape, takes the public `reply`.
 */
export function replySubject(msg: { readonly reply?: string }): string {
  const raw = (msg as unknown as { _msg?: { reply?: unknown } })._msg;
  if (raw !== undefined && raw !== null && typeof raw === 'object') {
    const r = raw.reply;
    if (r === undefined) return '';
    if (r instanceof Uint8Array && latin1Slice !== undefined) {
      let high = 0;
      for (let i = 0; i < r.length; i++) high |= r[i]!;
      if (high < 128) return latin1Slice.call(r, 0, r.length);
    }
  }
  return msg.reply ?? '';
}
