import t from 'tap';
import { loadHandler } from '../src/handlers/load.js';
import { startNatsServer } from './harness/nats-server.js';
import { quietLog, startGateway, startWorker, uniquePrefix, type RunningGateway } from './harness/stack.js';
import { connect } from '@nats-io/transport-node';
import { ensureHistoryStream } from '../src/nats/history.js';
import { createSubjects } from '../src/protocol/subjects.js';
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

/** With topic history on, who joins a room gets its last chat lines (not its joins and leaves). */
async function checkHistory(t: Tap.Test, urlA: string, urlB: string) {
  const ann = await TestClient.connect(`${urlA}?room=tea&name=ann`);
  t.teardown(() => ann.close());
  await ann.nextJson((v) => v.type === 'welcome');
  for (const text of ['one', 'two']) {
    ann.send(text);
    await ann.nextJson((v) => v.type === 'message' && v.text === text);
  }
  t.notOk(ann.frames.some((f) => f.json().type === 'history'), 'the first in the room gets no history');
  const bob = await TestClient.connect(`${urlB}?room=tea&name=bob`);
  t.teardown(() => bob.close());
  await bob.nextJson((v) => v.type === 'welcome');
  const earlier = await bob.nextJson((v) => v.type === 'history');
  t.match(earlier, { room: 'tea', messages: [{ name: 'ann', text: 'one' }, { name: 'ann', text: 'two' }] });
  t.equal(earlier.messages.length, 2, 'only the chat lines');
}

t.test('chat with topic history: local mode keeps it in memory', async (t) => {
  const g = await startGateway({ handler: chat, flags: { history: 100 } });
  t.teardown(() => g.close());
  await checkHistory(t, g.url, g.url);
});

t.test('chat with topic history: a worker reads the stream, across two gateways', async (t) => {
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await ensureHistoryStream(nc, createSubjects(prefix), { perTopic: 100, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: chat });
  t.teardown(() => w.close());
  const gws: RunningGateway[] = [await startGateway({ natsUrl: nats.url, prefix }), await startGateway({ natsUrl: nats.url, prefix })];
  t.teardown(() => Promise.all(gws.map((g) => g.close())));
  await checkHistory(t, gws[0]!.url, gws[1]!.url);
});
