import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { startNatsServer } from '../harness/nats-server.js';
import { startBridge, startConnectionService, startGateway, uniquePrefix } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

const python = spawnSync('python3', ['--version']).status === 0;

t.test('the Python standard-library chat app runs through the bridge', { timeout: 60_000 }, async (t) => {
  if (!python) throw new Error('python3 is required for this test: apt-get install -y python3');
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: { token: 'api-token' } });
  t.teardown(() => svc.close());
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
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());

  const ann = await TestClient.connect(`${g.url}?room=lobby&name=ann`);
  t.teardown(() => ann.close());
  t.match(await ann.nextJson((v) => v.type === 'welcome'), { room: 'lobby', name: 'ann' });
  const bob = await TestClient.connect(`${g.url}?room=lobby&name=bob`);
  t.teardown(() => bob.close());
  await bob.nextJson((v) => v.type === 'welcome');
  t.match(await ann.nextJson((v) => v.type === 'join' && v.name === 'bob'), { room: 'lobby' }, 'ann sees bob join');
  bob.send('hello from bob');
  t.match(await ann.nextJson((v) => v.type === 'message'), { name: 'bob', text: 'hello from bob' }, 'ann gets bob’s message');
  await bob.close();
  t.match(await ann.nextJson((v) => v.type === 'leave'), { name: 'bob' }, 'ann sees bob leave');

  const bad = await TestClient.connect(`${g.url}?room=no.dots`);
  t.equal((await bad.waitClosed()).code, 4400, 'the app refused an unsafe room: closed with 4000 + 400');

  const forged = await fetch(`http://127.0.0.1:${port}/events`, { method: 'POST', headers: { 'wsgw-event': 'message', 'wsgw-signature': 'v1=00' }, body: 'x' });
  t.equal(forged.status, 401, 'the app refuses requests without a valid signature');
});
