import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog, startBridge, startConnectionService, startGateway, uniquePrefix } from '../harness/stack.js';
import { connect } from '@nats-io/transport-node';
import { ensureHistoryStream } from '../../src/nats/history.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const python = spawnSync('python3', ['--version']).status === 0;

t.test('the Python standard-library chat app runs through the bridge, stateless: two app processes behind two bridges', { timeout: 60_000 }, async (t) => {
  if (!python) throw new Error('python3 is required for this test: apt-get install -y python3');
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  // topic history on: who joins later is given the room's last lines, read over the HTTP API
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await ensureHistoryStream(nc, createSubjects(prefix), { perTopic: 100, ttlS: 600, maxBytes: 8 * 1024 * 1024 }, 1, quietLog);
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { token: 'api-token' } });
  t.teardown(() => svc.close());
  /** One app process and a bridge in front of it (the bridges share the queue group: each event goes to one of them). */
  async function appWithBridge(): Promise<number> {
    const app = spawn('python3', ['services/python-chat/app.py'], {
      env: { ...process.env, PORT: '0', WSGW_API: svc.url, WSGW_API_TOKEN: 'api-token', WSGW_SECRET: 'py-secret' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(async () => {
      if (app.exitCode === null) {
        app.kill();
        await once(app, 'exit');
      }
    });
    const [line] = (await once(app.stdout!, 'data')) as [Buffer];
    const port = JSON.parse(line.toString()).port as number;
    const b = await startBridge({ natsUrl: nats.url, prefix, target: `http://127.0.0.1:${port}/events`, flags: { secret: 'py-secret' } });
    t.teardown(() => b.close());
    return port;
  }
  const port = await appWithBridge();
  await appWithBridge();
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());

  const ann = await TestClient.connect(`${g.url}?room=lobby&name=ann`);
  t.teardown(() => ann.close());
  t.match(await ann.nextJson((v) => v.type === 'welcome'), { room: 'lobby', name: 'ann' });
  const bob = await TestClient.connect(`${g.url}?room=lobby&name=Zo%C3%AB`);
  t.teardown(() => bob.close());
  // sent at once: some frames may be published before the gateway applied the open's metadata
  for (let i = 1; i <= 8; i++) bob.send(`hello ${i}`);
  await bob.nextJson((v) => v.type === 'welcome');
  // bridges run side by side, so across them a message may be announced before the join: read all of ann's frames
  const seen = () => ann.frames.map((f) => f.json() as Record<string, string>).filter((v) => v.from !== undefined && v.name === 'Zoë');
  await eventually(() => seen().filter((v) => v.type === 'message').length >= 8 || null, 10_000, 'eight messages');
  t.ok(seen().some((v) => v.type === 'join'), 'ann sees Zoë join');
  // whichever app process got a message knew who sent it: from the metadata it carried (or the record)
  const texts = seen().filter((v) => v.type === 'message').map((v) => v.text);
  t.same(new Set(texts), new Set(Array.from({ length: 8 }, (_, i) => `hello ${i + 1}`)), 'every message arrived, named after its sender');
  t.equal(ann.frames.filter((f) => (f.json() as { type: string }).type === 'message').length, 8, 'none under another name');
  t.notOk(ann.frames.some((f) => f.json().type === 'history'), 'the first in the room got no history');
  const cy = await TestClient.connect(`${g.url}?room=lobby&name=cy`);
  t.teardown(() => cy.close());
  const earlier = await cy.nextJson((v) => v.type === 'history');
  t.same(new Set(earlier.messages.map((m: { text: string }) => m.text)), new Set(texts), 'who joins later gets the room\'s lines (GET /topics/:topic/history), before the welcome');
  t.ok(earlier.messages.every((m: { name: string }) => m.name === 'Zoë'), 'with their senders');
  await cy.nextJson((v) => v.type === 'welcome');

  await bob.close();
  await eventually(() => seen().some((v) => v.type === 'leave') || null, 5_000, 'ann sees Zoë leave');

  const bad = await TestClient.connect(`${g.url}?room=no.dots`);
  t.equal((await bad.waitClosed()).code, 4400, 'the app refused an unsafe room: closed with 4000 + 400');

  const forged = await fetch(`http://127.0.0.1:${port}/events`, { method: 'POST', headers: { 'wsgw-event': 'message', 'wsgw-signature': 'v1=00' }, body: 'x' });
  t.equal(forged.status, 401, 'the app refuses requests without a valid signature');
});
