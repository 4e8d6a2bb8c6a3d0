import t from 'tap';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { echoHandler } from '../../src/handlers/echo.js';
import { inboundStream } from '../../src/nats/durable.js';
import { connectionsBucket, gatewaysBucket } from '../../src/protocol/subjects.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { startConnectionService, startGateway, startRemoteStack, startWorker, uniquePrefix, type RunningGateway, type RunningService } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

// a 1.5 s lease: renewals and sweeps every 0.5 s, the gateways' periodic look at the buckets every 6 s
const flags = { leaseMs: 1_500 };

interface Cluster {
  readonly prefix: string;
  readonly a: RunningGateway;
  readonly b: RunningGateway;
  readonly svc: RunningService;
  readonly onA: TestClient;
  readonly onB: TestClient;
  /** The ids of the five connections. */
  readonly ids: string[];
}

/**
 * Two gateways (A also serving the API, --api), a worker and the connection service, with five
 * clients over the two gateways, all listed.
 */
async function startCluster(t: Tap.Test, url: string): Promise<Cluster> {
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: url, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const a = await startGateway({ natsUrl: url, prefix, flags: { ...flags, api: true } });
  t.teardown(() => a.close());
  const b = await startGateway({ natsUrl: url, prefix, flags });
  t.teardown(() => b.close());
  const svc = await startConnectionService({ natsUrl: url, prefix, flags });
  t.teardown(() => svc.close());
  const onA = await TestClient.connect(a.url);
  t.teardown(() => onA.close());
  const onB = await TestClient.connect(b.url);
  t.teardown(() => onB.close());
  for (let i = 0; i < 3; i++) {
    const x = await TestClient.connect(i % 2 ? a.url : b.url);
    t.teardown(() => x.close());
  }
  const ids = await eventually(async () => {
    const x = (await a.directory!.ids()).sort();
    return x.length === 5 ? x : null;
  }, 5_000, 'the five records in KV');
  await eventually(async () => ((await listed(svc.url)).length === 5 ? true : null), 5_000, 'the service lists the five connections');
  return { prefix, a, b, svc, onA, onB, ids };
}

/** The ids `GET <api>/connections` lists. */
async function listed(api: string): Promise<string[]> {
  const r = await fetch(`${api}/connections`);
  return r.ok ? ((await r.json()) as { connections: Array<{ id: string }> }).connections.map((c) => c.id).sort() : [];
}

async function streamNames(jsm: JetStreamManager): Promise<string[]> {
  return jsm.streams.names().next();
}

/**
 * Sends until the echo comes back: after a restart, a frame sent before the worker has subscribed
 * again reaches no worker and is lost (core NATS is at-most-once, docs/reliability.md).
 */
async function echoed(client: TestClient, text: string): Promise<string> {
  for (let i = 0; i < 20; i++) {
    client.send(text);
    try {
      return (await client.next(500)).text();
    } catch {
      // sent before the worker was back
    }
  }
  throw new Error(`no echo of ${text}`);
}

/** What must hold once the buckets are back: records, leases, clients, echo, the API. */
async function checkRepaired(t: Tap.Test, c: Cluster, jsm: JetStreamManager): Promise<void> {
  await eventually(async () => {
    const names = await streamNames(jsm);
    return names.includes(`KV_${connectionsBucket(c.prefix)}`) && names.includes(`KV_${gatewaysBucket(c.prefix)}`) ? true : null;
  }, 15_000, 'both buckets there');
  const ids = await eventually(async () => {
    const x = (await c.a.directory!.ids()).sort();
    return x.length === 5 ? x : null;
  }, 15_000, 'the live connections registered again');
  t.same(ids, c.ids, 'the records of the five connections, which stayed open, are back');
  const leases = await eventually(async () => {
    const x = await c.a.directory!.leases();
    return x.length === 2 ? x : null;
  }, 15_000, 'both leases there');
  t.same(leases.map((l) => l.id).sort(), [c.a.gw.id, c.b.gw.id].sort(), "both gateways' leases");
  t.equal(c.onA.closed, null, 'the client on gateway A stayed connected (its gateway was not fenced)');
  t.equal(c.onB.closed, null, 'the client on gateway B stayed connected');
  for (const [name, client] of [['A', c.onA], ['B', c.onB]] as const) t.equal(await echoed(client, `still on ${name}`), `still on ${name}`, `echo works on gateway ${name}`);
  t.same(await eventually(async () => ((await listed(c.svc.url)).length === 5 ? listed(c.svc.url) : null), 15_000, 'the service lists the five again'), c.ids, 'GET /connections lists the five');
  // a connection made after the repair is registered as usual, and the service's view, watching the
  // bucket as it is now, lists it
  const late = await TestClient.connect(c.b.url);
  t.teardown(() => late.close());
  const six = await eventually(async () => {
    const x = await c.a.directory!.ids();
    return x.length === 6 ? x.sort() : null;
  }, 10_000, 'the new connection registered');
  t.same(await eventually(async () => ((await listed(c.svc.url)).length === 6 ? listed(c.svc.url) : null), 15_000, 'the service lists the new connection'), six, 'GET /connections on the connection service lists the new connection too');
  const onGateway = `http://127.0.0.1:${c.a.gw.port}`;
  t.same(await eventually(async () => ((await listed(onGateway)).length === 6 ? listed(onGateway) : null), 15_000, 'gateway A lists all six'), six, 'and so does the API on gateway A (--api), from its own view');
  const gateways = (await (await fetch(`${c.svc.url}/gateways`)).json()) as { gateways: Array<{ id: string }> };
  t.same(gateways.gateways.map((x) => x.id).sort(), [c.a.gw.id, c.b.gw.id].sort(), 'GET /gateways lists both gateways');
}

