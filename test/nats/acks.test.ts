import t from 'tap';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { Acknowledger, batchNumbers } from '../../src/nats/acks.js';
import { NoRespondersError, RequestTimeoutError, Requester, type Answer, type RequesterOptions } from '../../src/nats/requester.js';
import { startNatsServer } from '../harness/nats-server.js';

const nats = await startNatsServer({ jetstream: false });
t.teardown(() => nats.stop());

const te = new TextEncoder();

t.test('batchNumbers reads decimal numbers separated by spaces', async (t) => {
  const read = (s: string) => {
    const out: number[] = [];
    batchNumbers(te.encode(s), (n) => out.push(n));
    return out;
  };
  t.same(read('1 22 333'), [1, 22, 333]);
  t.same(read('0'), [0]);
  t.same(read(''), []);
  t.same(read('7  8 '), [7, 8], 'empty runs are skipped');
  t.same(read('5 x 6 -1 1e3'), [5, -1, 6, -1, -1], 'anything but digits reads as -1, which matches no request');
});

/** What a helper needs of a test: somewhere to put its cleanup. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A gateway-side and a sender-side connection to `url`, closed when the test ends. */
async function pair(t: Teardown, url = nats.url): Promise<{ gw: NatsConnection; api: NatsConnection }> {
  const gw = await connect({ servers: url });
  const api = await connect({ servers: url });
  t.teardown(async () => {
    await gw.close();
    await api.close();
  });
  return { gw, api };
}

/** A Requester on `nc`, closed when the test ends. */
function requesterOn(t: Teardown, nc: NatsConnection, timeoutMs: number, options?: RequesterOptions): Requester {
  const requester = new Requester(nc, timeoutMs, options);
  t.teardown(() => requester.close());
  return requester;
}

/** A gateway-like responder: answers every request on `subject` through an Acknowledger, `gone` for payloads saying so. */
async function responder(nc: NatsConnection, subject: string, seen: Msg[] = []): Promise<Acknowledger> {
  const acks = new Acknowledger(nc);
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      seen.push(msg);
      if (msg.string() === 'gone') acks.reply(msg, '{"ok":false,"error":"gone"}');
      else acks.ok(msg);
    },
  });
  await nc.flush();
  return acks;
}

/** Sends `n` requests in one turn and resolves with their answers in order. */
function burst(requester: Requester, subject: string, payloads: string[]): Promise<Array<{ err: Error | null; text?: string }>> {
  return Promise.all(
    payloads.map(
      (p) =>
        new Promise<{ err: Error | null; text?: string }>((resolve) =>
          requester.send(subject, p, undefined, (err, m?: Answer) => resolve({ err, text: m?.string() })),
        ),
    ),
  );
}

t.test('a batching requester gets each success from far fewer messages, and each failure on its own', async (t) => {
  const { gw, api } = await pair(t);
  await responder(gw, 'acks.out.*');
  const requester = requesterOn(t, api, 5_000, { batchedAcks: true });
  // every answer the API's connection receives, to count the messages
  const answers: string[] = [];
  const spy = api.subscribe('_INBOX.>', { callback: (_e, m) => answers.push(m.subject) });
  t.teardown(() => spy.unsubscribe());
  await api.flush();

  const payloads = Array.from({ length: 500 }, (_, i) => (i % 50 === 7 ? 'gone' : `frame ${i}`));
  const got = await burst(requester, 'acks.out.c1', payloads);
  for (let i = 0; i < payloads.length; i++) {
    t.equal(got[i]!.err, null);
    t.equal(got[i]!.text, payloads[i] === 'gone' ? '{"ok":false,"error":"gone"}' : '{"ok":true}', `request ${i}`);
  }
  await api.flush();
  const batches = answers.filter((s) => s.endsWith('.wsgw-acks.ok')).length;
  const single = answers.length - batches;
  t.equal(single, 10, 'the ten failures came on their own reply subjects');
  t.ok(batches >= 1 && batches <= 50, `490 successes came in ${batches} batch messages`);
});

/** Sends `n` requests in one turn from a batching requester to a responder on `url`; how many were answered ok. */
async function answeredOk(t: Teardown, url: string, name: string, n: number): Promise<number> {
  const { gw, api } = await pair(t, url);
  await responder(gw, `acks.${name}.*`);
  const requester = requesterOn(t, api, 10_000, { batchedAcks: true });
  const got = await burst(requester, `acks.${name}.c1`, Array.from({ length: n }, (_, i) => String(i)));
  return got.filter((g) => g.err === null && g.text === '{"ok":true}').length;
}

