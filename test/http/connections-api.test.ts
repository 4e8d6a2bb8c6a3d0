import t from 'tap';
import { connect, type Msg } from '@nats-io/transport-node';
import { connectAs } from '../harness/jwt.js';
import { startNatsServer } from '../harness/nats-server.js';
import { openDirectory, startConnectionService, startGateway, testRecord, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

async function api(base: string, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { method, body, headers });
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** The seed's scenario: `wsgw connections -p 8004`, gateways on two ports, a client on each. */
async function seed(t: Tap.Test, flags: Record<string, unknown> = {}) {
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags });
  t.teardown(() => svc.close());
  const g0 = await startGateway({ natsUrl: nats.url, prefix, id: 'gw0' });
  const g1 = await startGateway({ natsUrl: nats.url, prefix, id: 'gw1' });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const c0 = await TestClient.connect(`${g0.url}/chat?x=1`);
  const c1 = await TestClient.connect(g1.url);
  t.teardown(() => Promise.all([c0.close(), c1.close()]));
  const spyNc = await connect({ servers: nats.url });
  t.teardown(() => spyNc.close());
  const spy: Msg[] = [];
  spyNc.subscribe(`${prefix}.>`, { callback: (_e, m) => spy.push(m) });
  await spyNc.flush();
  return { prefix, svc, g0, g1, c0, c1, spy, spyNc };
}

t.test('the seed scenario through the connection service', async (t) => {
  const { svc, c0, c1, g0 } = await seed(t);
  const list = await eventually(async () => {
    const r = await api(svc.url, 'GET', '/connections');
    return r.json.connections.length === 2 ? r : null;
  }, 5_000, 'both connections listed');
  t.same(list.json.connections.map((c: any) => c.gateway).sort(), ['gw0', 'gw1'], 'lists both with their gateways');
  t.equal(list.json.next, null);
  const id0 = list.json.connections.find((c: any) => c.gateway === 'gw0').id;
  const id1 = list.json.connections.find((c: any) => c.gateway === 'gw1').id;

  const one = await api(svc.url, 'GET', `/connections/${id0}`);
  t.equal(one.status, 200);
  t.match(one.json, { id: id0, gateway: 'gw0', path: '/ws/chat', query: 'x=1', topics: [] });
  t.same((await api(svc.url, 'GET', '/connections?gateway=gw1')).json.connections.map((c: any) => c.id), [id1], 'filter by gateway');

  t.same(await api(svc.url, 'POST', `/connections/${id0}/messages`, 'hello 0'), { status: 200, json: { ok: true } });
  t.equal((await c0.next()).text(), 'hello 0', 'text send reached the client on gateway 0');
  const bytes = new Uint8Array([0, 255, 1, 254]);
  t.equal((await api(svc.url, 'POST', `/connections/${id1}/messages`, bytes, { 'content-type': 'application/octet-stream' })).status, 200);
  const bin = await c1.next();
  t.equal(bin.binary, true, 'octet-stream sends a binary frame');
  t.same([...bin.data], [...bytes], 'byte-exact');

  t.equal((await api(svc.url, 'PUT', `/connections/${id0}/topics/news`)).status, 204);
  t.equal((await api(svc.url, 'PUT', `/connections/${id1}/topics/news`)).status, 204);
  await eventually(async () => (await api(svc.url, 'GET', '/connections?topic=news')).json.connections.length === 2, 5_000, 'topic filter');
  t.same(await api(svc.url, 'GET', '/topics/news'), { status: 200, json: { topic: 'news', connections: 2 } }, 'how many are in the topic');
  t.same((await api(svc.url, 'GET', '/topics/nobody')).json, { topic: 'nobody', connections: 0 });
  t.same(await api(svc.url, 'POST', '/topics/news/messages', 'breaking'), { status: 202, json: { ok: true } });
  t.equal((await c0.next()).text(), 'breaking');
  t.equal((await c1.next()).text(), 'breaking', 'broadcast reached both gateways');
  t.equal((await api(svc.url, 'DELETE', `/connections/${id1}/topics/news`)).status, 204);
  await api(svc.url, 'POST', '/topics/news/messages', 'only c0');
  t.equal((await c0.next()).text(), 'only c0');

  const gws = await api(svc.url, 'GET', '/gateways');
  t.match(gws.json.gateways, [
    { id: 'gw0', alive: true, connections: 1 },
    { id: 'gw1', alive: true, connections: 1 },
  ]);

  t.equal((await api(svc.url, 'DELETE', `/connections/${id0}?code=4321&reason=bye`)).status, 204);
  t.same(await c0.waitClosed(), { code: 4321, reason: 'bye' }, 'close with code and reason');
  t.match(await api(svc.url, 'POST', `/connections/${id0}/messages`, 'late'), { status: 410, json: { error: 'gone' } }, 'send to a closed connection: 410');
  await eventually(async () => (await api(svc.url, 'GET', `/connections/${id0}`)).status === 410, 5_000, 'GET says gone');
  t.equal((await api(svc.url, 'DELETE', `/connections/${id0}`)).status, 410, 'repeated DELETE: 410, nothing else happens');
  t.equal(g0.gw.connections, 0);
});

