import t from 'tap';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { connect as natsConnect, type Msg } from '@nats-io/transport-node';
import { startNatsServer } from '../harness/nats-server.js';
import { startGateway, uniquePrefix } from '../harness/stack.js';
import { frame, rawHandshake } from '../harness/raw-ws.js';
import { TestClient } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());
const prefix = uniquePrefix();
// a short idle timeout: a connection that stops mid-frame is closed by it (see the unmasked case)
const g = await startGateway({ natsUrl: nats.url, prefix, flags: { maxPayload: 1024, idleTimeout: 8 } });
t.teardown(() => g.close());
const spyNc = await natsConnect({ servers: nats.url });
t.teardown(() => spyNc.close());
const frames: Msg[] = [];
// the spy also answers, as a worker would, so the bystander can prove the gateway still serves
spyNc.subscribe(`${prefix}.in.msg.>`, { callback: (_e, m) => (frames.push(m), m.respond(m.data)) });
await spyNc.flush();
const bystander = await TestClient.connect(g.url);
t.teardown(() => bystander.close());

// uWebSockets.js "fails the WebSocket connection" (RFC 6455 7.1.7) by closing TCP without a close
// frame, so the client sees 1006; where it does send a close frame, the code must be the RFC's.
const FAIL = 1006;
const cases: Array<[string, Buffer, number[]]> = [
  ['invalid UTF-8 in a text frame', frame({ opcode: 0x1, payload: Buffer.from([0xc3, 0x28]) }), [1007, FAIL]],
  ['reserved bits set (RSV2)', frame({ opcode: 0x1, rsv: 0b010, payload: Buffer.from('x') }), [1002, FAIL]],
  ['compressed frame without negotiated permessage-deflate (RSV1)', frame({ opcode: 0x1, rsv: 0b100, payload: Buffer.from('x') }), [1002, FAIL]],
  // uWS does not check the mask bit: it takes the next 4 bytes as the key and waits for the rest of a
  // frame that never comes, until the idle timeout closes it; nothing reaches NATS meanwhile
  ['unmasked client frame', frame({ opcode: 0x1, payload: Buffer.from('x'), mask: false }), [1002, FAIL]],
  ['reserved opcode 0x3', frame({ opcode: 0x3, payload: Buffer.from('x') }), [1002, FAIL]],
  // uWS answers an invalid close code with an empty close frame (1005) and closes
  ['close frame with an invalid code (999)', frame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe7]) }), [1002, 1005, FAIL]],
  ['fragments adding up over twice the payload limit', Buffer.concat([frame({ fin: false, opcode: 0x2, payload: Buffer.alloc(900) }), frame({ fin: false, opcode: 0x0, payload: Buffer.alloc(900) }), frame({ opcode: 0x0, payload: Buffer.alloc(900) })]), [1009, FAIL]],
];

for (const [name, bytes, codes] of cases) {
  t.test(name, async (t) => {
    const raw = await rawHandshake(g.gw.port);
    const before = frames.length;
    raw.socket.write(bytes);
    await raw.ended;
    const code = raw.closeCode();
    t.ok(codes.includes(code ?? FAIL), `connection failed (${code === null ? 'TCP closed, no close frame' : `close ${code}`})`);
    await spyNc.flush();
    t.equal(frames.length, before, 'nothing published for the violating connection');
    bystander.send(`still fine after: ${name}`);
    t.equal((await bystander.next()).text(), `still fine after: ${name}`, 'the gateway keeps serving others');
  });
}

t.test('slowloris: an upgrade request that never finishes is dropped by the server', async (t) => {
  const s = netConnect(g.gw.port, '127.0.0.1');
  await once(s, 'connect');
  s.on('error', () => undefined);
  s.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
  const started = Date.now();
  await once(s, 'close');
  const took = Date.now() - started;
  t.ok(took < 30_000, `dropped after ${took} ms`);
});

t.test('oversized request headers are refused', async (t) => {
  const s = netConnect(g.gw.port, '127.0.0.1');
  await once(s, 'connect');
  s.on('error', () => undefined);
  let answer = '';
  s.on('data', (b: Buffer) => (answer += b.toString()));
  s.write(`GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  // an answer, or the connection dropped: either way, no upgrade
  await Promise.race([once(s, 'close'), new Promise<void>((resolve) => s.on('data', () => answer.includes('\r\n\r\n') && resolve()))]);
  s.destroy();
  t.notMatch(answer, /^HTTP\/1\.1 101/, `no upgrade (${answer.split('\r\n')[0] || 'connection closed'})`);
});
