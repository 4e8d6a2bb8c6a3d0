import type { Logger } from 'pino';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { KvWatchEntry } from '@nats-io/kv';
import type { ConnectionRecord, GatewayLease } from '../protocol/events.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import { IdIndex, SortedIds } from './sorted-ids.js';
import { Tally } from '../util/tally.js';

/** How many recently closed ids are remembered to answer 410 rather than 404. */
const GONE_MEMORY = 100_000;
const READY_TIMEOUT_MS = 5_000;
/** How often the view asks its directory to look at the buckets (ConnectionDirectory.checkBuckets). */
const BUCKET_CHECK_MS = 5_000;

export interface ListOptions {
  readonly gateway?: string;
  readonly topic?: string;
  /** The connections of one user (`userOf`). */
  readonly user?: string;
  /** Exclusive: the last id of the previous page. */
  readonly cursor?: string;
  readonly limit: number;
}

/** A record's topics (none when a record written by something else has no list). */
function topicsOf(topics: readonly string[] | undefined): readonly string[] {
  return Array.isArray(topics) ? topics : [];
}

/**
 * The user a connection belongs to: its identity's `sub` (a JWT's subject, or the `sub` of the
 * identity an authorizer gave), when that is a non-empty string, or a number (as its decimal text:
 * some identity providers and authorizers give numeric ids).
 */
export function userOf(record: ConnectionRecord | undefined): string | undefined {
  const sub = record?.identity?.sub;
  if (typeof sub === 'string') return sub === '' ? undefined : sub;
  return typeof sub === 'number' && Number.isFinite(sub) ? String(sub) : undefined;
}

interface Index {
  /** Every open id. */
  readonly ids: SortedIds;
  readonly byTopic: IdIndex;
  readonly byUser: IdIndex;
}

/**
 * A live copy of the connections bucket, kept by a KV watch: listing, filtering and paging without a
 * KV read per record. It can lag the bucket by a few milliseconds; callers that need a definite
 * answer for one id fall back to the bucket itself. A bucket deleted and created again (a NATS server
 * back without its JetStream store), as its directory finds it (checkBuckets, asked here every 5 s
 * too), is watched anew from its start.
 */
export class DirectoryView {
  readonly records = new Map<string, ConnectionRecord>();
  /**
   * The ids of `records` in order, for paging, and the same per topic and per user (who is in a
   * room, or which connections a user has, without a pass over every connection). Made by the first
   * listing, then kept as records come and go: a process nobody lists from pays nothing for it.
   */
  #index: Index | null = null;
  /** Open connections per gateway, kept as records come and go (`GET /gateways` every 2 s on the admin page: no pass over every record). */
  readonly #perGateway = new Tally<string>();
  /** Recently closed ids and when the view saw them close. */
  readonly #gone = new Map<string, number>();
  readonly #goneMs: number;
  readonly #directory: ConnectionDirectory;
  readonly #log: Logger;
  #watch: QueuedIterator<KvWatchEntry> | null = null;
  readonly #timer: NodeJS.Timeout;
  /** The bucket was created again and is not watched anew yet (a watch that failed to start is retried). */
  #rewatch = false;
  #rewatching = false;
  #stopped = false;
  #listeners = new Set<(id: string, record: ConnectionRecord | null) => void>();

