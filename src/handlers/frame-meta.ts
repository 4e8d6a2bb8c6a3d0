import { Header } from '../protocol/headers.js';
import { bytesAre, digits, InternedText, latin1 } from '../nats/message-text.js';

/** The four headers a gateway puts on every `P.in.msg` frame, and the connection's metadata when it has any. */
export interface FrameMeta {
  readonly conn: string;
  readonly gateway: string;
  readonly seq: number;
  readonly binary: boolean;
  /** The `Wsgw-Meta` header's JSON, '' without one. */
  readonly meta: string;
}

interface HeaderSource {
  readonly headers?: { get(key: string): string } | undefined;
}

/**
 * Reads a frame's Wsgw headers. For a core NATS message it scans the raw header bytes nats.js keeps
 * (`_rdata`, the first `_msg.hdr` bytes) instead of building nats.js's header map, which took about a
 * seventh of a worker's time; anything else (a JetStream message, another client library's shape, a
 * future nats.js) goes through the public `headers` API. Same answers either way: exact-case keys,
 * trimmed values, the first value of a repeated key.
 */
export function readFrameMeta(msg: HeaderSource, texts: InternedText = shared): FrameMeta | null {
  const raw = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown };
  const hdr = raw._msg?.hdr;
  if (typeof hdr === 'number' && hdr > 0 && raw._rdata instanceof Uint8Array && raw._rdata.length >= hdr) {
    return scan(raw._rdata, hdr, texts);
  }
  const h = msg.headers;
  if (!h) return null;
  return fromStrings(h.get(Header.Connection), h.get(Header.Gateway), h.get(Header.Seq), h.get(Header.Binary), h.get(Header.Meta));
}

function fromStrings(conn: string, gateway: string, seq: string, binary: string, meta: string): FrameMeta | null {
  if (conn === '' || gateway === '') return null;
  return { conn, gateway, seq: Number(seq), binary: binary === '1', meta };
}

/** The ids of recent connections, kept as strings (callers may pass their own). */
const shared = new InternedText();

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const CONN = ascii(Header.Connection);
const GATEWAY = ascii(Header.Gateway);
const SEQ = ascii(Header.Seq);
const BINARY = ascii(Header.Binary);
const META = ascii(Header.Meta);
const CR = 13;
const COLON = 58;
const SPACE = 32;
const TAB = 9;
const ONE = 49;

const LF = 10;
const ZERO = 48;
// the exact block a wsgw gateway writes (src/gateway/frame-headers.ts), piece by piece
const AT_CONN = ascii(`NATS/1.0\r\n${Header.Connection}: `);
const AT_GATEWAY = ascii(`\r\n${Header.Gateway}: `);
const AT_BINARY = ascii(`\r\n${Header.Binary}: `);
const AT_SEQ = ascii(`\r\n${Header.Seq}: `);
const AT_META = ascii(`\r\n${Header.Meta}: `);

/**
 * The block exactly as a wsgw gateway writes it (`NATS/1.0`, then Conn, Gateway, Binary as one digit
 * and Seq as plain digits, then Meta or nothing), read by checking its fixed parts in place; undefined for
 * anything else, which the general scan reads. Where it answers, the general scan answers the same.
 */
