import t from 'tap';
import { gatewaysOfSubjects } from '../../src/nats/directory.js';
import { startNatsServer } from '../harness/nats-server.js';
import { openDirectory, testRecord } from '../harness/stack.js';
import { eventually } from '../harness/ws-client.js';

const prefix = '$KV.wsgw_connections.';
const page = (subjects: Record<string, number>, extra = '') =>
  `{"type":"io.nats.jetstream.api.v1.stream_info_response","total":5,"offset":0,"limit":100000,"config":{"name":"KV_wsgw_connections","subjects":["$KV.wsgw_connections.>"]},"state":{"messages":5,"subjects":${JSON.stringify(subjects)}}${extra}}`;

t.test('a stream info page: each subject counted, each gateway once, the total read from the answer', async (t) => {
  const into = new Set<string>(['gw-known']);
  const r = gatewaysOfSubjects(page({ [`${prefix}gw-a.t1`]: 1, [`${prefix}gw-a.t2`]: 1, [`${prefix}gw-b.t3`]: 1, [`${prefix}gw-known.t4`]: 1 }, ',"cluster":{"leader":"n1"}'), prefix, into);
  t.same(r, { count: 4, total: 5 });
  t.same([...into].sort(), ['gw-a', 'gw-b', 'gw-known'], 'added to what the set held, no duplicates');
});

t.test('a stream with no subjects in it', async (t) => {
  const into = new Set<string>();
  t.same(gatewaysOfSubjects('{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"subjects":["$KV.x.>"]},"state":{"messages":0}}', prefix, into), { count: 0, total: 0 });
  t.equal(into.size, 0);
});

t.test('an API error is thrown with its description, not read as an empty page', async (t) => {
  t.throws(() => gatewaysOfSubjects('{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}', prefix, new Set()), /stream not found \(404\)/);
});

t.test('listings written to while they run: every key once', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const { dir } = await openDirectory(t, nats.url);
  const ids = Array.from({ length: 300 }, (_, i) => `gwlist.c${i}`);
  const record = (id: string, n: number) => testRecord(id, { connectedAt: n });
  for (const id of ids) dir.put(record(id, 0));
  const leaseIds = Array.from({ length: 20 }, (_, i) => `gwl${i}`);
  const lease = (id: string, n: number) => ({ id, startedAt: 0, heartbeatAt: n, leaseMs: 60_000, connections: 0 });
  await Promise.all(leaseIds.map((id) => dir.putLease(lease(id, 0))));
  await eventually(async () => ((await dir.ids()).length === ids.length ? true : null), 5_000, 'all records written');

  // a gateway writing its records and leases again (after a repair, say) while others list them:
  // a listing keeps delivering new writes until it has caught up, so a key written meanwhile comes twice
  let writing = true;
  let rounds = 0;
  const writer = (async () => {
    while (writing) {
      rounds++;
      for (const id of ids) dir.put(record(id, rounds));
      await Promise.all(leaseIds.map((id) => dir.putLease(lease(id, rounds))));
    }
  })();
  const listings: string[][] = [];
  const leaseListings: string[][] = [];
  for (let i = 0; i < 10; i++) {
    listings.push(await dir.ids());
    leaseListings.push((await dir.leases()).map((l) => l.id));
  }
  writing = false;
  await writer;
  t.ok(rounds > 1, `records and leases were written again while listed (${rounds} rounds)`);
  // nats.js's listing may also miss a key written meanwhile: ids() serves only the sweeps, which look
  // again on their next pass, so it promises no repeats and nothing that is not a record
  for (const x of listings) t.ok(x.length === new Set(x).size && x.every((id) => ids.includes(id)), `ids(): no id twice, only records (${x.length} listed)`);
  // the writer's last records are not awaited (a gateway never awaits them): listed once they are stored
  await eventually(async () => ((await dir.ids()).length === ids.length ? true : null), 5_000, 'the last writes stored');
  t.same((await dir.ids()).sort(), [...ids].sort(), 'ids() once the writes stop: every record once');
  // a lease missing from a listing would make the orphan search take its gateway's records for orphans
  for (const x of leaseListings) t.same(x.sort(), [...leaseIds].sort(), 'leases(): every gateway once');
});
