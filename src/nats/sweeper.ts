import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CloseCode } from '../protocol/close-codes.js';
import type { CloseEvent } from '../protocol/events.js';
import type { Subjects } from '../protocol/subjects.js';
import { isCasConflict, type ConnectionDirectory } from './directory.js';
import { within } from './connect.js';

export interface SweeperOptions {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly directory: ConnectionDirectory;
  readonly log: Logger;
  /** How often to look for expired leases. */
  readonly intervalMs: number;
  /** The caller's own gateway id, never swept by itself. */
  readonly self?: string;
  /** Told how many connections each pass or reconcile reported lost (for metrics). */
  readonly onLost?: (n: number) => void;
  /**
   * Purge closed connections' delete markers older than `olderThanMs`, at most every `everyMs`, by
   * one process of the cluster at a time (see ConnectionDirectory.claim).
   */
  readonly purge?: { readonly everyMs: number; readonly olderThanMs: number };
}

export interface Sweeper {
  /** Runs one pass now; resolves with the connections it reported lost. */
  sweep(): Promise<number>;
  /**
   * The caller's own records with no live connection behind them (a close whose record removal was
   * lost in a NATS outage, or connections dropped by a fence that no sweeper reported): removes each
   * older than `graceMs` by compare-and-set and reports it lost. Needs `self`.
   */
  reconcile(isLive: (id: string) => boolean, graceMs: number): Promise<number>;
  /**
   * Stops the timer and waits (bounded) for a pass under way: its KV listing holds a consumer that
   * must end before the NATS connection closes (nats.js throws from a timer otherwise).
   */
  close(): Promise<void>;
}

/** Delete markers older than `goneRetentionS` go, checked every third of it, at most every 10 minutes. */
export function purgePolicy(goneRetentionS: number): { everyMs: number; olderThanMs: number } {
  const olderThanMs = goneRetentionS * 1000;
  return { olderThanMs, everyMs: Math.max(1_000, Math.min(10 * 60_000, Math.floor(olderThanMs / 3))) };
}

/**
 * Orphan records (their gateway has no lease at all) are looked for every this many passes, by one
 * process of the cluster: the search reads the bucket stream's per-subject counts (about 0.1 s of
 * CPU per 100k records here), so each of G sweepers doing it would cost the cluster G times that.
 * Only a gateway it finds without a lease has its own records listed.
 */
const ORPHAN_EVERY = 5;
/**
 * And no more often than this many times the search's own duration (so at most ~1% of the searching
 * process's time). On the AMD machine of 2026-11-27 a search took 0.36-0.55 s for 100k records and
 * 0.83 s for 130k, mostly the server's: every 25 s up to some tens of thousands of records, rarer
 * beyond.
 */
const ORPHAN_SPACING = 100;

/**
 * Finds gateways whose lease expired, claims each by deleting its lease with compare-and-set, then
 * removes every one of its connection records with compare-and-set and publishes one `P.in.close`
 * with `lost: true` per record it removed. Any number of sweepers may run (every gateway and the
 * connection service do); the compare-and-set makes each close event happen exactly once. Records left
 * by a sweeper that died mid-sweep (no lease at all) are swept too, after a lease length of grace,
 * by one sweeper of the cluster at a time.
 */
