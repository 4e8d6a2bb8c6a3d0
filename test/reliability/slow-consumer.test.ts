import t from 'tap';
import { readFileSync } from 'node:fs';
import { spawnWsgw } from '../harness/process.js';
import { TestClient } from '../harness/ws-client.js';

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

async function pingMs(c: TestClient): Promise<number> {
  const start = performance.now();
  const before = c.frames.length;
  c.send('ping');
  await c.waitFrames(before + 1, 5_000);
  return performance.now() - start;
}

t.test('a client that does not read while 256 MiB are pushed at it: gateway memory and other clients stay flat', { timeout: 60_000 }, async (t) => {
  const g = spawnWsgw(['local', '-p', '0', '--host', '127.0.0.1', '--handler', 'test/fixtures/flood-handler.js', '--max-backpressure', String(1024 * 1024), '--backpressure-policy', 'drop']);
  t.teardown(() => g.stop());
  const port = (await g.waitFor((l) => l.msg === 'gateway listening')).port;
  const url = `ws://127.0.0.1:${port}/ws`;
  const healthy = await TestClient.connect(url);
  t.teardown(() => healthy.close());
  await pingMs(healthy);
  const baseline = rssMiB(g.child.pid!);
  const baselinePing = await pingMs(healthy);

  const slow = await TestClient.connect(url);
  t.teardown(() => slow.ws.terminate());
  // the ws client has no pause API; its socket does: the slow client stops reading entirely
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  for (let i = 0; i < 4; i++) slow.send('flood 1024'); // 4 x 64 MiB
  // the gateway is busy pushing; measure a neighbour's latency meanwhile
  const pings: number[] = [];
  for (let i = 0; i < 10; i++) pings.push(await pingMs(healthy));
  const after = rssMiB(g.child.pid!);
  const growth = after - baseline;
  t.ok(growth < 48, `gateway RSS grew ${growth.toFixed(1)} MiB for 256 MiB pushed (limit 1 MiB per client)`);
  const worst = Math.max(...pings);
  t.ok(worst < 500, `a neighbour's ping stayed at ${worst.toFixed(1)} ms worst (baseline ${baselinePing.toFixed(1)} ms)`);
  t.equal(slow.closed, null, 'the slow client is not closed under the drop policy');
});
