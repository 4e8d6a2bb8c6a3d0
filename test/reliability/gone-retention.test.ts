import t from 'tap';
import { startNatsServer } from '../harness/nats-server.js';
import { startConnectionService, startGateway, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('closed connections leave no KV delete marker past --gone-retention: 410, then 404', async (t) => {
  const prefix = uniquePrefix();
  const flags = { goneRetention: 1, leaseMs: 1_000 };
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags });
  t.teardown(() => g.close());
  const clients = await Promise.all([0, 1, 2].map(() => TestClient.connect(g.url)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const ids = await eventually(async () => {
    const list = (await (await fetch(`${svc.url}/connections`)).json()) as { connections: Array<{ id: string }> };
    return list.connections.length === 3 ? list.connections.map((c) => c.id) : null;
  }, 5_000, 'three listed');
  const [keep, ...closing] = [clients[0]!, clients[1]!, clients[2]!];
  await Promise.all(closing.map((c) => c.close()));
  const bucket = g.directory!.connections;
  // wait for the records to become delete markers, then note which ids closed
  await eventually(() => svc.service.view.records.size === 1, 5_000, 'two closed');
  const closedIds = ids.filter((id) => !svc.service.view.records.has(id));
  t.equal(closedIds.length, 2);
  t.equal((await fetch(`${svc.url}/connections/${closedIds[0]}`)).status, 410, 'just closed: 410 gone');
  t.ok((await bucket.status()).values >= 3, 'the bucket holds the live record and two delete markers');
  // one process purges markers older than a second, every second
  await eventually(async () => (await bucket.status()).values === 1, 15_000, 'only the live record left in the stream');
  await eventually(async () => (await fetch(`${svc.url}/connections/${closedIds[1]}`)).status === 404, 5_000, 'past the retention: 404');
  t.equal(keep.closed, null, 'the live connection is untouched');
  t.equal(svc.service.view.records.size, 1);
  t.ok(svc.service.view.records.has(ids.find((id) => !closedIds.includes(id))!), 'and still listed');
});
