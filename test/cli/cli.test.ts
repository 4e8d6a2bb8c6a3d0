import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keysFor, schema, envName } from '../../src/config/schema.js';
import { startNatsServer } from '../harness/nats-server.js';
import { freePort, spawnWsgw, WSGW_BIN } from '../harness/process.js';
import { uniquePrefix } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

const run = promisify(execFile);

async function wsgw(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [WSGW_BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('help lists every command and every option with its default and env name', async (t) => {
  const top = await wsgw(['--help']);
  t.equal(top.code, 0);
  const commands = ['local', 'gateway', 'worker', 'connections', 'bridge'] as const;
  for (const c of commands) t.match(top.stdout, new RegExp(`^  ${c} `, 'm'));
  for (const c of commands) {
    const h = await wsgw([c, '--help']);
    const flat = h.stdout.replace(/\s+/g, ' ');
    for (const key of keysFor(c)) {
      t.match(flat, schema[key].flag, `${c} help lists ${schema[key].flag}`);
      t.match(flat, envName(key), `${c} help names ${envName(key)}`);
    }
  }
});

t.test('bad options fail at start naming the option, without a stack trace', async (t) => {
  const r = await wsgw(['local', '--port', 'eighty', '--backpressure-policy', 'yolo']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--port: expected an integer, got "eighty"/);
  t.match(r.stderr, /--backpressure-policy: "yolo" is not one of drop, close/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const b = await wsgw(['bridge']);
  t.equal(b.code, 2);
  t.match(b.stderr, /--target: required by "wsgw bridge"/);
  const h = await wsgw(['local', '--handler', './no/such/module.js']);
  t.equal(h.code, 2);
  t.match(h.stderr, /cannot load handler module \.\/no\/such\/module\.js/);
});

t.test('options from --config and WSGW_* env reach the command, and their errors name them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ maxPayload: 'big', portt: 1 }));
  const bad = await wsgw(['local', '--config', join(dir, 'bad.json')], { WSGW_IDLE_TIMEOUT: 'soon' });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /config file: --max-payload: expected an integer, got "big"/);
  t.match(bad.stderr, /unknown key "portt"/);
  t.match(bad.stderr, /env WSGW_IDLE_TIMEOUT \/ --idle-timeout: expected an integer/);
  writeFileSync(join(dir, 'good.json'), JSON.stringify({ host: '127.0.0.1', path: '/from-file' }));
  const p = spawnWsgw(['local', '--config', join(dir, 'good.json')], { WSGW_PORT: '0' });
  t.teardown(() => p.stop());
  const listening = await p.waitFor((l) => l.msg === 'gateway listening');
  t.equal(listening.path, '/from-file', 'path from the file');
  t.not(listening.port, 8000, 'port 0 from the environment');
  const c = await TestClient.connect(`ws://127.0.0.1:${listening.port}/from-file`);
  c.send('configured');
  t.equal((await c.next()).text(), 'configured');
  await c.close();
});

t.test('--log-format pretty writes readable lines (auto picks them in a terminal, NDJSON in a pipe)', async (t) => {
  const p = spawnWsgw(['local', '-p', '0', '--host', '127.0.0.1', '--log-format', 'pretty']);
  t.teardown(() => p.stop());
  const line = await p.waitFor((l) => typeof l.raw === 'string' && l.raw.includes('ready: ws://'));
  t.match(line.raw, /INFO/, 'level shown as a word');
  t.notOk(p.lines.some((l) => l.raw === undefined), 'no NDJSON line');
  const auto = spawnWsgw(['local', '-p', '0', '--host', '127.0.0.1']);
  t.teardown(() => auto.stop());
  t.ok(await auto.waitFor((l) => l.msg === 'gateway listening'), 'auto in a pipe: NDJSON');
});

t.test('wsgw local serves echo and stops cleanly on SIGTERM', async (t) => {
  const p = spawnWsgw(['local', '-p', '0', '--host', '127.0.0.1']);
  t.teardown(() => p.stop());
  const ready = await p.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ready: ws://'));
  const port = /:(\d+)\//.exec(ready.msg)![1];
  const c = await TestClient.connect(`ws://127.0.0.1:${port}/ws`);
  c.send('hi');
  t.equal((await c.next()).text(), 'hi');
  t.equal(await p.stop(), 0, 'exit code 0');
  t.equal((await c.waitClosed()).code, 1001, 'client told the gateway is going away');
});

t.test('a gateway started before NATS keeps retrying, says so, then serves through a worker', async (t) => {
  const port = await freePort();
  const prefix = uniquePrefix();
  const natsUrl = `nats://127.0.0.1:${port}`;
  const gw = spawnWsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', natsUrl, '--prefix', prefix, '--id', 'gwcli']);
  t.teardown(() => gw.stop());
  const warn = await gw.waitFor((l) => l.msg === 'cannot reach NATS, retrying');
  t.equal(warn.level, 40, 'logged as a warning');
  t.same(warn.servers, [natsUrl], 'names the server it tries');
  const nats = await startNatsServer({ port });
  t.teardown(() => nats.stop());
  const listening = await gw.waitFor((l) => l.msg === 'gateway listening', 20_000);
  t.equal(listening.mode, 'remote-handlers');
  const worker = spawnWsgw(['worker', '--nats', natsUrl, '--prefix', prefix]);
  t.teardown(() => worker.stop());
  await worker.waitFor((l) => l.msg === 'worker subscribed');
  const c = await TestClient.connect(`ws://127.0.0.1:${listening.port}/ws`);
  t.teardown(() => c.close());
  c.send('through NATS');
  t.equal((await c.next()).text(), 'through NATS');
  t.equal(await worker.stop(), 0);
  t.equal(await gw.stop(), 0);
});

t.test('the seed scenario with real processes: wsgw connections, two wsgw gateways, clients on each', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const common = ['--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix];
  const svc = spawnWsgw(['connections', '-p', '0', ...common]);
  const g0 = spawnWsgw(['gateway', '-p', '0', '--id', 'gw0', ...common]);
  const g1 = spawnWsgw(['gateway', '-p', '0', '--id', 'gw1', ...common]);
  t.teardown(() => Promise.all([svc.stop(), g0.stop(), g1.stop()]));
  const api = `http://127.0.0.1:${(await svc.waitFor((l) => l.msg === 'connection service listening')).port}`;
  const c0 = await TestClient.connect(`ws://127.0.0.1:${(await g0.waitFor((l) => l.msg === 'gateway listening')).port}/ws`);
  const c1 = await TestClient.connect(`ws://127.0.0.1:${(await g1.waitFor((l) => l.msg === 'gateway listening')).port}/ws`);
  t.teardown(() => Promise.all([c0.close(), c1.close()]));
  let listed: Array<{ id: string; gateway: string }> = [];
  const deadline = Date.now() + 10_000;
  while (listed.length < 2 && Date.now() < deadline) {
    listed = ((await (await fetch(`${api}/connections`)).json()) as { connections: typeof listed }).connections;
    if (listed.length < 2) await new Promise((r) => setTimeout(r, 50));
  }
  t.same(listed.map((c) => c.gateway).sort(), ['gw0', 'gw1'], 'GET /connections lists both with their gateways');
  for (const [c, gw] of [[c0, 'gw0'], [c1, 'gw1']] as const) {
    const id = listed.find((l) => l.gateway === gw)!.id;
    t.equal((await fetch(`${api}/connections/${id}/messages`, { method: 'POST', body: `to ${gw}` })).status, 200);
    t.equal((await c.next()).text(), `to ${gw}`, `message through the service reached the client on ${gw}`);
    t.equal((await fetch(`${api}/connections/${id}?code=4000`, { method: 'DELETE' })).status, 204);
    t.equal((await c.waitClosed()).code, 4000, `close through the service reached the client on ${gw}`);
  }
});
