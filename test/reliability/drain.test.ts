import t from 'tap';
import { connect } from '@nats-io/transport-node';
import type { CloseEvent } from '../../src/protocol/events.js';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { startGateway, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

t.test('SIGTERM drains: clients closed with 4100 over the window, close events published, records removed, exit 0; clients move to another gateway', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const closes: CloseEvent[] = [];
  nc.subscribe(`${prefix}.in.close`, { callback: (_e, m) => closes.push(m.json()) });
  await nc.flush();
  const other = await startGateway({ natsUrl: nats.url, prefix, handler: { message: (c, m) => c.send(m.data, { binary: m.binary }) } });
  t.teardown(() => other.close());

  const DRAIN = 2_000;
  const g = spawnWsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix, '--id', 'leaving', '--drain-ms', String(DRAIN)]);
  t.teardown(() => g.stop('SIGKILL'));
  const port = (await g.waitFor((l) => l.msg === 'gateway listening')).port;
  const N = 20;
  const clients = await Promise.all(Array.from({ length: N }, () => TestClient.connect(`ws://127.0.0.1:${port}/ws`)));
  await eventually(async () => (await other.directory!.ids('leaving')).length === N, 5_000, 'records');

  // each client reconnects to the other gateway when told to, as a real client would
  const moved: TestClient[] = [];
  t.teardown(() => Promise.all(moved.map((c) => c.close())));
  const closedAt: number[] = [];
  const reconnected = clients.map(async (c) => {
    const { code } = await c.waitClosed(DRAIN + 5_000);
    closedAt.push(Date.now());
    t.equal(code, 4100, 'closed with the reconnect hint');
    const again = await TestClient.connect(other.url);
    moved.push(again);
    again.send('still here');
    return (await again.next()).text();
  });
  const started = Date.now();
  g.child.kill('SIGTERM');
  const code = await g.exited();
  const took = Date.now() - started;
  t.equal(code, 0, 'exit code 0');
  t.ok(took < DRAIN + 3_000, `exited ${took} ms after SIGTERM (window ${DRAIN} ms)`);
  const spread = Math.max(...closedAt) - Math.min(...closedAt);
  t.ok(spread >= DRAIN / 2, `closes spread over ${spread} ms`);
  t.same(await Promise.all(reconnected), Array(N).fill('still here'), 'every client was served by the other gateway');
  await eventually(() => closes.filter((c) => c.gateway === 'leaving').length >= N, 5_000, 'close events');
  const mine = closes.filter((c) => c.gateway === 'leaving');
  t.equal(new Set(mine.map((c) => c.id)).size, N, 'one close event per connection');
  t.ok(mine.every((c) => c.lost === false && c.code === 4100), 'not lost: drained with 4100');
  t.same(await other.directory!.ids('leaving'), [], 'records removed');
  t.notOk((await other.directory!.leases()).some((l) => l.id === 'leaving'), 'lease removed');
});
