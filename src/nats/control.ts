import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ControlCommand, ControlReply } from '../protocol/events.js';
import { Header } from '../protocol/headers.js';
import type { Subjects } from '../protocol/subjects.js';
import { encodeHeaders, type RawPublisher } from './raw-publish.js';

/** Headers of a binary frame on `P.out` or `P.topic`; shared, never mutated. */
export const BINARY_HEADERS: MsgHdrs = natsHeaders();
BINARY_HEADERS.set(Header.Binary, '1');
/** The same, encoded once, for publishes written as protocol bytes (RawPublisher, Requester). */
export const BINARY_HEADER_BYTES: Uint8Array = encodeHeaders(BINARY_HEADERS);

/** A broadcast's headers on `P.topic`: the binary flag, the connection left out, and the gateway that already delivered it locally. */
export function topicHeaders(binary: boolean, except: string, origin?: string): MsgHdrs {
  const h = natsHeaders();
  if (origin !== undefined) h.set(Header.Origin, origin);
  if (binary) h.set(Header.Binary, '1');
  h.set(Header.Except, except);
  return h;
}

/** The same, encoded (undefined when there is neither a binary flag nor a connection left out). */
export function topicHeaderBytes(binary: boolean, except: string | undefined): Uint8Array | undefined {
  if (except === undefined) return binary ? BINARY_HEADER_BYTES : undefined;
  return encodeHeaders(topicHeaders(binary, except));
}

/** How long a control command waits for the owning gateway, unless the caller has its own setting. */
export const CONTROL_TIMEOUT_MS = 5_000;

/**
 * Sends a control command to the gateway that owns `connectionId` and waits for its answer. No answer
 * means the connection (or its gateway) is gone, which is not an error for the caller (null); a
 * refused command is logged. Used by the gateway (connections on other gateways), the worker and the
 * bridge.
 */
export async function requestControl(nc: NatsConnection, subjects: Subjects, connectionId: string, command: ControlCommand, timeoutMs: number, log: Logger): Promise<ControlReply | null> {
  let answer: ControlReply;
  try {
    answer = (await nc.request(subjects.ctl(connectionId), JSON.stringify(command), { timeout: timeoutMs })).json<ControlReply>();
  } catch (err) {
    log.debug({ err: { message: (err as Error).message }, conn: connectionId }, 'control request got no answer (connection gone)');
    return null;
  }
  if (!answer.ok && answer.error === 'invalid') log.warn({ conn: connectionId, message: answer.message }, 'gateway refused a control command');
  return answer;
}

/**
 * Control requests that stay in order with what `out` has written: its pending publishes (a frame
 * sent before a subscribe, say) are handed over first. For a process that publishes through a
 * RawPublisher and asks for control commands through nats.js (the worker, the bridge).
 */
export function orderedControl(out: RawPublisher, nc: NatsConnection, subjects: Subjects, timeoutMs: number, log: Logger): (connectionId: string, command: ControlCommand) => Promise<ControlReply | null> {
  return (connectionId, command) => {
    out.flush();
    return requestControl(nc, subjects, connectionId, command, timeoutMs, log);
  };
}
