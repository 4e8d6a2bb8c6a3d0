/**
 * NATS header names on wsgw messages. Values are ASCII.
 *
 * On `P.in.msg.<route>` (gateway -> workers): Conn, Gateway, Seq, Binary (always present).
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
  /** On `P.topic.<topic>`: the gateway that published it and already delivered it to its own subscribers. */
  Origin: 'Wsgw-Origin',
} as const;
export type Header = (typeof Header)[keyof typeof Header];
