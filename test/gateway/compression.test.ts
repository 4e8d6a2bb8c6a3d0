import t from 'tap';
import { connect as tcpConnect, type Socket } from 'node:net';
import { echoHandler } from '../../src/handlers/echo.js';
import type { Handler } from '../../src/handlers/types.js';
import { startGateway } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

/** A client whose TCP socket is kept, to count the bytes that crossed the wire. */
async function client(url: string, deflate: boolean) {
  let socket: Socket | null = null;
  const c = await TestClient.connect(url, {
    perMessageDeflate: deflate,
    createConnection: ((opts: { host: string; port: number }) => (socket = tcpConnect(opts.port, opts.host))) as never,
  });
  return { c, bytesRead: () => socket!.bytesRead, bytesWritten: () => socket!.bytesWritten, extensions: c.ws.extensions };
}

// compresses to a few hundred bytes
const big = JSON.stringify({ rows: Array.from({ length: 400 }, (_, i) => ({ id: i % 7, name: 'same name', ok: true })) });

t.test('--compression off (the default): no permessage-deflate, frames as sent', async (t) => {
  const g = await startGateway({ handler: echoHandler });
  t.teardown(() => g.close());
  const { c, bytesRead, extensions } = await client(g.url, true);
  t.teardown(() => c.close());
  t.equal(extensions, '', 'the offer is declined');
  const before = bytesRead();
  c.send(big);
  t.equal((await c.next()).text(), big);
  t.ok(bytesRead() - before >= big.length, `uncompressed on the wire (${bytesRead() - before} bytes for ${big.length})`);
});

for (const mode of ['shared', 'dedicated'] as const) {
  t.test(`--compression ${mode}: negotiated with clients that offer it, large frames compressed both ways`, async (t) => {
    const g = await startGateway({ handler: echoHandler, flags: { compression: mode } });
    t.teardown(() => g.close());
    const { c, bytesRead, bytesWritten, extensions } = await client(g.url, true);
    t.teardown(() => c.close());
    t.match(extensions, /permessage-deflate/, 'negotiated');
    for (let i = 0; i < 3; i++) {
      const [read, written] = [bytesRead(), bytesWritten()];
      c.send(big);
      t.equal((await c.next()).text(), big, `frame ${i} intact, inflated by the gateway and deflated back`);
      t.ok(bytesWritten() - written < big.length / 4, `compressed to the gateway (${bytesWritten() - written} bytes for ${big.length})`);
      t.ok(bytesRead() - read < big.length / 4, `compressed from the gateway (${bytesRead() - read} bytes for ${big.length})`);
    }
    c.send('short');
    t.equal((await c.next()).text(), 'short', 'a short frame (sent uncompressed) arrives too');
    const plain = await client(g.url, false);
    t.teardown(() => plain.c.close());
    t.equal(plain.extensions, '', 'a client that does not offer it gets none');
    const before = plain.bytesRead();
    plain.c.send(big);
    t.equal((await plain.c.next()).text(), big);
    t.ok(plain.bytesRead() - before >= big.length, 'and uncompressed frames');
  });
}

t.test('--compression shared: a broadcast reaches compressing and plain clients alike', async (t) => {
  const room: Handler = {
    async open(conn) {
      await conn.subscribe('room');
      conn.send('joined');
    },
    message(_conn, msg, ctx) {
      ctx.publish('room', msg.text());
    },
  };
  const g = await startGateway({ handler: room, flags: { compression: 'shared' } });
  t.teardown(() => g.close());
  const a = await client(g.url, true);
  const b = await client(g.url, false);
  t.teardown(() => Promise.all([a.c.close(), b.c.close()]));
  t.equal((await a.c.next()).text(), 'joined');
  t.equal((await b.c.next()).text(), 'joined');
  const aBefore = a.bytesRead();
  a.c.send(big);
  t.equal((await a.c.next()).text(), big, 'the deflate client got it');
  t.equal((await b.c.next()).text(), big, 'the plain client got it');
  t.ok(a.bytesRead() - aBefore < big.length / 4, 'compressed for the client that negotiated it');
});

t.test('--compression: a compressed frame that inflates past --max-payload is refused like any oversized frame', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: { compression: 'shared', maxPayload: 1024 } });
  t.teardown(() => g.close());
  const { c, bytesWritten } = await client(g.url, true);
  t.teardown(() => c.close());
  const written = bytesWritten();
  c.send('x'.repeat(1500));
  const closed = await c.waitClosed();
  t.equal(closed.code, 1009, `closed with 1009 (${closed.reason})`);
  t.ok(bytesWritten() - written < 100, `though the frame was small on the wire (${bytesWritten() - written} bytes)`);
  // a "deflate bomb": 10 MB of one byte is ~10 KB compressed; uWS stops inflating at twice the limit
  const bomb = await client(g.url, true);
  t.teardown(() => bomb.c.close());
  bomb.c.send('x'.repeat(10_000_000));
  t.ok([1006, 1009].includes((await bomb.c.waitClosed()).code), 'a frame inflating far past the limit is dropped too');
  const other = await client(g.url, true);
  t.teardown(() => other.c.close());
  other.c.send('still serving');
  t.equal((await other.c.next()).text(), 'still serving');
});
