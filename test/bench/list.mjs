// What GET /connections costs the process serving it at N connections (by hand, not in `npm run bench`):
// N connection records written to a private nats-server's KV, a DirectoryView watching them (as the
// connection service and `--api` gateways keep one), then view.list() timed for 3 s per case: pages
// with nothing changed between listings, with 100 opens and 100 closes between each, and filtered;
// then view.gateways() (GET /gateways).
// Usage: nats-server -js -p 4391 -sd "$(mktemp -d)" &  node test/bench/list.mjs --nats 127.0.0.1:4391 [--count 100000]
// Prints one JSON line per case. Its records go to the prefix `listbench` (buckets listbench_*).
import { connect } from '@nats-io/transport-node';
import { parseArgs } from 'node:util';
import { ConnectionDirectory } from '../../dist/nats/directory.js';
import { DirectoryView } from '../../dist/http/directory-view.js';

const { values: o } = parseArgs({ options: { nats: { type: 'string' }, count: { type: 'string', default: '100000' } } });
const n = Math.min(Number(o.count), 1_000_000);
const nc = await connect({ servers: o.nats });
const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
const dir = await ConnectionDirectory.open(nc, { prefix: 'listbench', replicas: 1, log });
const record = (i) => ({ id: `gw${i % 4}.t${((i * 7919) % 1000003).toString(36)}n${i}`, gateway: `gw${i % 4}`, connectedAt: 0, topics: i % 10 === 0 ? ['news'] : i % 10_000 === 1 ? ['rare'] : [], path: '/ws', query: '', headers: {}, remoteAddress: '127.0.0.1', subprotocol: '', identity: { sub: `user${i % 50_000}` } });
for (let i = 0; i < n; i++) {
  dir.put(record(i));
  if (i % 5000 === 0) await nc.flush();
}
await nc.flush();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const view = await DirectoryView.start(dir, log);
const deadline = Date.now() + 120_000;
while (view.records.size < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
const cpu = process.cpuUsage(cpu0);
// what a process with a view (the connection service, an --api gateway) spends taking in every record
console.log(JSON.stringify({ connections: view.records.size, case: 'the view replays the bucket', ms: Math.round(performance.now() - t0), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }));

{
  const s = performance.now();
  view.list({ limit: 100 });
  console.log(JSON.stringify({ connections: view.records.size, case: 'the first listing (puts every id in order once)', ms: +(performance.now() - s).toFixed(1) }));
}

let next = n;
async function time(label, changes, options) {
  let lists = 0;
  let busy = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 3000) {
    for (let c = 0; c < changes; c++, next++) {
      dir.put(record(next));
      dir.remove(record(next - n).id);
    }
    // the view sees the changes through its watch
    if (changes) await new Promise((r) => setTimeout(r, 20));
    const s = performance.now();
    view.list(options);
    busy += performance.now() - s;
    lists++;
  }
  console.log(JSON.stringify({ connections: view.records.size, case: label, usPerList: +((busy / lists) * 1000).toFixed(1), lists }));
}
await time('page of 100, nothing changed between listings', 0, { limit: 100 });
await time('page of 1000, nothing changed between listings', 0, { limit: 1000 });
await time('page of 100, 100 opens + 100 closes between listings', 100, { limit: 100 });
await time('page of 100 filtered by topic (1 in 10), 100 opens + 100 closes between listings', 100, { topic: 'news', limit: 100 });
await time('filtered by a topic 10 connections have (who is in this room)', 0, { topic: 'rare', limit: 100 });
await time('filtered by gateway, page of 100', 0, { gateway: 'gw3', limit: 100 });
await time("one user's connections (two each)", 0, { user: 'user7', limit: 100 });
{
  // GET /gateways (and the admin page every 2 s): the leases read from KV, with each gateway's count
  let calls = 0;
  let busy = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 3000) {
    const s = performance.now();
    await view.gateways(dir);
    busy += performance.now() - s;
    calls++;
  }
  console.log(JSON.stringify({ connections: view.records.size, case: 'GET /gateways: leases from KV and a count per gateway (wall time, KV round trip included)', usPerCall: +((busy / calls) * 1000).toFixed(1), calls }));
}
view.stop();
{
  // as the connection service starts its view: the order made after the replay, before any request
  const t0 = performance.now();
  const served = await DirectoryView.start(dir, log, Infinity, { indexed: true });
  const ready = performance.now() - t0;
  const s = performance.now();
  served.list({ limit: 100 });
  console.log(JSON.stringify({ connections: served.records.size, case: 'started indexed (the connection service): start, then the first listing', startMs: Math.round(ready), firstListUs: +((performance.now() - s) * 1000).toFixed(1) }));
  served.stop();
}
dir.close();
await nc.close();
