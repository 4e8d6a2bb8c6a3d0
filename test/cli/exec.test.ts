import t from 'tap';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { startGateway, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

async function stack(t: Tap.Test, execArgs: string[]) {
  const prefix = uniquePrefix();
  const exec = spawnWsgw(['exec', '--nats', nats.url, '--prefix', prefix, '--log-level', 'debug', ...execArgs]);
  t.teardown(() => exec.stop('SIGTERM'));
  await exec.waitFor((l) => l.msg === 'worker subscribed', 15_000);
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  return { exec, g };
}

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('per connection: one process each, connection in its environment, lines both ways, killed on close', { timeout: 60_000 }, async (t) => {
  const script = 'echo "hello $WSGW_CONN_ID $WSGW_PATH $QUERY_STRING $$"; while read -r line; do if [ "$line" = quit ]; then exit 0; fi; echo "you said: $line"; done';
  const { exec, g } = await stack(t, ['--per-connection', '--max-procs', '2', '--', 'sh', '-c', script]);
  const a = await TestClient.connect(`${g.url}/room?x=1`);
  t.teardown(() => a.close());
  const hello = (await a.next(10_000)).text().split(' ');
  t.equal(hello[0], 'hello');
  t.match(hello[1], /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'WSGW_CONN_ID is a connection id');
  t.equal(hello[2], '/ws/room', 'WSGW_PATH');
  t.equal(hello[3], 'x=1', 'QUERY_STRING (websocketd name)');
  const pid = Number(hello[4]);
  a.send('one');
  a.send('two\nthree');
  t.same((await a.waitFrames(4)).slice(1).map((f) => f.text()), ['you said: one', 'you said: two', 'you said: three'], 'each stdout line is a frame; a frame with a newline is two lines');

  const b = await TestClient.connect(g.url);
  t.teardown(() => b.close());
  await b.next(10_000);
  const c = await TestClient.connect(g.url);
  t.equal((await c.waitClosed(10_000)).code, 4429, 'past --max-procs a connection is closed with 4429 (try again later)');

  await a.close();
  await eventually(() => !alive(pid), 10_000, 'the program of a closed connection is stopped');
  b.send('quit');
  t.match(await b.waitClosed(10_000), { code: 1000, reason: 'program exited' }, 'the program exiting closes its connection');
  // the client can see the close before the exec process's log line reaches this one
  t.ok(await exec.waitFor((l) => l.msg === 'program exited: closing its connection', 10_000), 'logged');
});

t.test('shared: one process, lines carry the connection id; send, broadcast, close; bad lines are logged', { timeout: 60_000 }, async (t) => {
  const { exec, g } = await stack(t, ['--', process.execPath, 'test/fixtures/exec-shared.mjs']);
  const a = await TestClient.connect(`${g.url}/lobby`);
  const b = await TestClient.connect(g.url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  t.equal((await a.next(10_000)).text(), 'welcome /ws/lobby', 'open line carries the path');
  await b.next(10_000);
  a.send('ping');
  t.equal((await a.next()).text(), 'echo:ping', 'send <connId> <text>');
  a.send('all hello everyone');
  t.equal((await a.next()).text(), 'hello everyone', 'broadcast reaches the sender');
  t.equal((await b.next()).text(), 'hello everyone', 'broadcast reaches every connection');
  a.send('garbage');
  await exec.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('program wrote an invalid line'));
  b.send('still fine');
  t.equal((await b.next()).text(), 'echo:still fine', 'an invalid line harms nobody');
  a.send('bye');
  t.match(await a.waitClosed(), { code: 4321, reason: 'see you' }, 'close <connId> <code> <reason>');
  await exec.waitFor((l) => l.stderr?.startsWith('closed '), 10_000);
  t.ok(exec.lines.some((l) => l.stderr?.startsWith('opened ')), 'stderr goes to the log');
});

t.test('exec without a program is refused with a clear message', async (t) => {
  const p = spawnWsgw(['exec', '--nats', nats.url]);
  t.equal(await p.exited(), 2);
  t.match(p.stderr, /needs a program/);
});
