import { Kvm, type KV } from '@nats-io/kv';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { NoRespondersError, Requester } from './requester.js';
import { encodeHeaders } from './raw-publish.js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { connectionsBucket, gatewaysBucket } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import type { ConnectionRecord, GatewayLease } from '../protocol/events.js';

export interface DirectoryOptions {
  readonly prefix: string;
  readonly replicas: number;
  readonly log: Logger;
  /**
   * Create the buckets when missing (gateways and the connection service). Workers only bind: that
   * needs no JetStream management permission, only reads of the connections bucket.
   */
  readonly create?: boolean;
}

/** Opens a bucket, creating it with wsgw's settings when it does not exist yet (nats.js create opens an existing one). */
function openBucket(kvm: Kvm, name: string, replicas: number, description: string): Promise<KV> {
  return kvm.create(name, { history: 1, replicas, description });
}

/** How long a record write or a stream info request may wait for its answer. */
const REQUEST_TIMEOUT_MS = 5_000;
/** The buckets are looked at at most this often (a burst of failed writes asks once), unless asked for a fresh look. */
const BUCKET_CHECK_MS = 1_000;

/** Which buckets checkBuckets() found new: created again since this process last knew them. */
export interface RenewedBuckets {
  readonly connections: boolean;
  readonly gateways: boolean;
}
const NONE_RENEWED: RenewedBuckets = Object.freeze({ connections: false, gateways: false });
type Bucket = keyof RenewedBuckets;
/** A stream kept there with the buckets: its configuration, as JetStream's stream create takes it. */
type KeptStream = Parameters<JetStreamManager['streams']['add']>[0] & { readonly name: string };
/**
 * Tasks one process of the cluster runs at a time, and each one's lock key in the leases bucket:
 * never a gateway id, since `=` is no token character (leaseEntries skips every such key).
 */
const TASK_KEYS = { purge: 'purge=deletes', orphans: 'sweep=orphans' } as const;
export type ClusterTask = keyof typeof TASK_KEYS;
/** A task's lock: when it was last claimed, and how long after that no one may claim it (spaceTask). */
interface TaskLock {
  at?: number;
  gapMs?: number;
}
const EMPTY = new Uint8Array(0);
const deleteHeaders = headers();
deleteHeaders.set('KV-Operation', 'DEL');
/** A delete marker's headers, encoded once. */
const DELETE_HEADERS = encodeHeaders(deleteHeaders);

/**
 * The KV directory: one record per open connection (key = connection id) and one lease per live
 * gateway (key = gateway id). Writes from the gateway are fire-and-forget so they never sit in the
 * upgrade or frame path; failures are logged and repaired by re-registration after a reconnect.
 */
export class ConnectionDirectory {
  readonly connections: KV;
  readonly gateways: KV;
  readonly #log: Logger;
  readonly #codec = new TextEncoder();
  /** Record writes as raw JetStream publishes with an acknowledgement, through one cheap request mux. */
  readonly #writes: Requester;
  /** `$KV.<bucket>` (or the bucket's edit prefix when it is reached through a domain or a mirror). */
  readonly #editPrefix: string;
  /** Sees how long each acknowledged write took (metrics: `wsgw_kv_operation_seconds{op}`). */
  observe: ((op: 'put' | 'delete' | 'lease', seconds: number) => void) | null = null;

  readonly #nc: NatsConnection;
  /** The bucket's stream, and the subject prefix of its keys (`$KV.<bucket>.`). */
  readonly #stream: string;
  readonly #keyPrefix: string;
  /** The same for the leases bucket. */
  readonly #leaseStream: string;
  readonly #leasePrefix: string;
  /**
   * Looks at both buckets' streams, creating a missing one; says which is not the stream this process
   * knew (null in a process that only binds to the buckets: DirectoryOptions.create false).
   */
  readonly #look: (() => Promise<RenewedBuckets>) | null;
  readonly #onRenewed: Array<(renewed: RenewedBuckets) => void> = [];
  /** Streams besides the buckets this process keeps there (keepStream). */
  readonly #kept: Array<KeptStream> = [];
  #checking: Promise<RenewedBuckets> | null = null;
  #checkedAt = 0;

