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
  const metrics = await (await fetch(`http://127.0.0.1:${g.gw.port}/metrics`)).text();
  t.match(metrics, /^wsgw_outage_refused_total\{[^}]*\} 1$/m, 'the refusal is counted in /metrics');
  t.match(metrics, /^wsgw_nats_connected\{[^}]*\} 0$/m, 'NATS shown disconnected');
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

t.test('NATS away for longer than nats.js gives up by default (~20 s): the gateway keeps reconnecting and delivers the buffered frames', { timeout: 90_000 }, async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const proxy = await startTcpProxy(nats.port);
  t.teardown(() => proxy.close());
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const g = await startGateway({ natsUrl: `nats://127.0.0.1:${proxy.port}`, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  const down = nextStatus(g.nc!, 'disconnect');
  await proxy.cut();
  await down;
  c.send('sent during a 25 s outage');
  // the outage is the point of this test: hold it past nats.js's default give-up, watching for a close
  const outcome = await Promise.race([g.nc!.closed().then(() => 'gave up'), new Promise((r) => setTimeout(() => r('held'), 25_000))]);
  t.equal(outcome, 'held', 'the gateway did not give up on NATS during 25 s');
  const up = nextStatus(g.nc!, 'reconnect');
  await proxy.restore();
  await up;
  t.equal((await c.next(10_000)).text(), 'sent during a 25 s outage', 'the frame sent during the outage arrives');
  c.send('after');
  t.equal((await c.next(5_000)).text(), 'after');
  t.equal(c.closed, null, 'the client stayed connected for the whole outage');
});

t.test('reconnect race: a client that reconnects to gateway B before A processed its close keeps its new record', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const a = await startGateway({ natsUrl: nats.url, prefix });
  const b = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const first = await TestClient.connect(a.url);
  await eventually(async () => (await a.directory!.ids(a.gw.id)).length === 1, 5_000, 'record on A');
  // the client comes back through B while its old connection on A is still open
  const second = await TestClient.connect(b.url);
  t.teardown(() => second.close());
  const [newId] = await eventually(async () => {
    const ids = await b.directory!.ids(b.gw.id);
    return ids.length === 1 ? ids : null;
  }, 5_000, 'record on B');
  await first.close();
  await eventually(async () => (await a.directory!.ids(a.gw.id)).length === 0, 5_000, 'A removed its own record');
  t.same(await b.directory!.ids(b.gw.id), [newId], 'the new record on B is untouched');
  t.ok(await b.directory!.get(newId!), 'and readable');
});
