import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, startBridge, startConnectionService, startGateway, startWorker } from '../harness/stack.js';
import { ensureHistoryStream } from '../../src/nats/history.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { startTestApp } from '../harness/http-app.js';
import { TestClient, eventually } from '../harness/ws-client.js';
import { spawnWsgw } from '../harness/process.js';

const shippedPath = new URL('../../deploy/nats/accounts.conf', import.meta.url);
// the users live in accounts-users.conf, which accounts.conf includes; inlined for the temp config
const shipped = readFileSync(shippedPath, 'utf8').replace('include ./accounts-users.conf', () => readFileSync(new URL('../../deploy/nats/accounts-users.conf', import.meta.url), 'utf8'));
const PASSWORDS = { gateway: 'gw-pass', worker: 'wk-pass', bridge: 'br-pass', connections: 'cs-pass' } as const;
for (const [user, pass] of Object.entries(PASSWORDS)) process.env[`WSGW_${user.toUpperCase()}_PASSWORD`] = pass;

// the shipped file with the listen address and store rewritten for a test server
const nats = await startNatsServer({
  config: shipped
    .replace(/^(host|port|server_name):.*$/gm, '')
    .replace(/^jetstream \{[\s\S]*?\n\}/m, ''),
});
t.teardown(() => nats.stop());
const as = (user: keyof typeof PASSWORDS) => ({ user, pass: PASSWORDS[user] });

/** Resolves with the first server error the client reports (permission violations are asynchronous). */
async function nextServerError(nc: NatsConnection): Promise<string> {
  for await (const s of nc.status()) if (s.type === 'error') return String(s.error?.message ?? s.error);
  return '';
}

t.test('the shipped config keeps every user inside accounts {} (not the CVE-2023-47090 shape)', async (t) => {
  const withoutComments = shipped.replace(/#.*$/gm, '');
  t.notMatch(withoutComments, /^\s*authorization\s*\{/m, 'no top-level authorization {} block');
  t.match(withoutComments, /accounts\s*\{/, 'users are defined in accounts {}');
});

t.test('unauthenticated and wrongly authenticated clients are refused', async (t) => {
  await t.rejects(connect({ servers: nats.url, reconnect: false }), /Authorization Violation/i, 'no credentials');
  await t.rejects(connect({ servers: nats.url, reconnect: false, user: 'worker', pass: 'nope' }), /Authorization Violation/i, 'wrong password');
});

t.test('every service works with its own least-privilege user', async (t) => {
  const prefix = 'wsgw';
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, nats: as('connections') });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, nats: as('gateway') });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`${g.url}?who=ann`);
  t.teardown(() => c.close());
  await eventually(async () => (await g.directory!.ids()).length === 1, 5_000, 'record written by the gateway user');
  // the worker starts after the open: it must read conn.request from KV with its read-only grant
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: { message: (conn, m) => conn.send(`${m.text()} from ${conn.request?.query}`) }, nats: as('worker') });
  t.teardown(() => w.close());
  c.send('hello');
  t.equal((await c.next()).text(), 'hello from who=ann', 'worker answered and read the record');
  const [id] = await g.directory!.ids();
  t.equal((await fetch(`${svc.url}/connections/${id}/messages`, { method: 'POST', body: 'via API' })).status, 200, 'the connection service reaches it');
  t.equal((await c.next()).text(), 'via API');
});

t.test('durable mode with the shipped users: the gateway creates the stream, a durable worker and a durable bridge consume it', async (t) => {
  const prefix = 'wsgw';
  // the shipped server has no limits of its own here: keep the stream's reservation small
  const g = await startGateway({ natsUrl: nats.url, prefix, nats: as('gateway'), flags: { durable: true, durableMaxBytes: 64 * 1024 * 1024 } });
  t.teardown(() => g.close());
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: { message: (conn, m) => conn.send(`worker: ${m.text()}`) }, durable: { ackWaitMs: 5_000 }, nats: as('worker') });
  t.teardown(() => w.close());
  const app = await startTestApp((r, res) => void res.writeHead(204).end());
  t.teardown(() => app.stop().catch(() => undefined));
  const b = await startBridge({ natsUrl: nats.url, prefix, target: app.url, flags: { durable: true }, nats: as('bridge') });
  t.teardown(() => b.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('stored');
  t.equal((await c.next(10_000)).text(), 'worker: stored', 'the durable worker consumed and answered');
  await eventually(() => app.requests.some((r) => r.event === 'message' && r.body.toString() === 'stored'), 10_000, 'the durable bridge posted the frame');
  t.pass('the durable bridge consumed it too (its own consumer, wsgw-bridge)');
  // a restart with other limits: the gateway user may not update streams, so it keeps the current ones
  const again = await startGateway({ natsUrl: nats.url, prefix, nats: as('gateway'), flags: { durable: true, durableMaxBytes: 32 * 1024 * 1024 } });
  t.teardown(() => again.close());
  const c2 = await TestClient.connect(again.url);
  t.teardown(() => c2.close());
  c2.send('still stored');
  t.equal((await c2.next(10_000)).text(), 'worker: still stored', 'a gateway started with other limits still runs, on the stream as it is');
});