  private constructor(nc: NatsConnection, bucket: string, leaseBucket: string, connections: KV, gateways: KV, log: Logger, look: (() => Promise<RenewedBuckets>) | null) {
    this.#nc = nc;
    this.#look = look;
    this.#stream = `KV_${bucket}`;
    this.#keyPrefix = `$KV.${bucket}.`;
    this.#leaseStream = `KV_${leaseBucket}`;
    this.#leasePrefix = `$KV.${leaseBucket}.`;
    this.connections = connections;
    this.gateways = gateways;
    this.#log = log;
    this.#writes = new Requester(nc, REQUEST_TIMEOUT_MS);
    // the subject nats.js itself would write a key to (it differs for mirrors and JetStream domains)
    const kv = connections as unknown as { subjectForKey?: (key: string, edit: boolean) => string };
    this.#editPrefix = typeof kv.subjectForKey === 'function' ? kv.subjectForKey('k', true).slice(0, -2) : `$KV.${bucket}`;
  }

  static async open(nc: NatsConnection, options: DirectoryOptions): Promise<ConnectionDirectory> {
    const kvm = new Kvm(nc);
    const open = (name: string, description: string) => (options.create === false ? kvm.open(name) : openBucket(kvm, name, options.replicas, description));
    const names = { connections: connectionsBucket(options.prefix), gateways: gatewaysBucket(options.prefix) };
    const descriptions = { connections: 'wsgw: one record per open WebSocket connection', gateways: 'wsgw: one lease per live gateway' };
    const connections = await open(names.connections, descriptions.connections);
    const gateways = await open(names.gateways, descriptions.gateways);
    let look: (() => Promise<RenewedBuckets>) | null = null;
    if (options.create !== false) {
      // each stream's creation time: a bucket deleted and created again (by any process) has a new one
      const created = { connections: (await connections.status()).streamInfo.created, gateways: (await gateways.status()).streamInfo.created };
      look = async () => {
        // no account check: a stream info request per bucket is the whole look
        const jsm = await jetstreamManager(nc, { checkAPI: false });
        const renewed = async (bucket: Bucket): Promise<boolean> => {
          const stream = `KV_${names[bucket]}`;
          let info;
          try {
            info = await jsm.streams.info(stream);
          } catch (err) {
            if (!/stream not found/i.test((err as Error)?.message ?? '')) throw err;
            await openBucket(kvm, names[bucket], options.replicas, descriptions[bucket]);
            info = await jsm.streams.info(stream);
          }
          const known = created[bucket];
          created[bucket] = info.created;
          return info.created !== known;
        };
        return { connections: await renewed('connections'), gateways: await renewed('gateways') };
      };
    }
    return new ConnectionDirectory(nc, names.connections, names.gateways, connections, gateways, options.log, look);
  }

