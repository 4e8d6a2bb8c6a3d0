import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { Command, ConfigKey } from '../../src/config/schema.js';
import { createGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createWorker, type Worker } from '../../src/handlers/worker.js';
import type { Handler } from '../../src/handlers/types.js';
import { ConnectionDirectory } from '../../src/nats/directory.js';
import { closeNats, type NatsConnection } from '../../src/nats/connect.js';
import { createSubjects, type Subjects } from '../../src/protocol/subjects.js';
import { createConnectionService, type ConnectionService } from '../../src/http/connection-service.js';
import { DirectoryView } from '../../src/http/directory-view.js';
import { createBridge } from '../../src/bridge/bridge.js';
import type { ConnectionRecord } from '../../src/protocol/events.js';

/** A subject/KV prefix of its own for each test, so tests never see each other's traffic. */
export function uniquePrefix(): string {
  return 't' + randomBytes(5).toString('hex');
}

export const quietLog = pino({ level: process.env.WSGW_TEST_LOG ?? 'silent' });

/**
 * A NATS connection and a connection directory on it (buckets created under `prefix`), closed with
 * the test: for tests that write records or leases as a gateway would.
 */
export async function openDirectory(t: { teardown(fn: () => unknown): void }, natsUrl: string, prefix = uniquePrefix()): Promise<{ nc: NatsConnection; dir: ConnectionDirectory }> {
  const nc = await connect({ servers: natsUrl });
  t.teardown(() => nc.close());
  const dir = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog });
  t.teardown(() => dir.close());
  return { nc, dir };
}

/** A connection record as a gateway writes one (its gateway read from the id), with `over` on top. */
export function testRecord(id: string, over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return { id, gateway: id.slice(0, id.indexOf('.')), connectedAt: 0, topics: [], path: '/ws', query: '', headers: {}, remoteAddress: '127.0.0.1', subprotocol: '', identity: null, ...over };
}

export function testConfig(command: Command, flags: Partial<Record<ConfigKey, unknown>> = {}) {
  const listens = command === 'local' || command === 'gateway' || command === 'connections';
  return loadConfig({ command, env: {}, flags: { ...(listens ? { port: 0, host: '127.0.0.1' } : {}), ...flags } });
}

export interface RunningGateway {
  readonly gw: Gateway;
  readonly url: string;
  readonly nc: NatsConnection | null;
  readonly directory: ConnectionDirectory | null;
  readonly subjects: Subjects | null;
  close(): Promise<void>;
}

/** A gateway in this process on port 0: local mode without natsUrl, NATS modes with it. */
export async function startGateway(options: {
  natsUrl?: string;
  prefix?: string;
  handler?: Handler;
  id?: string;
  flags?: Partial<Record<ConfigKey, unknown>>;
  /** Extra nats.js options (credentials). */
  nats?: Partial<NodeConnectionOptions>;
}): Promise<RunningGateway> {
  const prefix = options.prefix ?? uniquePrefix();
  if (!options.natsUrl) {
    const config = testConfig('local', options.flags);
    const gw = await createGateway({ config, id: options.id ?? 'local', log: quietLog, handler: options.handler });
    return { gw, url: `ws://127.0.0.1:${gw.port}/ws`, nc: null, directory: null, subjects: null, close: () => gw.close() };
  }
  const config = testConfig('gateway', { prefix, nats: options.natsUrl, ...options.flags });
  const nc = await connect({ servers: options.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...options.nats });
  let gw: Gateway;
  let directory: ConnectionDirectory;
  const subjects = createSubjects(prefix);
  try {
    directory = await ConnectionDirectory.open(nc, { prefix, replicas: config.kvReplicas, log: quietLog });
    const api = config.api ? { view: await DirectoryView.start(directory, quietLog, config.goneRetention * 1000) } : undefined;
    gw = await createGateway({ config, id: options.id ?? 'gw' + randomBytes(3).toString('hex'), log: quietLog, handler: options.handler, nats: { nc, subjects, directory }, api });
  } catch (err) {
    // a failed start must not leave a reconnecting client behind (it would keep the test alive)
    await closeNats(nc);
    throw err;
  }
  return {
    gw,
    url: `ws://127.0.0.1:${gw.port}/ws`,
    nc,
    directory,
    subjects,
    close: async () => {
      await gw.close();
      await closeNats(nc);
    },
  };
}

