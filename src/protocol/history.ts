import { WsgwError } from '../errors/errors.js';
import { FrameBytes } from './frame-bytes.js';

/**
 * Topic history: the last broadcasts of each topic, kept for a while, for a handler (or any program,
 * through the HTTP API) to read back, e.g. a room's recent lines for a client that joins or comes back.
 * Off unless `--history <n>` is given. With NATS it is a JetStream stream capturing `P.topic.>` (every
 * broadcast, whoever published it); in local mode the process keeps it in memory with the same limits.
 */

/** The largest `--history` (messages kept per topic) and `limit` of one read. */
export const MAX_HISTORY = 10_000;

/** Which part of a topic's history to read; every field optional. */
export interface HistoryQuery {
  /** Only messages with a sequence number above this one (one a client saw last). */
  readonly after?: number;
  /** Only messages stored at or after this time (milliseconds since the epoch). */
  readonly since?: number;
  /** At most this many, the newest (1 to 10,000; default: all that match). */
  readonly limit?: number;
}

/** One stored broadcast, oldest first in a read. */
export interface HistoryEntry {
  /**
   * Its position in the history: increasing with every broadcast (over all topics, so with gaps
   * within one). With NATS, the stream sequence; in local mode, the process's own count.
   */
  readonly seq: number;
  /** When it was stored, in milliseconds since the epoch. */
  readonly time: number;
  readonly data: Uint8Array;
  readonly binary: boolean;
  text(): string;
  json<T = unknown>(): T;
}

/** History is not on (no `--history` anywhere, so no stream), or not reachable in this mode. */
export class HistoryOffError extends WsgwError {
  constructor(detail: string) {
    super('WSGW_HISTORY_OFF', `topic history is off: ${detail}`);
  }
}

/** A history read asked for something that is not a valid query. */
export class InvalidHistoryQueryError extends WsgwError {
  constructor(reason: string) {
    super('WSGW_INVALID_HISTORY_QUERY', `invalid history query: ${reason}`);
  }
}

export class HistoryMessage extends FrameBytes implements HistoryEntry {
  readonly seq: number;
  readonly time: number;
  constructor(seq: number, time: number, data: Uint8Array, binary: boolean) {
    super(data, binary);
    this.seq = seq;
    this.time = time;
  }
  /** The HTTP API's form: text as is, bytes in base64. */
  toJSON(): { seq: number; time: number; binary: boolean; data: string } {
    return { seq: this.seq, time: this.time, binary: this.binary, data: this.binary ? Buffer.from(this.data).toString('base64') : this.text() };
  }
}

