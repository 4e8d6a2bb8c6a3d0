import t from 'tap';
import type { Handler } from '../../src/handlers/types.js';
import { asHandler } from '../../src/handlers/load.js';
import { authReplyOf } from '../../src/handlers/runtime.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startGateway, startRemoteStack } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

/**
 * Decides by the query's `key` and the Authorization header; answers each frame with what the
 * connection was given, and `pub` broadcasts to the topic the authorization joined.
 */
const handler: Handler = {
  async authorize(req) {
    const key = new URLSearchParams(req.query).get('key');
    if (key === 'boom') throw new Error('user store down');
    if (key === 'bad') return { ok: true, topics: ['no.dots'] };
    if (key === 'no') return false;
    if (key === 'teapot') return { ok: false, status: 418, message: 'short and stout' };
    if (req.headers.authorization !== 'Bearer good') return { ok: false, status: 401, message: 'who are you' };
    return { ok: true, identity: { sub: 'ann' }, topics: ['news'], meta: { plan: 'pro' }, message: new Uint8Array([1, 2, 3]) };
  },
  message(conn, msg, ctx) {
    if (msg.text() === 'pub') return ctx.publish('news', 'headline');
    conn.send(JSON.stringify({ sub: conn.request?.identity?.sub, plan: conn.meta.plan, authorization: conn.request?.headers.authorization ?? null }));
  },
};

async function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return TestClient.connect(url, { headers }).then(
    () => ({ status: 101, body: 'upgraded' }),
    (err: { status: number; body: string }) => ({ status: err.status, body: err.body }),
  );
}

async function exercise(t: Tap.Test, url: string): Promise<void> {
  t.match(await refused(url), { status: 401, body: /who are you/ }, 'refused with the handler\'s status and message, before the upgrade');
  t.match(await refused(`${url}?key=no`, { authorization: 'Bearer good' }), { status: 403 }, 'false: 403');
  t.match(await refused(`${url}?key=teapot`), { status: 418, body: /short and stout/ });
  t.match(await refused(`${url}?key=boom`), { status: 500, body: /authorizer failed/ }, 'a throw: 500, nothing about the error leaks');
  t.match(await refused(`${url}?key=bad`), { status: 500, body: /malformed authorizer reply: topics/ }, 'a malformed answer: 500 with the reason');
  const c = await TestClient.connectKept(url, { headers: { authorization: 'Bearer good' } });
  t.teardown(() => c.close());
  const first = await c.next();
  t.same([first.binary, [...first.data]], [true, [1, 2, 3]], 'the first frame it gave, bytes as binary');
  c.send('who');
  t.same((await c.next()).json(), { sub: 'ann', plan: 'pro', authorization: null }, 'identity and metadata as given; the credential is not kept');
  c.send('pub');
  t.equal((await c.next()).text(), 'headline', 'subscribed to the topic it gave');
}

t.test('a handler module decides upgrades in-process (local mode, no NATS)', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  await exercise(t, g.url);
});

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('the same module under wsgw worker answers P.auth for gateways started with --authorize', async (t) => {
  const { gateway } = await startRemoteStack(t, nats.url, handler, { authorize: true });
  await exercise(t, gateway.url);
});

t.test('an authorize that never settles refuses with 503 after --request-timeout; others are served meanwhile', async (t) => {
  const g = await startGateway({
    handler: { authorize: (req) => (req.query === 'hang' ? new Promise<boolean>(() => undefined) : true), message: (conn) => conn.send('served') },
    flags: { requestTimeout: 300 },
  });
  t.teardown(() => g.close());
  const started = Date.now();
  const hung = refused(`${g.url}?hang`);
  const c = await TestClient.connectKept(g.url);
  t.teardown(() => c.close());
  c.send('x');
  t.equal((await c.next()).text(), 'served', 'another client is served while one waits');
  t.match(await hung, { status: 503, body: /authorizer unavailable/ });
  t.ok(Date.now() - started >= 290, 'after the timeout');
});

t.test('answers as authorizer replies; a module exporting only authorize loads', async (t) => {
  t.same(authReplyOf(true), { ok: true });
  t.match(authReplyOf(false), { ok: false, status: 403 });
  t.match(authReplyOf({ ok: true, message: 'hi' }), { ok: true, message: 'hi', binary: false });
  t.match(authReplyOf({ ok: false, status: 99 }), { ok: false, status: 403 }, 'a status outside 400-599 refuses with 403');
  t.ok(asHandler({ authorize: () => true }, 'auth.js'), 'an authorizer-only module is a handler');
  t.throws(() => asHandler({ authorize: 'yes' }, 'auth.js'), { message: /"authorize" must be a function/ });
});
