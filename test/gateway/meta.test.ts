import t from 'tap';
import type { Handler } from '../../src/handlers/types.js';
import { applyMetaPatch, META_LIMITS, metaJson, MetaView, parseMetaJson, parseMetaPatch } from '../../src/protocol/meta.js';
import { parseAuthReply, parseControlCommand } from '../../src/protocol/events.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startConnectionService, startGateway, startRemoteStack } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

t.test('patches: validated with a reason, applied, written as ASCII JSON', async (t) => {
  t.same(parseMetaPatch({ user: 'ann', room: null }), { user: 'ann', room: null });
  t.throws(() => parseMetaPatch(['x']), { code: 'WSGW_INVALID_META', message: /JSON object/ });
  t.throws(() => parseMetaPatch({ 'a b': 'x' }), { message: /key "a b" must be 1-64 characters/ });
  t.throws(() => parseMetaPatch({ n: 1 }), { message: /value of "n" must be a string or null/ });
  t.throws(() => parseMetaPatch({ v: 'x'.repeat(META_LIMITS.valueLength + 1) }), { message: /longer than 1024/ });
  t.throws(() => parseControlCommand({ op: 'meta', set: { '': 'x' } }), { code: 'WSGW_INVALID_META' }, 'a control command checks it too');
  t.same(applyMetaPatch({ a: '1', b: '2' }, { b: null, c: '3' }), { a: '1', c: '3' });
  t.equal(applyMetaPatch({ a: '1' }, { a: null }), null, 'nothing left: none');
  const many = Object.fromEntries(Array.from({ length: META_LIMITS.keys }, (_, i) => [`k${i}`, 'v']));
  t.ok(applyMetaPatch(null, many), '32 keys fit');
  t.throws(() => applyMetaPatch(many, { one: 'more' }), { message: /at most 32 metadata keys/ });
  const big = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'x'.repeat(1000)]));
  t.throws(() => applyMetaPatch(null, big), { message: /larger than 4096 bytes/ });
  const json = metaJson({ city: 'Zürich', note: 'a\n"b"' });
  t.match(json, /^[\x20-\x7e]+$/, 'ASCII only: safe in a NATS or HTTP header');
  t.same(parseMetaJson(json), { city: 'Zürich', note: 'a\n"b"' }, 'and reads back');
  t.same(parseMetaJson('{"a":1}'), {}, 'a header that is not an object of strings reads as none');
  t.same(parseMetaJson('nope'), {});
  t.match(parseAuthReply({ ok: true, meta: { user: 'ann', gone: null } }), { ok: true, meta: { user: 'ann' } }, 'an authorizer gives the first metadata');
  t.match(parseAuthReply({ ok: true, meta: { 'a b': 'x' } }), { ok: false, status: 500, message: /malformed authorizer reply: metadata key "a b"/ }, 'invalid: refused (fail closed)');
});

t.test('a consumer\'s view: its own changes shown until events published after them arrive', async (t) => {
  const v = new MetaView();
  t.same(v.see('{"a":"1"}', 1), { a: '1' });
  const asked = v.ask({ user: 'ann' });
  t.same(v.current, { a: '1', user: 'ann' }, 'shown at once');
  t.same(v.see('{"a":"1"}', 2), { a: '1', user: 'ann' }, 'a frame on its way before the gateway answered');
  v.applied(asked, 3);
  t.same(v.see('{"a":"1"}', 3), { a: '1', user: 'ann' }, 'the last frame published without it');
  t.same(v.see('{"a":"2","user":"ann"}', 4), { a: '2', user: 'ann' }, 'later frames: the gateway\'s own, with a change made elsewhere');
  t.same(v.see('{"a":"2"}', 5), { a: '2' }, 'and a removal made elsewhere after it');
  const gone = v.ask({ x: 'y' });
  v.dropped(gone);
  t.same(v.current, { a: '2' }, 'a refused change is taken back');
  v.ask({ z: '1' });
  t.same(v.see('', Infinity), { z: '1' }, 'a close still shows a change the gateway has not answered');

  // many changes and no frame: the answered ones are merged, in order, so the list stays short
  const busy = new MetaView();
  for (let i = 1; i <= 100; i++) busy.applied(busy.ask({ n: String(i), [`k${i % 3}`]: String(i) }), 7);
  t.ok(busy.size <= 17, `at most 17 kept (${busy.size})`);
  t.same(busy.see('', 7), { n: '100', k1: '100', k0: '99', k2: '98' }, 'the same result as applying each in order');
  t.same(busy.see('{"n":"100"}', 8), { n: '100' }, 'and all gone once a later frame arrives');
});

