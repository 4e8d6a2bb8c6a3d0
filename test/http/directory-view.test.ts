import t from 'tap';
import { DirectoryView } from '../../src/http/directory-view.js';
import { startNatsServer } from '../harness/nats-server.js';
import { openDirectory, quietLog, testRecord } from '../harness/stack.js';
import { eventually } from '../harness/ws-client.js';

const record = (id: string, topics: string[] = [], user?: string) => testRecord(id, { topics, identity: user === undefined ? null : { sub: user } });

/** Every id the view lists, page after page of `limit`, with the filters given. */
function pageThrough(view: DirectoryView, limit: number, filter: { gateway?: string; topic?: string; user?: string } = {}): string[] {
  const out: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = view.list({ ...filter, cursor, limit });
    out.push(...page.connections.map((r) => r.id));
    if (page.next === null) return out;
    cursor = page.next;
  }
  throw new Error('paging did not end');
}

t.test('paging stays in id order, every open id once, while connections open, close and change between listings', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const { dir } = await openDirectory(t, nats.url);
  const view = await DirectoryView.start(dir, quietLog);
  t.teardown(() => view.stop());

  const open = new Map<string, string[]>();
  /** Each id's user (its identity's sub), for those that have one. */
  const users = new Map<string, string>();
  let n = 0;
  const add = () => {
    // ids of three gateways (one's id the start of another's), tokens in no particular order
    const id = `${['gw0', 'gw1', 'gw10'][n % 3]}.t${((n * 7919) % 10007).toString(36)}x${n++}`;
    const topics = n % 4 === 0 ? ['news'] : n % 5 === 0 ? ['news', 'sport'] : [];
    const user = n % 3 === 0 ? `u${n % 4}` : undefined;
    open.set(id, topics);
    if (user !== undefined) users.set(id, user);
    dir.put(record(id, topics, user));
  };
  const settled = (v: DirectoryView = view) => eventually(() => (v.records.size === open.size && [...open.keys()].every((id) => v.records.has(id)) ? true : null), 5_000, 'the view caught up');
  const expect = (filter: (id: string, topics: string[]) => boolean = () => true) => [...open].filter(([id, topics]) => filter(id, topics)).map(([id]) => id).sort();

  for (let i = 0; i < 400; i++) add();
  await settled();
  t.same(pageThrough(view, 37), expect(), 'the first listing');

  for (let round = 0; round < 6; round++) {
    // closes, opens, and records rewritten with other topics (an update, not a new id)
    const ids = [...open.keys()];
    for (let i = round; i < ids.length; i += 7) {
      open.delete(ids[i]!);
      dir.remove(ids[i]!);
    }
    for (let i = 0; i < 50; i++) add();
    for (let i = round; i < ids.length; i += 11) {
      if (!open.has(ids[i]!)) continue;
      // joins news, leaves sport
      open.set(ids[i]!, ['news']);
      dir.put(record(ids[i]!, ['news'], users.get(ids[i]!)));
    }
    await settled();
    t.same(pageThrough(view, 1 + round * 13), expect(), `round ${round}: every id once, in order`);
    t.same(pageThrough(view, 25, { topic: 'news' }), expect((_id, topics) => topics.includes('news')), `round ${round}: filtered by topic`);
    t.same(pageThrough(view, 1000, { gateway: 'gw1' }), expect((id) => id.startsWith('gw1.')), `round ${round}: filtered by gateway`);
    t.same(pageThrough(view, 9, { gateway: 'gw10', topic: 'sport' }), expect((id, topics) => id.startsWith('gw10.') && topics.includes('sport')), `round ${round}: by gateway and topic`);
    t.same(['gw0', 'gw1', 'gw10', 'gw2'].map((g) => view.connectionsOf(g)), ['gw0', 'gw1', 'gw10', 'gw2'].map((g) => expect((id) => id.startsWith(g + '.')).length), `round ${round}: connections per gateway`);
    t.equal(view.subscribers('sport'), expect((_id, topics) => topics.includes('sport')).length, `round ${round}: how many in a topic`);
    t.same(pageThrough(view, 4, { user: 'u1' }), expect((id) => users.get(id) === 'u1'), `round ${round}: one user's`);
    t.same(view.ofUser('u2'), expect((id) => users.get(id) === 'u2'), `round ${round}: one user's, all at once`);
    t.same(pageThrough(view, 3, { user: 'u3', topic: 'news', gateway: 'gw1' }), expect((id, topics) => users.get(id) === 'u3' && topics.includes('news') && id.startsWith('gw1.')), `round ${round}: a user's, by topic and gateway`);
  }

  t.same(view.list({ topic: 'nobody', limit: 10 }), { connections: [], next: null }, 'a topic nobody is in');
  const gw1 = expect((id) => id.startsWith('gw1.'));
  t.same(
    view.list({ gateway: 'gw1', cursor: 'gw0.zzz', limit: 3 }).connections.map((r) => r.id),
    gw1.slice(0, 3),
    "a cursor before the gateway's ids: its first ones",
  );
  t.same(view.list({ gateway: 'gw1', cursor: gw1[gw1.length - 1], limit: 3 }), { connections: [], next: null }, 'a cursor at its last id: nothing more');
  t.same(view.list({ gateway: 'gw1', limit: gw1.length }).next, null, 'a page holding exactly its ids: no next, though other gateways follow');

  // a numeric sub (some authorizers give one) is the user of its decimal text; an empty one is none
  dir.put(testRecord('gw0.numeric', { identity: { sub: 42 } }));
  dir.put(testRecord('gw0.emptysub', { identity: { sub: '' } }));
  open.set('gw0.numeric', []).set('gw0.emptysub', []);
  await settled();
  t.same(view.ofUser('42'), ['gw0.numeric'], 'sub 42 is user "42"');
  t.same(view.ofUser(''), [], 'an empty sub is no user');

  // an id closed and opened again before the next listing (a record written again after a repair) is listed once
  const again = [...open.keys()][3]!;
  dir.remove(again);
  await eventually(() => (view.records.has(again) ? null : true), 5_000, 'closed');
  dir.put(record(again, open.get(again), users.get(again)));
  await settled();
  t.same(pageThrough(view, 50), expect(), 'an id removed and added again: once');

  // a second view started as the connection service starts its own (the order made after the
  // replay): the same listings from its first, and kept as records change
  const served = await DirectoryView.start(dir, quietLog, Infinity, { indexed: true });
  t.teardown(() => served.stop());
  await eventually(() => (served.records.size === open.size ? true : null), 5_000, 'the second view caught up');
  t.same(pageThrough(served, 13), expect(), 'started indexed: every id once, in order');
  t.same(pageThrough(served, 5, { user: 'u1' }), expect((id) => users.get(id) === 'u1'), "started indexed: one user's");

  // enough opens to split the view's order into several chunks, then most of them closed
  for (let i = 0; i < 3000; i++) add();
  await settled();
  t.same(pageThrough(view, 1000), expect(), 'after 3,000 more opens');
  // the second view has a watcher of its own: it catches up on its own time
  await settled(served);
  t.same(pageThrough(served, 1000), expect(), 'the second view too');
  const all = [...open.keys()];
  for (let i = 0; i < all.length; i++) {
    if (i % 10 === 0) continue;
    open.delete(all[i]!);
    dir.remove(all[i]!);
  }
  await settled();
  t.same(pageThrough(view, 7), expect(), 'after nine in ten closed');
  t.same(['gw0', 'gw1', 'gw10'].map((g) => view.connectionsOf(g)), ['gw0', 'gw1', 'gw10'].map((g) => expect((id) => id.startsWith(g + '.')).length), 'connections per gateway, after nine in ten closed');

  // a record rewritten under another gateway (not something a gateway does; another writer might) moves its count
  const moved = [...open.keys()].find((id) => id.startsWith('gw0.'))!;
  const gw0 = view.connectionsOf('gw0');
  const gw1Before = view.connectionsOf('gw1');
  dir.put(testRecord(moved, { gateway: 'gw1' }));
  await eventually(() => (view.records.get(moved)?.gateway === 'gw1' ? true : null), 5_000, 'the rewrite seen');
  t.same([view.connectionsOf('gw0'), view.connectionsOf('gw1')], [gw0 - 1, gw1Before + 1], 'the count follows the record to its new gateway');
  for (const id of [...open.keys()].filter((id) => id.startsWith('gw10.'))) {
    open.delete(id);
    dir.remove(id);
  }
  await settled();
  t.equal(view.connectionsOf('gw10'), 0, 'a gateway whose connections all closed: 0');
});
