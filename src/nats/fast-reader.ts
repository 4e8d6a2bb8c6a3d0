import { Kind, State, type MsgArg, type Parser, type ParserEvent } from '@nats-io/nats-core/internal';
import type { NatsConnection } from '@nats-io/transport-node';
import { digits } from './message-text.js';

const LF = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;
const H = 72;
const M = 77;
const S = 83;
const G = 71;
/** nats.js's own cap on a message's size field. */
const MAX_SIZE = 64 * 1024 * 1024;

/** Token bounds of one control line (`HMSG` has at most five arguments). */
const starts = new Int32Array(6);
const ends = new Int32Array(6);

/**
 * Reads a chunk of the server's stream the way nats.js's Parser does, but a whole `MSG`/`HMSG` at a
 * time: the control line is split with one pass and the payload is a view of the chunk. nats.js's
 * Parser walks every byte through a state machine and collects each argument in an array, which was
 * about a fifth of a worker's busy time and an eighth of a gateway's at 64 B frames.
 *
 * Every other line (`INFO`, `PING`, `PONG`, `+OK`, `-ERR`) goes whole to nats.js's own Parser, which is
 * at its start state between lines, so it handles them exactly as before. Anything this does not
 * recognise (a lower-case op, a malformed line) hands the rest of the stream to nats.js's Parser for
 * good: it reports it as it always did. The events reaching the dispatcher are the ones nats.js's
 * Parser would send, for any split of the stream into chunks (`test/nats/fast-reader.test.ts`).
 */
export class FastReader {
  readonly #parser: Parser;
  readonly #slow: (buf: Uint8Array) => void;
  /** Chunks of an incomplete line or message, and their length. */
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  /** Bytes the held message needs in all (0 while its control line is incomplete). */
  #need = 0;
  #fallenBack = false;

  constructor(parser: Parser) {
    this.#parser = parser;
    this.#slow = parser.parse.bind(parser);
  }

  /** True once the stream went to nats.js's Parser for good. */
  get fallenBack(): boolean {
    return this.#fallenBack;
  }

