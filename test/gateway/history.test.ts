import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Handler } from '../../src/handlers/types.js';
import { historyQueryOf, MemoryHistory, parseHistoryQuery, type HistoryEntry } from '../../src/protocol/history.js';
import { ensureHistoryStream, historyStream, historyStreamConfig } from '../../src/nats/history.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { startNatsServer } from '../harness/nats-server.js';
import { openDirectory, quietLog, startConnectionService, startGateway, startWorker, uniquePrefix } from '../harness/stack.js';
import { spawnWsgw } from '../harness/process.js';
import { eventually, TestClient } from '../harness/ws-client.js';

/**
 * `pub <text>` broadcasts to `room` (`pubbin <text>` as bytes); `hist <json query>` answers with what
 * `ctx.history('room', query)` gave, or the error's code and message.
 */
const handler: Handler = {
  async message(conn, msg, ctx) {
    const text = msg.text();
    if (text.startsWith('pub ')) return ctx.publish('room', text.slice(4));
    if (text.startsWith('pubbin ')) return ctx.publish('room', Buffer.from(text.slice(7)));
    if (text.startsWith('hist')) {
      try {
        const entries = await ctx.history(text.startsWith('hist ') ? 'room' : 'bad topic', text.length > 5 ? JSON.parse(text.slice(5)) : undefined);
        conn.send(JSON.stringify(entries.map((e) => ({ seq: e.seq, time: e.time, text: e.text(), binary: e.binary }))));
      } catch (err) {
        conn.send(JSON.stringify({ code: (err as { code?: string }).code, message: (err as Error).message }));
      }
    }
  },
};

type Seen = Array<{ seq: number; time: number; text: string; binary: boolean }>;

async function ask(c: TestClient, query = ''): Promise<any> {
  c.send(`hist ${query}`);
  return (await c.next()).json();
}

/** Publishes each text through the handler and waits until the history holds the last one. */
async function publishAll(c: TestClient, texts: string[]): Promise<void> {
  for (const text of texts) c.send(`pub ${text}`);
  await eventually(async () => {
    const seen = (await ask(c)) as Seen;
    return Array.isArray(seen) && seen.at(-1)?.text === texts.at(-1);
  }, 5_000, 'the last broadcast in the history');
}

t.test('queries are checked: whole numbers in range, known fields only', async (t) => {
  t.same(parseHistoryQuery(undefined), {});
  t.same(parseHistoryQuery({ after: 3, limit: 2 }), { after: 3, since: undefined, limit: 2 });
  t.throws(() => parseHistoryQuery({ limit: 0 }), { code: 'WSGW_INVALID_HISTORY_QUERY', message: /limit must be a whole number from 1 to 10000, not 0/ });
  t.throws(() => parseHistoryQuery({ after: 1.5 }), { message: /after must be a whole number/ });
  t.throws(() => parseHistoryQuery({ before: 1 }), { message: /unknown field "before"/ });
  t.throws(() => parseHistoryQuery('all'), { message: /expected an object/ });
  t.same(historyQueryOf(new URLSearchParams('limit=5&since=1700000000000')), { after: undefined, since: 1700000000000, limit: 5 });
  t.throws(() => historyQueryOf(new URLSearchParams('limit=-1')), { message: /limit must be a whole number, not "-1"/ });
  t.throws(() => historyQueryOf(new URLSearchParams('page=2')), { message: /unknown parameter "page"/ });
});

t.test('local mode keeps it in memory with the stream\'s limits: per topic, age, bytes', async (t) => {
  let now = 1_000_000;
  const h = new MemoryHistory({ perTopic: 3, ttlS: 60, maxBytes: 1024 * 1024 }, () => now);
  for (const x of ['a', 'b', 'c', 'd']) h.append('room', x, false);
  h.append('other', new Uint8Array([1, 2]), true);
  const texts = (es: HistoryEntry[]) => es.map((e) => e.text());
  t.same(texts(h.read('room', {})), ['b', 'c', 'd'], 'the last 3 of the topic');
  t.same(texts(h.read('room', { limit: 2 })), ['c', 'd'], 'limit: the newest');
  const [b] = h.read('room', {});
  t.same(texts(h.read('room', { after: b!.seq })), ['c', 'd'], 'after a sequence number');
  t.same([...h.read('other', {})[0]!.data], [1, 2]);
  t.ok(h.read('other', {})[0]!.binary);
  now += 30_000;
  h.append('room', 'e', false);
  t.same(texts(h.read('room', { since: now })), ['e'], 'since a time');
  now += 31_000;
  t.same(texts(h.read('room', {})), ['e'], 'older than the TTL: gone');
  t.same(h.read('other', {}), [], 'on every topic');
  t.equal(h.bytes, 1, 'their bytes with them');

  const small = new MemoryHistory({ perTopic: 100, ttlS: 60, maxBytes: 10 }, () => now);
  for (const x of ['aaaa', 'bbbb', 'cccc']) small.append(x[0]!, x, false);
  t.same([small.read('a', {}).length, small.read('b', {}).length, small.read('c', {}).length], [0, 1, 1], 'past the byte limit the oldest go, whatever their topic');
  t.equal(small.bytes, 8);
});

