import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, startGateway, uniquePrefix } from '../harness/stack.js';
import { build, have, startProgram } from '../harness/toolchain.js';
import { TestClient, eventually } from '../harness/ws-client.js';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { inboundStream } from '../../src/nats/durable.js';
import { ensureHistoryStream } from '../../src/nats/history.js';
import { createSubjects } from '../../src/protocol/subjects.js';

// The Go worker (services/go-worker) builds offline in GOPATH mode against Debian's nats.go
// (golang-go, golang-github-nats-io-go-nats-dev); test/preflight.mjs installs them when it can.
const GOPATH = '/usr/share/gocode';
if (!have('go')) throw new Error('go is required for this test: apt-get install -y golang-go golang-github-nats-io-go-nats-dev');

const dir = mkdtempSync(join(tmpdir(), 'wsgw-go-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const bin = join(dir, 'wsgw-go-worker');
build('go', ['build', '-o', bin, '.'], { cwd: 'services/go-worker', env: { GO111MODULE: 'off', GOPATH, GOCACHE: join(dir, 'cache'), GOFLAGS: '' } });

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('echo: text and binary frames come back on the reply subject, binary kept binary', async (t) => {
  const prefix = uniquePrefix();
  const w = await startProgram(bin, ['-mode', 'echo'], { NATS_URL: nats.url, WSGW_PREFIX: prefix });
  t.teardown(() => w.stop());
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}/any-route`);
  t.teardown(() => c.close());
  c.send('hello go');
  const text = await c.next();
  t.equal(text.text(), 'hello go');
  t.equal(text.binary, false);
  c.send(Buffer.from([0, 1, 2, 255]));
  const binFrame = await c.next();
  t.equal(binFrame.binary, true, 'Wsgw-Binary honoured both ways');
  t.same([...binFrame.data], [0, 1, 2, 255]);
});

t.test('durable echo (-durable): a frame sent before the Go worker runs waits in the stream and is answered once it starts; each acked', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { durable: true, durableMaxBytes: 64 * 1024 * 1024 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('sent before any worker');
  const w = await startProgram(bin, ['-mode', 'echo', '-durable'], { NATS_URL: nats.url, WSGW_PREFIX: prefix });
  t.teardown(() => w.stop());
  t.equal((await c.next(10_000)).text(), 'sent before any worker', 'taken from the stream and answered on P.out.<Wsgw-Conn>');
  c.send(Buffer.from([7, 0, 255]));
  const bin2 = await c.next(10_000);
  t.equal(bin2.binary, true, 'binary kept binary');
  t.same([...bin2.data], [7, 0, 255], 'byte-exact');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const ci = await eventually(async () => {
    const x = await jsm.consumers.info(inboundStream(prefix), 'wsgw-workers');
    return x.num_ack_pending === 0 && x.num_pending === 0 ? x : null;
  }, 10_000, 'everything acknowledged');
  t.equal(ci.config.ack_policy, 'explicit', 'the same consumer wsgw worker --durable uses: explicit acks');
});

t.test('chat: rooms are topics (subscribe over P.ctl), room and name are metadata (P.ctl meta, Wsgw-Meta), joins, messages and leaves across two gateways; close control', async (t) => {
  const prefix = uniquePrefix();
  // the chat reads the connection directory for frames whose open another worker handled
  const g0 = await startGateway({ natsUrl: nats.url, prefix });
  const g1 = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const w = await startProgram(bin, ['-mode', 'chat'], { NATS_URL: nats.url, WSGW_PREFIX: prefix });
  t.teardown(() => w.stop());
  const ann = await TestClient.connect(`${g0.url}?room=lobby&name=ann`);
  t.teardown(() => ann.close());
  const welcome = await ann.nextJson((v) => v.type === 'welcome');
  t.match(welcome, { room: 'lobby', name: 'ann' });
  // the chat keeps no table: room and name are the connection's metadata, carried by its later events
  const rec = await eventually(() => g0.directory!.get(welcome.id).then((r) => (r?.meta ? r : null)), 5_000, 'record with metadata');
  t.same(rec.meta, { room: 'lobby', name: 'ann' }, 'set by the Go worker with a P.ctl meta command');
  const bob = await TestClient.connect(`${g1.url}?room=lobby&name=bob`);
  t.teardown(() => bob.close());
  await bob.nextJson((v) => v.type === 'welcome');
  t.match(await ann.nextJson((v) => v.type === 'join' && v.name === 'bob'), { room: 'lobby' }, 'ann (gateway 0) sees bob (gateway 1) join');
  bob.send('hello from bob');
  t.match(await ann.nextJson((v) => v.type === 'message'), { name: 'bob', text: 'hello from bob' }, 'broadcast crosses gateways');
  t.match(await bob.nextJson((v) => v.type === 'message'), { name: 'bob' }, 'the sender gets its own message');
  const other = await TestClient.connect(`${g0.url}?room=kitchen&name=cy`);
  t.teardown(() => other.close());
  await other.nextJson((v) => v.type === 'welcome');
  other.send('not for the lobby');
  bob.send('/quit');
  t.match(await bob.waitClosed(), { code: 4000, reason: 'bye' }, '/quit closes through P.ctl');
  t.match(await ann.nextJson((v) => v.type === 'leave'), { name: 'bob' }, 'ann sees bob leave');
  t.notOk(ann.frames.some((f) => f.text().includes('not for the lobby')), 'rooms are separate topics');
  const bad = await TestClient.connect(`${g0.url}?room=no.dots`);
  t.equal((await bad.waitClosed()).code, 4400, 'an unsafe room is refused with a close');
});

t.test('chat with topic history: who joins gets the room\'s last lines, read from P_history as docs/protocol.md says', async (t) => {
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await ensureHistoryStream(nc, createSubjects(prefix), { perTopic: 100, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const w = await startProgram(bin, ['-mode', 'chat'], { NATS_URL: nats.url, WSGW_PREFIX: prefix });
  t.teardown(() => w.stop());
  const ann = await TestClient.connect(`${g.url}?room=tea&name=ann`);
  t.teardown(() => ann.close());
  await ann.nextJson((v) => v.type === 'welcome');
  for (const text of ['one', 'two']) {
    ann.send(text);
    await ann.nextJson((v) => v.type === 'message' && v.text === text);
  }
  const bob = await TestClient.connect(`${g.url}?room=tea&name=bob`);
  t.teardown(() => bob.close());
  await bob.nextJson((v) => v.type === 'welcome');
  const earlier = await bob.nextJson((v) => v.type === 'history');
  t.match(earlier, { room: 'tea', messages: [{ name: 'ann', text: 'one' }, { name: 'ann', text: 'two' }] });
  t.equal(earlier.messages.length, 2, 'only the chat lines');
  t.ok(earlier.messages.every((m: { time: number }) => Math.abs(m.time - Date.now()) < 60_000), 'with the time each was stored');
  t.notOk(ann.frames.some((f) => f.json().type === 'history'), 'the first in the room got none');
});
