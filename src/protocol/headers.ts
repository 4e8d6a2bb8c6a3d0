/**
 * NATS header names on wsgw messages. Values are ASCII.
 *
 * On `P.in.msg.<route>` (gateway -> workers): Conn, Gateway, Seq, Binary (always present), Meta
 * (after Seq, when the connection has metadata).
 * On `P.out.<connId>` and `P.topic.<topic>` (anyone -> gateway): Binary (optional, default text).
 * On `P.topic.<topic>` from a gateway's in-process handler: Origin.
 */
export const Header = {
  /** The connection id `<gatewayId>.<token>`. */
  Connection: 'Wsgw-Conn',
  /** The id of the gateway that holds the connection. */
  Gateway: 'Wsgw-Gateway',
  /** Per-connection frame sequence number, starting at 1. */
  Seq: 'Wsgw-Seq',
  /** `1` for a binary frame, `0` for text. */
  Binary: 'Wsgw-Binary',
  /** The route the frame was published under. */
  Route: 'Wsgw-Route',
  /** The connection's metadata as an ASCII JSON object of strings, when it has any (src/protocol/meta.ts). */
  Meta: 'Wsgw-Meta',
  /** On `P.topic.<topic>`: a connection id its gateway leaves out of the broadcast (the others deliver to every subscriber). */
  Except: 'Wsgw-Except',
  /** On `P.topic.<topic>`: the gateway that published it and already delivered it to its own subscribers. */
  Origin: 'Wsgw-Origin',
} as const;
export type Header = (typeof Header)[keyof typeof Header];
