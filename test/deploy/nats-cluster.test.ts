import t from 'tap';
import { readFileSync } from 'node:fs';
import { echoHandler } from '../../src/handlers/echo.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { freePort } from '../harness/process.js';
import { startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

/** Starts the three shipped cluster nodes on loopback, with their ports and routes rewritten. */
async function startCluster(): Promise<NatsServer[]> {
  const routePorts = [await freePort(), await freePort(), await freePort()];
  const configs = [1, 2, 3].map((i) =>
    readFileSync(new URL(`../../deploy/nats/cluster/node${i}.conf`, import.meta.url), 'utf8')
      .replace(/^(host|port|http_port):.*$/gm, '')
      .replace(/^jetstream \{[\s\S]*?\n\}/m, '')
      .replace(/(cluster \{[\s\S]*?)host: 0\.0\.0\.0/, '$1host: 127.0.0.1')
      .replace(/(cluster \{[\s\S]*?)port: 6222/, `$1port: ${routePorts[i - 1]}`)
      .replace(/nats:\/\/nats-(\d):6222/g, (_m, n: string) => `nats://127.0.0.1:${routePorts[Number(n) - 1]}`),
  );
  return Promise.all(configs.map((config) => startNatsServer({ config })));
}

t.test('a 3-node cluster from deploy/nats/cluster: the gateway’s node is killed, clients stay, traffic resumes, acknowledged writes survive', { timeout: 120_000 }, async (t) => {
  const nodes = await startCluster();
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  const urls = nodes.map((n) => n.url).join(',');
  const prefix = uniquePrefix();
  // R3 buckets need the JetStream meta group to have formed: wait for the first successful create
  const g = await eventually(() => startGateway({ natsUrl: urls, prefix, flags: { kvReplicas: 3 } }).catch(() => null), 30_000, 'gateway with R3 buckets');
  t.teardown(() => g.close());
  const status = await g.directory!.connections.status();
  t.equal(status.replicas, 3, `the connections bucket has ${status.replicas} replicas`);
  const w = await startWorker({ natsUrl: urls, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  t.equal((await c.next()).text(), 'before');
  const [id] = await eventually(async () => {
    const ids = await g.directory!.ids();
    return ids.length === 1 ? ids : null;
  }, 10_000, 'record written (acknowledged by the R3 stream)');

  const server = g.nc!.getServer();
  const victim = nodes.find((n) => server.endsWith(`:${n.port}`))!;
  t.ok(victim, `the gateway is connected to ${server}`);
  const killedAt = Date.now();
  await victim.kill();

  // traffic resumes through another node without any client action
  let resumedAfter = -1;
  for (let i = 0; Date.now() - killedAt < 30_000; i++) {
    c.send(`after-${i}`);
    const f = await c.next(2_000).catch(() => null);
    if (f) {
      resumedAfter = Date.now() - killedAt;
      break;
    }
  }
  t.ok(resumedAfter >= 0 && resumedAfter < 30_000, `echo resumed ${resumedAfter} ms after the node was killed`);
  t.equal(c.closed, null, 'the client kept its connection');
  t.not(g.nc!.getServer(), server, `the gateway moved to ${g.nc!.getServer()}`);
  const rec = await eventually(() => g.directory!.get(id!), 30_000, 'the record is readable after failover');
  t.equal(rec.id, id, 'the acknowledged KV write survived the node');
});
