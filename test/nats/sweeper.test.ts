import t from 'tap';
import { connect } from '@nats-io/transport-node';
import type { CloseEvent } from '../../src/protocol/events.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { formatConnectionId, newToken } from '../../src/protocol/ids.js';
import { ConnectionDirectory } from '../../src/nats/directory.js';
import { startSweeper } from '../../src/nats/sweeper.js';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, uniquePrefix } from '../harness/stack.js';
import { eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

const record = (gateway: string, connectedAt: number) => ({ id: formatConnectionId(gateway, newToken()), gateway, connectedAt, path: '/ws', query: '', headers: {}, remoteAddress: '127.0.0.1', subprotocol: '', topics: [] });

t.test('orphan records (no lease at all) are reported lost once, found by one of three sweepers listing every record', async (t) => {
  const prefix = uniquePrefix();
  const subjects = createSubjects(prefix);
  // three sweepers, each on its own connection and directory, as three processes would be
  const sweepers = await Promise.all(
    [0, 1, 2].map(async () => {
      const nc = await connect({ servers: nats.url });
      t.teardown(() => nc.close());
      const directory = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog });
      t.teardown(() => directory.close());
      // how many times this process listed every record (the orphan search's cost)
      const counted = { fullListings: 0 };
      const ids = directory.ids.bind(directory);
      directory.ids = (gateway?: string) => {
        if (gateway === undefined) counted.fullListings++;
        return ids(gateway);
      };
      // a timer that never fires in the test: passes run by hand below
      const sweeper = startSweeper({ nc, subjects, directory, log: quietLog, intervalMs: 60_000 });
      t.teardown(() => sweeper.close());
      return { nc, directory, sweeper, counted };
    }),
  );
  const { nc, directory } = sweepers[0]!;
  const closes: CloseEvent[] = [];
  nc.subscribe(subjects.inClose, { callback: (_e, m) => closes.push(m.json<CloseEvent>()) });
  await nc.flush();

  // a live gateway, and records left by one whose lease is gone (older than any grace)
  const now = Date.now();
  await directory.putLease({ id: 'alive', startedAt: now, heartbeatAt: now, leaseMs: 60_000, connections: 2 });
  const alive = [record('alive', now), record('alive', now)];
  const orphans = Array.from({ length: 5 }, () => record('ghost', now - 300_000));
  for (const r of [...alive, ...orphans]) directory.put(r);
  await eventually(async () => (await directory.ids()).length === 7, 5_000, 'seven records written');
  sweepers[0]!.counted.fullListings = 0;

  // the orphan search comes every fifth pass; every sweeper makes five, in turn
  for (let pass = 0; pass < 5; pass++) for (const s of sweepers) await s.sweeper.sweep();
  const fullListings = sweepers.map((s) => s.counted.fullListings).reduce((a, b) => a + b, 0);

  await eventually(() => closes.length >= orphans.length, 5_000, 'lost closes for the orphans');
  await nc.flush();
  t.same(closes.map((c) => c.id).sort(), orphans.map((r) => r.id).sort(), 'one lost close per orphan record, none for the live gateway');
  t.ok(closes.every((c) => c.lost && c.gateway === 'ghost' && c.code === 1006), 'each marked lost, code 1006');
  t.same((await directory.ids()).sort(), alive.map((r) => r.id).sort(), 'the orphans are gone from KV, the live records stay');
  t.equal(fullListings, 1, 'every record was listed once in the cluster, not once per sweeper');
  t.same((await directory.leases()).map((l) => l.id), ['alive'], 'the search lock is no gateway');
});
