import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ensureStream } from './streams.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Header } from '../protocol/headers.js';
import { HistoryMessage, HistoryOffError, selectHistory, type HistoryLimits, type HistoryQuery } from '../protocol/history.js';
import type { Subjects } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import { WsgwError } from '../errors/errors.js';

/** The JetStream stream that keeps topic history: `<prefix>_history`, capturing `P.topic.>`. */
export function historyStream(prefix: string): string {
  return `${assertToken('prefix', prefix)}_history`;
}

/** `--history` could not create the history stream (most often: --history-max-bytes beyond the server's limits). */
export class HistoryStreamError extends WsgwError {
  constructor(stream: string, reason: string, cause?: unknown) {
    super('WSGW_HISTORY_STREAM', `cannot create the history stream ${stream}: ${reason} (JetStream reserves --history-max-bytes; keep it within the server's limits)`, { cause });
  }
}

const NANOS = 1_000_000_000;
/** How long a reader's consumer lives on the server if the reader dies before deleting it. */
const READER_INACTIVE_NS = 30 * NANOS;
/** How long a missing stream is taken to stay missing before a read asks the server again. */
const OFF_RECHECK_MS = 5_000;
/** How long one read may take to fetch what its consumer counted. */
const READ_EXPIRES_MS = 5_000;

export function historyStreamConfig(subjects: Subjects, limits: HistoryLimits, replicas: number) {
  return {
    name: historyStream(subjects.prefix),
    subjects: [`${subjects.prefix}.topic.>`],
    max_msgs_per_subject: limits.perTopic,
    max_age: limits.ttlS * NANOS,
    max_bytes: limits.maxBytes,
    num_replicas: replicas,
    description: 'wsgw topic history: the last broadcasts of each topic (--history)',
  };
}

/**
 * Creates the history stream when missing, or brings its limits to these (`--history`,
 * `--history-ttl`, `--history-max-bytes`; the last process started with them wins). From then on the
 * server keeps every broadcast published to `P.topic.<topic>`, whoever published it.
 */
export async function ensureHistoryStream(nc: NatsConnection, subjects: Subjects, limits: HistoryLimits, replicas: number, log: Logger): Promise<void> {
  const config = historyStreamConfig(subjects, limits, replicas);
  await ensureStream(nc, config, ['max_msgs_per_subject', 'max_age', 'max_bytes'], 'history stream', log, (reason, cause) => new HistoryStreamError(config.name, reason, cause));
}

/**
 * Reads one topic's history from the stream: an ephemeral consumer filtered to the topic's subject,
 * starting where the query says, fetched up to the count the server gave at its creation (at most
 * `--history` messages), then deleted. Throws HistoryOffError when there is no stream.
 */
export class StreamHistory {
  readonly #nc: NatsConnection;
  readonly #subjects: Subjects;
  readonly #stream: string;
  #clients: Promise<{ jsm: JetStreamManager; js: JetStreamClient }> | null = null;
  /** Until when the stream is taken to be missing (it was at the last read). */
  #offUntil = 0;

  constructor(nc: NatsConnection, subjects: Subjects) {
    this.#nc = nc;
    this.#subjects = subjects;
    this.#stream = historyStream(subjects.prefix);
  }

  async read(topic: string, q: HistoryQuery): Promise<HistoryMessage[]> {
    const subject = this.#subjects.topic(topic);
    // history off: said at once for a while, not with a request to the server per read
    if (Date.now() < this.#offUntil) throw this.#off();
    this.#clients ??= jetstreamManager(this.#nc).then((jsm) => ({ jsm, js: jetstream(this.#nc) }));
    const { jsm, js } = await this.#clients;
    const start =
      q.after !== undefined && q.after > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: q.after + 1 }
        : q.since !== undefined && q.since > 0
          ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(q.since).toISOString() }
          : { deliver_policy: DeliverPolicy.All };
    let info;
    try {
      info = await jsm.consumers.add(this.#stream, { ...start, filter_subject: subject, ack_policy: AckPolicy.None, inactive_threshold: READER_INACTIVE_NS, mem_storage: true, num_replicas: 1 });
    } catch (err) {
      if (/stream not found/i.test((err as Error).message)) {
        this.#offUntil = Date.now() + OFF_RECHECK_MS;
        throw this.#off();
      }
      throw err;
    }
    const out: HistoryMessage[] = [];
    try {
      const pending = info.num_pending;
      if (pending === 0) return out;
      // from the creation answer: no info round trip
      const consumer = js.consumers.getConsumerFromInfo(info);
      const messages = await consumer.fetch({ max_messages: pending, expires: READ_EXPIRES_MS });
      for await (const m of messages) {
        out.push(new HistoryMessage(m.seq, Number(m.timestampNanos / 1_000_000n), m.data, m.headers?.get(Header.Binary) === '1'));
        if (m.info.pending === 0) break;
      }
    } finally {
      jsm.consumers.delete(this.#stream, info.name).catch(() => undefined);
    }
    // the consumer starts at one bound; an `after` read may be narrowed by `since` too, and `limit` keeps the newest
    return selectHistory(out, q);
  }

  #off(): HistoryOffError {
    return new HistoryOffError(`no stream ${this.#stream} (start a gateway, a worker or the connection service with --history)`);
  }
}
