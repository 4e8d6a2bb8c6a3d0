import t from 'tap';
import pino from 'pino';
import { connect, type Msg } from '@nats-io/transport-node';
import { InboundPublisher } from '../../src/gateway/publisher.js';
import { FrameHeaderEncoder } from '../../src/gateway/frame-headers.js';
import { startNatsServer } from '../harness/nats-server.js';

const nats = await startNatsServer({ jetstream: false });
t.teardown(() => nats.stop());
const log = pino({ level: 'silent' });
const te = new TextEncoder();
const td = new TextDecoder();

t.test('frames written before a hold in the same turn wait with the held ones, in order, and callbacks run after hand-over', async (t) => {
  const nc = await connect({ servers: nats.url });
  const watcher = await connect({ servers: nats.url });
  t.teardown(() => Promise.all([nc.close(), watcher.close()]));
  const got: Msg[] = [];
  watcher.subscribe('p.>', { callback: (_e, m) => got.push(m) });
  await watcher.flush();
  const pub = new InboundPublisher(nc, 100, log);
  const enc = new FrameHeaderEncoder('gw-1.AbCdEfGhIjKlMnOp', 'gw-1');
  const acked: string[] = [];
  // a payload view that is overwritten right after each call, as uWS's is detached
  const scratch = new Uint8Array(16);
  const frame = (text: string, seq: number) => {
    scratch.fill(0);
    const n = te.encodeInto(text, scratch).written;
    return pub.publish('p.in', scratch.subarray(0, n), enc.at(seq, false), 'p.out.gw-1.AbCdEfGhIjKlMnOp', '', () => acked.push(text));
  };
  t.ok(frame('one', 1));
  t.ok(frame('two', 2));
  pub.hold(); // NATS went away in the same turn: nothing written so far may be handed over
  t.ok(frame('three', 3));
  t.equal(pub.pending, 2, 'the taken-back block and the held frame (callbacks are not entries)');
  pub.flush(); // the turn's scheduled flush runs while held
  await nc.flush();
  await watcher.flush();
  t.same(got, [], 'nothing handed over while held');
  t.same(acked, [], 'no callback while held');
  pub.release();
  t.same(acked, ['one', 'two', 'three'], 'callbacks once handed over, in order');
  t.ok(frame('four', 4));
  await new Promise((r) => setImmediate(r));
  t.same(acked, ['one', 'two', 'three', 'four']);
  await nc.flush();
  const deadline = Date.now() + 5000;
  while (got.length < 4 && Date.now() < deadline) await watcher.flush();
  t.same(got.map((m) => td.decode(m.data)), ['one', 'two', 'three', 'four'], 'every frame, intact, in order');
  t.same(got.map((m) => m.headers?.get('Wsgw-Seq')), ['1', '2', '3', '4']);
  t.equal(got[0]!.reply, 'p.out.gw-1.AbCdEfGhIjKlMnOp');
});

/** A connection, the texts of what arrives on `<prefix>.>`, and a held-capable publisher with `limit` entries. */
async function heldSetup(t: Tap.Test, prefix: string, limit: number) {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const got: string[] = [];
  nc.subscribe(`${prefix}.>`, { callback: (_e, m) => got.push(td.decode(m.data)) });
  await nc.flush();
  return { nc, got, pub: new InboundPublisher(nc, limit, log) };
}

t.test('a full hold refuses, and what it refused is not sent later', async (t) => {
  const { nc, got, pub } = await heldSetup(t, 'q', 2);
  pub.hold();
  t.ok(pub.publish('q.a', te.encode('a'), undefined, ''));
  t.ok(pub.publish('q.a', te.encode('b'), undefined, ''));
  t.notOk(pub.publish('q.a', te.encode('c'), undefined, ''), 'past the outage bound');
  pub.release();
  await nc.flush();
  t.same(got, ['a', 'b']);
});

t.test('held payloads are copies, also of a Node Buffer (whose own slice() is a view)', async (t) => {
  const { nc, got, pub } = await heldSetup(t, 'r', 10);
  pub.hold();
  // one buffer, rewritten for every frame, as a caller may once publish returns
  const scratch = Buffer.alloc(1);
  for (const c of ['a', 'b', 'c']) {
    scratch.write(c);
    t.ok(pub.publish('r.a', scratch, undefined, ''));
  }
  pub.release();
  await nc.flush();
  t.same(got, ['a', 'b', 'c'], 'each held frame as it was when published');
});