export function startSweeper(options: SweeperOptions): Sweeper {
  const { nc, subjects, directory, log } = options;
  const encoder = new TextEncoder();
  let passes = 0;
  // the first purge waits one interval: a process starting up has other things to do first
  let nextPurgeAt = Date.now() + (options.purge?.everyMs ?? 0);
  // one pass and one reconcile at a time: a call while one runs joins it
  const sweeps = single('sweep', log);
  const reconciles = single('reconcile', log);

  async function sweepGateway(gateway: string, graceMs: number, isLive: (id: string) => boolean = () => false): Promise<number> {
    let lost = 0;
    const now = Date.now();
    // records written after this point belong to the gateway's next life (it came back, was fenced,
    // and took new connections under the same id): they are alive and must not be swept
    const claimSeq = (await directory.connections.status()).streamInfo.state.last_seq;
    for (const id of await directory.ids(gateway)) {
      if (isLive(id)) continue;
      let record;
      try {
        // an orphan candidate younger than the grace may belong to a gateway writing its lease right now
        record = await directory.removeIfUnchanged(id, (r, revision) => revision <= claimSeq && !isLive(id) && (graceMs === 0 || now - r.connectedAt >= graceMs));
      } catch (err) {
        log.warn({ err: { message: (err as Error).message }, conn: id }, 'could not remove a lost connection record');
        continue;
      }
      if (!record) continue;
      options.onLost?.(1);
      // with the metadata it had when its record was last written
      const ev: CloseEvent = { id, gateway, code: CloseCode.Abnormal, reason: 'gateway lost', lost: true, ...(record.meta === undefined ? {} : { meta: record.meta }) };
      // the gateway's own close event carries the same id: if it published one before dying, the
      // durable stream (when there is one) stores this close only once
      const h = natsHeaders();
      h.set('Nats-Msg-Id', `${id}-close`);
      nc.publish(subjects.inClose, encoder.encode(JSON.stringify(ev)), { headers: h });
      lost++;
    }
    return lost;
  }

  async function pass(): Promise<number> {
    passes++;
    const now = Date.now();
    const entries = await directory.leaseEntries();
    let lost = 0;
    for (const { lease, revision } of entries) {
      if (lease.id === options.self || now - lease.heartbeatAt <= lease.leaseMs) continue;
      try {
        await directory.deleteLease(lease.id, revision);
      } catch (err) {
        if (!isCasConflict(err)) log.warn({ err: { message: (err as Error).message }, gateway: lease.id }, 'could not claim an expired lease');
        continue; // renewed meanwhile, or another sweeper claimed it
      }
      const n = await sweepGateway(lease.id, 0);
      lost += n;
      log.warn({ gateway: lease.id, lostConnections: n, silentForMs: now - lease.heartbeatAt }, 'gateway lease expired: its connections were reported lost');
    }
    if (options.purge && now >= nextPurgeAt) {
      nextPurgeAt = now + options.purge.everyMs;
      if (await directory.claim('purge', options.purge.everyMs)) {
        const purged = await directory.purgeDeleteMarkers(options.purge.olderThanMs);
        if (purged > 0) log.info({ purged, olderThanMs: options.purge.olderThanMs }, 'purged delete markers of closed connections');
      }
    }
    if (passes % ORPHAN_EVERY === 0 && (await directory.claim('orphans', ORPHAN_EVERY * options.intervalMs))) {
      const leased = new Set(entries.map((e) => e.lease.id));
      const started = performance.now();
      const orphans = [...(await directory.recordGateways())].filter((gw) => gw !== options.self && !leased.has(gw));
      const gapMs = (performance.now() - started) * ORPHAN_SPACING;
      if (gapMs > ORPHAN_EVERY * options.intervalMs) await directory.spaceTask('orphans', gapMs);
      const grace = Math.max(...entries.map((e) => e.lease.leaseMs), options.intervalMs * 3);
      for (const gw of orphans) {
        const n = await sweepGateway(gw, grace);
        if (n > 0) log.warn({ gateway: gw, lostConnections: n }, 'a gateway with no lease left connection records: they were reported lost');
        lost += n;
      }
    }
    return lost;
  }

  let closed = false;
  function sweep(): Promise<number> {
    return closed ? Promise.resolve(0) : sweeps.run(pass);
  }

  // jitter spreads concurrent sweepers; correctness does not depend on it
  const timer = setInterval(() => void sweep(), options.intervalMs + Math.floor(Math.random() * (options.intervalMs / 4)));
  timer.unref();
  return {
    sweep,
    reconcile(isLive, graceMs) {
      const self = options.self;
      if (!self || closed) return Promise.resolve(0);
      return reconciles.run(async () => {
        const n = await sweepGateway(self, graceMs, isLive);
        if (n > 0) log.warn({ lostConnections: n }, 'removed own records without a live connection and reported them lost');
        return n;
      });
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await within(Promise.all([sweeps.current(), reconciles.current()]), 5_000);
    },
  };
}

/** At most one run of a task at a time; a failure is logged (the next run retries) and counts as 0. */
function single(what: string, log: Logger): { run(task: () => Promise<number>): Promise<number>; current(): Promise<number> | null } {
  let running: Promise<number> | null = null;
  return {
    run(task) {
      running ??= task()
        .catch((err) => {
          log.warn({ err: { message: (err as Error).message } }, `${what} failed; will retry`);
          return 0;
        })
        .finally(() => {
          running = null;
        });
      return running;
    },
    current: () => running,
  };
}