t.test('a batch past 200 acknowledgements is split, and every request is still answered', async (t) => {
  t.equal(await answeredOk(t, nats.url, 'big', 9000), 9000);
});

t.test('senders that do not ask for batching get an answer per request, nats.js request() included', async (t) => {
  const { gw, api } = await pair(t);
  await responder(gw, 'acks.plain.*');
  const plain = requesterOn(t, api, 5_000);
  const got = await burst(plain, 'acks.plain.c1', ['a', 'gone', 'b']);
  t.same(
    got.map((g) => g.text),
    ['{"ok":true}', '{"ok":false,"error":"gone"}', '{"ok":true}'],
  );
  const m = await api.request('acks.plain.c2', 'x', { timeout: 2_000 });
  t.equal(m.string(), '{"ok":true}');
  // a reply subject that only looks like a batching one in part is answered on its own
  const inbox = `_INBOX.${Math.random().toString(36).slice(2)}`;
  const own = api.subscribe(`${inbox}.>`, { max: 2 });
  api.publish('acks.plain.c3', 'y', { reply: `${inbox}.wsgw-acks.x7` });
  api.publish('acks.plain.c3', 'z', { reply: `${inbox}.not-acks.7` });
  const subjects: string[] = [];
  for await (const r of own) {
    subjects.push(r.subject);
    t.equal(r.string(), '{"ok":true}');
  }
  t.same(subjects.sort(), [`${inbox}.not-acks.7`, `${inbox}.wsgw-acks.x7`]);
});

t.test('no responders and timeouts still fail each request of a batching requester', async (t) => {
  const { gw: silent, api } = await pair(t);
  silent.subscribe('acks.silent.*', { callback: () => undefined });
  await silent.flush();
  const requester = requesterOn(t, api, 200, { batchedAcks: true });
  const [none] = await burst(requester, 'acks.nobody.c1', ['x']);
  t.type(none!.err, NoRespondersError);
  const [late] = await burst(requester, 'acks.silent.c1', ['x']);
  t.type(late!.err, RequestTimeoutError);
});

t.test('batches fit a server with a small max_payload', async (t) => {
  const small = await startNatsServer({ jetstream: false, config: 'max_payload: 4096' });
  t.teardown(() => small.stop());
  // request numbers of 4+ digits: 200 of them with spaces is ~1 KB per batch
  t.equal(await answeredOk(t, small.url, 'small', 3000), 3000);
});

t.test('answers after the connection closed are dropped without throwing', async (t) => {
  const { gw, api } = await pair(t);
  // the request arrives, and the gateway's connection closes before it answers
  const seen: Msg[] = [];
  gw.subscribe('acks.late.*', { callback: (_err, msg) => seen.push(msg) });
  await gw.flush();
  const acks = new Acknowledger(gw);
  const requester = requesterOn(t, api, 300, { batchedAcks: true });
  const answered = burst(requester, 'acks.late.c1', ['a']);
  while (seen.length === 0) await new Promise((r) => setImmediate(r));
  await gw.close();
  t.doesNotThrow(() => {
    acks.ok(seen[0]!);
    acks.reply(seen[0]!, '{"ok":false,"error":"gone"}');
    acks.flush();
  });
  // the scheduled flush runs too, and throws nothing either
  await new Promise((r) => setImmediate(r));
  const [late] = await answered;
  t.type(late!.err, RequestTimeoutError, 'the sender times out, as for any answer lost with a connection');
});

t.test('a batching requester takes answers on its own reply subjects too (a gateway that does not batch)', async (t) => {
  const { gw, api } = await pair(t);
  gw.subscribe('acks.older.*', { callback: (_err, msg) => msg.respond('{"ok":true}') });
  await gw.flush();
  const requester = requesterOn(t, api, 5_000, { batchedAcks: true });
  const got = await burst(requester, 'acks.older.c1', ['a', 'b', 'c']);
  t.same(
    got.map((g) => [g.err, g.text]),
    [
      [null, '{"ok":true}'],
      [null, '{"ok":true}'],
      [null, '{"ok":true}'],
    ],
  );
});