  /**
   * Looks at both buckets (and at the streams kept with them, keepStream): creates either one whose stream is gone (a NATS server back without its
   * JetStream store, one with no volume say, or a bucket deleted by hand), and finds either one
   * created again by another process since this one last looked. Each `onRenewed` listener then writes
   * again what went with the old bucket (a gateway: its lease, then its live connections' records) or
   * watches the new one (a DirectoryView). Asked when a lease renewal or a record write fails, and now
   * and then (a gateway every four leases, a DirectoryView every 5 s); one look at a time, at most one
   * a second unless `fresh` (which also waits out a look already under way, as that one may have
   * started too early). None in a process that only binds to the buckets. Resolves with what was found
   * new; nothing when NATS could not be asked (the next failure or tick asks again).
   */
  async checkBuckets(fresh = false): Promise<RenewedBuckets> {
    if (this.#checking) {
      const current = await this.#checking;
      if (!fresh) return current;
    }
    if (this.#look === null || (!fresh && Date.now() - this.#checkedAt < BUCKET_CHECK_MS)) return NONE_RENEWED;
    // a fresh look that waited may find another already begun: join that one, begun after the wait
    if (this.#checking) return this.#checking;
    this.#checkedAt = Date.now();
    const look = this.#look;
    this.#checking = (async (): Promise<RenewedBuckets> => {
      const renewed = await look();
      if (this.#kept.length > 0) await this.#keepStreams();
      if (renewed.connections || renewed.gateways) {
        this.#log.warn({ renewed }, 'KV buckets were deleted and created again (a NATS server back without its JetStream store?): writing again what they held');
        for (const listener of this.#onRenewed) listener(renewed);
      }
      return renewed;
    })()
      .catch((err: unknown) => {
        this.#log.debug({ err }, 'could not look at the KV buckets');
        return NONE_RENEWED;
      })
      .finally(() => {
        this.#checking = null;
      });
    return this.#checking;
  }

  /**
   * Keeps a stream besides the buckets there (a durable gateway's inbound stream): every look of
   * checkBuckets() creates it again when it is gone, with `config`. Only in a process that may create
   * the buckets.
   */
  keepStream(config: KeptStream): void {
    this.#kept.push(config);
  }

  /** Creates again each kept stream that is gone; a failure is logged (the next look tries again). */
  async #keepStreams(): Promise<void> {
    const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    for (const config of this.#kept) {
      try {
        await jsm.streams.info(config.name);
      } catch (err) {
        try {
          if (!/stream not found/i.test((err as Error)?.message ?? '')) throw err;
          await jsm.streams.add(config);
          this.#log.warn({ stream: config.name }, 'stream was missing: created again (what it held is lost)');
        } catch (e) {
          this.#log.debug({ err: e, stream: config.name }, 'could not look at or create a kept stream');
        }
      }
    }
  }

  /** Runs `listener` (synchronously) each time checkBuckets() finds a bucket created again. */
  onRenewed(listener: (renewed: RenewedBuckets) => void): void {
    this.#onRenewed.push(listener);
  }

  /**
   * Writes (or rewrites) a connection record without waiting. This is what `kv.put` sends (a
   * JetStream publish to `$KV.<bucket>.<key>`, acknowledged by the stream), without nats.js's request
   * machinery: its per-request timer and the two Error objects it builds for stack traces made up a
   * third of a gateway's time while clients connect.
   */
  put(record: ConnectionRecord): void {
    this.putJson(record.id, JSON.stringify(record));
  }

  /** `put` of a record already serialised (`json` must be a ConnectionRecord's JSON for `id`). */
  putJson(id: string, json: string): void {
    this.#write(id, json, undefined, 'put');
  }

  /** Removes a connection record without waiting (a delete marker, as `kv.delete` writes). */
  remove(id: string): void {
    this.#write(id, EMPTY, DELETE_HEADERS, 'delete');
  }

  #write(id: string, data: Uint8Array | string, h: Uint8Array | undefined, what: 'put' | 'delete'): void {
    const started = performance.now();
    const answered = (err: Error | null, ack?: { data: Uint8Array; string(): string }) => {
      if (err) {
        // nothing took the write: the bucket's stream may be gone (created again, then the gateway writes its records again)
        if (err instanceof NoRespondersError) void this.checkBuckets();
        return this.#log.warn({ err, conn: id }, `KV ${what} of connection record failed`);
      }
      this.observe?.(what, (performance.now() - started) / 1000);
      // a JetStream acknowledgement is {"stream":...,"seq":...}; a refusal carries an error
      if (ack!.data.length > 0 && ack!.string().includes('"error"')) this.#log.warn({ conn: id, ack: ack!.string() }, `KV ${what} of connection record refused`);
    };
    try {
      this.#writes.send(`${this.#editPrefix}.${id}`, data, h, answered);
    } catch (err) {
      // the NATS connection is closed: reported like any failed write
      answered(err as Error);
    }
  }

  close(): void {
    this.#writes.close();
  }

  async get(id: string): Promise<ConnectionRecord | null> {
    const entry = await this.connections.get(id);
    if (!entry || entry.operation !== 'PUT') return null;
    return entry.json<ConnectionRecord>();
  }

  /**
   * Ids of open connections, optionally only those of one gateway. nats.js's listing (a consumer) may
   * miss a record written again while it runs, so this suits only callers that look again later (the
   * sweeps); the connection service's listing watches the bucket instead.
   */
  async ids(gateway?: string): Promise<string[]> {
    const filter = gateway === undefined ? '>' : `${assertToken('gateway id', gateway)}.*`;
    // a set: the listing also repeats a key written again while it runs
    const out = new Set<string>();
    for await (const key of await this.connections.keys(filter)) out.add(key);
    return [...out];
  }

  /**
   * The gateways that have records in the bucket, from the stream's message count per subject. A
   * gateway whose connections all closed may be among them until its delete markers are purged.
   */
  async recordGateways(): Promise<Set<string>> {
    const out = new Set<string>();
    await this.#subjectPages(this.#stream, this.#keyPrefix, (text) => gatewaysOfSubjects(text, this.#keyPrefix, out));
    return out;
  }

