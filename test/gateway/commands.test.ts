import t from 'tap';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { subscribeCommands, type CommandTarget } from '../../src/gateway/commands.js';
import type { ControlCommand } from '../../src/protocol/events.js';
import { Header } from '../../src/protocol/headers.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { startNatsServer } from '../harness/nats-server.js';
import { quietLog } from '../harness/stack.js';
import { eventually } from '../harness/ws-client.js';

const nats = await startNatsServer({ jetstream: false });
t.teardown(() => nats.stop());

const subjects = createSubjects('cmdtest');
const GW = 'gw1';

/** A connection as the test's target keeps it: what it was sent and told. */
interface FakeConn {
  frames: Array<{ text: string; binary: boolean }>;
  controls: ControlCommand[];
}

/** Command subscriptions for gateway GW over connections `live`, on their own NATS connection, with a requesting connection. */
async function setup(t: { teardown(fn: () => unknown): void }, live: string[], control?: (cmd: ControlCommand) => Promise<void> | undefined) {
  const gwNc = await connect({ servers: nats.url });
  const api = await connect({ servers: nats.url });
  const conns = new Map<string, FakeConn>(live.map((token) => [token, { frames: [], controls: [] }]));
  const statuses: number[] = [];
  const target: CommandTarget<FakeConn> = {
    connection: (token) => conns.get(token),
    deliver: (c, data, binary) => c.frames.push({ text: new TextDecoder().decode(data), binary }),
    control: (c, cmd) => (c.controls.push(cmd), control?.(cmd)),
    serverStatus: (code) => statuses.push(code),
  };
  const commands = subscribeCommands(gwNc, subjects, GW, target, { maxConnections: 100, log: quietLog });
  await gwNc.flush();
  t.teardown(async () => {
    commands.unsubscribe();
    await gwNc.close();
    await api.close();
  });
  return { gwNc, api, conns, statuses };
}

t.test('a frame on P.out reaches its connection, text or binary, and is answered ok', async (t) => {
  const { api, conns } = await setup(t, ['a1', 'b2']);
  const text = await api.request(subjects.out(`${GW}.a1`), 'hello', { timeout: 2_000 });
  t.same(text.json(), { ok: true });
  const h = natsHeaders();
  h.set(Header.Binary, '1');
  const bin = await api.request(subjects.out(`${GW}.b2`), new Uint8Array([1, 2, 3]), { timeout: 2_000, headers: h });
  t.same(bin.json(), { ok: true });
  t.same(conns.get('a1')!.frames, [{ text: 'hello', binary: false }]);
  t.same(conns.get('b2')!.frames, [{ text: '\x01\x02\x03', binary: true }]);
  // a frame without a reply subject (a worker's reply) is delivered and answered with nothing
  api.publish(subjects.out(`${GW}.a1`), 'again');
  await api.flush();
  await eventually(() => conns.get('a1')!.frames.length === 2 || undefined, 5_000, 'the second frame');
  t.equal(conns.get('a1')!.frames[1]!.text, 'again');
});

t.test('a frame or control for a connection that is not live is answered gone', async (t) => {
  const { api, conns } = await setup(t, ['a1']);
  t.same((await api.request(subjects.out(`${GW}.zz`), 'x', { timeout: 2_000 })).json(), { ok: false, error: 'gone' });
  t.same((await api.request(subjects.ctl(`${GW}.zz`), JSON.stringify({ op: 'close' }), { timeout: 2_000 })).json(), { ok: false, error: 'gone' });
  t.same(conns.get('a1')!.frames, [], 'nothing reached another connection');
});

t.test('controls are applied and answered ok; a subscribe is answered only once it completed', async (t) => {
  let finish!: () => void;
  const pending = new Promise<void>((r) => (finish = r));
  const { gwNc, api, conns } = await setup(t, ['a1'], (cmd) => (cmd.op === 'subscribe' ? pending : undefined));
  const close = await api.request(subjects.ctl(`${GW}.a1`), JSON.stringify({ op: 'close', code: 4001, reason: 'bye' }), { timeout: 2_000 });
  t.same(close.json(), { ok: true });
  let answered = false;
  const sub = api.request(subjects.ctl(`${GW}.a1`), JSON.stringify({ op: 'subscribe', topic: 'news' }), { timeout: 2_000 }).then((m) => ((answered = true), m));
  await eventually(() => conns.get('a1')!.controls.length === 2 || undefined, 5_000, 'the subscribe');
  // an answer written by now would have reached the server before gwNc's PONG, and api before its own
  await gwNc.flush();
  await api.flush();
  t.notOk(answered, 'not answered before the subscribe completed');
  finish();
  t.same((await sub).json(), { ok: true });
  t.same(conns.get('a1')!.controls, [
    { op: 'close', code: 4001, reason: 'bye' },
    { op: 'subscribe', topic: 'news' },
  ]);
});

t.test('an invalid control is answered invalid, with what was wrong, and applied to nothing', async (t) => {
  const { api, conns } = await setup(t, ['a1']);
  for (const body of ['not json', JSON.stringify({ op: 'explode' }), JSON.stringify({ op: 'subscribe', topic: 'bad topic' })]) {
    const answer = (await api.request(subjects.ctl(`${GW}.a1`), body, { timeout: 2_000 })).json<{ ok: boolean; error: string; message: string }>();
    t.equal(answer.ok, false, body);
    t.equal(answer.error, 'invalid', body);
    t.type(answer.message, 'string');
    t.ok(answer.message.length > 0, `a message says what was wrong: ${answer.message}`);
  }
  t.same(conns.get('a1')!.controls, []);
});

t.test("a frame published with a connection's reply subject that reaches no worker comes back as a 503 status, not a frame", async (t) => {
  const { gwNc, conns, statuses } = await setup(t, ['a1']);
  // what the gateway does for every inbound frame: publish with P.out.<id> as the reply subject
  gwNc.publish(subjects.inMsg('nobody'), 'lost', { reply: subjects.out(`${GW}.a1`) });
  await eventually(() => statuses.length === 1 || undefined, 5_000, 'the 503 status');
  t.same(statuses, [503]);
  t.same(conns.get('a1')!.frames, [], 'the status was not delivered to the client');
});