t.test('local mode: ctx.history with --history; off without it, said so', async (t) => {
  const g = await startGateway({ handler, flags: { history: 3 } });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('pub one');
  c.send('pubbin two');
  c.send('pub three');
  c.send('pub four');
  const all = (await ask(c)) as Seen;
  t.same(all.map((e) => [e.text, e.binary]), [['two', true], ['three', false], ['four', false]], 'the last 3, oldest first, bytes flagged');
  t.same(((await ask(c, `{"after":${all[1]!.seq}}`)) as Seen).map((e) => e.text), ['four']);
  t.match(await ask(c, '{"limit":0}'), { code: 'WSGW_INVALID_HISTORY_QUERY' }, 'a bad query rejects');
  c.send('hist');
  t.match((await c.next()).json(), { code: 'WSGW_INVALID_TOKEN' }, 'a bad topic rejects');

  const off = await startGateway({ handler });
  t.teardown(() => off.close());
  const d = await TestClient.connect(off.url);
  t.teardown(() => d.close());
  t.match(await ask(d), { code: 'WSGW_HISTORY_OFF', message: /wsgw local with --history/ });
});

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('with NATS: the stream keeps every broadcast (worker, API, in-process), read by workers, gateways and GET /topics/:topic/history', async (t) => {
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  await ensureHistoryStream(nc, createSubjects(prefix), { perTopic: 4, ttlS: 3600, maxBytes: 1024 * 1024 }, 1, quietLog);

  // a worker behind one gateway, a gateway running the handler itself, and the connection service
  const worker = await startWorker({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => worker.close());
  const gateway = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => gateway.close());
  const shared = await startGateway({ natsUrl: nats.url, prefix, handler });
  t.teardown(() => shared.close());
  const api = await startConnectionService({ natsUrl: nats.url, prefix });
  t.teardown(() => api.close());

  const c = await TestClient.connect(gateway.url);
  t.teardown(() => c.close());
  await publishAll(c, ['one', 'two']);
  const posted = await fetch(`${api.url}/topics/room/messages`, { method: 'POST', body: 'three' });
  t.equal(posted.status, 202);
  const bin = await fetch(`${api.url}/topics/room/messages`, { method: 'POST', body: new Uint8Array([0, 255]), headers: { 'content-type': 'application/octet-stream' } });
  t.equal(bin.status, 202);
  const d = await TestClient.connect(shared.url);
  t.teardown(() => d.close());
  await publishAll(d, ['five']);

  const seen = (await ask(c)) as Seen;
  t.same(seen.map((e) => e.text), ['two', 'three', '\u0000\ufffd', 'five'], 'a worker reads the last 4 (the stream\'s per-topic limit), whoever published them');
  t.ok(seen.every((e, i) => i === 0 || e.seq > seen[i - 1]!.seq), 'in order of their sequence numbers');
  t.ok(seen.every((e) => Math.abs(e.time - Date.now()) < 60_000), 'with the time they were stored');
  t.same((await ask(d)).map((e: { seq: number }) => e.seq), seen.map((e) => e.seq), 'a gateway running the handler reads the same');
  t.same(((await ask(c, `{"after":${seen[1]!.seq},"limit":1}`)) as Seen).map((e) => e.text), ['five'], 'after and limit');
  // stored in the same millisecond as the last, earlier ones are "since" it too
  t.same(((await ask(c, `{"since":${seen[3]!.time}}`)) as Seen).map((e) => e.text), seen.filter((e) => e.time >= seen[3]!.time).map((e) => e.text), 'since a time');

  const res = await fetch(`${api.url}/topics/room/history`);
  t.equal(res.status, 200);
  const body = await res.json();
  t.equal(body.topic, 'room');
  t.same(
    body.messages.map((m: { data: string; binary: boolean }) => [m.data, m.binary]),
    [['two', false], ['three', false], [Buffer.from([0, 255]).toString('base64'), true], ['five', false]],
    'the API: text as is, bytes in base64',
  );
  t.same(body.messages.map((m: { seq: number }) => m.seq), seen.map((e) => e.seq));
  const after = await (await fetch(`${api.url}/topics/room/history?after=${seen[2]!.seq}`)).json();
  t.same(after.messages.map((m: { data: string }) => m.data), ['five']);
  t.same((await (await fetch(`${api.url}/topics/nobody-here/history`)).json()).messages, [], 'a topic with no broadcasts: none');

  for (const [path, status, error] of [
    ['/topics/room/history?limit=0', 400, 'invalid_history_query'],
    ['/topics/room/history?from=1', 400, 'invalid_history_query'],
    ['/topics/bad.topic/history', 400, 'invalid_topic'],
  ] as const) {
    const r = await fetch(`${api.url}${path}`);
    t.equal(r.status, status, path);
    t.equal((await r.json()).error, error, path);
  }

  // a prefix nobody started with --history has no stream
  const otherPrefix = uniquePrefix();
  const asked: string[] = [];
  nc.subscribe(`$JS.API.CONSUMER.CREATE.${historyStream(otherPrefix)}`, { callback: (_e, m) => void asked.push(m.subject) });
  await nc.flush();
  const other = await startConnectionService({ natsUrl: nats.url, prefix: otherPrefix });
  t.teardown(() => other.close());
  const r = await fetch(`${other.url}/topics/room/history`);
  t.equal(r.status, 404);
  t.match(await r.json(), { error: 'history_off', message: /--history/ });
  t.equal((await fetch(`${other.url}/topics/room/history`)).status, 404);
  t.equal((await fetch(`${other.url}/topics/lobby/history`)).status, 404);
  await nc.flush();
  t.equal(asked.length, 1, 'then said at once for a while, without asking the server again');
  const jsm = await jetstreamManager(nc);
  await eventually(async () => (await jsm.consumers.list(historyStream(prefix)).next()).length === 0, 5_000, 'every read\'s consumer deleted');
  t.pass('every read\'s consumer deleted');
});

