import t from 'tap';
import { connect, headers, type Msg } from '@nats-io/transport-node';
import { echoHandler } from '../src/handlers/echo.js';
import type { Handler } from '../src/handlers/types.js';
import { Header } from '../src/protocol/headers.js';
import { isConnectionId } from '../src/protocol/ids.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, startRemoteStack, startWorker, uniquePrefix } from './harness/stack.js';
import { TestClient, eventually } from './harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

/** A plain nats.js core connection: what a worker in any language would use. */
async function rawNats(t: Tap.Test) {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  return nc;
}

/** Records every subject published under `prefix` (the spy for "nothing reached NATS"). */
async function spy(t: Tap.Test, prefix: string) {
  const nc = await rawNats(t);
  const seen: Msg[] = [];
  nc.subscribe(`${prefix}.>`, { callback: (_e, m) => seen.push(m) });
  await nc.flush();
  return seen;
}

t.test('a handler on gateway B sends to a connection held by gateway A', async (t) => {
  const prefix = uniquePrefix();
  const relay: Handler = {
    open(conn) {
      conn.send(JSON.stringify({ id: conn.id }));
    },
    message(_conn, m, ctx) {
      const { to, text } = m.json<{ to: string; text: string }>();
      ctx.send(to, text);
    },
  };
  const a = await startGateway({ natsUrl: nats.url, prefix, handler: relay });
  t.teardown(() => a.close());
  const b = await startGateway({ natsUrl: nats.url, prefix, handler: relay });
  t.teardown(() => b.close());
  const onA = await TestClient.connect(a.url);
  t.teardown(() => onA.close());
  const idA = (await onA.next()).json().id as string;
  t.ok(idA.startsWith(a.gw.id + '.'), 'connection id names its gateway');
  const onB = await TestClient.connect(b.url);
  t.teardown(() => onB.close());
  await onB.next();
  onB.send(JSON.stringify({ to: idA, text: 'from B' }));
  t.equal((await onA.next()).text(), 'from B', 'frame crossed gateways through P.out.<connId>');
});

t.test('topic broadcast reaches clients on two gateways; KV record holds the topic', async (t) => {
  const prefix = uniquePrefix();
  const handler: Handler = {
    async open(conn) {
      await conn.subscribe('news');
      conn.send('subscribed');
    },
  };
  const w = await startWorker({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => w.close());
  const a = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => a.close());
  const b = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => b.close());
  const ca = await TestClient.connect(a.url);
  const cb = await TestClient.connect(b.url);
  t.teardown(() => Promise.all([ca.close(), cb.close()]));
  t.equal((await ca.next()).text(), 'subscribed');
  t.equal((await cb.next()).text(), 'subscribed');
  const nc = await rawNats(t);
  nc.publish(`${prefix}.topic.news`, 'extra! extra!');
  t.equal((await ca.next()).text(), 'extra! extra!', 'gateway A fanned out');
  t.equal((await cb.next()).text(), 'extra! extra!', 'gateway B fanned out');
  const h = headers();
  h.set(Header.Binary, '1');
  nc.publish(`${prefix}.topic.news`, new Uint8Array([1, 2, 3]), { headers: h });
  const bin = await ca.next();
  t.equal(bin.binary, true, 'binary header gives a binary frame');
  t.same([...bin.data], [1, 2, 3]);
  const ids = await a.directory!.ids();
  t.equal(ids.length, 2, 'both connections listed in KV');
  const rec = await a.directory!.get(ids.find((i) => i.startsWith(a.gw.id))!);
  t.same(rec?.topics, ['news'], 'record lists the topic');
});