  /**
   * The keys of a small bucket (the leases) whose stream holds a message for them (delete markers
   * included), from the stream's message count per subject: a snapshot the server takes at once.
   */
  async #subjectKeys(stream: string, keyPrefix: string): Promise<string[]> {
    const keys = new Set<string>();
    await this.#subjectPages(stream, keyPrefix, (text) => {
      const info = streamInfoAnswer<{ state?: { subjects?: Record<string, number> } }>(text);
      const subjects = Object.keys(info.state?.subjects ?? {});
      for (const subject of subjects) if (subject.startsWith(keyPrefix)) keys.add(subject.slice(keyPrefix.length));
      return { count: subjects.length, total: info.total ?? 0 };
    });
    return [...keys];
  }

  /**
   * Pages through a stream's subjects under `keyPrefix` (`$JS.API.STREAM.INFO` with `subjects_filter`,
   * one JetStream API request per 100k subjects; no consumer and no message per key, as a listing
   * takes); `page` reads one answer and says how many subjects it held and how many there are.
   */
  async #subjectPages(stream: string, keyPrefix: string, page: (text: string) => { count: number; total: number }): Promise<void> {
    const request = { subjects_filter: `${keyPrefix}>`, offset: 0 };
    for (;;) {
      const answer = await this.#nc.request(`$JS.API.STREAM.INFO.${stream}`, JSON.stringify(request), { timeout: REQUEST_TIMEOUT_MS });
      const { count, total } = page(answer.string());
      request.offset += count;
      // the count can change between pages, so stop on an empty one
      if (count === 0 || request.offset >= total) return;
    }
  }

  /** Writes a gateway lease unconditionally (start-up, or after being fenced); returns its revision. */
  putLease(lease: GatewayLease): Promise<number> {
    return this.gateways.put(lease.id, this.#codec.encode(JSON.stringify(lease)));
  }

  /** Renews a lease only if it is still at `revision`; throws (isCasConflict) if a sweeper took it. */
  async updateLease(lease: GatewayLease, revision: number): Promise<number> {
    const started = performance.now();
    const next = await this.gateways.update(lease.id, this.#codec.encode(JSON.stringify(lease)), revision);
    this.observe?.('lease', (performance.now() - started) / 1000);
    return next;
  }

  /** Deletes a lease only if it is still at `revision` (the sweeper's claim, or a clean shutdown). */
  deleteLease(id: string, revision: number): Promise<void> {
    return this.gateways.delete(id, { previousSeq: revision });
  }

  /**
   * Removes the delete markers of connections closed more than `olderThanMs` ago. With history 1 a
   * closed connection leaves one marker in the bucket's stream forever otherwise: the stream, and the
   * replay every KV watch (the connection service's view) starts with, would grow with every
   * connection ever made. Until its marker goes, the API answers 410 for an id; after, 404.
   * At most `concurrency` purge requests at a time. Returns how many markers it removed.
   */
  async purgeDeleteMarkers(olderThanMs: number, concurrency = 32): Promise<number> {
    const limit = Date.now() - olderThanMs;
    const old: string[] = [];
    const history = await this.connections.history({ key: '>' });
    for await (const e of history) {
      if ((e.operation === 'DEL' || e.operation === 'PURGE') && e.created.getTime() < limit) old.push(e.key);
    }
    const jsm = await jetstreamManager(this.#nc);
    let purged = 0;
    for (let i = 0; i < old.length; i += concurrency) {
      const done = await Promise.all(old.slice(i, i + concurrency).map((key) => jsm.streams.purge(this.#stream, { filter: this.#keyPrefix + key, keep: 0 })));
      for (const r of done) purged += r.purged;
    }
    return purged;
  }

  /**
   * One process of the cluster wins the right to run `task` for `everyMs`: a compare-and-set on the
   * task's key in the leases bucket. False when it was claimed less than 90% of that ago (or of the
   * gap the last run set with spaceTask, if longer).
   */
  async claim(task: ClusterTask, everyMs: number): Promise<boolean> {
    const key = TASK_KEYS[task];
    const now = Date.now();
    const entry = await this.gateways.get(key);
    try {
      if (!entry || entry.operation !== 'PUT') {
        await this.gateways.create(key, this.#codec.encode(JSON.stringify({ at: now })));
        return true;
      }
      const { at = 0, gapMs = 0 } = entry.json<TaskLock>();
      if (now - at < Math.max(everyMs, gapMs) * 0.9) return false;
      // a spacing holds once: the run claimed now sets its own, if it needs one
      await this.gateways.update(key, this.#codec.encode(JSON.stringify({ at: now })), entry.revision);
      return true;
    } catch (err) {
      if (isCasConflict(err) || /exists/i.test((err as Error)?.message ?? '')) return false;
      throw err;
    }
  }

  /**
   * After a run of `task` that this process claimed: no process of the cluster claims it again for
   * `gapMs` from that claim (or its own `everyMs`, if longer), once. For a task whose cost grows with
   * the bucket, spaced by how long it took. A lock changed meanwhile (another claim) is left alone.
   */
  async spaceTask(task: ClusterTask, gapMs: number): Promise<void> {
    const key = TASK_KEYS[task];
    const entry = await this.gateways.get(key);
    if (!entry || entry.operation !== 'PUT') return;
    const { at = 0 } = entry.json<TaskLock>();
    try {
      await this.gateways.update(key, this.#codec.encode(JSON.stringify({ at, gapMs: Math.round(gapMs) })), entry.revision);
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }

  async leases(): Promise<GatewayLease[]> {
    return (await this.leaseEntries()).map((e) => e.lease);
  }

  /** Live leases with their KV revisions (for compare-and-set). */
  async leaseEntries(): Promise<Array<{ lease: GatewayLease; revision: number }>> {
    const out: Array<{ lease: GatewayLease; revision: number }> = [];
    // the keys from the stream's own list of subjects, not from nats.js's listing (a consumer): that
    // misses and repeats keys written while it runs, and a lease renewed meanwhile would look absent,
    // so the orphan search would take its live gateway's records for orphans
    for (const key of await this.#subjectKeys(this.#leaseStream, this.#leasePrefix)) {
      // a task's lock (see claim), not a gateway
      if (key.includes('=')) continue;
      const entry = await this.gateways.get(key);
      if (entry && entry.operation === 'PUT') out.push({ lease: entry.json<GatewayLease>(), revision: entry.revision });
    }
    return out;
  }

  /**
   * Deletes a connection record only if it is unchanged since it was read: of several processes
   * removing the same record at once, exactly one succeeds. `accept` sees the record before the delete.
   * Returns the record it removed, or null.
   */
  async removeIfUnchanged(id: string, accept: (record: ConnectionRecord, revision: number) => boolean = () => true): Promise<ConnectionRecord | null> {
    const entry = await this.connections.get(id);
    if (!entry || entry.operation !== 'PUT') return null;
    const record = entry.json<ConnectionRecord>();
    if (!accept(record, entry.revision)) return null;
    try {
      await this.connections.delete(id, { previousSeq: entry.revision });
    } catch (err) {
      if (isCasConflict(err)) return null;
      throw err;
    }
    return record;
  }
}

/** A `$JS.API.STREAM.INFO` answer, parsed; an API error is thrown with its description. */
function streamInfoAnswer<T extends object = object>(text: string): T & { total?: number } {
  const info = JSON.parse(text) as T & { total?: number; error?: { code?: number; description?: string } };
  if (info.error) throw new Error(`stream info failed: ${info.error.description ?? 'unknown error'} (${info.error.code ?? '?'})`);
  return info;
}

/**
 * Reads one stream info answer with a subject map: adds each subject's gateway id (the token after
 * `prefix`) to `into`, and returns how many subjects the page held and the total. The map (up to 100k
 * entries of `"<prefix><gateway>.<token>":<count>`, tokens with no quote, dot or brace) is scanned in
 * the text rather than parsed: an object with a property per key would cost tens of megabytes per
 * page. The rest of the answer is parsed, so an API error is reported as such.
 */
export function gatewaysOfSubjects(text: string, prefix: string, into: Set<string>): { count: number; total: number } {
  const open = '"subjects":{';
  const at = text.indexOf(open);
  const end = at < 0 ? -1 : text.indexOf('}', at + open.length);
  const info = streamInfoAnswer(at < 0 || end < 0 ? text : text.slice(0, at) + '"subjects":{}' + text.slice(end + 1));
  let count = 0;
  if (at >= 0 && end >= 0) {
    const needle = `"${prefix}`;
    for (let i = text.indexOf(needle, at); i >= 0 && i < end; i = text.indexOf(needle, i + needle.length)) {
      count++;
      const from = i + needle.length;
      const dot = text.indexOf('.', from);
      if (dot <= from || dot >= end) continue;
      const gateway = text.slice(from, dot);
      // a new one is kept as a copy, not as a slice that would keep the whole answer alive
      if (!into.has(gateway)) into.add(Buffer.from(gateway).toString());
    }
  }
  return { count, total: info.total ?? count };
}

/** True when a compare-and-set write lost: the key changed since it was read. */
export function isCasConflict(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 10071 || code === 10164 || /wrong last sequence/i.test((err as Error)?.message ?? '');
}