t.test('nats-server back without its JetStream store: the buckets are created again, the leases and live records written again, nobody fenced, the API follows', { timeout: 90_000 }, async (t) => {
  let nats: NatsServer = await startNatsServer();
  const dir = nats.dir;
  t.teardown(() => nats.stop());
  const c = await startCluster(t, nats.url);
  const created = async (url: string) => {
    const nc = await connect({ servers: url });
    try {
      return (await (await jetstreamManager(nc)).streams.info(`KV_${connectionsBucket(c.prefix)}`)).created;
    } finally {
      await nc.close();
    }
  };
  const before = await created(nats.url);

  // the server dies and comes back on the same port with an empty store (a pod without its volume)
  await nats.kill();
  rmSync(join(dir, 'js'), { recursive: true, force: true });
  nats = await nats.restart();
  // a connection of the test's own, to look at the new server
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await checkRepaired(t, c, jsm);
  // (the gateways may create it again before the test can look, so the new bucket is told by its stream's creation time)
  t.not(await created(nats.url), before, 'the connections bucket is a new one: the store was lost and the bucket created again');
});

t.test('the connections bucket deleted by hand while NATS stays up: created again, every gateway writes its records again', { timeout: 90_000 }, async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const c = await startCluster(t, nats.url);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(`KV_${connectionsBucket(c.prefix)}`);
  t.notOk((await streamNames(jsm)).includes(`KV_${connectionsBucket(c.prefix)}`), 'the bucket is gone');
  // no client writes anything: a sweep's orphan search finds the bucket gone, and each gateway's
  // periodic look finds it created again
  await checkRepaired(t, c, jsm);
});

t.test('durable mode, nats-server back without its store: the inbound stream and the consumer are created again, echo goes on', { timeout: 90_000 }, async (t) => {
  let nats: NatsServer = await startNatsServer();
  const dir = nats.dir;
  t.teardown(() => nats.stop());
  const { prefix, gateway: g } = await startRemoteStack(t, nats.url, echoHandler, { ...flags, durable: true }, { ackWaitMs: 2_000 });
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  t.equal((await c.next(5_000)).text(), 'before', 'echo through the stream');

  await nats.kill();
  rmSync(join(dir, 'js'), { recursive: true, force: true });
  nats = await nats.restart();
  // frames sent from now on are held while NATS is away, then published and retried until a stream
  // stores them
  const sent = Array.from({ length: 10 }, (_, i) => `after ${i}`);
  for (const text of sent) c.send(text);
  const frames = await c.waitFrames(1 + sent.length, 30_000);
  t.same(frames.slice(1).map((f) => f.text()).sort(), [...sent].sort(), 'every frame sent across the loss is echoed');
  t.equal(c.closed, null, 'the client stayed connected');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  t.ok((await streamNames(jsm)).includes(inboundStream(prefix)), 'the inbound stream is back');
  t.equal((await jsm.consumers.info(inboundStream(prefix), 'wsgw-workers')).config.durable_name, 'wsgw-workers', "the workers' durable consumer is back");
});
