import t from 'tap';
import WebSocket from 'ws';
import { echoHandler } from '../../src/handlers/echo.js';
import type { Handler } from '../../src/handlers/types.js';
import { startGateway } from '../harness/stack.js';
import { eventually, TestClient } from '../harness/ws-client.js';
import { hs256 } from '../harness/jwt.js';

t.test('max payload: a frame at the limit passes, one byte over closes with 1009', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { maxPayload: 1024 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  c.send(Buffer.alloc(1024, 1));
  t.equal((await c.next()).data.length, 1024);
  c.send(Buffer.alloc(1025, 1));
  t.same(await c.waitClosed(), { code: 1009, reason: 'frame of 1025 bytes exceeds the 1024-byte limit' }, 'closed with 1009 and a clear reason');
  const other = await TestClient.connect(g.url);
  t.teardown(() => other.close());
  other.send('still serving');
  t.equal((await other.next()).text(), 'still serving', 'everyone else keeps being served');
});

t.test('max connections: one more is refused with 503 before the upgrade', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { maxConnections: 2 } });
  t.teardown(() => g.close());
  const a = await TestClient.connect(g.url);
  const b = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await t.rejects(TestClient.connect(g.url), { status: 503, body: /too many connections/ });
});

t.test('custom path, and HTTP on other paths', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { path: '/socket' } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`ws://127.0.0.1:${g.gw.port}/socket/r1`);
  t.teardown(() => c.close());
  c.send('x');
  t.equal((await c.next()).text(), 'x');
  await t.rejects(TestClient.connect(`ws://127.0.0.1:${g.gw.port}/ws`), { status: 404 });
  const health = await fetch(`http://127.0.0.1:${g.gw.port}/healthz`);
  t.match(await health.json(), { ok: true, connections: 1 });
});

t.test('idle timeout closes a silent client that ignores pings', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { idleTimeout: 8 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url, { autoPong: false });
  const started = Date.now();
  const closed = await c.waitClosed(20_000);
  const took = Date.now() - started;
  t.ok(took >= 6_000 && took < 20_000, `closed after ${took} ms`);
  t.ok(closed.code !== 1000, `abnormal close (${closed.code})`);
});

/** A handler that floods its own connection on "flood" and answers "ping" with "pong". */
const FRAME = 64 * 1024;
const FRAMES = 512; // 32 MiB: far beyond loopback socket buffers plus max-backpressure
const flooder: Handler = {
  message(conn, m) {
    const text = m.text();
    if (text === 'flood') for (let i = 0; i < FRAMES; i++) conn.send(Buffer.alloc(FRAME, i % 256));
    if (text === 'ping') conn.send('pong');
  },
};

async function pausedFlood(url: string): Promise<{ client: TestClient; socket: { pause(): void; resume(): void } }> {
  const client = await TestClient.connect(url);
  // the ws client exposes no pause API; its underlying net.Socket does
  const socket = (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  client.send('flood');
  socket.pause();
  return { client, socket };
}

t.test('backpressure policy close: a client that does not read is closed, others unaffected', async (t) => {
  const g = await startGateway({ handler: flooder, flags: { maxBackpressure: 1024 * 1024, backpressurePolicy: 'close' } });
  t.teardown(() => g.close());
  const other = await TestClient.connect(g.url);
  t.teardown(() => other.close());
  const { client, socket } = await pausedFlood(g.url);
  // the server closes its side; the client only learns it once it reads again
  const deadline = Date.now() + 10_000;
  while (g.gw.connections > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(g.gw.connections, 1, 'the slow client was closed by the gateway');
  socket.resume();
  await client.waitClosed(10_000);
  other.send('ping');
  t.equal((await other.next()).text(), 'pong', 'other clients keep being served');
});

t.test('backpressure policy drop: frames past the limit are dropped, the connection stays', async (t) => {
  const g = await startGateway({ handler: flooder, flags: { maxBackpressure: 1024 * 1024, backpressurePolicy: 'drop' } });
  t.teardown(() => g.close());
  const { client, socket } = await pausedFlood(g.url);
  t.teardown(() => client.close());
  // a frame sent while the buffer is still over the limit is itself dropped (that is the policy), so
  // ping until a pong gets through; by then the backlog has drained
  socket.resume();
  const gotPong = () => client.frames.some((f) => !f.binary && f.text() === 'pong');
  const deadline = Date.now() + 20_000;
  while (!gotPong() && Date.now() < deadline) {
    client.send('ping');
    await client.waitFrames(client.frames.length + 1, 500).catch(() => undefined);
  }
  t.ok(gotPong(), 'the connection answers again once the client reads');
  const received = client.frames.filter((f) => f.binary).length;
  t.ok(received < FRAMES, `dropped ${FRAMES - received} of ${FRAMES} frames`);
  t.equal(client.closed, null, 'connection still open');
  const metrics = await (await fetch(`http://127.0.0.1:${g.gw.port}/metrics`)).text();
  const dropped = Number(/^wsgw_backpressure_dropped_total\{[^}]*\} (\d+)$/m.exec(metrics)?.[1]);
  t.ok(dropped > 0, `the drops are counted in /metrics (${dropped})`);
});

t.test('--max-connections-per-ip: one more from that address gets 429 before the upgrade; other addresses, and it again once one closes', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { maxConnectionsPerIp: 2 } });
  t.teardown(() => g.close());
  const a = await TestClient.connect(g.url);
  const b = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await t.rejects(TestClient.connect(g.url), { status: 429, body: /too many connections from this address \(at most 2\)/ }, 'a third from 127.0.0.1');
  const other = await TestClient.connect(g.url, { localAddress: '127.0.0.2' });
  t.teardown(() => other.close());
  other.send('from 127.0.0.2');
  t.equal((await other.next()).text(), 'from 127.0.0.2', 'another address is served');
  await a.close();
  await eventually(() => (g.gw.connections === 2 ? true : null), 5_000, 'the gateway saw the close');
  const again = await TestClient.connect(g.url);
  t.teardown(() => again.close());
  again.send('room again');
  t.equal((await again.next()).text(), 'room again', 'a closed connection frees its place');
});

t.test('--max-connections-per-ip with asynchronous checks: refused and aborted upgrades hold no place', async (t) => {
  const secret = 'per-ip-secret';
  const g = await startGateway({ handler: echoHandler, flags: { maxConnectionsPerIp: 1, jwtSecret: secret } });
  t.teardown(() => g.close());
  for (let i = 0; i < 3; i++) await t.rejects(TestClient.connect(g.url, { headers: { authorization: 'Bearer not.a.jwt' } }), { status: 401 }, `forged token ${i + 1}: 401`);
  // one connection dropped by uWebSockets.js as it opens (connectKept tries again) must not hold a place either
  const c = await TestClient.connectKept(g.url, { headers: { authorization: `Bearer ${await hs256({ sub: 'ann' }, secret)}` } });
  t.teardown(() => c.close());
  c.send('admitted');
  t.equal((await c.next()).text(), 'admitted', 'the refusals held no place: a valid token is admitted');
  await t.rejects(TestClient.connect(g.url, { headers: { authorization: `Bearer ${await hs256({ sub: 'bob' }, secret)}` } }), { status: 429 }, 'a second valid one from the address: 429');
});