  parse(chunk: Uint8Array): void {
    if (this.#fallenBack) return this.#slow(chunk);
    let buf = chunk;
    if (this.#heldBytes > 0) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      // a large message arrives in many chunks: join them once, when all of it is here
      if (this.#heldBytes < this.#need) return;
      buf = Buffer.concat(this.#held, this.#heldBytes);
      this.#held = [];
      this.#heldBytes = 0;
      this.#need = 0;
    }
    const dispatcher = this.#parser.dispatcher;
    const n = buf.length;
    let at = 0;
    while (at < n) {
      const op = buf[at]!;
      const lf = buf.indexOf(LF, at);
      if (lf < 0) break;
      if (op !== M && op !== H) {
        // a line of its own: nats.js's Parser sits at its start state between lines
        if (this.#parser.state !== State.OP_START) return this.#fallBack(buf, at);
        this.#slow(buf.subarray(at, lf + 1));
        at = lf + 1;
        continue;
      }
      const headers = op === H;
      let p = at;
      if (headers) {
        if (buf[at + 1] !== M) return this.#fallBack(buf, at);
        p++;
      }
      if (buf[p + 1] !== S || buf[p + 2] !== G || buf[p + 3] !== SPACE || buf[lf - 1] !== CR) return this.#fallBack(buf, at);
      // split the arguments on spaces or tabs
      let count = 0;
      let i = p + 4;
      const end = lf - 1;
      while (i < end) {
        while (i < end && (buf[i] === SPACE || buf[i] === TAB)) i++;
        if (i === end) break;
        if (count === 5) return this.#fallBack(buf, at);
        starts[count] = i;
        while (i < end && buf[i] !== SPACE && buf[i] !== TAB) i++;
        ends[count++] = i;
      }
      // MSG <subject> <sid> [reply] <size>; HMSG <subject> <sid> [reply] <header size> <total size>
      const fixed = headers ? 4 : 3;
      if (count !== fixed && count !== fixed + 1) return this.#fallBack(buf, at);
      const sid = digits(buf, starts[1]!, ends[1]!);
      const size = digits(buf, starts[count - 1]!, ends[count - 1]!);
      const hdr = headers ? digits(buf, starts[count - 2]!, ends[count - 2]!) : -1;
      if (sid < 0 || size < 0 || size > MAX_SIZE || (headers && (hdr < 0 || hdr > size))) return this.#fallBack(buf, at);
      const from = lf + 1;
      // the payload and its CRLF must be here; otherwise hold the message until they are
      if (from + size + 2 > n) {
        this.#need = from + size + 2 - at;
        break;
      }
      // anything but CRLF after the payload: nats.js's Parser skips to the next LF; let it
      if (buf[from + size] !== CR || buf[from + size + 1] !== LF) return this.#fallBack(buf, at);
      // plain views for the subject and reply (a Buffer's subarray costs twice as much; nats.js's
      // Parser also hands out plain arrays for them when a message spans chunks)
      const msg: MsgArg = {
        subject: new Uint8Array(buf.buffer, buf.byteOffset + starts[0]!, ends[0]! - starts[0]!),
        reply: count === fixed + 1 ? new Uint8Array(buf.buffer, buf.byteOffset + starts[2]!, ends[2]! - starts[2]!) : undefined,
        sid,
        hdr,
        size,
      };
      at = from + size + 2;
      dispatcher.push({ kind: Kind.MSG, msg, data: buf.subarray(from, from + size) } satisfies ParserEvent);
    }
    if (at < n) {
      this.#held.push(at === 0 ? buf : buf.subarray(at));
      this.#heldBytes = n - at;
    }
  }

  #fallBack(buf: Uint8Array, at: number): void {
    this.#fallenBack = true;
    this.#held = [];
    this.#heldBytes = 0;
    this.#slow(buf.subarray(at));
  }
}

interface ParserHolder {
  parser?: unknown;
}

function isParser(p: unknown): p is Parser {
  const q = p as Partial<Parser> | null;
  return typeof q?.parse === 'function' && typeof q.dispatcher?.push === 'function' && q.state === State.OP_START;
}

/** Puts a FastReader in front of a fresh nats.js Parser; the parser keeps its own state and dispatcher. */
export function fastParser(parser: Parser): Parser {
  const reader = new FastReader(parser);
  parser.parse = (chunk) => reader.parse(chunk);
  return parser;
}

/**
 * Reads this connection's stream with a FastReader after every (re)connect: nats.js makes a new
 * Parser for each server connection, and the property it keeps it in is wrapped so that each one gets
 * a reader. The parser of the current connection gets one too when it is between messages (it is,
 * right after `connect()` resolves). Returns false, and changes nothing, when nats.js's internals are
 * not what this expects: the connection then reads as it always did.
 *
 * This reaches into nats.js's protocol handler, which the house style avoids. It is done because
 * the byte-wise Parser was the largest cost left on the read side of every hop, and it is fenced:
 * the Parser, its states and event kinds come from nats.js's own `internal` entry point, the shape is
 * checked before anything changes, the lockfile pins nats.js, and the stream test compares this
 * reader's events with nats.js's Parser's on the same bytes.
 */
export function installFastReader(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: ParserHolder }).protocol;
  if (protocol === undefined || protocol === null) return false;
  const own = Object.getOwnPropertyDescriptor(protocol, 'parser');
  if (own === undefined || !('value' in own) || own.writable !== true || own.configurable !== true) return false;
  const parse = (own.value as Partial<Parser> | null)?.parse;
  if (typeof parse !== 'function') return false;
  // a parser mid-message keeps its state in places a reader cannot take over: it reads on unchanged
  let current: unknown = isParser(own.value) ? fastParser(own.value) : own.value;
  Object.defineProperty(protocol, 'parser', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (next: unknown) => {
      current = isParser(next) ? fastParser(next) : next;
    },
  });
  return true;
}
