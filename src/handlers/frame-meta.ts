import { Header } from '../protocol/headers.js';

/** The four headers a gateway puts on every `P.in.msg` frame. */
export interface FrameMeta {
  readonly conn: string;
  readonly gateway: string;
  readonly seq: number;
  readonly binary: boolean;
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
export function readFrameMeta(msg: HeaderSource): FrameMeta | null {
  const raw = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown };
  const hdr = raw._msg?.hdr;
  if (typeof hdr === 'number' && hdr > 0 && raw._rdata instanceof Uint8Array && raw._rdata.length >= hdr) {
    return parse(Buffer.from(raw._rdata.buffer, raw._rdata.byteOffset, hdr).toString('latin1'));
  }
  const h = msg.headers;
  if (!h) return null;
  return meta(h.get(Header.Connection), h.get(Header.Gateway), h.get(Header.Seq), h.get(Header.Binary));
}

function meta(conn: string, gateway: string, seq: string, binary: string): FrameMeta | null {
  if (conn === '' || gateway === '') return null;
  return { conn, gateway, seq: Number(seq), binary: binary === '1' };
}

/** `NATS/1.0[ status]\r\nKey: value\r\n...\r\n\r\n` */
function parse(text: string): FrameMeta | null {
  let conn = '';
  let gateway = '';
  let seq = '';
  let binary = '';
  let at = text.indexOf('\r\n');
  if (at < 0) return null;
  // a status line (`NATS/1.0 503`) is a server status, never a frame
  if (text.charCodeAt(8) === 32 /* space after NATS/1.0 */) return null;
  at += 2;
  while (at < text.length) {
    const end = text.indexOf('\r\n', at);
    const stop = end < 0 ? text.length : end;
    const colon = text.indexOf(':', at);
    if (colon > at && colon < stop) {
      const key = text.slice(at, colon);
      const value = text.slice(colon + 1, stop).trim();
      if (key === Header.Connection) conn ||= value;
      else if (key === Header.Gateway) gateway ||= value;
      else if (key === Header.Seq) seq ||= value;
      else if (key === Header.Binary) binary ||= value;
    }
    at = stop + 2;
  }
  return meta(conn, gateway, seq, binary);
}
