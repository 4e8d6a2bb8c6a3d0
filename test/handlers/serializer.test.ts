import t from 'tap';
import { KeyedSerializer } from '../../src/handlers/serializer.js';

t.test('one key runs in order even when tasks are async; keys run concurrently', async (t) => {
  const errors: unknown[] = [];
  const s = new KeyedSerializer((e) => errors.push(e));
  const log: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  s.run('a', async () => {
    await gate;
    log.push('a1');
  });
  s.run('a', () => log.push('a2'));
  s.run('a', () => {
    throw new Error('boom');
  });
  s.run('a', async () => log.push('a4'));
  s.run('b', () => log.push('b1'));
  t.same(log, ['b1'], 'b is not blocked by a');
  t.equal(s.busy, 1);
  release();
  await new Promise((r) => setImmediate(r));
  t.same(log, ['b1', 'a1', 'a2', 'a4']);
  t.equal(errors.length, 1, 'a failing task is reported and does not stop the queue');
  t.equal(s.busy, 0, 'no queue left behind');
});
