import t from 'tap';
import { echoHandler } from '../src/handlers/echo.js';
import type { Handler } from '../src/handlers/types.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, startRemoteStack } from './harness/stack.js';
import { TestClient } from './harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

async function checkEcho(t: Tap.Test, url: string) {
  const c = await TestClient.connect(url);
  t.teardown(() => c.close());
  c.send('hello');
  const f1 = await c.next();
  t.equal(f1.text(), 'hello');
  t.equal(f1.binary, false, 'text stays text');
  const bytes = Buffer.from([0, 1, 2, 253, 254, 255, 0xc3, 0x28]);
  c.send(bytes, true);
  const f2 = await c.next();
  t.equal(f2.binary, true, 'binary stays binary');
  t.same([...f2.data], [...bytes], 'binary frame comes back byte-exact');
}

type Mode = 'local' | 'shared-state' | 'remote-handler';

/** A gateway running `handler` in `mode` (remote-handler: with a worker), torn down with the test; its WebSocket URL. */
async function gatewayIn(t: Tap.Test, mode: Mode, handler: Handler): Promise<string> {
  if (mode === 'remote-handler') return (await startRemoteStack(t, nats.url, handler)).gateway.url;
  const g = await startGateway({ natsUrl: mode === 'local' ? undefined : nats.url, handler });
  t.teardown(() => g.close());
  return g.url;
}

for (const [mode, name] of [
  ['local', 'local mode echo'],
  ['shared-state', 'shared-state mode (gateway --handler) echo'],
  ['remote-handler', 'remote-handler mode (gateway + worker) echo'],
] as const) {
  t.test(name, async (t) => checkEcho(t, await gatewayIn(t, mode, echoHandler)));
}

/**
 * Replies from one scratch buffer, cleared right after each send: a handler may reuse bytes it sent.
 * A Node Buffer too, whose `slice()` is a view, not a copy.
 */
function scratchHandler(scratch: Uint8Array): Handler {
  return {
    message(conn, message) {
      scratch.set(message.data.subarray(0, 4));
      conn.send(scratch);
      scratch.fill(0);
    },
  };
}

async function checkScratch(t: Tap.Test, url: string) {
  const c = await TestClient.connect(url);
  t.teardown(() => c.close());
  const sent = ['aaaa', 'bbbb', 'cccc', 'dddd'];
  // several frames in one turn: their replies are written together, after every send of the turn
  for (const s of sent) c.send(Buffer.from(s), true);
  for (const s of sent) t.equal((await c.next()).text(), s, `reply ${s} is what was sent, not the cleared buffer`);
}

t.test('a handler that reuses the bytes it sent: every mode sends what it was given', async (t) => {
  for (const mode of ['local', 'shared-state', 'remote-handler'] as const) {
    for (const [kind, scratch] of [
      ['Uint8Array', new Uint8Array(4)],
      ['Buffer', Buffer.alloc(4)],
    ] as const) {
      t.test(`${mode}, ${kind}`, async (t) => checkScratch(t, await gatewayIn(t, mode, scratchHandler(scratch))));
    }
  }
});
