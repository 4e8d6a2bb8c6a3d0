import t from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
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

t.test('orphan records (no lease at all) are reported lost once, found by one of three sweepers, one search in the cluster', async (t) => {
  const prefix = uniquePrefix();
  const subjects = createSubjects(prefix);
  // what the sweepers log at warn and above
  const warnings: Array<{ msg: string; gateway?: string; lostConnections?: number }> = [];
  const log = pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (warnings.push(JSON.parse(String(c))), cb()) }));
  // three sweepers, each on its own connection and directory, as three processes would be
  const sweepers = await Promise.all(
    [0, 1, 2].map(async () => {
      const nc = await connect({ servers: nats.url });
      t.teardown(() => nc.close());
      const directory = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog });
      t.teardown(() => directory.close());
      // how many times this process searched the whole bucket, and listed every record (never: the
      // search reads per-subject counts, and only an orphan gateway's own records are listed)
      const counted = { searches: 0, fullListings: 0 };
      const ids = directory.ids.bind(directory);
      directory.ids = (gateway?: string) => {
        if (gateway === undefined) counted.fullListings++;
        return ids(gateway);
      };
      const recordGateways = directory.recordGateways.bind(directory);
      directory.recordGateways = () => {
        counted.searches++;
        return recordGateways();
      };
      // a timer that never fires in the test: passes run by hand below
      const sweeper = startSweeper({ nc, subjects, directory, log, intervalMs: 60_000 });
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
  const orphans = Array.from({ length: 5 }, (_, i) => (i === 0 ? { ...record('ghost', now - 300_000), meta: { user: 'gone-user' } } : record('ghost', now - 300_000)));
  for (const r of [...alive, ...orphans]) directory.put(r);
  await eventually(async () => (await directory.ids()).length === 7, 5_000, 'seven records written');
  t.same([...(await directory.recordGateways())].sort(), ['alive', 'ghost'], 'the gateways with records, from the stream');
  for (const s of sweepers) Object.assign(s.counted, { searches: 0, fullListings: 0 });

  // the orphan search comes every fifth pass; every sweeper makes five, in turn
  for (let pass = 0; pass < 5; pass++) for (const s of sweepers) await s.sweeper.sweep();
  const total = (k: 'searches' | 'fullListings') => sweepers.map((s) => s.counted[k]).reduce((a, b) => a + b, 0);
  const [searches, fullListings] = [total('searches'), total('fullListings')];

  await eventually(() => closes.length >= orphans.length, 5_000, 'lost closes for the orphans');
  await nc.flush();
  t.same(closes.map((c) => c.id).sort(), orphans.map((r) => r.id).sort(), 'one lost close per orphan record, none for the live gateway');
  t.ok(closes.every((c) => c.lost && c.gateway === 'ghost' && c.code === 1006), 'each marked lost, code 1006');
  t.same(closes.filter((c) => c.meta).map((c) => [c.id, c.meta]), [[orphans[0]!.id, { user: 'gone-user' }]], 'a lost close carries its record\'s metadata, the others none');
  t.same((await directory.ids()).sort(), alive.map((r) => r.id).sort(), 'the orphans are gone from KV, the live records stay');
  t.same(
    warnings.map((w) => [w.gateway, w.lostConnections]),
    [['ghost', 5]],
    'one warning names the gateway without a lease and how many of its connections were reported lost',
  );
  t.equal(searches, 1, 'the bucket was searched once in the cluster, not once per sweeper');
  t.equal(fullListings, 0, 'and no sweeper listed every record');
  // its delete markers stay until purged: a later search finds the ghost again, and lists nothing live
  t.ok((await directory.recordGateways()).has('ghost'), 'a gateway with only delete markers is still among those with records');
  t.same(await directory.ids('ghost'), [], 'and its own listing holds no record');
  t.same((await directory.leases()).map((l) => l.id), ['alive'], 'the search lock is no gateway');
});

t.test('a task spaced after its run (spaceTask) is claimed by no process of the cluster until the gap has passed', async (t) => {
  const prefix = uniquePrefix();
  const [a, b] = await Promise.all(
    [0, 1].map(async () => {
      const nc = await connect({ servers: nats.url });
      t.teardown(() => nc.close());
      const directory = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog });
      t.teardown(() => directory.close());
      return directory;
    }),
  );
  // everyMs 0: without spacing, a claim always succeeds
  t.ok(await a.claim('orphans', 0), 'the first claim');
  t.ok(await b.claim('orphans', 0), 'claimed again at once by another process, with no spacing');
  await b.spaceTask('orphans', 60_000);
  t.notOk(await a.claim('orphans', 0), 'spaced: refused to another process');
  t.notOk(await b.claim('orphans', 0), 'and to the one that ran it');
  t.ok(await a.claim('purge', 0), 'another task is not spaced by it');

  await a.spaceTask('orphans', 300);
  await eventually(() => a.claim('orphans', 0), 5_000, 'claimed once the shorter gap has passed');
  t.ok(await b.claim('orphans', 0), 'a spacing holds once: the run claimed then sets its own, if any');
});
