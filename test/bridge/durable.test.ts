import t from 'tap';
import type { ServerResponse } from 'node:http';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { startBridge, startGateway, uniquePrefix } from '../harness/stack.js';
import { startTestApp, type AppHandler, type AppRequest } from '../harness/http-app.js';
import { TestClient } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

// each test's stream reserves its --durable-max-bytes on this file's server
const gatewayFlags = { durable: true, durableMaxBytes: 64 * 1024 * 1024 };

const echo: AppHandler = (r, res) => {
  if (r.event !== 'message') return void res.writeHead(204).end();
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo: ${r.body.toString()}`);
};

function messages(requests: AppRequest[], text: string): number {
  return requests.filter((r) => r.event === 'message' && r.body.toString() === text).length;
}

t.test('durable bridge: events sent while no bridge runs are posted, in order, once one starts', async (t) => {
  const prefix = uniquePrefix();
  const app = await startTestApp(echo);
  t.teardown(() => app.stop().catch(() => undefined));
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: gatewayFlags });
  t.teardown(() => g.close());
  const first = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { durable: true, durableAckWait: 2_000 } });
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('hello');
  t.equal((await c.next(5_000)).text(), 'echo: hello', 'a round trip through the stream and the durable consumer');
  await first.close();

  // no bridge at all: a core bridge would never see these
  const sent = ['one', 'two', 'three'];
  for (const text of sent) c.send(text);
  const second = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { durable: true, durableAckWait: 2_000 } });
  t.teardown(() => second.close());
  const frames = await c.waitFrames(1 + sent.length, 10_000);
  t.same(frames.slice(1).map((f) => f.text()), sent.map((x) => `echo: ${x}`), 'posted once a bridge consumes again, in order');
  t.equal(c.closed, null, 'the client stayed connected');
});

t.test('durable bridge killed mid-request: the event is posted again by another bridge after the ack wait', { timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix();
  let hung = 0;
  const app = await startTestApp((r: AppRequest, res: ServerResponse) => {
    // the first time it arrives, 'important' is never answered: the bridge holding it dies meanwhile
    if (r.event === 'message' && r.body.toString() === 'important' && hung++ === 0) return;
    echo(r, res);
  });
  t.teardown(() => app.stop().catch(() => undefined));
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: gatewayFlags });
  t.teardown(() => g.close());
  const doomed = spawnWsgw(['bridge', '--nats', nats.url, '--prefix', prefix, '--target', app.url, '--durable', '--durable-ack-wait', '2000', '--bridge-timeout', '60000']);
  t.teardown(() => doomed.stop('SIGKILL'));
  await doomed.waitFor((l) => l.msg === 'bridge subscribed');
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('important');
  const deadline = Date.now() + 10_000;
  while (messages(app.requests, 'important') === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  t.equal(messages(app.requests, 'important'), 1, 'the first bridge posted it, and the app holds it');
  doomed.child.kill('SIGKILL');
  await doomed.exited();
  const rescuer = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { durable: true, durableAckWait: 2_000 } });
  t.teardown(() => rescuer.close());
  t.equal((await c.next(15_000)).text(), 'echo: important', 'posted again by the other bridge and answered');
  t.equal(messages(app.requests, 'important'), 2, 'twice in all: at-least-once');
});

t.test('durable bridge: an event that takes longer than the ack wait is not delivered again while its bridge lives', { timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix();
  const app = await startTestApp((r: AppRequest, res: ServerResponse) => {
    if (r.event === 'message' && r.body.toString() === 'slow') {
      setTimeout(() => echo(r, res), 3_000);
      return;
    }
    echo(r, res);
  });
  t.teardown(() => app.stop().catch(() => undefined));
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: gatewayFlags });
  t.teardown(() => g.close());
  const b = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { durable: true, durableAckWait: 1_000 } });
  t.teardown(() => b.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  // 'after' waits behind 'slow' (one request per connection at a time): both outlive the ack wait
  c.send('slow');
  c.send('after');
  const frames = await c.waitFrames(2, 15_000);
  t.same(frames.map((f) => f.text()), ['echo: slow', 'echo: after'], 'answered in order');
  t.equal(messages(app.requests, 'slow'), 1, 'the slow event was posted once (the bridge told the stream it was working on it)');
  t.equal(messages(app.requests, 'after'), 1, 'and the one waiting behind it once');
});