const nats = await startNatsServer();
t.teardown(() => nats.stop());

/**
 * Sets `user` from the query at open; answers each frame with the metadata it sees, and a record
 * lookup's; `forget` removes the key, `bad` tries an invalid key; the close tells the `watcher`.
 */
const handler: Handler = {
  async open(conn) {
    const user = new URLSearchParams(conn.request!.query).get('user');
    if (user === 'watcher') return;
    await conn.setMeta({ user: user ?? 'nobody' });
  },
  async message(conn, msg, ctx) {
    const text = msg.text();
    if (text === 'forget') {
      await conn.setMeta({ user: null, left: 'yes' });
      return conn.send(`now ${JSON.stringify(conn.meta)}`);
    }
    if (text === 'bad') {
      const err = await conn.setMeta({ 'no spaces': 'x' }).catch((e: Error & { code?: string }) => e);
      return conn.send(`refused ${(err as { code?: string }).code}`);
    }
    if (text === 'record') return conn.send(`record ${JSON.stringify((await ctx.lookup(conn.id))?.meta)}`);
    if (text.startsWith('watch ')) return conn.setMeta({ watcher: text.slice(6) });
    conn.send(`${text} from ${conn.meta.user}`);
  },
  close(conn, info, ctx) {
    if (conn.meta.watcher) ctx.send(conn.meta.watcher, `${conn.meta.user} left (${info.code})`);
  },
};

async function exercise(t: Tap.Test, url: string): Promise<void> {
  const watcher = await TestClient.connect(`${url}?user=watcher`);
  t.teardown(() => watcher.close());
  watcher.send('record');
  t.equal((await watcher.next()).text(), 'record undefined', 'a connection without metadata has none in its record');
  const c = await TestClient.connect(`${url}?user=ann`);
  t.teardown(() => c.close());
  // sent at once: frames published before the gateway applied the open's change show it too
  for (let i = 1; i <= 5; i++) c.send(`m${i}`);
  for (let i = 1; i <= 5; i++) t.equal((await c.next()).text(), `m${i} from ann`);
  c.send('record');
  t.equal((await c.next()).text(), 'record {"user":"ann"}', 'in the record');
  c.send('bad');
  t.equal((await c.next()).text(), 'refused WSGW_INVALID_META', 'an invalid key is refused with its code');
  c.send('forget');
  t.equal((await c.next()).text(), 'now {"left":"yes"}', 'a null removes a key; conn.meta shows it at once');
  c.send('after');
  t.equal((await c.next()).text(), 'after from undefined', 'later frames carry it');
  c.send('watch ' + (await idOf(watcher)));
  c.send('set');
  t.equal((await c.next()).text(), 'set from undefined');
  await c.close();
  t.match((await watcher.next()).text(), /^undefined left \(1005\)$/, 'the close sees the metadata as it was (user removed, watcher set)');
}

/** The connection's id, from the record its query names. */
async function idOf(c: TestClient): Promise<string> {
  c.send('id?');
  const text = (await c.next()).text();
  return text.slice(text.indexOf('[') + 1, text.indexOf(']'));
}

const withId: Handler = {
  ...handler,
  message(conn, msg, ctx) {
    if (msg.text() === 'id?') return conn.send(`id [${conn.id}]`);
    return handler.message!(conn, msg, ctx);
  },
};

t.test('local mode: set, read, removed, refused, seen at close', async (t) => {
  const g = await startGateway({ handler: withId });
  t.teardown(() => g.close());
  await exercise(t, g.url);
});

t.test('remote mode: a worker sets metadata, every frame carries it (those already on their way too), so does the close', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, withId);
  await exercise(t, gateway.url);
});

t.test('durable mode: the same through the inbound stream (frames carry real headers there)', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, withId, { durable: true }, { ackWaitMs: 5_000 });
  await exercise(t, gateway.url);
});

