import t from 'tap';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { Parser, type ParserEvent } from '@nats-io/nats-core/internal';
import { FastReader, fastParser, installFastReader } from '../../src/nats/fast-reader.js';
import { startNatsServer } from '../harness/nats-server.js';

/** A parser event as plain text, copied when it is dispatched (views of a chunk may not outlive it). */
function record(e: ParserEvent): string {
  const text = (b: Uint8Array | undefined) => (b === undefined ? '-' : Buffer.from(b).toString('latin1'));
  if (e.msg === undefined) return `${e.kind}|${text(e.data)}`;
  const m = e.msg;
  return `${e.kind}|${text(m.subject)}|${text(m.reply)}|${m.sid}|${m.hdr}|${m.size}|${text(e.data)}`;
}

type Outcome = { events: string[]; error?: string };

/** Feeds the chunks to a parser and records what it dispatches, and the error it throws, if any. */
function run(chunks: Uint8Array[], fast: boolean): Outcome {
  const events: string[] = [];
  const parser = new Parser({ push: (e: ParserEvent) => events.push(record(e)) });
  if (fast) fastParser(parser);
  try {
    for (const c of chunks) parser.parse(c);
  } catch (err) {
    return { events, error: (err as Error).message };
  }
  return { events };
}

const hmsg = (subject: string, sid: number, reply: string, hdrs: string, payload: string) => {
  const h = Buffer.byteLength(hdrs, 'latin1');
  const total = h + Buffer.byteLength(payload, 'latin1');
  return `HMSG ${subject} ${sid}${reply ? ' ' + reply : ''} ${h} ${total}\r\n${hdrs}${payload}\r\n`;
};
const frameHdrs = 'NATS/1.0\r\nWsgw-Conn: gw-1.AbCdEfGhIjKlMnOp\r\nWsgw-Gateway: gw-1\r\nWsgw-Binary: 0\r\nWsgw-Seq: 17\r\n\r\n';

/** Every op a server sends, and payloads that look like protocol. */
const stream = Buffer.from(
  [
    'INFO {"server_id":"x","version":"2.9.10","max_payload":1048576,"headers":true}\r\n',
    '+OK\r\n',
    'MSG a.b 1 5\r\nhello\r\n',
    'MSG a.b 1 _INBOX.r.x 0\r\n\r\n',
    hmsg('wsgw.in.msg.chat', 2, '', frameHdrs, 'hi there'),
    hmsg('x', 3, 'reply.1', 'NATS/1.0\r\n\r\n', ''),
    hmsg('status', 4, '', 'NATS/1.0 503\r\n\r\n', ''),
    'PING\r\n',
    'PONG\r\n',
    'MSG bin 4 13\r\n\u0000\u00ff\r\n\r\nMSG 1 2\r\n',
    "-ERR 'Permissions Violation for Subscription to \"secret\"'\r\n",
    'MSG tabs\t5\t3\r\nabc\r\n',
    'MSG  spaced  6  2\r\nok\r\n',
    'HMSG wsgw.out.gw-1.x 7 64 66\r\n' + 'NATS/1.0\r\nWsgw-Binary: 1\r\n'.padEnd(60, ' ') + '\r\n\r\n' + '\u0001\u0002\r\n',
  ].join(''),
  'latin1',
);

t.test('the same events as nats.js for the stream whole, at every split point, and a byte at a time', async (t) => {
  const whole = run([stream], false);
  t.equal(whole.error, undefined, 'nats.js parses the test stream');
  t.equal(whole.events.length, 14);
  t.same(run([stream], true), whole, 'whole');
  let splitsAgree = 0;
  for (let k = 1; k < stream.length; k++) {
    const chunks = [stream.subarray(0, k), stream.subarray(k)];
    const fast = run(chunks, true);
    if (JSON.stringify(fast) === JSON.stringify(whole)) splitsAgree++;
    else t.same(fast, whole, `split at ${k}`);
  }
  t.equal(splitsAgree, stream.length - 1, 'every two-chunk split');
  t.same(run([...stream].map((b) => Uint8Array.of(b)), true), whole, 'a byte at a time');
  // random chunkings: a deterministic generator so a failure can be replayed
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let randomAgree = 0;
  for (let r = 0; r < 300; r++) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length; ) {
      const n = 1 + Math.floor(next() * 40);
      chunks.push(new Uint8Array(stream.subarray(at, at + n)));
      at += n;
    }
    if (JSON.stringify(run(chunks, true)) === JSON.stringify(whole)) randomAgree++;
  }
  t.equal(randomAgree, 300, '300 random chunkings of 1-40 bytes, each chunk its own memory');
});