t.test('error statuses, with bad input refused before any NATS call', async (t) => {
  const { svc, spy, spyNc, prefix } = await seed(t, { maxPayload: 1024 });
  const before = spy.length;
  for (const [method, path, body] of [
    ['GET', '/connections/not-an-id'],
    ['POST', '/connections/a.b.c/messages', 'x'],
    ['DELETE', '/connections/gw0'],
    ['PUT', '/connections/gw0.abc/topics/bad.topic'],
    ['POST', '/topics/a*b/messages', 'x'],
    ['GET', '/connections?gateway=a.b'],
    ['GET', '/topics/a.b'],
    ['GET', '/connections?limit=0'],
    ['GET', '/connections?cursor=nope'],
    ['DELETE', '/connections/gw0.abc?code=1006'],
  ] as const) {
    const r = await api(svc.url, method, path, body);
    t.equal(r.status, 400, `${method} ${path} -> 400`);
    t.type(r.json.error, 'string');
    t.type(r.json.message, 'string');
  }
  t.equal(spy.filter((m) => !m.subject.startsWith(`${prefix}.in.`)).length, 0, 'no 400 reached NATS');
  t.equal(spy.length, before, 'nothing published at all');
  // the spy's `P.>` subscription would count as a responder for the no-responders case below
  await spyNc.close();

  t.match(await api(svc.url, 'POST', '/connections/gw0.neverexisted/messages', 'x'), { status: 404, json: { error: 'not_found' } }, 'unknown id on a live gateway: 404');
  t.match(await api(svc.url, 'POST', '/connections/nogateway.abc/messages', 'x'), { status: 404 }, 'unknown gateway: 404');
  t.match(await api(svc.url, 'GET', '/connections/gw0.neverexisted'), { status: 404 });
  t.match(await api(svc.url, 'POST', '/connections/gw0.abc/messages', 'x'.repeat(1025)), { status: 413, json: { error: 'payload_too_large' } });
  t.match(await api(svc.url, 'POST', '/topics/news/messages', 'x'.repeat(1025)), { status: 413 });
  t.match(await api(svc.url, 'GET', '/nowhere'), { status: 404, json: { error: 'no_route' } });
  t.match(await api(svc.url, 'GET', '/healthz'), { status: 200, json: { ok: true } });
});

t.test('bearer token', async (t) => {
  const { svc } = await seed(t, { token: 's3cret' });
  t.match(await api(svc.url, 'GET', '/connections'), { status: 401, json: { error: 'unauthorized' } });
  t.match(await api(svc.url, 'GET', '/connections', undefined, { authorization: 'Bearer wrong' }), { status: 401 });
  t.match(await api(svc.url, 'POST', '/topics/x/messages', 'x', { authorization: 'Bearer wrong' }), { status: 401 });
  t.equal((await api(svc.url, 'GET', '/connections', undefined, { authorization: 'Bearer s3cret' })).status, 200);
  t.equal((await api(svc.url, 'GET', '/healthz')).status, 200, 'health needs no token');
});

t.test('pagination with a cursor', async (t) => {
  const { svc } = await seed(t);
  await eventually(async () => (await api(svc.url, 'GET', '/connections')).json.connections.length === 2, 5_000, 'listed');
  const p1 = await api(svc.url, 'GET', '/connections?limit=1');
  t.equal(p1.json.connections.length, 1);
  t.type(p1.json.next, 'string');
  const p2 = await api(svc.url, 'GET', `/connections?limit=1&cursor=${p1.json.next}`);
  t.equal(p2.json.connections.length, 1);
  t.not(p2.json.connections[0].id, p1.json.connections[0].id);
  t.equal(p2.json.next, null);
});