t.test('the connection service sets metadata; workers, records and errors follow', async (t) => {
  const seen: string[] = [];
  const { gateway, prefix } = await startRemoteStack(t, nats.url, {
    message(conn, msg) {
      seen.push(`${msg.text()}:${JSON.stringify(conn.meta)}`);
      conn.send('ok');
    },
  });
  const svc = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => svc.close());
  const c = await TestClient.connect(gateway.url);
  t.teardown(() => c.close());
  const [id] = await eventually(() => gateway.directory!.ids().then((x) => (x.length ? x : null)), 5_000, 'record');
  const patch = (body: string, to = id) => fetch(`${svc.url}/connections/${to}/meta`, { method: 'PATCH', body });
  const res = await patch(JSON.stringify({ plan: 'pro', user: 'bob' }));
  t.equal(res.status, 200);
  t.same(await res.json(), { ok: true, meta: { plan: 'pro', user: 'bob' } }, 'answers with the metadata now');
  c.send('one');
  await c.next();
  t.same(seen, ['one:{"plan":"pro","user":"bob"}'], 'the next frame carries it');
  const rec = await eventually(() => fetch(`${svc.url}/connections/${id}`).then((r) => r.json()).then((r) => (r.meta ? r : null)), 5_000, 'record rewritten');
  t.same(rec.meta, { plan: 'pro', user: 'bob' }, 'GET /connections/:id shows it');
  const removed = await patch('{"plan":null}');
  t.same(await removed.json(), { ok: true, meta: { user: 'bob' } });

  const bad = await patch('{"x":5}');
  t.equal(bad.status, 400);
  t.match(await bad.json(), { error: 'invalid_meta', message: /must be a string or null/ }, 'checked before NATS');
  t.equal((await patch('not json')).status, 400);
  const tooMany = await patch(JSON.stringify(Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']))));
  t.equal(tooMany.status, 400, 'past the limit once merged: refused by the gateway');
  t.match(await tooMany.json(), { error: 'invalid_meta', message: /at most 32 metadata keys/ });
  t.equal((await patch('{}', `${id.split('.')[0]}.nosuchconn`)).status, 404, 'unknown id: 404');
  await c.close();
  await eventually(() => gateway.directory!.ids().then((x) => x.length === 0), 5_000, 'record removed');
  t.equal((await patch('{"a":"b"}')).status, 410, 'gone: 410');
});

t.test('the same API on the owning gateway (--api): answered without NATS, the same statuses', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, { message: (conn) => conn.send('ok') }, { api: true });
  const c = await TestClient.connect(gateway.url);
  t.teardown(() => c.close());
  const [id] = await eventually(() => gateway.directory!.ids().then((x) => (x.length ? x : null)), 5_000, 'record');
  const api = gateway.url.replace('ws://', 'http://').replace(/\/ws$/, '');
  const patch = (body: string) => fetch(`${api}/connections/${id}/meta`, { method: 'PATCH', body });
  const ok = await patch('{"user":"dee"}');
  t.equal(ok.status, 200);
  t.same(await ok.json(), { ok: true, meta: { user: 'dee' } });
  const tooMany = await patch(JSON.stringify(Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']))));
  t.equal(tooMany.status, 400);
  t.match(await tooMany.json(), { error: 'invalid_meta', message: /at most 32 metadata keys/ }, 'refused once merged, as through the service');
  await c.close();
  await eventually(() => gateway.directory!.ids().then((x) => x.length === 0), 5_000, 'record removed');
  t.equal((await patch('{"a":"b"}')).status, 410);
});

t.test('shared-state mode: a change made as the connection opens is in the record other processes read', async (t) => {
  const g = await startGateway({ natsUrl: nats.url, handler: withId });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}?user=cy`);
  t.teardown(() => c.close());
  c.send('m');
  t.equal((await c.next()).text(), 'm from cy');
  const [id] = await eventually(() => g.directory!.ids().then((x) => (x.length ? x : null)), 5_000, 'record');
  const rec = await eventually(() => g.directory!.get(id!).then((r) => (r?.meta ? r : null)), 5_000, 'record with metadata');
  t.same(rec.meta, { user: 'cy' }, 'the record written at the end of the open\'s turn has it');
});