t.test('--history on the command line creates the stream; a later process brings its limits to its own', async (t) => {
  const prefix = uniquePrefix();
  const first = spawnWsgw(['connections', '-p', '0', '--nats', nats.url, '--prefix', prefix, '--history', '5', '--history-ttl', '600']);
  t.teardown(() => first.stop());
  await first.waitFor((l) => l.msg === 'history stream created', 10_000);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const config = (await jsm.streams.info(historyStream(prefix))).config;
  t.match(config, { subjects: [`${prefix}.topic.>`], max_msgs_per_subject: 5, max_age: 600 * 1e9, max_bytes: 64 * 1024 * 1024 });
  const second = spawnWsgw(['worker', '--nats', nats.url, '--prefix', prefix, '--history', '7']);
  t.teardown(() => second.stop());
  await second.waitFor((l) => l.msg === 'history stream limits updated', 10_000);
  t.match((await jsm.streams.info(historyStream(prefix))).config, { max_msgs_per_subject: 7, max_age: 3600 * 1e9 });
});

t.test('a lost history stream is created again by the directory\'s looks at its buckets (gateways, the connection service)', async (t) => {
  const prefix = uniquePrefix();
  const { nc, dir } = await openDirectory(t, nats.url, prefix);
  const subjects = createSubjects(prefix);
  const limits = { perTopic: 5, ttlS: 60, maxBytes: 1024 * 1024 };
  await ensureHistoryStream(nc, subjects, limits, 1, quietLog);
  dir.keepStream(historyStreamConfig(subjects, limits, 1));
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(historyStream(prefix));
  await dir.checkBuckets(true);
  t.match((await jsm.streams.info(historyStream(prefix))).config, { subjects: [`${prefix}.topic.>`], max_msgs_per_subject: 5 }, 'back, with its limits');
});
