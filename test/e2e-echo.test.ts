import t from 'tap';
import { echoHandler } from '../src/handlers/echo.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, startRemoteStack } from './harness/stack.js';
import { TestClient } from './harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

async function checkEcho(t: Tap.Test, url: string) {
  const c = await TestClient.connect(url);
  t.teardown(() => c.close());
  c.send('hello');
  const f1 = await c.next();
  t.equal(f1.text(), 'hello');
  t.equal(f1.binary, false, 'text stays text');
  const bytes = Buffer.from([0, 1, 2, 253, 254, 255, 0xc3, 0x28]);
  c.send(bytes, true);
  const f2 = await c.next();
  t.equal(f2.binary, true, 'binary stays binary');
  t.same([...f2.data], [...bytes], 'binary frame comes back byte-exact');
}

t.test('local mode echo', async (t) => {
  const g = await startGateway({ handler: echoHandler });
  t.teardown(() => g.close());
  await checkEcho(t, g.url);
});

t.test('shared-state mode (gateway --handler) echo', async (t) => {
  const g = await startGateway({ natsUrl: nats.url, handler: echoHandler });
  t.teardown(() => g.close());
  await checkEcho(t, g.url);
});

t.test('remote-handler mode (gateway + worker) echo', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, echoHandler);
  await checkEcho(t, gateway.url);
});
