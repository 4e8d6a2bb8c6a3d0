import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { parseControlCommand, type ControlCommand, type ControlReply } from '../protocol/events.js';
import { Header } from '../protocol/headers.js';
import type { Subjects } from '../protocol/subjects.js';
import { Acknowledger } from '../nats/acks.js';
import { InternedText, subjectTail } from '../nats/message-text.js';

/** The answer to a send or control for a connection that is gone, encoded once ("ok" is the Acknowledger's). */
const GONE_REPLY = new TextEncoder().encode(JSON.stringify({ ok: false, error: 'gone' } satisfies ControlReply));

/** What the command subscriptions act on: a gateway's live connections, of whatever type it keeps. */
export interface CommandTarget<C> {
  /** The live connection with this token (the part of its id after the gateway's), or undefined. */
  connection(token: string): C | undefined;
  /** Queues a frame from `P.out` on the connection (no binary flag: text). */
  deliver(c: C, data: Uint8Array, binary: boolean): void;
  /**
   * Applies a control command; a promise when it completes later (a subscribe, once NATS has it), an
   * answer of its own when it has one (metadata); throws a WsgwError for a command it refuses.
   */
  control(c: C, cmd: ControlCommand): Promise<void> | ControlReply | undefined;
  /** A server status arrived on `P.out` instead of a frame (503: frames published with this reply subject reached no worker). */
  serverStatus(code: number): void;
}

export interface CommandSubscriptions {
  /** Hands the answers written in this turn to nats.js now (at shutdown). */
  flush(): void;
  unsubscribe(): void;
}

/**
 * The gateway's fixed subscriptions for commands addressed to its connections: frames on
 * `P.out.<gw>.*` (from workers, or requests from the connection API) and controls on `P.ctl.<gw>.*`.
 * A request is answered once the frame is queued on the socket or the control applied; answers are
 * written as protocol bytes and handed to nats.js once per event-loop turn, and a send's success is
 * batched for a sender that asks for it (src/nats/acks.ts). A connection that is gone is answered
 * `{"ok":false,"error":"gone"}`, an invalid control `invalid`.
 */
export function subscribeCommands<C>(nc: NatsConnection, subjects: Subjects, gatewayId: string, target: CommandTarget<C>, options: { readonly maxConnections: number; readonly log: Logger }): CommandSubscriptions {
  const { log } = options;
  const out = new Acknowledger(nc);
  const reply = (msg: Msg, body: ControlReply | Uint8Array): void => out.reply(msg, body instanceof Uint8Array ? body : JSON.stringify(body));
  const outPrefixLength = subjects.outForGateway(gatewayId).length - 1;
  // the ids of this gateway's connections, read from each reply's subject without decoding it
  const outIds = new InternedText(Math.min(options.maxConnections * 2, 1 << 20));
  const ctlPrefixLength = subjects.ctlForGateway(gatewayId).length - 1;
  const subs: Subscription[] = [
    nc.subscribe(subjects.outForGateway(gatewayId), {
      callback: (err, msg) => {
        if (err) return log.warn({ err }, 'outbound subscription failed');
        const h = msg.headers;
        // a server status, never client data; core NATS is at-most-once here
        if (h && h.code !== 0 && msg.data.length === 0) return target.serverStatus(h.code);
        const c = target.connection(subjectTail(msg, outPrefixLength, outIds));
        if (c === undefined) return reply(msg, GONE_REPLY);
        target.deliver(c, msg.data, h?.get(Header.Binary) === '1');
        out.ok(msg);
      },
    }),
    nc.subscribe(subjects.ctlForGateway(gatewayId), {
      callback: (err, msg) => {
        if (err) return log.warn({ err }, 'control subscription failed');
        let cmd: ControlCommand;
        try {
          cmd = parseControlCommand(msg.json());
        } catch (e) {
          log.warn({ err: e, subject: msg.subject }, 'invalid control command');
          return reply(msg, { ok: false, error: 'invalid', message: (e as Error).message });
        }
        const c = target.connection(msg.subject.slice(ctlPrefixLength));
        if (c === undefined) return reply(msg, GONE_REPLY);
        let done: Promise<void> | ControlReply | undefined;
        try {
          done = target.control(c, cmd);
        } catch (e) {
          log.warn({ err: e, subject: msg.subject }, 'control command refused');
          return reply(msg, { ok: false, error: 'invalid', message: (e as Error).message });
        }
        if (done instanceof Promise) void done.then(() => out.ok(msg));
        else if (done) reply(msg, done);
        else out.ok(msg);
      },
    }),
  ];
  return {
    flush: () => out.flush(),
    unsubscribe: () => subs.forEach((s) => s.unsubscribe()),
  };
}