t.test('KV record carries the metadata while open and is gone after close', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, handler: { open: (c) => c.send(c.id) } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}/chat?room=1&x=y`, { headers: { 'User-Agent': 'wsgw-test/1', Origin: 'http://example.test' } });
  const id = (await c.next()).text();
  const rec = await eventually(() => g.directory!.get(id), 5_000, 'KV record');
  t.match(rec, {
    id,
    gateway: g.gw.id,
    path: '/ws/chat',
    query: 'room=1&x=y',
    headers: { 'user-agent': 'wsgw-test/1', origin: 'http://example.test' },
    remoteAddress: /127\.0\.0\.1/,
    topics: [],
    identity: null,
  });
  t.type(rec.connectedAt, 'number');
  const leases = await g.directory!.leases();
  t.ok(leases.some((l) => l.id === g.gw.id), 'gateway holds a lease');
  await c.close();
  await eventually(async () => (await g.directory!.get(id)) === null, 5_000, 'record removed');
  t.pass('record removed after close');
});

t.test("a connection's record is written once per turn, its open with the topics joined in it, and a closed connection's not again", async (t) => {
  const prefix = uniquePrefix();
  const handler: Handler = {
    async open(conn) {
      if (conn.request.query === 'leave') {
        // joins and closes in the same turn: the record goes, and is not written back
        void conn.subscribe('x');
        conn.close(4000, 'bye');
        return;
      }
      // three joins as it opens: one write of the record, with them
      await Promise.all([conn.subscribe('a'), conn.subscribe('b'), conn.subscribe('c')]);
      conn.send(conn.id);
    },
    async message(conn) {
      // a leave and a join at once: one write with what they add up to
      await Promise.all([conn.unsubscribe('a'), conn.subscribe('d')]);
      conn.send('moved');
    },
  };
  const g = await startGateway({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => g.close());
  const nc = await rawNats(t);
  const writes = new Map<string, string[]>();
  nc.subscribe(`$KV.${prefix}_connections.>`, {
    callback: (_e, m) => {
      const id = m.subject.slice(`$KV.${prefix}_connections.`.length);
      writes.set(id, [...(writes.get(id) ?? []), m.data.length === 0 ? 'removed' : JSON.stringify(m.json<{ topics: string[] }>().topics)]);
    },
  });
  await nc.flush();

  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  const id = (await c.next()).text();
  await eventually(() => (writes.get(id)?.length === 1 ? true : null), 5_000, 'the open record');
  c.send('move');
  t.equal((await c.next()).text(), 'moved');
  await eventually(async () => ((await g.directory!.get(id))?.topics.includes('d') ? true : null), 5_000, 'the record moved');
  await eventually(() => (writes.get(id)?.length === 2 ? true : null), 5_000, 'the second write seen');
  t.same(writes.get(id), ['["a","b","c"]', '["b","c","d"]'], 'the open record with its topics, then one write per turn of changes');

  const leaving = await TestClient.connect(`${g.url}?leave`);
  t.match(await leaving.waitClosed(), { code: 4000 });
  const leftId = await eventually(() => [...writes.keys()].find((k) => k !== id && writes.get(k)!.at(-1) === 'removed'), 5_000, 'the closed connection removed');
  // a later connection's records written: the gateway's turns with the first close are long past
  const later = await TestClient.connect(g.url);
  t.teardown(() => later.close());
  const laterId = (await later.next()).text();
  await eventually(() => (writes.get(laterId)?.length === 1 ? true : null), 5_000, "the later connection's record");
  t.equal(writes.get(leftId)!.at(-1), 'removed', 'the closed connection ends removed, not written back');
  t.equal(await g.directory!.get(leftId), null);
});

t.test('a raw NATS subscriber answering with msg.respond reaches the client', async (t) => {
  const prefix = uniquePrefix();
  const nc = await rawNats(t);
  const seen: Array<Record<string, string | undefined>> = [];
  nc.subscribe(`${prefix}.in.msg.>`, {
    callback: (_e, m) => {
      seen.push({ conn: m.headers?.get(Header.Connection), gw: m.headers?.get(Header.Gateway), seq: m.headers?.get(Header.Seq), bin: m.headers?.get(Header.Binary), subject: m.subject, reply: m.reply });
      m.respond(`you said ${m.string()}`);
    },
  });
  await nc.flush();
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}/orders`);
  t.teardown(() => c.close());
  c.send('buy');
  t.equal((await c.next()).text(), 'you said buy');
  t.equal(seen[0]!.subject, `${prefix}.in.msg.orders`, 'path segment selects the route');
  t.equal(seen[0]!.gw, g.gw.id);
  t.equal(seen[0]!.seq, '1');
  t.equal(seen[0]!.bin, '0');
  t.equal(seen[0]!.reply, `${prefix}.out.${seen[0]!.conn}`, 'reply subject is the connection’s outbound subject');

  // control from any client: close with a code, answered; then "gone"
  const ans = await nc.request(`${prefix}.ctl.${seen[0]!.conn}`, JSON.stringify({ op: 'close', code: 4321, reason: 'bye' }));
  t.same(ans.json(), { ok: true });
  const closed = await c.waitClosed();
  t.same(closed, { code: 4321, reason: 'bye' }, 'client sees the requested close');
  const gone = await nc.request(`${prefix}.out.${seen[0]!.conn}`, 'late');
  t.same(gone.json(), { ok: false, error: 'gone' }, 'a send to a closed connection says gone');
});