export interface RunningWorker {
  readonly worker: Worker;
  readonly nc: NatsConnection;
  close(): Promise<void>;
}

export async function startWorker(options: { natsUrl: string; prefix: string; handler: Handler; queue?: string; nats?: Partial<NodeConnectionOptions>; durable?: { ackWaitMs: number } }): Promise<RunningWorker> {
  const nc = await connect({ servers: options.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...options.nats });
  // workers bind the buckets, as `wsgw worker` does (no permission to create them is needed)
  const directory = await ConnectionDirectory.open(nc, { prefix: options.prefix, replicas: 1, log: quietLog, create: false });
  const worker = await createWorker({ nc, subjects: createSubjects(options.prefix), directory, handler: options.handler, queue: options.queue ?? 'wsgw-workers', log: quietLog, durable: options.durable });
  return {
    worker,
    nc,
    close: async () => {
      await worker.close();
      await closeNats(nc);
    },
  };
}

/** What `startRemoteStack` registers with the test: stopped in reverse order at teardown. */
export interface RemoteStack {
  readonly prefix: string;
  readonly worker: RunningWorker;
  readonly gateway: RunningGateway;
}

/**
 * Remote-handler mode in one call: a worker running `handler`, then a gateway, torn down with the
 * test. With `durable` the worker is a durable one and the gateway (flags.durable) starts first: it
 * creates the stream the worker's consumer waits for.
 */
export async function startRemoteStack(
  t: { teardown(fn: () => unknown): void },
  natsUrl: string,
  handler: Handler,
  flags: Partial<Record<ConfigKey, unknown>> = {},
  durable?: { ackWaitMs: number },
): Promise<RemoteStack> {
  const prefix = uniquePrefix();
  const gatewayFirst = durable ? await startGateway({ natsUrl, prefix, flags }) : null;
  if (gatewayFirst) t.teardown(() => gatewayFirst.close());
  const worker = await startWorker({ natsUrl, prefix, handler, durable });
  t.teardown(() => worker.close());
  const gateway = gatewayFirst ?? (await startGateway({ natsUrl, prefix, flags }));
  if (!gatewayFirst) t.teardown(() => gateway.close());
  return { prefix, worker, gateway };
}

export interface RunningService {
  readonly service: ConnectionService;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  close(): Promise<void>;
}

/** `wsgw connections` in this process on port 0. */
export async function startConnectionService(options: { natsUrl: string; prefix: string; flags?: Partial<Record<ConfigKey, unknown>>; nats?: Partial<NodeConnectionOptions> }): Promise<RunningService> {
  const config = testConfig('connections', { prefix: options.prefix, nats: options.natsUrl, ...options.flags });
  const nc = await connect({ servers: options.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...options.nats });
  const directory = await ConnectionDirectory.open(nc, { prefix: options.prefix, replicas: 1, log: quietLog });
  const service = await createConnectionService({ config, nc, subjects: createSubjects(options.prefix), directory, log: quietLog });
  return {
    service,
    url: `http://127.0.0.1:${service.port}`,
    close: async () => {
      await service.close();
      await closeNats(nc);
    },
  };
}

/** `wsgw bridge` in this process. */
export async function startBridge(options: { natsUrl: string; prefix: string; target: string; flags?: Partial<Record<ConfigKey, unknown>>; nats?: Partial<NodeConnectionOptions> }) {
  const config = testConfig('bridge', { prefix: options.prefix, nats: options.natsUrl, target: options.target, ...options.flags });
  const nc = await connect({ servers: options.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...options.nats });
  const bridge = await createBridge({ config, nc, subjects: createSubjects(options.prefix), log: quietLog });
  return {
    bridge,
    close: async () => {
      await bridge.close();
      await closeNats(nc);
    },
  };
}
