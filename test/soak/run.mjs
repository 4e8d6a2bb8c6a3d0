// `npm run soak [-- --duration 120 --clients 200]`: minutes of churn against real processes, then the
// properties that must hold. Not part of `npm test`. Everything it starts listens on loopback and is
// stopped at the end; every loop is bounded in count and time.
//
// Churn: clients connect to either gateway, exchange frames with the echo worker, leave after a random
// while and come back; a third of the way in gateway A is killed with SIGKILL (and a new one started);
// two thirds in nats-server is restarted. Gateways and worker run in durable mode, so every open and
// close event is in the stream and this script counts them exactly, whatever restarts.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values: o } = parseArgs({ options: { duration: { type: 'string', default: '120' }, clients: { type: 'string', default: '200' }, lease: { type: 'string', default: '3000' } } });
const DURATION = Math.min(Number(o.duration), 1800) * 1000;
const CLIENTS = Math.min(Number(o.clients), 2000);
const LEASE = Math.max(1000, Number(o.lease));
const prefix = 'soak';
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
const log = (...a) => console.error(new Date().toISOString().slice(11, 19), ...a);

// --- processes -----------------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'wsgw-soak-'));
const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find(existsSync) ?? 'nats-server';
let natsPort = 0;
async function startNats() {
  for (const f of readdirSync(dir)) if (f.endsWith('.ports')) rmSync(join(dir, f));
  writeFileSync(join(dir, 'n.conf'), `host: 127.0.0.1\nport: ${natsPort || -1}\nports_file_dir: "${dir}"\njetstream { store_dir: "${join(dir, 'js')}", max_file_store: 2GB }\n`);
  const child = spawn(natsBin, ['-c', join(dir, 'n.conf')], { stdio: 'ignore' });
  children.add(child);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const f = readdirSync(dir).find((x) => x.endsWith('.ports'));
    if (f) {
      try {
        natsPort = Number(new URL(JSON.parse(readFileSync(join(dir, f), 'utf8')).nats[0].replace('nats:', 'http:')).port);
        return child;
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('nats-server did not start');
}
function wsgw(args, ready) {
  const child = spawn(process.execPath, [join(root, 'bin/wsgw.js'), ...args, '--nats', `nats://127.0.0.1:${natsPort}`, '--prefix', prefix], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let buf = '';
  const found = new Promise((resolve, reject) => {
    child.stdout.on('data', (b) => {
      buf += b;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
        try {
          const v = ready(JSON.parse(buf.slice(0, i)));
          if (v !== undefined) resolve(v);
        } catch {}
      }
    });
    child.once('exit', (c) => reject(new Error(`${args[0]} exited ${c}`)));
  });
  return { child, ready: found };
}
const stats = (pid) => ({
  rssMiB: Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024,
  fds: readdirSync(`/proc/${pid}/fd`).length,
});

let natsChild = await startNats();
const listening = (v) => (v.msg === 'gateway listening' ? v.port : undefined);
const gwArgs = (id) => ['gateway', '-p', '0', '--host', '127.0.0.1', '--id', id, '--durable', '--lease-ms', String(LEASE), '--log-level', 'info'];
let gwA = wsgw(gwArgs('soak-a1'), listening);
const gwB = wsgw(gwArgs('soak-b'), listening);
const ports = { a: await gwA.ready, b: await gwB.ready };
const worker = wsgw(['worker', '--durable', '--durable-ack-wait', '5000', '--log-level', 'info'], (v) => (v.msg === 'worker subscribed' ? true : undefined));
await worker.ready;
const svc = wsgw(['connections', '-p', '0', '--host', '127.0.0.1', '--lease-ms', String(LEASE), '--log-level', 'info'], (v) => (v.msg === 'connection service listening' ? v.port : undefined));
await svc.ready;
log(`nats :${natsPort}, gateways :${ports.a} :${ports.b}, ${CLIENTS} clients, ${DURATION / 1000} s`);

// --- churn ---------------------------------------------------------------------------------------
let running = true;
const totals = { connects: 0, connectFailures: 0, sent: 0, echoed: 0, closedByServer: 0 };
async function client(n) {
  while (running) {
    const port = Math.random() < 0.5 ? ports.a : ports.b;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const opened = await new Promise((r) => {
      ws.once('open', () => r(true));
      ws.once('error', () => r(false));
    });
    if (!opened) {
      totals.connectFailures++;
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    totals.connects++;
    ws.on('message', () => totals.echoed++);
    ws.on('error', () => undefined);
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    const stay = 500 + Math.random() * 4000;
    const until = Date.now() + stay;
    let serverClosed = false;
    closed.then(() => (serverClosed = true));
    while (running && Date.now() < until && !serverClosed) {
      ws.send(`c${n} ${totals.sent++}`);
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
    }
    if (serverClosed) totals.closedByServer++;
    else ws.close();
    await closed;
  }
}
const churn = Array.from({ length: CLIENTS }, (_, i) => client(i));
const t0 = Date.now();
const sample = () => ({ gatewayB: stats(gwB.child.pid), worker: stats(worker.child.pid), connections: stats(svc.child.pid) });
await new Promise((r) => setTimeout(r, Math.min(10_000, DURATION / 6)));
const early = sample();

await new Promise((r) => setTimeout(r, Math.max(0, t0 + DURATION / 3 - Date.now())));
log('SIGKILL gateway A');
gwA.child.kill('SIGKILL');
gwA = wsgw(gwArgs('soak-a2'), listening);
ports.a = await gwA.ready;

await new Promise((r) => setTimeout(r, Math.max(0, t0 + (2 * DURATION) / 3 - Date.now())));
log('restarting nats-server');
natsChild.kill('SIGTERM');
await new Promise((r) => natsChild.once('exit', r));
natsChild = await startNats();

await new Promise((r) => setTimeout(r, Math.max(0, t0 + DURATION - Date.now())));
const late = sample();
running = false;
await Promise.all(churn);
log('churn stopped; waiting for the lost gateway to be swept and every close to land');

// --- checks --------------------------------------------------------------------------------------
const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
const kv = await new Kvm(nc).open(`${prefix}_connections`);
const js = jetstream(nc);
async function countEvents() {
  const opens = new Map();
  const closes = new Map();
  // an unfiltered ordered consumer: nats-server 2.9 has no multi-filter consumers
  const c = await js.consumers.get(`${prefix}_inbound`);
  const info = await js.jetstreamManager().then((m) => m.streams.info(`${prefix}_inbound`));
  let seen = 0;
  const total = info.state.last_seq - info.state.first_seq + 1;
  const iter = await c.consume();
  for await (const m of iter) {
    seen++;
    if (m.subject.endsWith('.in.open')) {
      const id = m.json().id;
      opens.set(id, (opens.get(id) ?? 0) + 1);
    } else if (m.subject.endsWith('.in.close')) {
      const ev = m.json();
      const e = closes.get(ev.id) ?? { n: 0, lost: ev.lost };
      e.n++;
      closes.set(ev.id, e);
    }
    if (m.info.pending === 0 || seen >= total) break;
  }
  return { opens, closes };
}
let result;
for (const deadline = Date.now() + 60_000; ; ) {
  const keys = [];
  for await (const k of await kv.keys()) keys.push(k);
  result = await countEvents();
  const missing = [...result.opens.keys()].filter((id) => !result.closes.has(id));
  if ((keys.length === 0 && missing.length === 0) || Date.now() > deadline) {
    result.keys = keys;
    result.missing = missing;
    break;
  }
  await new Promise((r) => setTimeout(r, 1_000));
}
const duplicateOpens = [...result.opens.values()].filter((n) => n !== 1).length;
const duplicateCloses = [...result.closes.values()].filter((e) => e.n !== 1).length;
const closesWithoutOpen = [...result.closes.entries()].filter(([id]) => !result.opens.has(id));
const lostCloses = [...result.closes.values()].filter((e) => e.lost).length;
const growth = Object.fromEntries(Object.keys(early).map((k) => [k, { rssMiB: +(late[k].rssMiB - early[k].rssMiB).toFixed(1), fds: late[k].fds - early[k].fds }]));
const report = {
  durationS: DURATION / 1000,
  clients: CLIENTS,
  ...totals,
  opens: result.opens.size,
  closes: result.closes.size,
  lostCloses,
  opensWithoutClose: result.missing.length,
  duplicateOpens,
  duplicateCloses,
  closesWithoutOpen: closesWithoutOpen.length,
  closesWithoutOpenAllLost: closesWithoutOpen.every(([, e]) => e.lost),
  kvRecordsLeft: result.keys.length,
  early,
  late,
  growth,
};
const ok =
  report.opensWithoutClose === 0 &&
  duplicateOpens === 0 &&
  duplicateCloses === 0 &&
  report.closesWithoutOpenAllLost &&
  report.kvRecordsLeft === 0 &&
  Object.values(growth).every((g) => g.rssMiB < 64 && g.fds < 64);
// where the failures are, by gateway: the first place to look when a property fails
const byGateway = (ids) => ids.reduce((m, id) => ((m[id.slice(0, id.indexOf('.'))] = (m[id.slice(0, id.indexOf('.'))] ?? 0) + 1), m), {});
report.opensWithoutCloseByGateway = byGateway(result.missing);
report.duplicateClosesByGateway = byGateway([...result.closes.entries()].filter(([, e]) => e.n !== 1).map(([id]) => id));
report.kvRecordsLeftByGateway = byGateway(result.keys);
console.log(JSON.stringify(report, null, 2));
mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(join(root, 'bench-results/soak.json'), JSON.stringify({ ok, report, node: process.version, natsServer: execFileSync(natsBin, ['--version'], { encoding: 'utf8' }).trim() }, null, 2));
console.log(ok ? 'soak: every property held' : 'soak: a property failed (see above)');
await nc.close();
for (const c of children) c.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
