import t from 'tap';
import WebSocket from 'ws';
import { WsgwClient, type WsgwCloseInfo } from '../../client/wsgw-client.js';
import type { Handler } from '../../src/handlers/types.js';
import { hs256 } from '../harness/jwt.js';
import { startGateway } from '../harness/stack.js';

/** Echoes frames (binary kept binary); `bye` closes with the application's 4000. */
const handler: Handler = {
  message(conn, msg) {
    if (msg.text() === 'bye') return conn.close(4000, 'bye');
    conn.send(msg.data, { binary: msg.binary });
  },
};

/** The next `event` from the client (its first argument), or a rejection at the deadline. */
function next<T = unknown>(c: WsgwClient, event: 'open' | 'message' | 'close', timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const once = (value: unknown) => {
      clearTimeout(timer);
      c.off(event, once);
      resolve(value as T);
    };
    c.on(event, once as never);
  });
}

/** A client whose frames are collected; closed with the test. */
function client(t: Tap.Test, url: string, options: ConstructorParameters<typeof WsgwClient>[1] = {}) {
  const c = new WsgwClient(url, { WebSocket: WebSocket as never, ...options });
  const frames: Array<string | ArrayBuffer> = [];
  c.on('message', (data) => void frames.push(data));
  t.teardown(() => c.close());
  return { c, frames };
}

t.test('frames sent before the connection opens go out in order once it does; binary arrives as an ArrayBuffer', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  const { c, frames } = client(t, g.url);
  t.equal(c.state, 'connecting');
  t.ok(c.send('one') && c.send('two'), 'queued');
  t.equal(c.queued, 2);
  const opened = next(c, 'open');
  await opened;
  t.equal(c.state, 'open');
  c.send(new Uint8Array([7, 8, 9]));
  while (frames.length < 3) await next(c, 'message');
  t.same(frames.slice(0, 2), ['one', 'two'], 'in order');
  t.same([...new Uint8Array(frames[2] as ArrayBuffer)], [7, 8, 9], 'binary as an ArrayBuffer');
  t.equal(c.queued, 0);
});

t.test('an application close (4000) is final: no reconnect, sends refused', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  const { c } = client(t, g.url);
  await next(c, 'open');
  c.send('bye');
  const info = await next<WsgwCloseInfo>(c, 'close');
  t.match(info, { code: 4000, reason: 'bye', reconnecting: false });
  t.equal(c.state, 'closed');
  t.equal(c.send('more'), false);
});

t.test('the gateway asks for a reconnect (4104, maximum age): the client comes back by itself', async (t) => {
  const g = await startGateway({ handler, flags: { maxConnectionAge: 1 } });
  t.teardown(() => g.close());
  const { c, frames } = client(t, g.url, { initialDelay: 50 });
  await next(c, 'open');
  const info = await next<WsgwCloseInfo>(c, 'close', 5_000);
  t.match(info, { code: 4104, reconnecting: true });
  t.ok(info.delay >= 0 && info.delay <= 50, 'a random delay within the first bound');
  t.equal(c.state, 'reconnecting');
  c.send('while away');
  await next(c, 'open');
  while (frames.length < 1) await next(c, 'message');
  t.same(frames, ['while away'], 'a frame sent while away goes out on the new connection');
});

t.test('a token that expires on an open connection (4103): a fresh one is asked for, the client reconnects with it', async (t) => {
  const secret = 'client-test-secret';
  const g = await startGateway({ handler, flags: { jwtSecret: secret } });
  t.teardown(() => g.close());
  let asked = 0;
  const { c, frames } = client(t, g.url, {
    initialDelay: 50,
    token: async () => {
      asked++;
      return hs256({ sub: 'ann' }, secret, '2s');
    },
  });
  // uWebSockets.js may drop a connection as it opens after an asynchronous check (docs/reliability.md): 1006, and the client tries again
  const closes: WsgwCloseInfo[] = [];
  c.on('close', (info) => void closes.push(info));
  await next(c, 'open');
  const before = asked;
  while (!closes.some((x) => x.code === 4103)) await next(c, 'close', 5_000);
  t.match(closes.find((x) => x.code === 4103), { reason: /token expired/, reconnecting: true });
  await next(c, 'open');
  t.ok(asked > before, `the token function was asked again (${asked} times in all)`);
  c.send('still me');
  while (frames.length < 1) await next(c, 'message');
  t.same(frames, ['still me']);
});

t.test('nothing listening: the queue is bounded, and close() stops the attempts', async (t) => {
  const { c } = client(t, 'ws://127.0.0.1:1/ws', { maxQueue: 2, initialDelay: 10 });
  c.on('error', () => undefined);
  t.same([c.send('a'), c.send('b'), c.send('c')], [true, true, false], 'past maxQueue, send says no');
  const info = await next<WsgwCloseInfo>(c, 'close');
  t.match(info, { code: 1006, reconnecting: true }, 'a refused connection is retried');
  c.close();
  t.equal(c.state, 'closed');
  t.equal(c.queued, 0, 'queued frames dropped');
});

t.test('a URL the WebSocket refuses outright: an error, then closed for good', async (t) => {
  const errors: unknown[] = [];
  const c = new WsgwClient('not a url', { WebSocket: WebSocket as never });
  c.on('error', (e) => void errors.push(e));
  const info = await next<WsgwCloseInfo>(c, 'close');
  t.match(info, { code: 1006, reconnecting: false, reason: /Invalid URL/ });
  t.equal(errors.length, 1);
  t.equal(c.state, 'closed');
});

t.test('closed before it connected: no connection is made', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  const c = new WsgwClient(g.url, { WebSocket: WebSocket as never });
  const closed = next<WsgwCloseInfo>(c, 'close');
  c.close();
  t.match(await closed, { code: 1000, reconnecting: false });
  // a client that did connect, opened after it: the gateway's only connection
  const { c: other } = client(t, g.url);
  await next(other, 'open');
  t.equal(g.gw.connections, 1, 'the closed one never connected');
});

t.test('gateways serve the client at /wsgw-client.js', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  const res = await fetch(g.url.replace('ws://', 'http://').replace(/\/ws$/, '/wsgw-client.js'));
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/javascript/);
  t.match(await res.text(), /export class WsgwClient/);
});
