import t from 'tap';
import { OrderedQueue } from '../../src/bridge/ordered-queue.js';

type Job = { key: string; n: number };

t.test('one item in flight per key, keys in turn, order kept, concurrency bounded', async (t) => {
  const started: Job[] = [];
  const running = new Map<string, () => void>();
  let maxActive = 0;
  const q = new OrderedQueue<Job>(2, 100, (key, item, done) => {
    t.notOk(running.has(key), `nothing else of ${key} in flight`);
    started.push(item);
    running.set(key, done);
    maxActive = Math.max(maxActive, running.size);
  });
  for (const key of ['a', 'b', 'c']) for (let n = 0; n < 3; n++) q.push(key, { key, n });
  t.equal(q.active, 2);
  t.equal(q.pending, 7);
  while (running.size > 0) {
    const [key, done] = running.entries().next().value as [string, () => void];
    running.delete(key);
    done();
    done(); // a second call is ignored
  }
  t.equal(maxActive, 2);
  t.equal(started.length, 9);
  for (const key of ['a', 'b', 'c'])
    t.same(
      started.filter((j) => j.key === key).map((j) => j.n),
      [0, 1, 2],
      `${key} in order`,
    );
  // the first three starts are a, b, then c (c's turn comes before a's second item)
  t.same(
    started.slice(0, 3).map((j) => j.key),
    ['a', 'b', 'c'],
  );
  await q.idle();
});

t.test('past the limit, push refuses', async (t) => {
  const q = new OrderedQueue<number>(1, 2, () => undefined);
  t.ok(q.push('a', 1), 'starts at once');
  t.ok(q.push('a', 2));
  t.ok(q.push('a', 3));
  t.notOk(q.push('a', 4), 'two waiting: full');
  t.equal(q.pending, 2);
});

t.test('items finished synchronously run in a loop, not by recursion', async (t) => {
  // 200k items queue behind one in flight; when it finishes, the rest finish synchronously one after
  // the other: a recursive pump would overflow the stack
  let first: (() => void) | undefined;
  let ran = 0;
  const q = new OrderedQueue<number>(1, 1_000_000, (_key, item, done) => {
    ran++;
    if (item === 0) first = done;
    else done();
  });
  for (let i = 0; i < 200_000; i++) q.push('k', i);
  t.equal(ran, 1);
  t.equal(q.pending, 199_999);
  first!();
  t.equal(ran, 200_000, 'every item ran');
  t.equal(q.pending, 0);
  t.equal(q.active, 0);
  await q.idle();
});

t.test('a run that throws frees its turn', async (t) => {
  const seen: number[] = [];
  const q = new OrderedQueue<number>(1, 10, (_key, item, done) => {
    seen.push(item);
    if (item === 1) throw new Error('boom');
    setImmediate(done);
  });
  q.push('a', 1);
  q.push('a', 2);
  await q.idle();
  t.same(seen, [1, 2]);
});

t.test('idle resolves once everything finished', async (t) => {
  const dones: Array<() => void> = [];
  const q = new OrderedQueue<number>(4, 10, (_key, _item, done) => dones.push(done));
  await q.idle(); // nothing queued: at once
  q.push('a', 1);
  q.push('b', 2);
  let idle = false;
  const waiting = q.idle().then(() => (idle = true));
  dones.shift()!();
  await new Promise((r) => setImmediate(r));
  t.notOk(idle, 'one still in flight');
  dones.shift()!();
  await waiting;
  t.ok(idle);
});
