import type { Logger } from 'pino';
import type { GatewayLease } from '../protocol/events.js';
import { isCasConflict, type ConnectionDirectory } from './directory.js';

export interface LeaseKeeperOptions {
  readonly directory: ConnectionDirectory;
  readonly id: string;
  readonly leaseMs: number;
  readonly log: Logger;
  /** Live connection count, written into each heartbeat. */
  readonly connections: () => number;
  /**
   * Called when a renewal finds the lease taken by a sweeper: this gateway was declared dead and its
   * connections' close events were published, so it must drop them without publishing again.
   */
  readonly onFenced: () => void;
}

/** `ok`: renewed; `fenced`: a sweeper had taken it (onFenced ran); `failed`: unknown (NATS trouble). */
export type RenewResult = 'ok' | 'fenced' | 'failed';

/**
 * A gateway's lease in KV, renewed every third of its length by compare-and-set, so that a renewal
 * and a sweeper's claim can never both succeed.
 */
export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions;
  readonly #startedAt = Date.now();
  #revision = 0;
  /** When the lease was last written successfully (this process's clock). */
  #confirmedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #renewing: Promise<RenewResult> | null = null;
  /** The leases bucket was deleted and created again: the next renewal writes the lease anew. */
  #rewrite = false;
  #stopped = false;

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
    options.directory.onRenewed((renewed) => {
      if (!renewed.gateways || this.#stopped) return;
      this.#rewrite = true;
      void this.renew();
    });
  }

  #lease(): GatewayLease {
    return { id: this.#o.id, startedAt: this.#startedAt, heartbeatAt: Date.now(), leaseMs: this.#o.leaseMs, connections: this.#o.connections() };
  }

  /** Writes the lease (awaited before the gateway serves) and starts the heartbeat. */
  async start(): Promise<void> {
    this.#revision = await this.#o.directory.putLease(this.#lease());
    this.#confirmedAt = Date.now();
    this.#timer = setInterval(() => void this.renew(), Math.max(250, Math.floor(this.#o.leaseMs / 3)));
    this.#timer.unref();
  }

  /**
   * Renews now (also called right after a NATS reconnect, before anything else is written). A renewal
   * already under way is shared, so the caller always waits for a confirmed (or fenced) lease.
   */
  renew(): Promise<RenewResult> {
    this.#renewing ??= this.#renew().finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  async #renew(): Promise<RenewResult> {
    if (this.#rewrite) return this.#writeAnew();
    try {
      this.#revision = await this.#o.directory.updateLease(this.#lease(), this.#revision);
      this.#confirmedAt = Date.now();
      return 'ok';
    } catch (err) {
      // the leases bucket may be gone, or deleted and created again by another process (its lease with
      // it, so the compare fails though no sweeper took anything): then the lease is written anew. A
      // failed compare is never taken for a fence on an older look at the bucket.
      await this.#o.directory.checkBuckets(isCasConflict(err));
      if (this.#rewrite) return this.#writeAnew();
      if (!isCasConflict(err)) {
        this.#o.log.warn({ err: { message: (err as Error).message } }, 'gateway lease renewal failed; retrying');
        return 'failed';
      }
      this.#o.log.error({ gateway: this.#o.id }, 'gateway lease was taken by a sweeper (NATS unreachable for longer than the lease): dropping every connection');
      this.#o.onFenced();
      this.#revision = await this.#o.directory.putLease(this.#lease()).catch(() => 0);
      this.#confirmedAt = Date.now();
      return 'fenced';
    }
  }

  /**
   * The lease written unconditionally into a leases bucket created again (checkBuckets): the old one
   * went with the old bucket, and no sweeper can have claimed what did not exist.
   */
  async #writeAnew(): Promise<RenewResult> {
    try {
      this.#revision = await this.#o.directory.putLease(this.#lease());
    } catch (err) {
      this.#o.log.warn({ err: { message: (err as Error).message } }, 'gateway lease could not be written again; retrying');
      return 'failed';
    }
    this.#rewrite = false;
    this.#confirmedAt = Date.now();
    this.#o.log.warn({ gateway: this.#o.id }, 'gateway lease written again into the re-created leases bucket');
    return 'ok';
  }

  /**
   * True while no sweeper can have claimed the lease: it was confirmed less than two thirds of its
   * length ago (the last third is margin for clock skew between hosts). A gateway back from a short
   * NATS blip may then resume at once and confirm in the background.
   */
  stillHeld(now = Date.now()): boolean {
    return now - this.#confirmedAt < (this.#o.leaseMs * 2) / 3;
  }

  /**
   * Renews until the lease is confirmed or found taken (fenced), retrying failures: what must hold
   * before a reconnected gateway writes anything again.
   */
  async confirm(isStopped: () => boolean): Promise<RenewResult> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.renew();
      if (r !== 'failed' || isStopped()) return r;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
    }
  }

  /** Stops the heartbeat and removes the lease (unless a sweeper already took it). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    try {
      await this.#o.directory.deleteLease(this.#o.id, this.#revision);
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
}
