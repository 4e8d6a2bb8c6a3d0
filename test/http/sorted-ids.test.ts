import t from 'tap';
import { IdIndex, SortedIds } from '../../src/http/sorted-ids.js';

/** A reproducible pseudo-random sequence (the same ids and operations on every run). */
function random(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

t.test('adds, removes and pages like a sorted array, across chunk splits and emptied chunks, also when made at once', async (t) => {
  let ids = new SortedIds();
  const model = new Set<string>();
  const next = random(42);
  const sorted = () => [...model].sort();
  let mismatches = 0;
  for (let round = 0; round < 40; round++) {
    // half way, the set made at once from a sorted list, and changed from there
    if (round === 20) ids = SortedIds.of(sorted());
    // rounds that grow (past a chunk's 1,024) and rounds that shrink (chunks emptied)
    const adding = round % 8 < 5 ? 0.8 : 0.15;
    for (let op = 0; op < 600; op++) {
      const id = `gw${Math.floor(next() * 3)}.${Math.floor(next() * 5000).toString(36)}`;
      if (next() < adding) {
        if (ids.add(id) !== !model.has(id)) mismatches++;
        model.add(id);
      } else {
        if (ids.delete(id) !== model.delete(id)) mismatches++;
      }
    }
    const expected = sorted();
    if (ids.size !== model.size || [...ids.after()].join() !== expected.join()) mismatches++;
    // from a cursor that is an id, and from one that falls between ids
    const at = expected[Math.floor(next() * expected.length)];
    if (at !== undefined) {
      if ([...ids.after(at)].join() !== expected.filter((x) => x > at).join()) mismatches++;
      const between = at + '0';
      if ([...ids.after(between)].join() !== expected.filter((x) => x > between).join()) mismatches++;
    }
  }
  t.equal(mismatches, 0, 'every answer and listing as the sorted set');
  t.ok(model.size > 2048, `ended holding ${model.size} ids (several chunks)`);
});

t.test('a run of ids removed whole chunks at a time, then added again', async (t) => {
  const ids = new SortedIds();
  const all = Array.from({ length: 5000 }, (_, i) => `c${String(i).padStart(5, '0')}`);
  for (const id of all) ids.add(id);
  // everything from 1,000 to 3,999: the chunks holding only those go
  for (const id of all.slice(1000, 4000)) ids.delete(id);
  const left = [...all.slice(0, 1000), ...all.slice(4000)];
  t.same([...ids.after()], left);
  t.same([...ids.after('c00999')], all.slice(4000), 'a cursor at the gap');
  t.same([...ids.after('c02500')], all.slice(4000), 'a cursor inside the gap');
  t.equal(all.slice(2000, 2100).filter((id) => ids.add(id)).length, 100, 'a hundred added back');
  t.same([...ids.after('c00999')].slice(0, 101), [...all.slice(2000, 2100), 'c04000'], 'in the gap, in order');
  for (const id of all) ids.delete(id);
  t.equal(ids.size, 0);
  t.same([...ids.after()], []);
});

t.test('empty, one id, a cursor past the end', async (t) => {
  const ids = new SortedIds();
  t.same([...ids.after()], []);
  t.equal(ids.delete('a'), false, 'nothing to remove');
  t.equal(ids.add('b'), true);
  t.equal(ids.add('b'), false, 'once');
  t.same([...ids.after()], ['b']);
  t.same([...ids.after('a')], ['b']);
  t.same([...ids.after('b')], [], 'exclusive');
  t.same([...ids.after('z')], []);
  t.equal(ids.delete('b'), true);
  t.equal(ids.size, 0);
  t.same([...ids.after('a')], []);
});

t.test('IdIndex: ids per key, a lone id held as itself, as a map of sorted sets would answer', async (t) => {
  const next = random(7);
  const model = new Map<string, Set<string>>();
  const expected = (key: string, after?: string) => [...(model.get(key) ?? [])].sort().filter((id) => after === undefined || id > after);
  let index = new IdIndex();
  let mismatches = 0;
  for (let round = 0; round < 30; round++) {
    // made at once from sorted lists half way, as the view makes it on its first listing
    if (round === 15) index = IdIndex.of(new Map([...model].map(([k, ids]) => [k, [...ids].sort()])));
    for (let op = 0; op < 400; op++) {
      // few ids per key: keys go between none, one and several all the time
      const key = `k${Math.floor(next() * 40)}`;
      const id = `gw.${Math.floor(next() * 12)}`;
      const ids = model.get(key) ?? new Set<string>();
      if (next() < 0.55) {
        index.add(key, id);
        model.set(key, ids.add(id));
      } else {
        index.delete(key, id);
        ids.delete(id);
        if (ids.size === 0) model.delete(key);
      }
    }
    if (index.size !== model.size) mismatches++;
    for (let k = 0; k < 40; k++) {
      const key = `k${k}`;
      const cursor = `gw.${Math.floor(next() * 12)}`;
      if ([...index.after(key)].join() !== expected(key).join()) mismatches++;
      if ([...index.after(key, cursor)].join() !== expected(key, cursor).join()) mismatches++;
    }
  }
  t.equal(mismatches, 0, 'every listing, whole and from a cursor, and the count of keys');

  const moved = new IdIndex();
  moved.move('a', [], ['x', 'y']);
  moved.move('b', [], ['y']);
  moved.move('a', ['x', 'y'], ['y', 'z']);
  t.same([...moved.after('x')], [], 'left x');
  t.same([...moved.after('y')], ['a', 'b'], 'stayed in y, once');
  t.same([...moved.after('z')], ['a'], 'joined z');
  moved.move('a', ['y', 'z'], []);
  moved.move('b', ['y'], []);
  t.equal(moved.size, 0, 'no key left when every id left');
});
