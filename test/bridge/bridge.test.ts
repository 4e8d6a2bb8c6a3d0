import t from 'tap';
import { connect } from '@nats-io/transport-node';
import type { ServerResponse } from 'node:http';
import { verify } from '../../src/bridge/signature.js';
import { connectionsBucket } from '../../src/protocol/subjects.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startBridge, startGateway, uniquePrefix } from '../harness/stack.js';
import { startTestApp, type AppHandler, type AppRequest } from '../harness/http-app.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());
const SECRET = 'bridge-secret';

function headersOf(r: AppRequest): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v]));
}

/** Answers messages with "echo: <text>" (binary frames echoed as octet-stream), opens/closes with 204. */
const echoApp: AppHandler = (r, res) => {
  if (r.event !== 'message') return void res.writeHead(204).end();
  if (r.headers['wsgw-binary'] === '1') return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(r.body);
  const text = r.body.toString();
  if (text === 'join news') return void res.writeHead(204, { 'wsgw-subscribe': 'news' }).end();
  if (text === 'quit') return void res.writeHead(200, { 'wsgw-close': '4321', 'wsgw-close-reason': 'see you' }).end('bye');
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo: ${text}`);
};

async function stack(t: Tap.Test, handler: AppHandler, bridgeFlags: Record<string, unknown> = {}, gatewayFlags: Record<string, unknown> = {}) {
  const prefix = uniquePrefix();
  const app = await startTestApp(handler);
  t.teardown(() => app.stop().catch(() => undefined));
  const b = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { secret: SECRET, ...bridgeFlags } });
  t.teardown(() => b.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: gatewayFlags });
  t.teardown(() => g.close());
  return { prefix, app, b, g };
}

t.test('round trip: text, binary, subscribe and close through headers; every request signed', async (t) => {
  const { app, g, prefix } = await stack(t, echoApp);
  const c = await TestClient.connect(`${g.url}/chat`);
  t.teardown(() => c.close());
  c.send('hello');
  t.equal((await c.next()).text(), 'echo: hello');
  const bytes = Buffer.from([0, 1, 2, 255]);
  c.send(bytes, true);
  const bin = await c.next();
  t.equal(bin.binary, true);
  t.same([...bin.data], [...bytes], 'binary byte-exact both ways');

  c.send('join news');
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await eventually(() => app.requests.some((r) => r.body.toString() === 'join news') && g.directory!.ids().then(async (ids) => (await g.directory!.get(ids[0]!))?.topics.includes('news')), 5_000, 'subscribed');
  nc.publish(`${prefix}.topic.news`, 'headline');
  t.equal((await c.next()).text(), 'headline', 'subscribed through the Wsgw-Subscribe answer header');

  c.send('quit');
  t.equal((await c.next()).text(), 'bye', 'the answer body arrives before the close');
  t.same(await c.waitClosed(), { code: 4321, reason: 'see you' }, 'closed through Wsgw-Close');

  await eventually(() => app.requests.some((r) => r.event === 'close'), 5_000, 'close event posted');
  const kinds = app.requests.map((r) => r.event);
  t.equal(kinds[0], 'open');
  t.equal(kinds.at(-1), 'close');
  const msg = app.requests.find((r) => r.event === 'message')!;
  t.match(headersOf(msg), { 'wsgw-route': 'chat', 'wsgw-binary': '0', 'wsgw-seq': '1', 'content-type': 'text/plain; charset=utf-8' });
  for (const r of app.requests) t.ok(verify(SECRET, String(r.headers['wsgw-signature']), headersOf(r), r.body), `${r.event} request signature verifies`);
  const forged = { ...headersOf(msg), 'wsgw-conn': 'gw.other' };
  t.notOk(verify(SECRET, String(msg.headers['wsgw-signature']), forged, msg.body), 'a changed header breaks the signature');
  t.notOk(verify(SECRET, String(msg.headers['wsgw-signature']), headersOf(msg), Buffer.from('tampered')), 'a changed body breaks the signature');
});

t.test('authorize through the bridge: 403 before the upgrade, or accepted with identity, topics and a first frame', async (t) => {
  const handler: AppHandler = (r, res) => {
    if (r.event === 'open') {
      const open = JSON.parse(r.body.toString());
      if (r.headers['wsgw-authorize'] !== '1') return void res.writeHead(500).end('open must come as an authorization');
      if (open.headers.authorization !== 'Bearer good') return void res.writeHead(403).end('not you');
      return void res.writeHead(200, { 'wsgw-identity': JSON.stringify({ sub: 'ann' }), 'wsgw-subscribe': 'welcome-room' }).end('welcome ann');
    }
    return echoApp(r, res);
  };
  const { g, app, prefix } = await stack(t, handler, {}, { authorize: true });
  // uWebSockets.js 3.0.6 now and then drops a gateway's first asynchronously upgraded connection
  // (docs/reliability.md, Known limits): a warm-up connection takes that upgrade, and is gone with its
  // record before the test proper
  const warm = await TestClient.connect(g.url, { headers: { authorization: 'Bearer good' } });
  await warm.close();
  await eventually(() => g.directory!.ids().then((x) => (x.length === 0 && g.gw.connections === 0 ? true : null)), 5_000, 'warm-up gone');
  const denied = await TestClient.connect(g.url, { headers: { authorization: 'Bearer bad' } }).catch((e) => e);
  t.equal(denied.status, 403, 'refused with the application’s status before the upgrade');
  t.match(denied.body, /not you/);
  t.equal(g.gw.connections, 0);
  t.same(await g.directory!.ids(), [], 'no KV record for a refused upgrade');

  // every write to a record of this bucket, as published (a KV watcher can miss a value its key's
  // next write replaced before delivery)
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const writes: string[] = [];
  const keyAt = `$KV.${connectionsBucket(prefix)}.`;
  nc.subscribe(`${keyAt}>`, { callback: (_err, m) => void writes.push(m.subject.slice(keyAt.length)) });
  await nc.flush();
  // kept: the drop can hit a later asynchronous upgrade too; a dropped try is a connection of its own
  const c = await TestClient.connectKept(g.url, { headers: { authorization: 'Bearer good' } });
  t.teardown(() => c.close());
  t.equal((await c.next()).text(), 'welcome ann', 'the answer body is the first frame');
  const [id] = await eventually(() => g.directory!.ids().then((x) => (x.length === 1 ? x : null)), 5_000, 'record');
  const rec = await g.directory!.get(id!);
  t.same(rec?.identity, { sub: 'ann' }, 'identity from Wsgw-Identity');
  t.same(rec?.topics, ['welcome-room'], 'topics from Wsgw-Subscribe');
  // every write of the record, up to the one read above (the watcher started before the connection)
  await nc.flush();
  t.same(writes.filter((k) => k === id), [id], 'one record write at open, its granted topics in it (no write per topic)');
  t.notOk(JSON.stringify(rec).includes('Bearer'), 'the credential is not stored');
  c.send('after auth');
  t.equal((await c.next()).text(), 'echo: after auth');
  const opens = app.requests.filter((r) => r.event === 'open').map((r) => r.conn);
  t.ok(opens.length >= 3, 'an open per attempt (the warm-up, the refused, the accepted)');
  t.equal(new Set(opens).size, opens.length, 'none repeated after the upgrade');
  t.equal(opens.filter((conn) => conn === id).length, 1, 'the accepted connection was authorized once');
});

t.test('the app answers 500 then 200: the retry succeeds and order is kept', async (t) => {
  let failed = false;
  const { g } = await stack(t, (r, res) => {
    if (r.event === 'message' && r.body.toString() === '2' && !failed) {
      failed = true;
      return void res.writeHead(500).end();
    }
    echoApp(r, res);
  });
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  for (let i = 1; i <= 5; i++) c.send(String(i));
  const frames = await c.waitFrames(5, 10_000);
  t.same(frames.map((f) => f.text()), ['echo: 1', 'echo: 2', 'echo: 3', 'echo: 4', 'echo: 5']);
  t.ok(failed, 'the 500 happened');
});

t.test('the app is down: the bridge stays up, the client gets an error frame, and it recovers', async (t) => {
  const { g, app, b } = await stack(t, echoApp, { bridgeRetries: 1, bridgeErrorFrame: true });
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('first');
  t.equal((await c.next()).text(), 'echo: first');
  await app.stop();
  c.send('while down');
  const err = (await c.next(10_000)).json();
  t.match(err, { error: 'bridge_unavailable' }, 'told visibly');
  t.ok(b.bridge.stats.givenUp >= 1, 'counted as given up');
  await app.start();
  c.send('back');
  t.equal((await c.next(10_000)).text(), 'echo: back', 'works again once the app returns');
  t.equal(c.closed, null, 'the client stayed connected throughout');
});

t.test('the app is slower than the timeout: given up without blocking other connections', async (t) => {
  const slow = new Set<string>();
  const { g } = await stack(
    t,
    async (r, res: ServerResponse) => {
      if (r.event === 'message' && r.body.toString() === 'slow') {
        slow.add(r.conn);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        if (!res.destroyed) res.writeHead(200).end('too late');
        return;
      }
      echoApp(r, res);
    },
    { bridgeTimeout: 300, bridgeRetries: 1, bridgeErrorFrame: true },
  );
  const stuck = await TestClient.connect(g.url);
  const other = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([stuck.close(), other.close()]));
  stuck.send('slow');
  other.send('quick');
  t.equal((await other.next(2_000)).text(), 'echo: quick', 'another connection is served meanwhile');
  t.match((await stuck.next(5_000)).json(), { error: 'bridge_unavailable' }, 'the slow event is given up visibly');
  t.equal(slow.size, 1);
});

t.test('metadata: Wsgw-Set-Meta on an answer, Wsgw-Meta (signed) on every later request, from the authorization on too', async (t) => {
  const handler: AppHandler = (r, res) => {
    if (r.event === 'open') {
      const meta = { 'wsgw-set-meta-user': 'ann', 'wsgw-set-meta-plan': 'pro' };
      return void res.writeHead(r.headers['wsgw-authorize'] === '1' ? 200 : 204, meta).end();
    }
    if (r.event !== 'message') return void res.writeHead(204).end();
    const text = r.body.toString();
    if (text === 'downgrade') return void res.writeHead(204, { 'wsgw-set-meta-plan': '' }).end();
    if (text === 'too long') return void res.writeHead(204, { 'wsgw-set-meta-x': 'y'.repeat(2000) }).end();
    res.writeHead(200).end(`${text} ${r.headers['wsgw-meta'] ?? 'none'}`);
  };
  const { app, g } = await stack(t, handler);
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  // sent at once: frames the gateway published before it applied the open's answer show it too
  for (let i = 1; i <= 3; i++) c.send(`m${i}`);
  for (let i = 1; i <= 3; i++) t.equal((await c.next()).text(), `m${i} {"user":"ann","plan":"pro"}`);
  const [id] = await g.directory!.ids();
  t.same((await eventually(() => g.directory!.get(id!).then((r) => (r?.meta ? r : null)), 5_000, 'record')).meta, { user: 'ann', plan: 'pro' }, 'in the record');
  c.send('downgrade');
  c.send('after');
  t.equal((await c.next()).text(), 'after {"user":"ann"}', 'an empty value removes a key');
  c.send('too long');
  c.send('still');
  t.equal((await c.next()).text(), 'still {"user":"ann"}', 'a value past the limit is ignored (logged); the connection is still served');
  await c.close();
  const close = await eventually(() => app.requests.find((r) => r.event === 'close'), 5_000, 'close posted');
  t.equal(close.headers['wsgw-meta'], '{"user":"ann"}', 'the close request carries it');
  t.equal(app.requests.find((r) => r.event === 'open')!.headers['wsgw-meta'], undefined, 'the open had none');
  for (const r of app.requests) t.ok(verify(SECRET, String(r.headers['wsgw-signature']), headersOf(r), r.body), `${r.event} request signature verifies`);
  const forged = { ...headersOf(close), 'wsgw-meta': '{"user":"mallory"}' };
  t.notOk(verify(SECRET, String(close.headers['wsgw-signature']), forged, close.body), 'a changed Wsgw-Meta breaks the signature');

  // with --authorize, the authorization's answer gives the connection its first metadata
  const auth = await stack(t, handler, {}, { authorize: true });
  // the uWebSockets.js first-asynchronous-upgrade quirk (docs/reliability.md): connectKept reconnects
  const a = await TestClient.connectKept(auth.g.url);
  t.teardown(() => a.close());
  a.send('first');
  t.equal((await a.next()).text(), 'first {"user":"ann","plan":"pro"}', 'the first frame carries it');
});

t.test('an answer broadcasts: Wsgw-Publish sends the body to a topic (Wsgw-Publish-Except leaves the sender out)', async (t) => {
  const { g } = await stack(t, (r, res) => {
    if (r.event === 'open') return void res.writeHead(204, { 'wsgw-subscribe': 'room' }).end();
    if (r.event !== 'message') return void res.writeHead(204).end();
    const text = r.body.toString();
    const conn = String(r.headers['wsgw-conn']);
    if (text === 'to all') return void res.writeHead(200, { 'wsgw-publish': 'room' }).end(`all: ${text}`);
    if (text === 'to others') return void res.writeHead(200, { 'wsgw-publish': 'room', 'wsgw-publish-except': conn }).end(`others: ${text}`);
    if (text === 'bad topic') return void res.writeHead(200, { 'wsgw-publish': 'no.dots' }).end('never');
    res.writeHead(200).end(`echo: ${text}`);
  });
  const a = await TestClient.connect(g.url);
  const b = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  // both in the room: an echo comes back once the open's subscription is applied
  await eventually(() => g.directory!.ids().then(async (ids) => ids.length === 2 && (await Promise.all(ids.map((id) => g.directory!.get(id)))).every((r) => r?.topics.includes('room'))), 5_000, 'both subscribed');
  a.send('to all');
  t.equal((await a.next()).text(), 'all: to all', 'the sender is in the room too');
  t.equal((await b.next()).text(), 'all: to all');
  a.send('to others');
  t.equal((await b.next()).text(), 'others: to others');
  a.send('bad topic');
  a.send('after');
  t.equal((await a.next()).text(), 'echo: after', 'left out of its own broadcast; an unsafe topic is dropped (logged), the connection still served');
});
