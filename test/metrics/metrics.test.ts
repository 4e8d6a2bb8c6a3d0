import t from 'tap';
import { echoHandler } from '../../src/handlers/echo.js';
import { startNatsServer } from '../harness/nats-server.js';
import { freePort, spawnWsgw } from '../harness/process.js';
import { startConnectionService, startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  t.match(res.headers.get('content-type'), /text\/plain/);
  return res.text();
}
/** The value of one sample line, e.g. `wsgw_opens_total{service="gateway",gateway="g"}`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const lines = text.split('\n').filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '));
  const line = lines.find((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

t.test('gateway metrics on its own port, with bounded labels', async (t) => {
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler: echoHandler });
  t.teardown(() => w.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, flags: { routeField: 'action' } });
  t.teardown(() => g.close());
  const base = `http://127.0.0.1:${g.gw.port}`;
  const c = await TestClient.connect(g.url);
  for (let i = 0; i < 150; i++) c.send(JSON.stringify({ action: `r${i}` }));
  await c.waitFrames(150);
  const other = await TestClient.connect(g.url);
  await other.close();
  const text = await scrape(base);
  t.equal(value(text, 'wsgw_connections'), 1, 'one connection open');
  t.equal(value(text, 'wsgw_opens_total'), 2);
  t.equal(value(text, 'wsgw_closes_total', { code: '1005' }) || value(text, 'wsgw_closes_total', { code: '1000' }), 1, 'the close counted by code');
  t.equal(value(text, 'wsgw_frames_in_total', { route: 'r0' }), 1, 'frames by route');
  t.equal(value(text, 'wsgw_frames_in_total', { route: 'other' }), 50, 'routes past the 100th are counted as other');
  t.equal(value(text, 'wsgw_frames_out_total'), 150);
  t.equal(value(text, 'wsgw_nats_connected'), 1);
  const routeLabels = new Set([...text.matchAll(/wsgw_frames_in_total\{[^}]*route="([^"]+)"/g)].map((m) => m[1]));
  t.ok(routeLabels.size <= 101, `route label values bounded (${routeLabels.size})`);
  t.notMatch(text, new RegExp(`${g.gw.id}\\.[A-Za-z0-9]{16}`), 'no connection id in any label');
  t.match(text, /process_resident_memory_bytes/, 'process metrics too');
  // KV writes are timed once acknowledged: two records written, one removed by now (or about to be)
  const kvText = await eventually(async () => {
    const x = await scrape(base);
    return value(x, 'wsgw_kv_operation_seconds_count', { op: 'delete' }) >= 1 ? x : null;
  }, 5_000, 'the closed connection’s record removal acknowledged');
  t.equal(value(kvText, 'wsgw_kv_operation_seconds_count', { op: 'put' }), 2, 'KV record writes timed');
  t.equal(value(kvText, 'wsgw_kv_operation_seconds_count', { op: 'delete' }), 1, 'KV record removal timed');
  t.ok(value(kvText, 'wsgw_kv_operation_seconds_sum', { op: 'put' }) > 0, 'with their latency');
  const ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  await c.close();
  await g.nc!.close();
  const notReady = await fetch(`${base}/readyz`);
  t.equal(notReady.status, 503, 'not ready once NATS is gone');
  t.match(await notReady.json(), { ready: false });
});

t.test('connection service counts API requests by status', async (t) => {
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => svc.close());
  await fetch(`${svc.url}/connections/gw.none`);
  await fetch(`${svc.url}/connections/bad`);
  await fetch(`${svc.url}/connections`);
  const text = await scrape(svc.url);
  t.equal(value(text, 'wsgw_api_requests_total', { status: '404' }), 1);
  t.equal(value(text, 'wsgw_api_requests_total', { status: '400' }), 1);
  t.equal(value(text, 'wsgw_api_requests_total', { status: '200' }), 1);
  t.equal((await fetch(`${svc.url}/readyz`)).status, 200);
});

t.test('a worker serves its metrics on --metrics-port', async (t) => {
  const prefix = uniquePrefix();
  const port = await freePort();
  const w = spawnWsgw(['worker', '--nats', nats.url, '--prefix', prefix, '--metrics-port', String(port), '--host', '127.0.0.1']);
  t.teardown(() => w.stop());
  await w.waitFor((l) => l.msg === 'worker subscribed');
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('count me');
  await c.next();
  const text = await scrape(`http://127.0.0.1:${port}`);
  t.equal(value(text, 'wsgw_worker_events_total', { kind: 'message' }), 1);
  t.equal(value(text, 'wsgw_worker_events_total', { kind: 'open' }), 1);
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
});

t.test('refused upgrades are counted by status', async (t) => {
  const g = await startGateway({
    handler: { authorize: (req) => new URLSearchParams(req.query).get('key') === 'ok' },
    flags: { origins: 'https://app.example.com', maxConnectionsPerIp: 1 },
  });
  t.teardown(() => g.close());
  const base = `http://127.0.0.1:${g.gw.port}`;
  const origin = { origin: 'https://app.example.com' };
  const status = (url: string, headers: Record<string, string>) => TestClient.connect(url, { headers }).then(
    (c) => (t.teardown(() => c.close()), 101),
    (e: { status: number }) => e.status,
  );
  t.equal(await status(g.url, { origin: 'https://evil.example' }), 403, 'origin refused');
  t.equal(await status(`${g.url}?key=no`, origin), 403, 'the authorizer refused');
  const kept = await TestClient.connectKept(`${g.url}?key=ok`, { headers: origin });
  t.teardown(() => kept.close());
  t.equal(await status(`${g.url}?key=ok`, origin), 429, 'past the per-address limit');
  const text = await scrape(base);
  t.equal(value(text, 'wsgw_upgrades_refused_total', { status: '403' }), 2, 'two 403s');
  t.equal(value(text, 'wsgw_upgrades_refused_total', { status: '429' }), 1, 'one 429');
});
