import t from 'tap';
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { encodedHeaders, encodeHeaders, RawPublisher, type AnyHeaders } from '../../src/nats/raw-publish.js';
import { FrameHeaderEncoder } from '../../src/gateway/frame-headers.js';
import { startNatsServer } from '../harness/nats-server.js';

const nats = await startNatsServer({ jetstream: false, config: 'max_payload: 4096' });
t.teardown(() => nats.stop());

const te = new TextEncoder();
const h = headers();
h.set('A', 'one');
h.set('B', 'two words');
const frameHdrs = new FrameHeaderEncoder('gw-1.AbCdEfGhIjKlMnOp', 'gw-1');

/** Every shape a caller hands over: with and without reply and headers, encoded or MsgHdrs, empty, binary, non-ASCII. */
const cases: Array<[string, Uint8Array | string, AnyHeaders | undefined, string]> = [
  ['r.plain', te.encode('hello'), undefined, ''],
  ['r.reply', te.encode('with reply'), undefined, 'r.out.gw-1.AbCd'],
  ['r.hdrs', te.encode('hdrs'), h, ''],
  ['r.hdrs-reply', te.encode('hdrs and reply'), h, 'r.out.x'],
  ['r.encoded', te.encode('frame'), encodeHeaders(frameHdrs.at(42, false)), 'r.out.gw-1.AbCdEfGhIjKlMnOp'],
  ['r.writer', te.encode('frame written in place'), new FrameHeaderEncoder('gw-2.ZyXwVuTsRqPoNmLk', 'gw-2').at(7, true), 'r.out.gw-2.ZyXwVuTsRqPoNmLk'],
  ['r.empty', new Uint8Array(0), undefined, ''],
  ['r.text', 'text sent as UTF-8: ü 世界', h, 'r.out.y'],
  ['r.binary', Uint8Array.from([0, 255, 13, 10, 13, 10, 1]), undefined, ''],
  ['r.unicode', te.encode('zdravo, 世界 🌍'), undefined, 'r.rép'],
];

/** nats.js's own bytes for the same publishes, captured at the protocol writer both paths end in. */
function capture(nc: NatsConnection): Buffer[] {
  const proto = (nc as unknown as { protocol: { sendCommand(cmd: string | Uint8Array, ...p: Uint8Array[]): void } }).protocol;
  const seen: Buffer[] = [];
  const original = proto.sendCommand.bind(proto);
  proto.sendCommand = (cmd, ...payloads) => {
    seen.push(Buffer.concat([typeof cmd === 'string' ? Buffer.from(cmd) : cmd, ...payloads]));
    original(cmd, ...payloads);
  };
  return seen;
}

/** Subscribes, then publishes; `seen` (captured commands) is emptied first so it holds only the publishes. */
async function received(nc: NatsConnection, n: number, publish: () => void, seen?: Buffer[]): Promise<Msg[]> {
  const got: Msg[] = [];
  const sub = nc.subscribe('r.>', { max: n, callback: (_e, m) => got.push(m) });
  await nc.flush();
  if (seen) seen.length = 0;
  publish();
  await sub.closed;
  if (seen) seen.push(...seen.splice(0).filter((b) => /^H?PUB /.test(b.toString('latin1', 0, 5))));
  return got;
}

for (const keepStarts of [false, true]) t.test(`the bytes are exactly what nc.publish sends, and arrive the same (${keepStarts ? 'line starts kept' : 'lines written from strings'})`, async (t) => {
  const a = await connect({ servers: nats.url });
  const b = await connect({ servers: nats.url });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const raw = new RawPublisher(a, null, keepStarts);
  t.ok(raw.raw, 'nats.js internals found (the fast path is what is tested)');
  const rawBytes = capture(a);
  const refBytes = capture(b);
  const viaRaw = await received(a, cases.length, () => {
    for (const [s, d, hd, r] of cases) raw.publish(s, d, hd, r);
    raw.flush();
  }, rawBytes);
  const viaNats = await received(b, cases.length, () => {
    for (const [s, d, hd, r] of cases) {
      const hh = hd === undefined ? undefined : encodedHeaders(encodeHeaders(hd));
      b.publish(s, d, { headers: hh, reply: r || undefined });
    }
  }, refBytes);
  t.equal(rawBytes.length, 1, 'one hand-over for the whole batch');
  t.equal(refBytes.length, cases.length, 'nats.js: one command per publish');
  t.same(rawBytes[0], Buffer.concat(refBytes), 'byte for byte');
  t.equal(viaRaw.length, cases.length);
  for (let i = 0; i < cases.length; i++) {
    const [x, y] = [viaRaw[i]!, viaNats[i]!];
    t.equal(x.subject, y.subject, `subject ${cases[i]![0]}`);
    t.equal(x.reply, y.reply);
    t.same(Buffer.from(x.data), Buffer.from(cases[i]![1]));
    t.same(Buffer.from(x.data), Buffer.from(y.data));
    t.same(x.headers ? [...x.headers.keys()].map((k) => [k, x.headers!.get(k)]) : null, y.headers ? [...y.headers.keys()].map((k) => [k, y.headers!.get(k)]) : null);
  }
});