t.test('route from a JSON field', async (t) => {
  const prefix = uniquePrefix();
  const nc = await rawNats(t);
  const subjects: string[] = [];
  nc.subscribe(`${prefix}.in.msg.>`, { callback: (_e, m) => (subjects.push(m.subject), m.respond('ok')) });
  await nc.flush();
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { routeField: 'action' } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send(JSON.stringify({ action: 'join', room: 1 }));
  c.send('not json');
  c.send(JSON.stringify({ action: 7 }));
  await c.waitFrames(3);
  t.same(subjects, [`${prefix}.in.msg.join`, `${prefix}.in.msg.default`, `${prefix}.in.msg.default`]);
});

t.test('10,000 frames on one connection through one worker come back in order', async (t) => {
  const { gateway: g } = await startRemoteStack(t, nats.url, echoHandler);
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  const N = 10_000;
  for (let i = 0; i < N; i++) c.send(String(i));
  const frames = await c.waitFrames(N, 30_000);
  const firstWrong = frames.findIndex((f, i) => f.text() !== String(i));
  t.equal(firstWrong, -1, 'every frame in order');
});

t.test('invalid routes and topics are refused before any NATS call', async (t) => {
  const prefix = uniquePrefix();
  const errors: string[] = [];
  const handler: Handler = {
    async message(conn, m, ctx) {
      const topic = m.text();
      for (const attempt of [() => conn.subscribe(topic), () => ctx.publish(topic, 'x'), () => ctx.send(topic, 'x')]) {
        try {
          await attempt();
          errors.push('accepted');
        } catch (err) {
          errors.push((err as { code?: string }).code ?? 'other');
        }
      }
      conn.send('done');
    },
  };
  const w = await startWorker({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => w.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { routeField: 'action' } });
  t.teardown(() => g.close());
  const seen = await spy(t, prefix);

  const badRoutes = ['a.b', 'a*', '>', 'a%20b', '%00', 'x/y', '%C2%A0', 'a'.repeat(200)];
  for (const r of badRoutes) {
    await t.rejects(TestClient.connect(`${g.url}/${r}`), { status: 400 }, `route ${JSON.stringify(r)} refused with 400`);
  }
  await t.rejects(TestClient.connect(`ws://127.0.0.1:${g.gw.port}/elsewhere`), { status: 404 }, 'a path outside /ws is 404');
  t.equal(seen.length, 0, 'no refused upgrade reached NATS');

  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  const bad = ['a.b', '*', '>', 'has space', 'tab\t', 'cr\r\nlf', '', '..', '.lead', 'trail.', 'nbsp\u00a0', 'ls\u2028', '$SYS', '_INBOX.x', 'x'.repeat(1024)];
  for (const topic of bad) {
    c.send(topic);
    t.equal((await c.next()).text(), 'done');
  }
  // `a.b` and `_INBOX.x` are well-formed connection ids (safe subject tokens), so ctx.send accepts them
  const expected = bad.flatMap((s) => ['WSGW_INVALID_TOKEN', 'WSGW_INVALID_TOKEN', isConnectionId(s) ? 'accepted' : 'WSGW_INVALID_TOKEN']);
  t.same(errors, expected, 'every unsafe attempt refused with WSGW_INVALID_TOKEN');
  const unexpected = seen.filter((m) => !/^t[0-9a-f]+\.(in\.(open|msg\.default)|out\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.test(m.subject));
  t.same(unexpected.map((m) => m.subject), [], 'nothing outside the expected subjects was published');

  c.send(JSON.stringify({ action: 'evil.route' }));
  const closed = await c.waitClosed();
  t.equal(closed.code, 1008, 'an unsafe JSON route closes with 1008');
  t.notOk(seen.some((m) => m.subject.includes('evil')), 'the unsafe route never reached NATS');
});

t.test('a worker that never saw the open reads conn.request from the KV directory', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}/late?who=ann`);
  t.teardown(() => c.close());
  await eventually(async () => (await g.directory!.ids()).length === 1, 5_000, 'record written');
  // the worker starts after the open event went by
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: { message: (conn) => conn.send(`${conn.request?.path}?${conn.request?.query}`) } });
  t.teardown(() => w.close());
  c.send('who am I');
  t.equal((await c.next()).text(), '/ws/late?who=ann');
});
