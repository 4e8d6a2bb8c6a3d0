import type { Logger } from 'pino';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { KvWatchEntry } from '@nats-io/kv';
import type { ConnectionRecord, GatewayLease } from '../protocol/events.js';
import type { ConnectionDirectory } from '../nats/directory.js';

/** How many recently closed ids are remembered to answer 410 rather than 404. */
const GONE_MEMORY = 100_000;
const READY_TIMEOUT_MS = 5_000;

export interface ListOptions {
  readonly gateway?: string;
  readonly topic?: string;
  /** Exclusive: the last id of the previous page. */
  readonly cursor?: string;
  readonly limit: number;
}

/**
 * A live copy of the connections bucket, kept by a KV watch: listing, filtering and paging without a
 * KV read per record. It can lag the bucket by a few milliseconds; callers that need a definite
 * answer for one id fall back to the bucket itself.
 */
export class DirectoryView {
  readonly records = new Map<string, ConnectionRecord>();
  /** Recently closed ids and when the view saw them close. */
  readonly #gone = new Map<string, number>();
  readonly #goneMs: number;
  readonly #watch: QueuedIterator<KvWatchEntry>;
  #listeners = new Set<(id: string, record: ConnectionRecord | null) => void>();

  private constructor(watch: QueuedIterator<KvWatchEntry>, goneMs: number) {
    this.#watch = watch;
    this.#goneMs = goneMs;
  }

  /** `goneMs`: how long a closed id is remembered as gone (as long as its KV delete marker lives). */
  static async start(directory: ConnectionDirectory, log: Logger, goneMs = Infinity): Promise<DirectoryView> {
    const status = await directory.connections.status();
    const watch = await directory.connections.watch();
    const view = new DirectoryView(watch, goneMs);
    let markReady!: () => void;
    const ready = new Promise<void>((r) => (markReady = r));
    if (status.values === 0) markReady();
    void (async () => {
      for await (const e of watch) {
        if (e.operation === 'PUT') {
          try {
            view.#set(e.key, e.json<ConnectionRecord>());
          } catch (err) {
            log.warn({ err, key: e.key }, 'unreadable connection record ignored');
          }
        } else {
          view.#remove(e.key, e.created.getTime());
        }
        if (e.delta === 0) markReady();
      }
    })().catch((err) => log.error({ err }, 'directory watch ended'));
    const timer = setTimeout(markReady, READY_TIMEOUT_MS);
    await ready;
    clearTimeout(timer);
    return view;
  }

  #set(id: string, record: ConnectionRecord): void {
    this.records.set(id, record);
    this.#gone.delete(id);
    for (const l of this.#listeners) l(id, record);
  }

  #remove(id: string, closedAt: number): void {
    this.records.delete(id);
    this.#gone.delete(id);
    this.#gone.set(id, closedAt);
    if (this.#gone.size > GONE_MEMORY) this.#gone.delete(this.#gone.keys().next().value!);
    for (const l of this.#listeners) l(id, null);
  }

  /** 'gone' means the id was seen closed (a KV delete marker); 'unknown' means never seen. */
  status(id: string): 'open' | 'gone' | 'unknown' {
    if (this.records.has(id)) return 'open';
    const closedAt = this.#gone.get(id);
    return closedAt !== undefined && Date.now() - closedAt <= this.#goneMs ? 'gone' : 'unknown';
  }

  /** Calls `fn(id, record)` on every change (record null on close); returns the unsubscribe. */
  onChange(fn: (id: string, record: ConnectionRecord | null) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  list(options: ListOptions): { connections: ConnectionRecord[]; next: string | null } {
    const ids = [...this.records.keys()].sort();
    let start = 0;
    if (options.cursor !== undefined) {
      // first id after the cursor (binary search keeps paging cheap on big lists)
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ids[mid]! <= options.cursor) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const out: ConnectionRecord[] = [];
    let i = start;
    for (; i < ids.length && out.length < options.limit; i++) {
      const r = this.records.get(ids[i]!)!;
      if (options.gateway !== undefined && r.gateway !== options.gateway) continue;
      if (options.topic !== undefined && !r.topics.includes(options.topic)) continue;
      out.push(r);
    }
    const more = out.length === options.limit && i < ids.length;
    return { connections: out, next: more ? out[out.length - 1]!.id : null };
  }

  /** The gateways' leases with their health and how many listed connections each holds (for `GET /gateways` and the admin page). */
  async gateways(directory: ConnectionDirectory): Promise<Array<GatewayLease & { alive: boolean; connections: number }>> {
    const counts = new Map<string, number>();
    for (const r of this.records.values()) counts.set(r.gateway, (counts.get(r.gateway) ?? 0) + 1);
    const now = Date.now();
    return (await directory.leases())
      .map((l) => ({ ...l, alive: now - l.heartbeatAt <= l.leaseMs, connections: counts.get(l.id) ?? 0 }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Up to `limit` records, without copying the rest. */
  first(limit: number): ConnectionRecord[] {
    const out: ConnectionRecord[] = [];
    for (const r of this.records.values()) {
      if (out.length >= limit) break;
      out.push(r);
    }
    return out;
  }

  stop(): void {
    this.#watch.stop();
    this.#listeners.clear();
  }
}