  private constructor(directory: ConnectionDirectory, log: Logger, goneMs: number) {
    this.#directory = directory;
    this.#log = log;
    this.#goneMs = goneMs;
    directory.onRenewed((renewed) => {
      if (!renewed.connections || this.#stopped) return;
      this.#rewatch = true;
      void this.#watchAnew();
    });
    this.#timer = setInterval(() => (this.#rewatch ? void this.#watchAnew() : void directory.checkBuckets()), BUCKET_CHECK_MS);
    this.#timer.unref();
  }

  /**
   * `goneMs`: how long a closed id is remembered as gone (as long as its KV delete marker lives).
   * `indexed`: put the ids in order now, after the replay, rather than at the first listing (the
   * connection service, which exists to be listed from, pays that sort at start, not in a request).
   */
  static async start(directory: ConnectionDirectory, log: Logger, goneMs = Infinity, options: { indexed?: boolean } = {}): Promise<DirectoryView> {
    const view = new DirectoryView(directory, log, goneMs);
    try {
      await view.#watchBucket();
    } catch (err) {
      view.stop();
      throw err;
    }
    if (options.indexed) view.#indexed();
    return view;
  }

  /**
   * Watches the bucket from its start; resolves once the watch has replayed it (or after
   * READY_TIMEOUT_MS). Records held from an earlier watch that the replay does not bring back are
   * removed, as closed.
   */
  async #watchBucket(): Promise<void> {
    const status = await this.#directory.connections.status();
    const watch = await this.#directory.connections.watch();
    if (this.#stopped) {
      watch.stop();
      return;
    }
    this.#watch = watch;
    const stale = new Set(this.records.keys());
    let markReady!: () => void;
    const ready = new Promise<void>((r) => (markReady = r));
    const replayed = () => {
      const now = Date.now();
      for (const id of stale) this.#remove(id, now);
      stale.clear();
      markReady();
    };
    if (status.values === 0) replayed();
    void (async () => {
      for await (const e of watch) {
        // a watch replaced by a newer one (the bucket created again) has nothing more to say
        if (this.#watch !== watch) break;
        stale.delete(e.key);
        if (e.operation === 'PUT') {
          try {
            this.#set(e.key, e.json<ConnectionRecord>());
          } catch (err) {
            this.#log.warn({ err, key: e.key }, 'unreadable connection record ignored');
          }
        } else {
          this.#remove(e.key, e.created.getTime());
        }
        if (e.delta === 0) replayed();
      }
    })().catch((err) => this.#log.error({ err }, 'directory watch ended'));
    const timer = setTimeout(markReady, READY_TIMEOUT_MS);
    await ready;
    clearTimeout(timer);
  }

  /** Replaces the watch of a bucket that was deleted and created again. */
  async #watchAnew(): Promise<void> {
    if (this.#rewatching || this.#stopped) return;
    this.#rewatching = true;
    try {
      this.#log.warn('the connections bucket was created again: watching it anew');
      this.#watch?.stop();
      await this.#watchBucket();
      this.#rewatch = false;
    } catch (err) {
      // NATS away: tried again on the next tick
      this.#log.debug({ err }, 'could not watch the connections bucket anew');
    } finally {
      this.#rewatching = false;
    }
  }

  #set(id: string, record: ConnectionRecord): void {
    if (this.#index !== null) {
      const before = this.records.get(id);
      if (before === undefined) this.#index.ids.add(id);
      this.#index.byTopic.move(id, topicsOf(before?.topics), topicsOf(record.topics));
      // a gateway never changes a connection's user (fixed at its upgrade); another writer might
      const was = before === undefined ? undefined : userOf(before);
      const now = userOf(record);
      if (was !== now) {
        if (was !== undefined) this.#index.byUser.delete(was, id);
        if (now !== undefined) this.#index.byUser.add(now, id);
      }
    }
    const previous = this.records.get(id)?.gateway;
    if (previous !== record.gateway) {
      if (previous !== undefined) this.#perGateway.remove(previous);
      this.#perGateway.add(record.gateway);
    }
    this.records.set(id, record);
    this.#gone.delete(id);
    for (const l of this.#listeners) l(id, record);
  }

  #remove(id: string, closedAt: number): void {
    const before = this.records.get(id);
    if (before !== undefined) {
      this.records.delete(id);
      this.#perGateway.remove(before.gateway);
      if (this.#index !== null) {
        this.#index.ids.delete(id);
        this.#index.byTopic.move(id, topicsOf(before.topics), []);
        const user = userOf(before);
        if (user !== undefined) this.#index.byUser.delete(user, id);
      }
    }
    this.#gone.delete(id);
    this.#gone.set(id, closedAt);
    if (this.#gone.size > GONE_MEMORY) this.#gone.delete(this.#gone.keys().next().value!);
    for (const l of this.#listeners) l(id, null);
  }

  /** The index, made from every record the first time (one sort: cheaper than an add per record). */
  #indexed(): Index {
    if (this.#index !== null) return this.#index;
    const ids = [...this.records.keys()].sort();
    const perTopic = new Map<string, string[]>();
    const perUser = new Map<string, string[]>();
    for (const id of ids) {
      const r = this.records.get(id)!;
      for (const topic of topicsOf(r.topics)) append(perTopic, topic, id);
      const user = userOf(r);
      if (user !== undefined) append(perUser, user, id);
    }
    return (this.#index = { ids: SortedIds.of(ids), byTopic: IdIndex.of(perTopic), byUser: IdIndex.of(perUser) });
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
    const { gateway, topic, user, cursor, limit } = options;
    // an id starts with its gateway's id and a dot, so one gateway's ids are a run of the order
    const prefix = gateway === undefined ? undefined : gateway + '.';
    const index = this.#indexed();
    const from = prefix !== undefined && (cursor === undefined || cursor < prefix) ? prefix : cursor;
    // the narrowest index asked for (a user has a few connections, a topic some)
    const ids = user !== undefined ? index.byUser.after(user, from) : topic !== undefined ? index.byTopic.after(topic, from) : index.ids.after(from);
    const out: ConnectionRecord[] = [];
    let more = false;
    for (const id of ids) {
      if (prefix !== undefined && !id.startsWith(prefix)) break;
      if (out.length === limit) {
        more = true;
        break;
      }
      const r = this.records.get(id)!;
      if (gateway !== undefined && r.gateway !== gateway) continue;
      if (user !== undefined && topic !== undefined && !topicsOf(r.topics).includes(topic)) continue;
      out.push(r);
    }
    return { connections: out, next: more ? out[out.length - 1]!.id : null };
  }

  /** How many open connections are subscribed to `topic` (one lookup, however many there are). */
  subscribers(topic: string): number {
    return this.#indexed().byTopic.count(topic);
  }

  /** The ids of every open connection of `user`, in order. */
  ofUser(user: string): string[] {
    return [...this.#indexed().byUser.after(user)];
  }

  /** How many open connections `gateway` holds (a count kept as records change). */
  connectionsOf(gateway: string): number {
    return this.#perGateway.get(gateway);
  }

  /** The gateways' leases with their health and how many listed connections each holds (for `GET /gateways` and the admin page). */
  async gateways(directory: ConnectionDirectory): Promise<Array<GatewayLease & { alive: boolean; connections: number }>> {
    const leases = await directory.leases();
    const now = Date.now();
    return leases
      .map((l) => ({ ...l, alive: now - l.heartbeatAt <= l.leaseMs, connections: this.connectionsOf(l.id) }))
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
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watch?.stop();
    this.#watch = null;
    this.#listeners.clear();
  }
}

/** Adds `id` to `key`'s list; the ids come in order, so a repeat is the last one. */
function append(lists: Map<string, string[]>, key: string, id: string): void {
  const list = lists.get(key);
  if (list === undefined) lists.set(key, [id]);
  else if (list[list.length - 1] !== id) list.push(id);
}
