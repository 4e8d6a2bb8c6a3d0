import t from 'tap';
import { startNatsServer } from '../harness/nats-server.js';
import { freePort, spawnWsgw } from '../harness/process.js';
import { startConnectionService, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

t.test('--procs 2: two gateway processes share one port, each with its own id; SIGTERM drains both', { timeout: 60_000 }, async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => svc.close());
  const port = await freePort();
  const g = spawnWsgw(['gateway', '-p', String(port), '--host', '127.0.0.1', '--procs', '2', '--id', 'multi', '--nats', nats.url, '--prefix', prefix, '--drain-ms', '200']);
  t.teardown(() => g.stop('SIGTERM'));
  await eventually(() => g.lines.filter((l) => l.msg === 'gateway listening' && l.port === port).length === 2, 15_000, 'two gateways listening on one port');
  const ids = g.lines.filter((l) => l.msg === 'gateway listening').map((l) => l.gateway).sort();
  t.same(ids, ['multi-1', 'multi-2'], 'ids <id>-1 and <id>-2');
  const clients = await Promise.all(Array.from({ length: 24 }, () => TestClient.connect(`ws://127.0.0.1:${port}/ws`)));
  const byGateway = await eventually(async () => {
    const list = (await (await fetch(`${svc.url}/connections?limit=100`)).json()) as { connections: Array<{ gateway: string }> };
    if (list.connections.length < 24) return null;
    return list.connections.reduce<Record<string, number>>((m, c) => ((m[c.gateway] = (m[c.gateway] ?? 0) + 1), m), {});
  }, 10_000, 'all 24 listed');
  t.ok((byGateway['multi-1'] ?? 0) > 0 && (byGateway['multi-2'] ?? 0) > 0, `the kernel spread them over both: ${JSON.stringify(byGateway)}`);
  // a child that dies is replaced under a new generation id (the old one's lease expires as usual)
  const victim = g.lines.find((l) => l.msg === 'gateway listening' && l.gateway === 'multi-1')!;
  process.kill(victim.pid, 'SIGKILL');
  const restarted = await g.waitFor((l) => l.msg === 'gateway listening' && l.gateway === 'multi-1g1', 15_000);
  t.equal(restarted.port, port, 'the replacement listens on the same port');
  t.equal(await g.stop('SIGTERM'), 0, 'the supervisor exits 0 once both drained');
  const codes = await Promise.all(clients.map((c) => c.waitClosed().then((x) => x.code)));
  t.equal(codes.filter((c) => c === 4100).length, byGateway['multi-2'], 'clients of the surviving process were told to reconnect (4100)');
});

t.test('--procs with port 0 is refused', async (t) => {
  const g = spawnWsgw(['gateway', '-p', '0', '--procs', '2']);
  t.equal(await g.exited(), 2);
  t.match(g.stderr, /--procs: needs a fixed --port/);
});