function gatewayBlock(b: Uint8Array, end: number, texts: InternedText): FrameMeta | undefined {
  if (!bytesAre(b, 0, AT_CONN.length, AT_CONN)) return undefined;
  const connFrom = AT_CONN.length;
  let at = connFrom;
  while (at < end && b[at] !== CR) at++;
  const connTo = at;
  if (!bytesAre(b, at, at + AT_GATEWAY.length, AT_GATEWAY)) return undefined;
  const gatewayFrom = at + AT_GATEWAY.length;
  at = gatewayFrom;
  while (at < end && b[at] !== CR) at++;
  const gatewayTo = at;
  if (!bytesAre(b, at, at + AT_BINARY.length, AT_BINARY)) return undefined;
  at += AT_BINARY.length;
  const flag = b[at]!;
  if ((flag !== ZERO && flag !== ONE) || !bytesAre(b, at + 1, at + 1 + AT_SEQ.length, AT_SEQ)) return undefined;
  const seqFrom = at + 1 + AT_SEQ.length;
  at = seqFrom;
  while (at < end && b[at] !== CR) at++;
  const seq = digits(b, seqFrom, at);
  if (seq < 0) return undefined;
  // the connection's metadata, when it has some, on the line after
  let meta = '';
  if (at + 4 !== end && bytesAre(b, at, at + AT_META.length, AT_META)) {
    const metaFrom = at + AT_META.length;
    at = metaFrom;
    while (at < end && b[at] !== CR) at++;
    if (!plain(b, metaFrom, at)) return undefined;
    meta = latin1(b, metaFrom, at);
  }
  // the block ends right after the last line, with the empty line
  if (at + 4 !== end || b[at + 1] !== LF || b[at + 2] !== CR || b[at + 3] !== LF) return undefined;
  // values a trim would change (or empty ids) are left to the general scan
  if (!plain(b, connFrom, connTo) || !plain(b, gatewayFrom, gatewayTo)) return undefined;
  return { conn: texts.get(b, connFrom, connTo), gateway: texts.get(b, gatewayFrom, gatewayTo), seq, binary: flag === ONE, meta };
}

/** A non-empty value with no space or tab at either end. */
function plain(b: Uint8Array, from: number, to: number): boolean {
  if (to <= from) return false;
  const first = b[from];
  const last = b[to - 1];
  return first !== SPACE && first !== TAB && last !== SPACE && last !== TAB;
}

/**
 * `NATS/1.0[ status]\r\nKey: value\r\n...\r\n\r\n`, scanned in place: no string for the whole block;
 * the two ids come from `texts` (kept strings), the seq and the binary flag are read as bytes.
 */
function scan(b: Uint8Array, end: number, texts: InternedText): FrameMeta | null {
  const known = gatewayBlock(b, end, texts);
  if (known !== undefined) return known;
  // a status line (`NATS/1.0 503`) is a server status, never a frame
  if (b[8] === SPACE) return null;
  let at = 0;
  while (at < end && b[at] !== CR) at++;
  at += 2;
  let conn = '';
  let gateway = '';
  let seq = -1;
  let binary = -1;
  let meta: string | null = null;
  while (at < end) {
    let stop = at;
    while (stop < end && b[stop] !== CR) stop++;
    let colon = at;
    while (colon < stop && b[colon] !== COLON) colon++;
    if (colon > at && colon < stop) {
      // the value, trimmed of spaces and tabs (values here are ASCII tokens)
      let from = colon + 1;
      let to = stop;
      while (from < to && (b[from] === SPACE || b[from] === TAB)) from++;
      while (to > from && (b[to - 1] === SPACE || b[to - 1] === TAB)) to--;
      if (conn === '' && bytesAre(b, at, colon, CONN)) conn = texts.get(b, from, to);
      else if (gateway === '' && bytesAre(b, at, colon, GATEWAY)) gateway = texts.get(b, from, to);
      else if (seq < 0 && bytesAre(b, at, colon, SEQ)) {
        // digits read in place; anything else as Number() reads it (the headers API path's answer)
        const n = digits(b, from, to);
        seq = n >= 0 ? n : Number(latin1(b, from, to));
      } else if (binary < 0 && bytesAre(b, at, colon, BINARY)) binary = to - from === 1 && b[from] === ONE ? 1 : 0;
      else if (meta === null && bytesAre(b, at, colon, META)) meta = latin1(b, from, to);
    }
    at = stop + 2;
  }
  if (conn === '' || gateway === '') return null;
  return { conn, gateway, seq: seq < 0 ? 0 : seq, binary: binary === 1, meta: meta ?? '' };
}
