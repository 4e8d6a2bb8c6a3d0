import t from 'tap';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ConnectionDirectory } from '../../src/nats/directory.js';
import { LeaseKeeper } from '../../src/nats/lease.js';
import { gatewaysBucket } from '../../src/protocol/subjects.js';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, uniquePrefix } from '../harness/stack.js';

async function setup(t: Tap.Test) {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const other = await connect({ servers: nats.url });
  t.teardown(() => other.close());
  const mine = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog });
  t.teardown(() => mine.close());
  // another process of the cluster (a gateway or the connection service) with its own directory
  const theirs = await ConnectionDirectory.open(other, { prefix, replicas: 1, log: quietLog });
  t.teardown(() => theirs.close());
  let fenced = 0;
  const lease = new LeaseKeeper({ directory: mine, id: 'gw-lease-test', leaseMs: 60_000, log: quietLog, connections: () => 0, onFenced: () => fenced++ });
  await lease.start();
  // the last test leaves no leases bucket to delete the lease from
  t.teardown(() => lease.stop().catch(() => undefined));
  return { prefix, url: nats.url, mine, theirs, lease, jsm: await jetstreamManager(other), fenced: () => fenced };
}

t.test('a sweeper that took the lease still fences the gateway', async (t) => {
  const { mine, lease, fenced } = await setup(t);
  const [entry] = await mine.leaseEntries();
  await mine.deleteLease(entry!.lease.id, entry!.revision);
  t.equal(await lease.renew(), 'fenced');
  t.equal(fenced(), 1, 'onFenced ran once');
});

t.test('the leases bucket deleted and created again by another process: the renewal writes the lease anew, and nothing is fenced', async (t) => {
  const { prefix, mine, theirs, lease, jsm, fenced } = await setup(t);
  await jsm.streams.delete(`KV_${gatewaysBucket(prefix)}`);
  // the other process finds it gone first and creates it again; this one still holds the old revision
  t.same(await theirs.checkBuckets(true), { connections: false, gateways: true }, 'the other process created the bucket again');
  t.equal(await lease.renew(), 'ok', 'renewed: the failed compare was read against a fresh look at the bucket');
  t.equal(fenced(), 0, 'not fenced');
  t.same((await mine.leases()).map((l) => l.id), ['gw-lease-test'], 'the lease is in the new bucket');
  t.equal(await lease.renew(), 'ok', 'and renews by compare-and-set from there');
  t.same(await mine.checkBuckets(true), { connections: false, gateways: false }, 'this process now knows the new bucket');
});

t.test('the leases bucket gone: the renewal creates it again and writes the lease', async (t) => {
  const { prefix, mine, lease, jsm, fenced } = await setup(t);
  await jsm.streams.delete(`KV_${gatewaysBucket(prefix)}`);
  t.equal(await lease.renew(), 'ok');
  t.equal(fenced(), 0, 'not fenced');
  t.ok((await jsm.streams.names().next()).includes(`KV_${gatewaysBucket(prefix)}`), 'the bucket is back');
  t.same((await mine.leases()).map((l) => l.id), ['gw-lease-test'], 'with the lease in it');
});

t.test('a process that only binds to the buckets (a worker) never creates them', async (t) => {
  const { prefix, url, jsm } = await setup(t);
  const nc = await connect({ servers: url });
  t.teardown(() => nc.close());
  const bound = await ConnectionDirectory.open(nc, { prefix, replicas: 1, log: quietLog, create: false });
  t.teardown(() => bound.close());
  await jsm.streams.delete(`KV_${gatewaysBucket(prefix)}`);
  t.same(await bound.checkBuckets(true), { connections: false, gateways: false });
  t.notOk((await jsm.streams.names().next()).includes(`KV_${gatewaysBucket(prefix)}`), 'still gone');
});