t.test('topic history with the shipped users: the connection service creates the stream, a worker and the API read it', async (t) => {
  const prefix = 'wsgw';
  const admin = await connect({ servers: nats.url, ...as('connections') });
  t.teardown(() => admin.close());
  await ensureHistoryStream(admin, createSubjects(prefix), { perTopic: 10, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, nats: as('connections') });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, nats: as('gateway') });
  t.teardown(() => g.close());
  const w = await startWorker({
    natsUrl: nats.url,
    prefix,
    nats: as('worker'),
    handler: { message: async (conn, m, ctx) => conn.send((await ctx.history(m.text())).map((e) => e.text()).join(',')) },
  });
  t.teardown(() => w.close());
  t.equal((await fetch(`${svc.url}/topics/news/messages`, { method: 'POST', body: 'first' })).status, 202);
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  await eventually(async () => {
    c.send('news');
    return (await c.next()).text() === 'first';
  }, 5_000, 'the worker user reads the history');
  const res = await fetch(`${svc.url}/topics/news/history`);
  t.equal(res.status, 200);
  t.same((await res.json()).messages.map((m: { data: string }) => m.data), ['first'], 'the connections user reads it');
  // a gateway started with other limits: its user may not update streams, so it keeps the current ones
  const gnc = await connect({ servers: nats.url, ...as('gateway') });
  t.teardown(() => gnc.close());
  await ensureHistoryStream(gnc, createSubjects(prefix), { perTopic: 20, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  t.pass('a gateway with other limits starts on the stream as it is');
});

t.test('the CLI takes NATS credentials from the environment; a wrong password is retried and named', async (t) => {
  const good = spawnWsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url], { WSGW_NATS_USER: 'gateway', WSGW_NATS_PASSWORD: PASSWORDS.gateway });
  t.teardown(() => good.stop());
  t.ok(await good.waitFor((l) => l.msg === 'gateway listening'), 'gateway user connects and serves');
  const bad = spawnWsgw(['worker', '--nats', nats.url, '--nats-user', 'worker', '--nats-password', 'wrong']);
  t.teardown(() => bad.stop());
  const line = await bad.waitFor((l) => l.msg === 'cannot reach NATS, retrying');
  t.match(line.err.message, /Authorization Violation/i, 'the log says why');
  t.notOk(JSON.stringify(bad.lines).includes('wrong'), 'the password is not logged');
  const w = spawnWsgw(['worker', '--nats', nats.url], { WSGW_NATS_USER: 'worker', WSGW_NATS_PASSWORD: PASSWORDS.worker });
  t.teardown(() => w.stop());
  t.ok(await w.waitFor((l) => l.msg === 'worker subscribed'), 'worker user binds the buckets and subscribes');
});

t.test('a worker cannot delete streams or write the KV bucket; the bridge cannot read it', async (t) => {
  const worker = await connect({ servers: nats.url, ...as('worker') });
  t.teardown(() => worker.close());
  const denied = nextServerError(worker);
  await t.rejects(worker.request('$JS.API.STREAM.DELETE.KV_wsgw_connections', '', { timeout: 2_000 }), 'stream delete request refused');
  t.match(await denied, /Permissions Violation/i, 'the server reports a permissions violation');
  const denied2 = nextServerError(worker);
  worker.publish('$KV.wsgw_connections.gw.x', 'forged record');
  t.match(await denied2, /Permissions Violation for Publish to "\$KV\.wsgw_connections/i, 'KV write refused');

  const bridge = await connect({ servers: nats.url, ...as('bridge') });
  t.teardown(() => bridge.close());
  const denied3 = nextServerError(bridge);
  await t.rejects(bridge.request('$JS.API.STREAM.MSG.GET.KV_wsgw_connections', JSON.stringify({ last_by_subj: '$KV.wsgw_connections.x' }), { timeout: 2_000 }));
  t.match(await denied3, /Permissions Violation/i, 'KV read refused to the bridge');

  const admin = await connect({ servers: nats.url, ...as('gateway') });
  t.teardown(() => admin.close());
  const info = await admin.request('$JS.API.STREAM.INFO.KV_wsgw_connections', '');
  t.match(info.json(), { config: { name: 'KV_wsgw_connections' } }, 'the stream still exists');
});

t.test('the gateway and connection service users may purge closed connections’ delete markers, nothing else', async (t) => {
  const prefix = 'wsgw';
  const flags = { goneRetention: 1, leaseMs: 1_000 };
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags, nats: as('connections') });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags, nats: as('gateway') });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  await eventually(async () => (await g.directory!.ids()).length >= 1, 5_000, 'recorded');
  // the orphan search reads the stream's per-subject counts: allowed to the gateway's user
  t.ok((await g.directory!.recordGateways()).has(g.gw.id), 'the gateway user may search the bucket for gateways with records');
  await c.close();
  const bucket = g.directory!.connections;
  await eventually(async () => (await g.directory!.ids()).length === 0, 5_000, 'record removed');
  await eventually(async () => (await bucket.status()).values === 0, 15_000, 'its delete marker purged with the least-privilege users');
  const gw = await connect({ servers: nats.url, ...as('gateway') });
  t.teardown(() => gw.close());
  const denied = nextServerError(gw);
  await t.rejects(gw.request('$JS.API.STREAM.PURGE.KV_wsgw_gateways', '{}', { timeout: 2_000 }), 'purging another stream is refused');
  t.match(await denied, /Permissions Violation/i);
});
