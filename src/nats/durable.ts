import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { ensureStream } from './streams.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { assertToken } from '../protocol/tokens.js';
import type { Subjects } from '../protocol/subjects.js';
import { WsgwError } from '../errors/errors.js';

/** The durable stream could not be created (most often: --durable-max-bytes beyond the server's limits). */
export class DurableStreamError extends WsgwError {
  constructor(stream: string, reason: string, cause?: unknown) {
    super('WSGW_DURABLE_STREAM', `cannot create the durable stream ${stream}: ${reason} (JetStream reserves --durable-max-bytes; keep it within the server's limits)`, { cause });
  }
}

/** The JetStream stream that holds inbound events in durable mode: `<prefix>_inbound`. */
export function inboundStream(prefix: string): string {
  return `${assertToken('prefix', prefix)}_inbound`;
}

export interface InboundStreamOptions {
  readonly subjects: Subjects;
  readonly replicas: number;
  /** Events older than this are dropped by the stream (seconds). */
  readonly maxAgeS: number;
  readonly maxBytes: number;
  readonly log: Logger;
}

const NANOS = 1_000_000_000;
/** Publishes repeated within this window (same msgID) are stored once. */
const DUPLICATE_WINDOW_S = 120;

/** The inbound stream's configuration (also what a gateway's directory creates again when it is lost: ConnectionDirectory.keepStream). */
export function inboundStreamConfig(o: InboundStreamOptions) {
  return {
    name: inboundStream(o.subjects.prefix),
    subjects: [o.subjects.inOpen, o.subjects.inMsgAll, o.subjects.inClose],
    max_age: o.maxAgeS * NANOS,
    max_bytes: o.maxBytes,
    duplicate_window: DUPLICATE_WINDOW_S * NANOS,
    num_replicas: o.replicas,
    description: 'wsgw durable mode: every inbound WebSocket event until a worker acknowledges it',
  };
}

/**
 * Creates the inbound stream when missing (gateways with `--durable`): it captures `P.in.open`,
 * `P.in.msg.>` and `P.in.close`, with the configured limits, de-duplicating by message id.
 */
export function ensureInboundStream(nc: NatsConnection, o: InboundStreamOptions): Promise<JetStreamManager> {
  const config = inboundStreamConfig(o);
  return ensureStream(nc, config, ['max_age', 'max_bytes'], 'inbound stream', o.log, (reason, cause) => new DurableStreamError(config.name, reason, cause));
}

/** Redeliveries before a message that keeps failing is given up (terminated, and logged). */
export const MAX_DELIVER = 5;

/** Creates (or updates) the durable consumer a group of durable workers shares. */
export async function ensureDurableConsumer(jsm: JetStreamManager, prefix: string, name: string, ackWaitMs: number, maxAckPending = 10_000): Promise<void> {
  const stream = inboundStream(prefix);
  const config = {
    durable_name: assertToken('queue', name),
    ack_policy: AckPolicy.Explicit,
    ack_wait: ackWaitMs * 1_000_000,
    deliver_policy: DeliverPolicy.All,
    max_deliver: MAX_DELIVER,
    max_ack_pending: maxAckPending,
  };
  try {
    await jsm.consumers.info(stream, name);
    await jsm.consumers.update(stream, name, { ack_wait: config.ack_wait, max_deliver: config.max_deliver, max_ack_pending: config.max_ack_pending });
  } catch (err) {
    if (!/consumer not found/i.test((err as Error).message)) throw err;
    await jsm.consumers.add(stream, config);
  }
}

export interface DurableConsumerOptions {
  readonly nc: NatsConnection;
  readonly prefix: string;
  /** The consumer's name: the queue group of the workers (or bridges) that share it. */
  readonly name: string;
  readonly ackWaitMs: number;
  /** Messages delivered and not yet acknowledged, over everyone sharing the consumer. */
  readonly maxAckPending?: number;
  readonly log: Logger;
  /** Runs for every message; acknowledging it is the caller's. */
  readonly handle: (m: JsMsg) => void;
}

export interface DurableConsumer {
  /** Stops consuming; messages not acknowledged are redelivered after the ack wait. */
  close(): Promise<void>;
}

/**
 * Consumes the inbound stream through the durable consumer `name`, created (or updated) first, once
 * the stream exists (a gateway with `--durable` creates it). When nats.js says the consumer is gone
 * (deleted, not found, or its stream not found: the stream deleted by hand, or lost with a
 * nats-server's store), it waits for the stream, creates the consumer again and consumes anew at
 * once; nats.js alone would ask again only every 15-45 s.
 */
export async function consumeDurable(o: DurableConsumerOptions): Promise<DurableConsumer> {
  const { nc, log, name } = o;
  const jsm = await jetstreamManager(nc);
  const stream = inboundStream(o.prefix);
  let consuming: ConsumerMessages | null = null;
  let stopped = false;
  let repairing = false;

  /** Creates or updates the consumer, waiting for the stream; false when stopped meanwhile. */
  const ensure = async (): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await ensureDurableConsumer(jsm, o.prefix, name, o.ackWaitMs, o.maxAckPending);
        return true;
      } catch (err) {
        if (!/stream not found/i.test((err as Error).message)) throw err;
        if (attempt === 1 || attempt % 30 === 0) log.warn({ stream }, 'waiting for the inbound stream (a gateway started with --durable creates it)');
        await new Promise((r) => setTimeout(r, 1_000));
        if (stopped || nc.isClosed()) return false;
      }
    }
  };

  const repair = async (old: ConsumerMessages): Promise<void> => {
    if (repairing || stopped) return;
    repairing = true;
    try {
      log.warn({ stream, consumer: name }, 'durable consumer missing: creating it again');
      if (!(await ensure()) || stopped || consuming !== old) return;
      old.stop();
      await consume();
      log.info({ stream, consumer: name }, 'durable consumer created again; consuming');
    } catch (err) {
      log.error({ err }, 'durable consumer could not be created again');
    } finally {
      repairing = false;
    }
  };

  const consume = async (): Promise<void> => {
    const consumer = await jetstream(nc).consumers.get(stream, name);
    const messages = await consumer.consume({ max_messages: 256 });
    consuming = messages;
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') void repair(messages);
      }
    })();
    void (async () => {
      for await (const m of messages) o.handle(m);
    })().catch((err) => log.error({ err }, 'durable consumer stopped'));
  };

  await ensure();
  await consume();
  return {
    async close() {
      stopped = true;
      await consuming?.close().catch(() => undefined);
    },
  };
}
