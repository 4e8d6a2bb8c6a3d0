import t from 'tap';
import { connect } from 'node:net';
import { freePort, freePortPair, spawnWsgw } from '../harness/process.js';
import { TestClient } from '../harness/ws-client.js';

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

t.test('wsgw dev starts the whole cluster, serves through it, and stops everything on Ctrl-C', { timeout: 60_000 }, async (t) => {
  const port = await freePortPair();
  const apiPort = await freePort();
  const dev = spawnWsgw(['dev', '-p', String(port), '--api-port', String(apiPort), '--handler', 'services/examples/chat.js']);
  // like a user's Ctrl-C, so dev stops its children (a SIGKILL would orphan them)
  t.teardown(() => dev.stop('SIGINT'));
  await dev.waitFor((l) => typeof l.raw === 'string' && l.raw.includes('Ctrl-C stops everything'), 20_000);
  t.ok(dev.lines.some((l) => typeof l.raw === 'string' && l.raw.includes(`ws://localhost:${port}/ws`)), 'prints the URLs to try');
  await dev.waitFor((l) => typeof l.raw === 'string' && /^\S*worker\s*\S*\| info worker subscribed/.test(l.raw.replace(/\x1b\[\d+m/g, '')), 20_000);
  for (const p of [port, port + 1]) await dev.waitFor((l) => typeof l.raw === 'string' && l.raw.includes('gateway listening') && l.raw.includes(`port=${p} `), 20_000);
  await dev.waitFor((l) => typeof l.raw === 'string' && l.raw.includes('connection service listening'), 20_000);

  const ann = await TestClient.connect(`ws://127.0.0.1:${port}/ws?room=dev&name=ann`);
  await ann.nextJson((v) => v.type === 'welcome', 10_000);
  const bob = await TestClient.connect(`ws://127.0.0.1:${port + 1}/ws?room=dev&name=bob`);
  await bob.nextJson((v) => v.type === 'welcome', 10_000);
  bob.send('hello across gateways');
  t.match(await ann.nextJson((v) => v.type === 'message', 10_000), { name: 'bob', text: 'hello across gateways' }, 'chat across the two gateways through the worker');
  const list = (await (await fetch(`http://127.0.0.1:${apiPort}/connections`)).json()) as { connections: unknown[] };
  t.equal(list.connections.length, 2, 'the connection service lists both');

  t.equal(await dev.stop('SIGINT'), 0, 'Ctrl-C: exit 0');
  for (const p of [port, port + 1, apiPort]) t.notOk(await isListening(p), `nothing listens on ${p} any more`);
  t.equal((await ann.waitClosed()).code !== undefined, true, 'clients were closed');
});

t.test('wsgw dev refuses port 0', async (t) => {
  const dev = spawnWsgw(['dev', '-p', '0']);
  t.equal(await dev.exited(), 2);
  t.match(dev.stderr, /--port: wsgw dev needs a fixed port/);
});