t.test('the same API mounted on a gateway with --api: its own connections without NATS, others over NATS', async (t) => {
  const prefix = uniquePrefix();
  const g = await startGateway({ natsUrl: nats.url, prefix, id: 'gwa', flags: { api: true, token: 'tok' } });
  const other = await startGateway({ natsUrl: nats.url, prefix, id: 'gwb' });
  t.teardown(() => Promise.all([g.close(), other.close()]));
  const c = await TestClient.connect(g.url);
  const far = await TestClient.connect(other.url);
  t.teardown(() => Promise.all([c.close(), far.close()]));
  const spyNc = await connect({ servers: nats.url });
  t.teardown(() => spyNc.close());
  const spied: string[] = [];
  spyNc.subscribe(`${prefix}.>`, { callback: (_e, m) => spied.push(m.subject) });
  await spyNc.flush();
  const base = `http://127.0.0.1:${g.gw.port}`;
  const auth = { authorization: 'Bearer tok' };
  const list = await eventually(async () => {
    const r = await api(base, 'GET', '/connections', undefined, auth);
    return r.json.connections.length === 2 ? r : null;
  }, 5_000, 'both listed on the gateway');
  const id = list.json.connections.find((x: any) => x.gateway === 'gwa').id;
  const farId = list.json.connections.find((x: any) => x.gateway === 'gwb').id;

  t.equal((await api(base, 'POST', `/connections/${id}/messages`, 'via gateway api', auth)).status, 200);
  t.equal((await c.next()).text(), 'via gateway api');
  t.equal((await api(base, 'POST', `/connections/${id}/messages`, new Uint8Array([0, 255]), { ...auth, 'content-type': 'application/octet-stream' })).status, 200);
  const bin = await c.next();
  t.ok(bin.binary, 'binary frame for octet-stream');
  t.same([...bin.data], [0, 255]);
  t.equal((await api(base, 'POST', `/connections/${farId}/messages`, 'to the other gateway', auth)).status, 200);
  t.equal((await far.next()).text(), 'to the other gateway');
  await spyNc.flush();
  t.notOk(spied.some((s) => s.includes('.out.gwa.') || s.includes('.ctl.gwa.')), 'the own connection was served without a NATS request');
  t.ok(spied.some((s) => s.includes('.out.gwb.')), 'the other gateway was reached over NATS');

  t.equal((await api(base, 'PUT', `/connections/${id}/topics/news`, undefined, auth)).status, 204);
  t.equal((await api(base, 'PUT', `/connections/${farId}/topics/news`, undefined, auth)).status, 204);
  t.equal((await api(base, 'POST', '/topics/news/messages', 'both', auth)).status, 202);
  t.equal((await c.next()).text(), 'both');
  t.equal((await far.next()).text(), 'both');
  t.equal((await api(base, 'DELETE', `/connections/${id}/topics/news`, undefined, auth)).status, 204);
  await api(base, 'POST', '/topics/news/messages', 'only far', auth);
  t.equal((await far.next()).text(), 'only far');

  t.equal((await api(base, 'DELETE', `/connections/${id}?code=4321&reason=bye`, undefined, auth)).status, 204);
  t.match(await c.waitClosed(), { code: 4321, reason: 'bye' });
  t.match(await api(base, 'POST', `/connections/${id}/messages`, 'late', auth), { status: 410, json: { error: 'gone' } }, 'own connection gone: 410');
  t.equal((await api(base, 'GET', '/connections')).status, 401);
});

