import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer } from '../harness/nats-server.js';
import { startGateway, uniquePrefix } from '../harness/stack.js';
import { build, have, startProgram } from '../harness/toolchain.js';
import { TestClient } from '../harness/ws-client.js';

// The C worker (services/c-worker) builds against Debian's libnats-dev; test/preflight.mjs installs
// it when it can.
if (!have('cc') || !have('pkg-config')) throw new Error('a C compiler and pkg-config are required: apt-get install -y gcc make pkg-config libnats-dev');

const dir = mkdtempSync(join(tmpdir(), 'wsgw-c-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const bin = join(dir, 'wsgw-c-echo');
build('make', ['-s', '-C', 'services/c-worker', `OUT=${bin}`]);

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('C echo worker: text and binary frames through a gateway, from many clients at once', async (t) => {
  const prefix = uniquePrefix();
  const w = await startProgram(bin, [nats.url, prefix], {});
  t.teardown(() => w.stop());
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(g.url)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  clients.forEach((c, i) => {
    for (let k = 0; k < 20; k++) c.send(`c${i} m${k}`);
  });
  for (const [i, c] of clients.entries()) {
    const frames = await c.waitFrames(20);
    t.same(frames.map((f) => f.text()), Array.from({ length: 20 }, (_, k) => `c${i} m${k}`), `client ${i}: all 20 echoed, in order`);
  }
  clients[0]!.send(Buffer.from([9, 0, 255]));
  const binFrame = (await clients[0]!.waitFrames(21))[20]!;
  t.equal(binFrame.binary, true, 'binary stays binary');
  t.same([...binFrame.data], [9, 0, 255]);
});

t.test('C echo worker refuses an unsafe prefix', async (t) => {
  await t.rejects(startProgram(bin, [nats.url, 'no.dots'], {}, 5_000), /exited 2/);
});
