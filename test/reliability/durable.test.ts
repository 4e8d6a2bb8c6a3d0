import t from 'tap';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { echoHandler } from '../../src/handlers/echo.js';
import { inboundStream, MAX_DELIVER } from '../../src/nats/durable.js';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { startGateway, startRemoteStack, startWorker, testConfig, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('durable mode: events are stored in the stream with limits, acked by the worker after the handler', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { durable: true, durableMaxAge: 600, durableMaxBytes: 64 * 1024 * 1024 } });
  t.teardown(() => g.close());
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler, durable: { ackWaitMs: 2_000 } });
  t.teardown(() => w.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  for (let i = 0; i < 50; i++) c.send(`d${i}`);
  const frames = await c.waitFrames(50, 10_000);
  t.same(frames.map((f) => f.text()), Array.from({ length: 50 }, (_, i) => `d${i}`), 'echoed in order through the stream');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(inboundStream(prefix));
  t.equal(info.config.max_age, 600 * 1e9, 'max age from --durable-max-age');
  t.equal(info.config.max_bytes, 64 * 1024 * 1024, 'max bytes from --durable-max-bytes');
  t.ok(info.state.messages >= 51, `the stream holds the events (${info.state.messages})`);
  const ci = await eventually(async () => {
    const x = await jsm.consumers.info(inboundStream(prefix), 'wsgw-workers');
    return x.num_ack_pending === 0 ? x : null;
  }, 5_000, 'all acknowledged');
  t.equal(ci.num_pending, 0, 'nothing left to deliver');
});

t.test('a worker killed mid-message: the message is redelivered to another worker', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { durable: true } });
  t.teardown(() => g.close());
  const stuck = spawnWsgw(['worker', '--nats', nats.url, '--prefix', prefix, '--durable', '--durable-ack-wait', '2000', '--handler', 'test/fixtures/stuck-handler.js']);
  t.teardown(() => stuck.stop('SIGKILL'));
  await stuck.waitFor((l) => l.msg === 'worker subscribed');
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('do not lose me');
  const held = await stuck.waitFor((l) => l.msg === 'holding frame');
  t.equal(held.text, 'do not lose me', 'the first worker took the frame');
  stuck.child.kill('SIGKILL');
  await stuck.exited();
  const rescuer = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler, durable: { ackWaitMs: 2_000 } });
  t.teardown(() => rescuer.close());
  t.equal((await c.next(10_000)).text(), 'do not lose me', 'redelivered to the other worker after the ack wait');
});

t.test('a handler that fails is retried on redelivery until it succeeds', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { durable: true } });
  t.teardown(() => g.close());
  let attempts = 0;
  const w = await startWorker({
    natsUrl: nats.url,
    prefix,
    durable: { ackWaitMs: 2_000 },
    handler: {
      message(conn, m) {
        if (m.text() === 'flaky' && ++attempts < 3) throw new Error('not yet');
        conn.send(`${m.text()} after ${attempts} attempts`);
      },
    },
  });
  t.teardown(() => w.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('flaky');
  t.equal((await c.next(15_000)).text(), 'flaky after 3 attempts', 'succeeded on redelivery');
});

t.test('a message that fails on every delivery is given up after MAX_DELIVER attempts', { timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { durable: true } });
  t.teardown(() => g.close());
  let attempts = 0;
  const w = await startWorker({
    natsUrl: nats.url,
    prefix,
    durable: { ackWaitMs: 2_000 },
    handler: {
      message(conn, m) {
        if (m.text() === 'poison') {
          attempts++;
          throw new Error('always fails');
        }
        conn.send(m.text());
      },
    },
  });
  t.teardown(() => w.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('poison');
  c.send('healthy');
  t.equal((await c.next(20_000)).text(), 'healthy', 'the next frame of the connection is handled after the poison one');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await eventually(async () => {
    const ci = await jsm.consumers.info(inboundStream(prefix), 'wsgw-workers');
    return ci.num_ack_pending === 0 && ci.num_pending === 0;
  }, 20_000, 'nothing pending');
  t.equal(attempts, MAX_DELIVER, `tried exactly ${MAX_DELIVER} times, then terminated`);
});

t.test('the inbound stream deleted by hand: the gateway creates it again and the worker its consumer; frames sent meanwhile are echoed, nobody closed', { timeout: 60_000 }, async (t) => {
  // this file's server holds the other tests' streams too, each reserving its --durable-max-bytes
  const { prefix, gateway: g } = await startRemoteStack(t, nats.url, echoHandler, { durable: true, durableMaxBytes: 64 * 1024 * 1024 }, { ackWaitMs: 2_000 });
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('before');
  t.equal((await c.next(5_000)).text(), 'before', 'echo through the stream');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(inboundStream(prefix));
  // each publish fails (nothing stores the subjects now) and is retried; the first failure makes the
  // gateway look and create the stream again, the worker's consumer finds itself gone and is created
  // again, and the retried publishes land in the new stream
  const sent = Array.from({ length: 10 }, (_, i) => `after ${i}`);
  for (const text of sent) c.send(text);
  const frames = await c.waitFrames(1 + sent.length, 20_000);
  // a retried publish may land after later ones of the same connection (docs/reliability.md)
  t.same(frames.slice(1).map((f) => f.text()).sort(), [...sent].sort(), 'every frame sent while the stream was missing is echoed');
  t.equal(c.closed, null, 'the client stayed connected');
  const info = await jsm.streams.info(inboundStream(prefix));
  t.same(info.config.subjects.length, 3, 'the stream is back with its three subjects');
  t.equal(info.state.messages, sent.length, 'the new stream holds each retried frame once (de-duplicated by message id)');
  const ci = await eventually(async () => {
    const x = await jsm.consumers.info(inboundStream(prefix), 'wsgw-workers');
    return x.num_ack_pending === 0 && x.num_pending === 0 ? x : null;
  }, 10_000, 'the new consumer has everything acknowledged');
  t.equal(ci.config.durable_name, 'wsgw-workers', "the workers' durable consumer is back");
  c.send('later');
  t.equal((await c.waitFrames(2 + sent.length, 5_000)).at(-1)!.text(), 'later', 'and echo goes on as usual');
});

t.test('--durable with an in-process handler is refused at start', async (t) => {
  t.throws(() => testConfig('gateway', { durable: true, handler: 'x.js' }), { message: /--durable and --handler/ });
});