t.test("a user's connections on every gateway: listed, sent to and closed together", async (t) => {
  const prefix = uniquePrefix();
  const secret = 'user-test-secret';
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { maxPayload: 1024 } });
  t.teardown(() => svc.close());
  // one gateway also mounts the API: its own connections are served in process, the other's over NATS
  const g0 = await startGateway({ natsUrl: nats.url, prefix, id: 'gu0', flags: { jwtSecret: secret, api: true } });
  const g1 = await startGateway({ natsUrl: nats.url, prefix, id: 'gu1', flags: { jwtSecret: secret } });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const as = (url: string, sub: string) => connectAs(url, sub, secret);
  // a user id with a character that must be percent-encoded in a path
  const alice = 'auth0|alice';
  const a0 = await as(g0.url, alice);
  const a1 = await as(g1.url, alice);
  const bob = await as(g0.url, 'bob');
  t.teardown(() => Promise.all([a0.close(), a1.close(), bob.close()]));
  const path = `/users/${encodeURIComponent(alice)}`;

  const listed = await eventually(async () => {
    const r = await api(svc.url, 'GET', `/connections?user=${encodeURIComponent(alice)}`);
    return r.json.connections.length === 2 ? r : null;
  }, 5_000, "alice's two connections listed");
  t.same(listed.json.connections.map((c: any) => c.gateway).sort(), ['gu0', 'gu1'], 'one on each gateway');
  t.ok(listed.json.connections.every((c: any) => c.identity.sub === alice), 'only hers');
  t.same((await api(svc.url, 'GET', `/connections?user=${encodeURIComponent(alice)}&gateway=gu1`)).json.connections.map((c: any) => c.gateway), ['gu1'], 'and on one gateway');
  t.same((await api(svc.url, 'GET', '/connections?user=nobody')).json, { connections: [], next: null }, 'a user with no connection');

  t.same(await api(svc.url, 'POST', `${path}/messages`, 'hello alice'), { status: 200, json: { ok: true, connections: 2, sent: 2, gone: 0, failed: 0 } });
  t.equal((await a0.next()).text(), 'hello alice');
  t.equal((await a1.next()).text(), 'hello alice', 'reached her on both gateways');
  const bytes = new Uint8Array([0, 255, 7]);
  t.match(await api(`http://127.0.0.1:${g0.gw.port}`, 'POST', `${path}/messages`, bytes, { 'content-type': 'application/octet-stream' }), { status: 200, json: { sent: 2 } }, 'through the API on a gateway too');
  for (const c of [a0, a1]) {
    const f = await c.next();
    t.ok(f.binary, 'binary for octet-stream');
    t.same([...f.data], [...bytes]);
  }
  t.same(await api(svc.url, 'POST', '/users/nobody/messages', 'x'), { status: 200, json: { ok: true, connections: 0, sent: 0, gone: 0, failed: 0 } }, 'nobody to send to: 200, none sent');

  for (const [method, p, body] of [
    ['POST', '/users/%E0%A4%A/messages', 'x'],
    ['POST', `/users/${'u'.repeat(1025)}/messages`, 'x'],
    ['DELETE', '/users/%FF'],
    ['DELETE', `${path}?code=1006`],
    ['GET', '/connections?user='],
  ] as const) {
    t.match(await api(svc.url, method, p, body), { status: 400, json: { error: p.includes('code=') ? 'invalid_code' : 'invalid_user' } }, `${method} ${p.slice(0, 40)} -> 400`);
  }
  t.match(await api(svc.url, 'POST', `${path}/messages`, 'x'.repeat(1025)), { status: 413 });

  t.same(await api(svc.url, 'DELETE', `${path}?code=4403&reason=signed%20out`), { status: 200, json: { ok: true, connections: 2, closed: 2, gone: 0, failed: 0 } });
  t.match(await a0.waitClosed(), { code: 4403, reason: 'signed out' });
  t.match(await a1.waitClosed(), { code: 4403, reason: 'signed out' });
  await eventually(async () => (await api(svc.url, 'GET', `/connections?user=${encodeURIComponent(alice)}`)).json.connections.length === 0, 5_000, 'her records gone');
  t.match(await api(svc.url, 'POST', '/users/bob/messages', 'still here'), { status: 200, json: { sent: 1 } });
  t.equal((await bob.next()).text(), 'still here', "bob's connection stayed open, and had none of hers");
});

t.test("a user's fan-out counts what was sent, what had gone and what no gateway answered in time", async (t) => {
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { requestTimeout: 300 } });
  t.teardown(() => svc.close());
  const secret = 'fan-out-secret';
  const g = await startGateway({ natsUrl: nats.url, prefix, id: 'gl', flags: { jwtSecret: secret } });
  t.teardown(() => g.close());
  const live = await connectAs(g.url, 'carol', secret);
  t.teardown(() => live.close());
  // two more of carol's records, written as their gateways would: one whose gateway is gone (nothing
  // listens for it), one whose gateway is stuck (it receives and never answers)
  const { nc, dir } = await openDirectory(t, nats.url, prefix);
  const record = (id: string) => testRecord(id, { connectedAt: Date.now(), identity: { sub: 'carol' } });
  dir.put(record('gdead.c1'));
  dir.put(record('gstuck.c2'));
  let stuckGot = 0;
  nc.subscribe(`${prefix}.out.gstuck.*`, { callback: () => stuckGot++ });
  await nc.flush();
  await eventually(async () => (await api(svc.url, 'GET', '/connections?user=carol')).json.connections.length === 3, 5_000, "carol's three listed");

  t.same(await api(svc.url, 'POST', '/users/carol/messages', 'hi carol'), { status: 200, json: { ok: false, connections: 3, sent: 1, gone: 1, failed: 1 } }, 'ok is false: one was not answered');
  t.equal((await live.next()).text(), 'hi carol', 'the live one got it');
  t.equal(stuckGot, 1, 'the stuck gateway was asked');
});