function wholeNumber(name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidHistoryQueryError(`${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/** A handler's query, checked: the fields it knows, each a whole number in range. */
export function parseHistoryQuery(query: unknown): HistoryQuery {
  if (query === undefined || query === null) return {};
  if (typeof query !== 'object' || Array.isArray(query)) throw new InvalidHistoryQueryError('expected an object with after, since or limit');
  const q = query as Record<string, unknown>;
  for (const key of Object.keys(q)) {
    if (key !== 'after' && key !== 'since' && key !== 'limit') throw new InvalidHistoryQueryError(`unknown field "${key}" (after, since, limit)`);
  }
  return {
    after: wholeNumber('after', q.after, 0, Number.MAX_SAFE_INTEGER),
    since: wholeNumber('since', q.since, 0, Number.MAX_SAFE_INTEGER),
    limit: wholeNumber('limit', q.limit, 1, MAX_HISTORY),
  };
}

/** The HTTP API's query string (`?after=&since=&limit=`), checked the same way. */
export function historyQueryOf(params: URLSearchParams): HistoryQuery {
  const out: Record<string, number> = {};
  for (const [key, text] of params) {
    if (key !== 'after' && key !== 'since' && key !== 'limit') throw new InvalidHistoryQueryError(`unknown parameter "${key}" (after, since, limit)`);
    if (!/^\d{1,16}$/.test(text)) throw new InvalidHistoryQueryError(`${key} must be a whole number, not ${JSON.stringify(text)}`);
    out[key] = Number(text);
  }
  return parseHistoryQuery(out);
}

/** The entries of one topic (oldest first) that a query selects. */
export function selectHistory(entries: readonly HistoryMessage[], q: HistoryQuery): HistoryMessage[] {
  const after = q.after ?? 0;
  const since = q.since ?? 0;
  const picked = after === 0 && since === 0 ? entries.slice() : entries.filter((e) => e.seq > after && e.time >= since);
  return q.limit !== undefined && picked.length > q.limit ? picked.slice(picked.length - q.limit) : picked;
}

export interface HistoryLimits {
  /** Messages kept per topic (`--history`). */
  readonly perTopic: number;
  /** How long a message is kept, in seconds (`--history-ttl`). */
  readonly ttlS: number;
  /** Bytes of payload kept over every topic (`--history-max-bytes`); the oldest go first. */
  readonly maxBytes: number;
}

/** The limits a process's `--history`, `--history-ttl` and `--history-max-bytes` give. */
export function historyLimits(config: { readonly history: number; readonly historyTtl: number; readonly historyMaxBytes: number }): HistoryLimits {
  return { perTopic: config.history, ttlS: config.historyTtl, maxBytes: config.historyMaxBytes };
}

/** One entry local mode keeps, in its topic's list and in the order of all. */
interface Kept {
  readonly topic: string;
  readonly entry: HistoryMessage;
  /** Taken off its topic's list already (past the per-topic count); still in the order until it is the oldest. */
  gone: boolean;
}

/**
 * Local mode's history: the same limits as the stream's (per topic, age, total bytes), in memory.
 * Every broadcast is one append; a read copies out the matching entries.
 */
export class MemoryHistory {
  readonly #limits: HistoryLimits;
  readonly #topics = new Map<string, Kept[]>();
  /** Every entry kept, oldest first: what goes first past the age or byte limit. */
  #order: Kept[] = [];
  #head = 0;
  #bytes = 0;
  #seq = 0;
  readonly #now: () => number;

  constructor(limits: HistoryLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Keeps a copy of one broadcast. */
  append(topic: string, data: string | Uint8Array, binary: boolean): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : new Uint8Array(data);
    const kept: Kept = { topic, entry: new HistoryMessage(++this.#seq, this.#now(), bytes, binary), gone: false };
    let list = this.#topics.get(topic);
    if (!list) this.#topics.set(topic, (list = []));
    list.push(kept);
    this.#order.push(kept);
    this.#bytes += bytes.byteLength;
    if (list.length > this.#limits.perTopic) {
      const first = list.shift()!;
      first.gone = true;
      this.#bytes -= first.entry.data.byteLength;
    }
    while (this.#bytes > this.#limits.maxBytes) this.#dropOldest();
    this.#expire();
  }

  read(topic: string, q: HistoryQuery): HistoryMessage[] {
    this.#expire();
    return selectHistory((this.#topics.get(topic) ?? []).map((k) => k.entry), q);
  }

  /** Payload bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  #expire(): void {
    const oldest = this.#now() - this.#limits.ttlS * 1000;
    for (;;) {
      while (this.#head < this.#order.length && this.#order[this.#head]!.gone) this.#head++;
      if (this.#head === this.#order.length || this.#order[this.#head]!.entry.time >= oldest) return;
      this.#dropOldest();
    }
  }

  /** Drops the oldest entry still kept (the head of its topic's list: both are in arrival order). */
  #dropOldest(): void {
    while (this.#head < this.#order.length) {
      const kept = this.#order[this.#head++]!;
      if (kept.gone) continue;
      const list = this.#topics.get(kept.topic)!;
      list.shift();
      if (list.length === 0) this.#topics.delete(kept.topic);
      this.#bytes -= kept.entry.data.byteLength;
      break;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }
}
