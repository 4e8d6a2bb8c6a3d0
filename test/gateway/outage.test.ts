import t from 'tap';
import type { NatsConnection } from '@nats-io/transport-node';
import { echoHandler } from '../../src/handlers/echo.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startGateway, startRemoteStack, startWorker, uniquePrefix } from '../harness/stack.js';
import { startTcpProxy } from '../harness/tcp-proxy.js';
import { TestClient, eventually } from '../harness/ws-client.js';

/** Resolves on the next status event of `type` from a nats.js connection. */
async function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const s of nc.status()) if (s.type === type) return;
}

t.test('NATS away from the gateway: clients stay connected, frames are buffered and delivered in order after reconnect', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const proxy = await startTcpProxy(nats.port);
  t.teardown(() => proxy.close());
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const g = await startGateway({ natsUrl: `nats://127.0.0.1:${proxy.port}`, prefix, flags: { outageBuffer: 100 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  t.equal((await c.next()).text(), 'before');

  const down = nextStatus(g.nc!, 'disconnect');
  await proxy.cut();
  await down;
  for (let i = 0; i < 50; i++) c.send(`during-${i}`);
  const up = nextStatus(g.nc!, 'reconnect');
  await proxy.restore();
  await up;
  t.equal(c.closed, null, 'client stayed connected through the outage');
  const frames = await c.waitFrames(51, 15_000);
  t.same(frames.slice(1).map((f) => f.text()), Array.from({ length: 50 }, (_, i) => `during-${i}`), 'every buffered frame delivered, in order');
  c.send('after');
  t.equal((await c.waitFrames(52))[51]!.text(), 'after', 'echo works again without client action');
  const ids = await eventually(() => g.directory!.ids().then((x) => (x.length === 1 ? x : null)), 10_000, 'record in KV');
  t.equal(ids.length, 1, 'the connection record is in KV after the outage');
});

t.test('NATS away past the outage buffer: the sending client is closed with 4101, others stay', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const proxy = await startTcpProxy(nats.port);
  t.teardown(() => proxy.close());
  const g = await startGateway({ natsUrl: `nats://127.0.0.1:${proxy.port}`, flags: { outageBuffer: 5 } });
  t.teardown(() => g.close());
  const noisy = await TestClient.connect(g.url);
  const quiet = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([noisy.close(), quiet.close()]));
  const down = nextStatus(g.nc!, 'disconnect');
  await proxy.cut();
  await down;
  for (let i = 0; i < 10; i++) noisy.send(`x${i}`);
  const closed = await noisy.waitClosed();
  t.equal(closed.code, 4101, 'refused visibly with 4101');
  t.match(closed.reason, /retry later/);
  t.equal(quiet.closed, null, 'a client that sent nothing stays connected');
});

t.test('nats-server restarted: clients stay connected and echo resumes once the worker is back', async (t) => {
  let nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const { worker: w, gateway: g } = await startRemoteStack(t, nats.url, echoHandler);
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  await c.next();
  const down = nextStatus(g.nc!, 'disconnect');
  await nats.kill();
  await down;
  const ups = Promise.all([nextStatus(g.nc!, 'reconnect'), nextStatus(w.nc, 'reconnect')]);
  nats = await nats.restart();
  await ups;
  await w.nc.flush(); // the worker's subscriptions are back on the server
  c.send('after');
  t.equal((await c.next(10_000)).text(), 'after', 'echo works again without client action');
  t.equal(c.frames.length, 2, 'no stray frames (server status messages never reach the client)');
});
