import t from 'tap';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { CloseEvent } from '../../src/protocol/events.js';
import type { Handler } from '../../src/handlers/types.js';
import { startSweeper } from '../../src/nats/sweeper.js';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { quietLog, startConnectionService, startGateway, uniquePrefix } from '../harness/stack.js';
import { startTcpProxy } from '../harness/tcp-proxy.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());
const LEASE = 1_000;

async function closeSpy(t: Tap.Test, prefix: string) {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const closes: CloseEvent[] = [];
  nc.subscribe(`${prefix}.in.close`, { callback: (_e, m) => closes.push(m.json<CloseEvent>()) });
  await nc.flush();
  return { nc, closes };
}

/** Counts per id. */
function tally(ids: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

t.test('a gateway killed with SIGKILL: every connection reported lost exactly once, with three sweepers racing', async (t) => {
  const prefix = uniquePrefix();
  const { nc, closes } = await closeSpy(t, prefix);
  const lostInHandlers: string[] = [];
  const counting: Handler = { close: (conn, info) => void (info.lost && lostInHandlers.push(conn.id)) };
  // three sweepers: two gateways (shared-state, with in-process handlers) and the connection service
  const b = await startGateway({ natsUrl: nats.url, prefix, handler: counting, flags: { leaseMs: LEASE } });
  const c = await startGateway({ natsUrl: nats.url, prefix, handler: counting, flags: { leaseMs: LEASE } });
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { leaseMs: LEASE } });
  t.teardown(() => Promise.all([b.close(), c.close(), svc.close()]));

  const a = spawnWsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix, '--id', 'doomed', '--lease-ms', String(LEASE), '--handler', 'services/examples/echo.js']);
  t.teardown(() => a.stop('SIGKILL'));
  const port = (await a.waitFor((l) => l.msg === 'gateway listening')).port;
  const N = 20;
  const clients = await Promise.all(Array.from({ length: N }, () => TestClient.connect(`ws://127.0.0.1:${port}/ws`)));
  t.teardown(() => Promise.all(clients.map((x) => x.close())));
  const ids = await eventually(async () => {
    const x = await b.directory!.ids('doomed');
    return x.length === N ? x : null;
  }, 10_000, 'records of the doomed gateway');

  const killedAt = Date.now();
  a.child.kill('SIGKILL');
  await eventually(() => closes.length >= N, 6 * LEASE + 5_000, 'lost close events');
  const took = Date.now() - killedAt;
  t.ok(took < 6 * LEASE + 5_000, `all ${N} reported lost ${took} ms after the kill (lease ${LEASE} ms)`);

  // more sweeps, from a fresh sweeper too, must find nothing left to report
  const extra = startSweeper({ nc: b.nc!, subjects: b.subjects!, directory: b.directory!, log: quietLog, intervalMs: 60_000 });
  t.equal(await extra.sweep(), 0, 'a further sweep reports nothing');
  await extra.close();
  await (c.nc as NatsConnection).flush();
  await nc.flush();
  t.same([...tally(closes.map((x) => x.id)).values()].filter((n) => n !== 1), [], 'exactly one close event per connection');
  t.same(closes.map((x) => x.id).sort(), [...ids].sort(), 'for every connection of the dead gateway');
  t.ok(closes.every((x) => x.lost === true && x.gateway === 'doomed' && x.code === 1006), 'each marked lost, code 1006');
  await eventually(() => lostInHandlers.length >= N, 5_000, 'in-process handlers saw the lost closes');
  t.same([...tally(lostInHandlers).values()].filter((n) => n !== 1), [], 'exactly one in-process close handler call per connection, across two gateways');
  t.same(await b.directory!.ids('doomed'), [], 'no record left in KV');
  const gone = await fetch(`${svc.url}/connections/${ids[0]}/messages`, { method: 'POST', body: 'x' });
  t.equal(gone.status, 410, 'the connection service answers 410 for them');
  await eventually(async () => {
    const list = (await (await fetch(`${svc.url}/connections`)).json()) as { connections: Array<{ gateway: string }> };
    return list.connections.every((x) => x.gateway !== 'doomed');
  }, 5_000, 'GET /connections no longer lists them');
  const gws = (await (await fetch(`${svc.url}/gateways`)).json()) as { gateways: Array<{ id: string }> };
  t.notOk(gws.gateways.some((g) => g.id === 'doomed'), 'the dead gateway is gone from /gateways');
});

t.test('a gateway cut off from NATS past its lease is fenced when it returns: clients told 4102, no second close', async (t) => {
  const prefix = uniquePrefix();
  const { closes } = await closeSpy(t, prefix);
  const proxy = await startTcpProxy(nats.port);
  t.teardown(() => proxy.close());
  const a = await startGateway({ natsUrl: `nats://127.0.0.1:${proxy.port}`, prefix, id: 'cutoff', flags: { leaseMs: LEASE } });
  t.teardown(() => a.close());
  const survivor = await startGateway({ natsUrl: nats.url, prefix, flags: { leaseMs: LEASE } });
  t.teardown(() => survivor.close());
  const clients = await Promise.all(Array.from({ length: 3 }, () => TestClient.connect(a.url)));
  await eventually(async () => (await survivor.directory!.ids('cutoff')).length === 3, 5_000, 'records');

  await proxy.cut();
  await eventually(() => closes.length >= 3, 6 * LEASE + 5_000, 'the survivor reported them lost');
  for (const c of clients) t.equal(c.closed, null, 'the client is still connected to the cut-off gateway meanwhile');
  await proxy.restore();
  for (const c of clients) t.equal((await c.waitClosed(15_000)).code, 4102, 'fenced on reconnect: closed with 4102');
  await a.nc!.flush();
  const after = await TestClient.connect(a.url);
  t.teardown(() => after.close());
  await eventually(async () => (await survivor.directory!.ids('cutoff')).length === 1, 5_000, 'new connections are served again');
  t.equal(a.gw.connections, 1, 'only the new connection is held');
  await after.close();
  await eventually(() => closes.length >= 4, 5_000, 'the new connection’s own close');
  const perId = tally(closes.map((x) => x.id));
  t.same([...perId.values()].filter((n) => n !== 1), [], 'still exactly one close per connection');
  t.equal(closes.filter((x) => x.lost).length, 3, 'the three cut-off connections: lost');
});
