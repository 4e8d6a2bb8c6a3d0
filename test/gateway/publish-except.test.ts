import t from 'tap';
import type { Handler } from '../../src/handlers/types.js';
import { startNatsServer } from '../harness/nats-server.js';
import { startConnectionService, startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

/**
 * Joins `room` at open; a frame is broadcast to the room leaving its sender out, then the sender gets
 * `sent`: if the broadcast reached it, it would come first.
 */
const handler: Handler = {
  async open(conn) {
    await conn.subscribe('room');
  },
  message(conn, msg, ctx) {
    if (msg.text() === 'id?') return conn.send(conn.id);
    ctx.publish('room', `${msg.text()} from ${conn.id.slice(-4)}`, { except: conn.id });
    conn.send('sent');
  },
};

async function joined(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  c.send('id?');
  await c.next();
  return c;
}

t.test('local mode: everyone in the room but the sender', async (t) => {
  const g = await startGateway({ handler });
  t.teardown(() => g.close());
  const [a, b, c] = await Promise.all([joined(g.url), joined(g.url), joined(g.url)]);
  t.teardown(() => Promise.all([a.close(), b.close(), c.close()]));
  a.send('hello');
  t.equal((await a.next()).text(), 'sent', 'the sender is left out');
  t.match((await b.next()).text(), /^hello from /);
  t.match((await c.next()).text(), /^hello from /);
});

t.test('ctx.publish checks except as a connection id', async (t) => {
  const g = await startGateway({
    handler: {
      message(conn, _msg, ctx) {
        try {
          ctx.publish('room', 'x', { except: 'not an id' });
          conn.send('published');
        } catch (err) {
          conn.send((err as { code: string }).code);
        }
      },
    },
  });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('go');
  t.equal((await c.next()).text(), 'WSGW_INVALID_TOKEN');
});

t.test('workers and two gateways: the sender\'s gateway leaves it out, the other delivers to all; the API too', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const w = await startWorker({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => w.close());
  const g0 = await startGateway({ natsUrl: nats.url, prefix });
  const g1 = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => Promise.all([g0.close(), g1.close()]));
  const sender = await TestClient.connect(g0.url);
  const near = await joined(g0.url);
  const far = await joined(g1.url);
  t.teardown(() => Promise.all([sender.close(), near.close(), far.close()]));
  sender.send('id?');
  const senderId = (await sender.next()).text();
  sender.send('hi');
  t.equal((await sender.next()).text(), 'sent', 'the sender is left out');
  t.match((await near.next()).text(), /^hi from /, 'its neighbour on the same gateway gets it');
  t.match((await far.next()).text(), /^hi from /, 'and a subscriber on the other gateway');

  const svc = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => svc.close());
  const res = await fetch(`${svc.url}/topics/room/messages?except=${senderId}`, { method: 'POST', body: 'from the API' });
  t.equal(res.status, 202);
  t.equal((await near.next()).text(), 'from the API');
  t.equal((await far.next()).text(), 'from the API');
  // a direct send after the broadcast: the sender's next frame, since the broadcast left it out
  await fetch(`${svc.url}/connections/${senderId}/messages`, { method: 'POST', body: 'direct' });
  t.equal((await sender.next()).text(), 'direct', 'left out by the API\'s except too');
  const bad = await fetch(`${svc.url}/topics/room/messages?except=nope`, { method: 'POST', body: 'x' });
  t.equal(bad.status, 400, 'a malformed except is refused before NATS');
});