t.test('a message larger than a chunk arrives whole', async (t) => {
  const payload = Buffer.alloc(1_000_000, 'z');
  payload[0] = 13;
  payload[999_999] = 10;
  const big = Buffer.concat([Buffer.from(`MSG big 9 r.1 ${payload.length}\r\n`), payload, Buffer.from('\r\nPING\r\n')]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < big.length; at += 65_536) chunks.push(big.subarray(at, at + 65_536));
  const fast = run(chunks, true);
  t.same(fast, run(chunks, false));
  t.equal(fast.events.length, 2);
  t.match(fast.events[0], /^2\|big\|r\.1\|9\|-1\|1000000\|/);
});

t.test('what it does not recognise goes to nats.js for good, with the same outcome', async (t) => {
  // nats.js's Parser errors on the first three but reads the rest, with some leniency
  const cases = [
    'msg lower 1 2\r\nhi\r\nMSG a 1 2\r\nok\r\n',
    'MSG a b 2\r\nhi\r\n',
    'MSG a 1 x\r\nhi\r\n',
    'MSG a 1 2 3 4 5\r\nhi\r\n',
    'HMSG a 1 9 2\r\nhi\r\n',
    'MSG a 1 2\nhi\r\n',
    'MSG a 1 2\r\nhi there\r\nPING\r\n',
  ];
  for (const text of cases) {
    const bytes = Buffer.from(text, 'latin1');
    const slow = run([bytes], false);
    t.same(run([bytes], true), slow, JSON.stringify(text));
    const events: string[] = [];
    const parser = new Parser({ push: (e: ParserEvent) => events.push(record(e)) });
    const reader = new FastReader(parser);
    try {
      reader.parse(Buffer.from('MSG ok 1 2\r\nok\r\n'));
      reader.parse(bytes);
    } catch {
      // the same error nats.js throws, compared above
    }
    t.ok(reader.fallenBack, `fell back on ${JSON.stringify(text)}`);
    t.equal(events[0], '2|ok|-|1|-1|2|ok', 'what came before was read');
  }
  const unknown = Buffer.from('XYZ\r\n');
  t.same(run([unknown], true), run([unknown], false), 'an unknown op: the same error as nats.js');
  t.match(run([unknown], true).error, /parse error/);
});

t.test('on a real connection: messages, headers, replies, and a reconnect', async (t) => {
  const first = await startNatsServer({ jetstream: false });
  let nats = first;
  t.teardown(async () => {
    await nats.stop();
    await first.stop();
  });
  const nc: NatsConnection = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  t.teardown(() => nc.close());
  t.ok(installFastReader(nc), 'installed');
  const protocol = (nc as unknown as { protocol: { parser: object } }).protocol;
  t.ok(Object.hasOwn(protocol.parser, 'parse'), 'the current parser reads through a FastReader');

  const sizes = [0, 1, 64, 1_000, 70_000, 500_000];
  const echo = nc.subscribe('svc.echo', { callback: (_e, m) => m.respond(m.data, { headers: m.headers }) });
  await nc.flush();
  async function roundTrips(label: string) {
    for (const size of sizes) {
      const h = headers();
      h.set('Wsgw-Conn', `gw-1.${label}`);
      const data = Buffer.alloc(size, size % 251);
      const reply = await nc.request('svc.echo', data, { headers: h, timeout: 5_000 });
      t.equal(Buffer.compare(Buffer.from(reply.data), data), 0, `${label}: ${size} B back`);
      t.equal(reply.headers?.get('Wsgw-Conn'), `gw-1.${label}`, `${label}: headers back`);
    }
    // a burst: many messages per chunk, in order
    const got: number[] = [];
    const all = new Promise<void>((resolve) => {
      const sub = nc.subscribe(`burst.${label}`, {
        callback: (_e, m) => {
          got.push(Number(m.string()));
          if (got.length === 5_000) resolve(sub.unsubscribe());
        },
      });
    });
    await nc.flush();
    for (let i = 0; i < 5_000; i++) nc.publish(`burst.${label}`, String(i));
    await all;
    t.same(got, Array.from({ length: 5_000 }, (_, i) => i), `${label}: 5,000 in order`);
  }
  await roundTrips('before');

  const reconnected = (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') return;
  })();
  await nats.kill();
  nats = await nats.restart();
  await reconnected;
  t.ok(Object.hasOwn(protocol.parser, 'parse'), 'the parser made for the new server connection reads through a FastReader too');
  await roundTrips('after');
  echo.unsubscribe();
});
