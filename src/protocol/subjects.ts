import { assertToken } from './tokens.js';
import { parseConnectionId } from './ids.js';

/** Default subject prefix `P`. */
export const DEFAULT_PREFIX = 'wsgw';

/**
 * Every NATS subject wsgw uses, built in one place. Builders that take user-controlled input
 * validate it and throw InvalidTokenError before a subject is ever formed.
 */
export interface Subjects {
  readonly prefix: string;
  /** `P.in.open`: a connection opened (JSON OpenEvent). */
  readonly inOpen: string;
  /** `P.in.close`: a connection closed (JSON CloseEvent). */
  readonly inClose: string;
  /** `P.in.msg.>`: wildcard for every routed frame. */
  readonly inMsgAll: string;
  /** `P.in.msg.<route>`: one frame; raw body, metadata in headers, reply = `P.out.<connId>`. */
  inMsg(route: string): string;
  /** `P.out.<connId>`: payload sent to the client as-is. */
  out(connectionId: string): string;
  /** `P.ctl.<connId>`: JSON ControlCommand for the owning gateway. */
  ctl(connectionId: string): string;
  /** `P.topic.<topic>`: broadcast to every connection subscribed to topic, on every gateway. */
  topic(topic: string): string;
  /** `P.out.<gw>.*`: the one outbound subscription of a gateway. */
  outForGateway(gateway: string): string;
  /** `P.ctl.<gw>.*`: the one control subscription of a gateway. */
  ctlForGateway(gateway: string): string;
  /** `P.auth`: optional authorizer request before the upgrade. */
  readonly auth: string;
}

export function createSubjects(prefix: string = DEFAULT_PREFIX): Subjects {
  assertToken('prefix', prefix);
  const p = prefix;
  const inMsgPrefix = `${p}.in.msg.`;
  return Object.freeze({
    prefix: p,
    inOpen: `${p}.in.open`,
    inClose: `${p}.in.close`,
    inMsgAll: `${p}.in.msg.>`,
    auth: `${p}.auth`,
    inMsg: (route: string) => inMsgPrefix + assertToken('route', route),
    out: (id: string) => (parseConnectionId(id), `${p}.out.${id}`),
    ctl: (id: string) => (parseConnectionId(id), `${p}.ctl.${id}`),
    topic: (topic: string) => `${p}.topic.${assertToken('topic', topic)}`,
    outForGateway: (gw: string) => `${p}.out.${assertToken('gateway id', gw)}.*`,
    ctlForGateway: (gw: string) => `${p}.ctl.${assertToken('gateway id', gw)}.*`,
  });
}

/** KV bucket holding one record per open connection, keyed by connection id. */
export function connectionsBucket(prefix: string): string {
  return `${assertToken('prefix', prefix)}_connections`;
}

/** KV bucket holding one lease per live gateway, keyed by gateway id. */
export function gatewaysBucket(prefix: string): string {
  return `${assertToken('prefix', prefix)}_gateways`;
}