t.test('a batch far larger than one slab arrives whole and in order', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw = new RawPublisher(nc);
  const n = 3_000;
  const got = await received(nc, n, () => {
    for (let i = 0; i < n; i++) raw.publish('r.big', te.encode(`${i}:` + 'x'.repeat(i % 1000)), undefined, '');
    t.ok(raw.pending > 1_000_000, `${raw.pending} bytes written before the hand-over`);
    raw.flush();
    // and a second batch after it reuses the slab's free part
    for (let i = 0; i < 3; i++) raw.publish('r.big', te.encode(`again ${i}`));
    raw.flush();
  }).then(async (first) => first);
  t.equal(got.length, n);
  t.ok(
    got.every((m, i) => new TextDecoder().decode(m.data) === `${i}:` + 'x'.repeat(i % 1000)),
    'every message intact and in order',
  );
});

t.test('line starts are kept per subject and reply: a subject with many replies, and more of both than are kept', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw = new RawPublisher(nc, null, true);
  // 5,000 replies on one subject and 5,000 subjects (past the 4,096 kept per map), with and without
  // headers, alternating, so a kept start is reused, replaced and dropped along the way
  const n = 10_000;
  const sent: Array<[string, string, string]> = [];
  const got = await received(nc, n, () => {
    for (let i = 0; i < n; i++) {
      const subject = i % 2 === 0 ? 'r.many' : `r.s.${i % 5_000}`;
      const reply = i % 2 === 0 ? `r.x.${i % 5_000}` : i % 3 === 0 ? 'r.same' : '';
      const body = `${i}`;
      sent.push([subject, reply, body]);
      raw.publish(subject, te.encode(body), i % 4 < 2 ? undefined : h, reply);
      if (i % 1_000 === 999) raw.flush();
    }
    raw.flush();
  });
  t.equal(got.length, n);
  const wrong = got.filter((m, i) => m.subject !== sent[i]![0] || (m.reply ?? '') !== sent[i]![1] || m.string() !== sent[i]![2] || (i % 4 < 2) !== !m.headers);
  t.same(wrong.map((m) => `${m.subject} ${m.reply} ${m.string()}`).slice(0, 5), [], 'every message has its own subject, reply, headers and body, in order');
});

t.test('over max_payload throws like nc.publish and writes nothing', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw = new RawPublisher(nc);
  t.throws(() => raw.publish('r.x', new Uint8Array(5000)), /max_payload/);
  t.equal(raw.pending, 0);
  t.throws(() => nc.publish('r.x', new Uint8Array(5000)), /max_payload/, 'nats.js refuses it too');
});

t.test('a closed connection gets nats.js own error', async (t) => {
  const nc = await connect({ servers: nats.url });
  const raw = new RawPublisher(nc);
  await nc.close();
  t.throws(() => raw.publish('r.x', te.encode('late')), { name: 'ClosedConnectionError' });
});

t.test('without nats.js internals every publish goes through nc.publish', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  // the same connection seen through a facade that has no protocol writer
  const facade = new Proxy(nc, { get: (target, key) => {
      if (key === 'protocol') return undefined;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    } }) as NatsConnection;
  const raw = new RawPublisher(facade);
  t.notOk(raw.raw);
  const got = await received(nc, cases.length, () => {
    for (const [s, d, hd, r] of cases) raw.publish(s, d, hd, r);
    raw.flush();
  });
  t.same(
    got.map((m) => [m.subject, m.reply ?? '', Buffer.from(m.data).toString('hex'), m.headers?.get('Wsgw-Seq') || m.headers?.get('A') || '']),
    cases.map(([s, d, hd, r]) => [s, r, Buffer.from(d).toString('hex'), hd instanceof Uint8Array ? '42' : hd instanceof FrameHeaderEncoder ? '7' : hd ? 'one' : '']),
  );
});

t.test('with a schedule the writer hands its bursts over by itself, in order', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw = new RawPublisher(nc, queueMicrotask);
  const got = await received(nc, 3, () => {
    raw.publish('r.s', 'one');
    raw.publish('r.s', te.encode('two'));
    queueMicrotask(() => raw.publish('r.s', 'three'));
  });
  t.same(got.map((m) => new TextDecoder().decode(m.data)), ['one', 'two', 'three']);
  t.equal(raw.pending, 0, 'nothing left behind');
});
