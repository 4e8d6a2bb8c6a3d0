import t from 'tap';
import { loadHandler } from '../src/handlers/load.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, startWorker, uniquePrefix, type RunningGateway } from './harness/stack.js';
import { TestClient } from './harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());
const chat = await loadHandler('services/examples/chat.js');

async function checkChat(t: Tap.Test, urlA: string, urlB: string) {
  const ann = await TestClient.connect(`${urlA}?room=lobby&name=ann`);
  t.teardown(() => ann.close());
  const welcome = await ann.nextJson((v) => v.type === 'welcome');
  t.equal(welcome.room, 'lobby');
  const bob = await TestClient.connect(`${urlB}?room=lobby&name=bob`);
  t.teardown(() => bob.close());
  await bob.nextJson((v) => v.type === 'welcome');
  const joined = await ann.nextJson((v) => v.type === 'join' && v.name === 'bob');
  t.equal(joined.room, 'lobby', 'ann sees bob join');
  const other = await TestClient.connect(`${urlB}?room=elsewhere&name=eve`);
  t.teardown(() => other.close());
  await other.nextJson((v) => v.type === 'welcome');

  bob.send('hi ann');
  const m = await ann.nextJson((v) => v.type === 'message');
  t.match(m, { name: 'bob', text: 'hi ann', room: 'lobby' }, 'ann receives bob’s message');
  const echo = await bob.nextJson((v) => v.type === 'message');
  t.equal(echo.text, 'hi ann', 'bob receives his own message');

  await bob.close();
  const left = await ann.nextJson((v) => v.type === 'leave');
  t.equal(left.name, 'bob', 'ann sees bob leave');
  other.send('only for elsewhere');
  await other.nextJson((v) => v.type === 'message');
  ann.send('still here');
  const mine = await ann.nextJson((v) => v.type === 'message');
  t.equal(mine.text, 'still here', 'ann never saw the other room’s message');

  const bad = await TestClient.connect(`${urlA}?room=no.dots&name=x`);
  const closed = await bad.waitClosed();
  t.equal(closed.code, 4400, 'an unsafe room name is refused with a clear close');
}

t.test('chat in local mode', async (t) => {
  const g = await startGateway({ handler: chat });
  t.teardown(() => g.close());
  await checkChat(t, g.url, g.url);
});

t.test('chat in shared-state mode across two gateways', async (t) => {
  const prefix = uniquePrefix();
  const a = await startGateway({ natsUrl: nats.url, prefix, handler: chat });
  t.teardown(() => a.close());
  const b = await startGateway({ natsUrl: nats.url, prefix, handler: chat });
  t.teardown(() => b.close());
  await checkChat(t, a.url, b.url);
});

t.test('chat in remote-handler mode: two gateways, one worker', async (t) => {
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: chat });
  t.teardown(() => w.close());
  const gws: RunningGateway[] = [await startGateway({ natsUrl: nats.url, prefix }), await startGateway({ natsUrl: nats.url, prefix })];
  t.teardown(() => Promise.all(gws.map((g) => g.close())));
  await checkChat(t, gws[0]!.url, gws[1]!.url);
});
