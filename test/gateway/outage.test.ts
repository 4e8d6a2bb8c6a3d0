import t from 'tap';
import type { NatsConnection } from '@nats-io/transport-node';
import { echoHandler } from '../../src/handlers/echo.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

/** Resolves on the next status event of `type` from a nats.js connection. */
async function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const s of nc.status()) if (s.type === type) return;
}

t.test('NATS down: clients stay connected, frames are buffered and delivered after reconnect', async (t) => {
  let nats = await startNatsServer();
  const dir = nats.dir;
  t.teardown(async () => {
    await nats.stop();
  });
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { outageBuffer: 100 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  t.equal((await c.next()).text(), 'before');

  const gwDown = nextStatus(g.nc!, 'disconnect');
  await nats.kill();
  await gwDown;
  for (let i = 0; i < 20; i++) c.send(`during-${i}`);
  // the frames sit in the gateway's own buffer; the client is still connected
  t.equal(c.closed, null, 'client still connected while NATS is down');

  const gwUp = nextStatus(g.nc!, 'reconnect');
  const wUp = nextStatus(w.nc, 'reconnect');
  nats = await nats.restart();
  await Promise.all([gwUp, wUp]);
  const frames = await c.waitFrames(21, 15_000);
  t.same(frames.slice(1).map((f) => f.text()), Array.from({ length: 20 }, (_, i) => `during-${i}`), 'every buffered frame delivered, in order');
  c.send('after');
  const all = await c.waitFrames(22, 5_000);
  t.equal(all[21]!.text(), 'after', 'echo works again without client action');
  const ids = await eventually(() => g.directory!.ids().then((x) => (x.length === 1 ? x : null)), 10_000, 'record re-registered');
  t.equal(ids.length, 1, 'the connection record is in KV after the outage');
  t.equal(nats.dir, dir, 'the server came back with the same store');
});

t.test('NATS down past the outage buffer: the sending client is closed with 4101, others stay', async (t) => {
  let nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { outageBuffer: 5 } });
  t.teardown(() => g.close());
  const noisy = await TestClient.connect(g.url);
  const quiet = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([noisy.close(), quiet.close()]));
  const down = nextStatus(g.nc!, 'disconnect');
  await nats.kill();
  await down;
  for (let i = 0; i < 10; i++) noisy.send(`x${i}`);
  const closed = await noisy.waitClosed();
  t.equal(closed.code, 4101, 'refused visibly with 4101');
  t.match(closed.reason, /retry later/);
  t.equal(quiet.closed, null, 'a client that sent nothing stays connected');
  nats = await nats.restart();
});
