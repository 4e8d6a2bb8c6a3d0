/**
 * WebSocket close codes wsgw uses. 1xxx are RFC 6455; 4000-4099 are wsgw's own: 40xx terminal
 * (the client should not retry as is), 41xx reconnect-hinting (retry, possibly elsewhere).
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatus: 1005,
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  /** Closed by the application (handler, worker or HTTP API) without a code of its own. */
  ClosedByApplication: 4000,
  /** The connection exceeded its backpressure limit while the policy is `close`. */
  BackpressureLimit: 4001,
  /** The gateway is draining; reconnect (another gateway will take it). */
  GatewayDraining: 4100,
  /** The gateway could not buffer more frames while NATS was away; reconnect later. */
  NatsUnavailable: 4101,
  /** The gateway was cut off from NATS longer than its lease and was declared dead; reconnect. */
  LeaseLost: 4102,
  /** The token the connection was admitted with expired (its identity's `exp`); reconnect with a fresh one. */
  TokenExpired: 4103,
  /** The connection reached `--max-connection-age`; reconnect (possibly to another gateway). */
  MaxAgeReached: 4104,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Codes an application may ask for in a close request: 1000, or 3000-4999 (RFC 6455 7.4.2). */
export function isApplicationCloseCode(code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && (code === 1000 || (code >= 3000 && code <= 4999));
}

/** Close reasons must fit a control frame: 123 bytes of UTF-8. */
export const MAX_CLOSE_REASON_BYTES = 123;

export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = reason;
  while (Buffer.byteLength(out) > MAX_CLOSE_REASON_BYTES) out = out.slice(0, -1);
  return out;
}
