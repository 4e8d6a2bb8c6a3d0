import t from 'tap';
import type { Handler } from '../src/handlers/types.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, startRemoteStack, type RunningGateway } from './harness/stack.js';
import { TestClient } from './harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

// Direct sends, broadcasts and closes issued in one order must reach the client in that order.
const handler: Handler = {
  async open(conn, ctx) {
    await conn.subscribe('room');
    conn.send('1-direct');
    ctx.publish('room', '2-broadcast');
    conn.send('3-direct');
  },
  message(conn, m) {
    if (m.text() === 'bye') {
      conn.send('last words');
      conn.close(4321, 'done');
    }
  },
};

async function check(t: Tap.Test, g: RunningGateway) {
  const c = await TestClient.connect(g.url);
  const frames = await c.waitFrames(3);
  t.same(frames.map((f) => f.text()), ['1-direct', '2-broadcast', '3-direct'], 'sends and broadcasts keep their order');
  c.send('bye');
  const closed = await c.waitClosed();
  t.equal(c.frames.at(-1)!.text(), 'last words', 'a frame sent just before close is delivered');
  t.same(closed, { code: 4321, reason: 'done' });
}

t.test('local mode', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  await check(t, g);
});

t.test('shared-state mode', async (t) => {
  const g = await startGateway({ natsUrl: nats.url, handler });
  t.teardown(() => g.close());
  await check(t, g);
});

t.test('remote-handler mode', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, handler);
  await check(t, gateway);
});
