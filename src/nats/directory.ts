import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { connectionsBucket, gatewaysBucket } from '../protocol/subjects.js';
import { assertToken } from '../protocol/tokens.js';
import type { ConnectionRecord, GatewayLease } from '../protocol/events.js';

export interface DirectoryOptions {
  readonly prefix: string;
  readonly replicas: number;
  readonly log: Logger;
}

/** Opens a bucket, creating it with wsgw's settings when it does not exist yet (nats.js create opens an existing one). */
function openBucket(kvm: Kvm, name: string, replicas: number, description: string): Promise<KV> {
  return kvm.create(name, { history: 1, replicas, description });
}

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

  private constructor(connections: KV, gateways: KV, log: Logger) {
    this.connections = connections;
    this.gateways = gateways;
    this.#log = log;
  }

  static async open(nc: NatsConnection, options: DirectoryOptions): Promise<ConnectionDirectory> {
    const kvm = new Kvm(nc);
    const connections = await openBucket(kvm, connectionsBucket(options.prefix), options.replicas, 'wsgw: one record per open WebSocket connection');
    const gateways = await openBucket(kvm, gatewaysBucket(options.prefix), options.replicas, 'wsgw: one lease per live gateway');
    return new ConnectionDirectory(connections, gateways, options.log);
  }

  /** Writes (or rewrites) a connection record without waiting. */
  put(record: ConnectionRecord): void {
    this.connections.put(record.id, this.#codec.encode(JSON.stringify(record))).catch((err) => {
      this.#log.warn({ err, conn: record.id }, 'KV put of connection record failed');
    });
  }

  /** Removes a connection record without waiting. */
  remove(id: string): void {
    this.connections.delete(id).catch((err) => {
      this.#log.warn({ err, conn: id }, 'KV delete of connection record failed');
    });
  }

  async get(id: string): Promise<ConnectionRecord | null> {
    const entry = await this.connections.get(id);
    if (!entry || entry.operation !== 'PUT') return null;
    return entry.json<ConnectionRecord>();
  }

  /** Ids of open connections, optionally only those of one gateway. */
  async ids(gateway?: string): Promise<string[]> {
    const filter = gateway === undefined ? '>' : `${assertToken('gateway id', gateway)}.*`;
    const out: string[] = [];
    for await (const key of await this.connections.keys(filter)) out.push(key);
    return out;
  }

  async putLease(lease: GatewayLease): Promise<void> {
    await this.gateways.put(lease.id, this.#codec.encode(JSON.stringify(lease)));
  }

  async removeLease(id: string): Promise<void> {
    await this.gateways.delete(id);
  }

  async leases(): Promise<GatewayLease[]> {
    const out: GatewayLease[] = [];
    for await (const key of await this.gateways.keys()) {
      const entry = await this.gateways.get(key);
      if (entry && entry.operation === 'PUT') out.push(entry.json<GatewayLease>());
    }
    return out;
  }
}
