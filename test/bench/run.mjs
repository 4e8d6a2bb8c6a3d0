// `npm run bench`: every scenario in one run on this machine, each next to the bound measured in the
// same run. Starts its own nats-server on a free port; every process it starts is stopped at the end.
// Usage: npm run bench [-- --duration 5 --repeat 3 --only local,worker --profile]  (keys: bound bound20k local worker worker1k worker20k
// floor floor20k bridge floorbridge pushpin httpbound httpsend httpsendgw httpbroadcast httpfloor fanoutbound fanout
// idlelocal idle idle100k)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values: opts } = parseArgs({ options: { duration: { type: 'string', default: '5' }, only: { type: 'string', default: '' }, repeat: { type: 'string', default: '1' }, 'render-only': { type: 'boolean', default: false }, profile: { type: 'boolean', default: false } } });
// --repeat N: every scenario but the idle ones runs N times, in rounds (bound, local, worker, ...,
// then again), and each row reports its median run; a figure here moves by ±20% from run to run
// --profile: every wsgw process runs under `node --cpu-prof`; each profile lands in
// bench-results/profiles/<scenario>/<command>/ with a flame graph (SVG) beside it. Profiling slows
// the processes, so such a run's figures are not comparable and it refreshes no docs.
// --render-only: no scenario runs; the table, goals and chart are rendered again from bench-results/latest.json
const previous = opts['render-only'] ? JSON.parse(readFileSync(fileURLToPath(new URL('../../bench-results/latest.json', import.meta.url)), 'utf8')) : null;
if (previous) [opts.duration, opts.repeat] = [String(previous.duration), String(previous.repeat ?? 1)];
const only = opts.only ? new Set(opts.only.split(',')) : null;
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));

/**
 * Spawns a process and waits for the first stdout JSON line `ready` maps to a value. `readyMs` is how
 * long that may take: 20 s to start a server; a load generator answers only after its whole run.
 */
function start(cmd, args, ready, readyMs = 20_000) {
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (b) => (err = (err + b).slice(-2000)));
  const found = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not ready in ${readyMs / 1000} s\n${out}${err}`)), readyMs);
    child.stdout.on('data', (b) => {
      out += b;
      for (const line of out.split('\n')) {
        try {
          const v = ready(JSON.parse(line));
          if (v !== undefined) {
            clearTimeout(timer);
            resolve(v);
            return;
          }
        } catch {}
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}\n${err}`)));
  });
  return { child, ready: found, stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once('exit', r), child.kill('SIGTERM')))).finally(() => children.delete(child)) };
}

async function startNats() {
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-bench-nats-'));
  const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find(existsSync) ?? 'nats-server';
  writeFileSync(join(dir, 'c.conf'), `host: 127.0.0.1\nport: -1\nports_file_dir: "${dir}"\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
  const child = spawn(bin, ['-c', join(dir, 'c.conf')], { stdio: 'ignore' });
  children.add(child);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const f = readdirSync(dir).find((x) => x.endsWith('.ports'));
    if (f) {
      try {
        const url = JSON.parse(readFileSync(join(dir, f), 'utf8')).nats[0];
        return { url, version: execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(), stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))).then(() => rmSync(dir, { recursive: true, force: true })) };
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('nats-server did not start');
}

/** How long a generator that reports after its run may take: warm-up, --duration, and 20 s to connect and stop. */
const runMs = () => (1 + Number(opts.duration) + 20) * 1000;
/** How long an idle generator may take to try its (up to 15k) connections, several generators at once on two shared cores. */
const IDLE_GEN_MS = 120_000;

/**
 * Offers `conns` connections (closed loop with `inflight` frames each, or a fixed total `rate`) from
 * `procs` generator processes at once (one process cannot saturate a uWS server), and merges them.
 */
async function load(url, { conns = 100, inflight = 10, size = 64, rate = 0, procs = 2 } = {}) {
  const args = ['--url', url, '--duration', opts.duration, '--conns', String(conns / procs), '--inflight', String(inflight), '--size', String(size), '--rate', String(rate / procs)];
  const parts = await Promise.all(
    Array.from({ length: procs }, () => {
      const g = start(process.execPath, [join(root, 'test/bench/loadgen.mjs'), ...args], (v) => (v.rate !== undefined ? v : undefined), runMs());
      return g.ready.finally(() => g.stop());
    }),
  );
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  // the worse generator's percentiles: an upper bound on the merged ones
  return { conns: sum('conns'), rate: sum('rate'), p50ms: Math.max(...parts.map((p) => p.p50ms)), p99ms: Math.max(...parts.map((p) => p.p99ms)), errors: sum('errors'), closedEarly: sum('closedEarly') };
}

/** The scenario running now (where --profile puts its profiles). */
let current = '';
const PROFILES = join(root, 'bench-results/profiles');
// a profiling run's profiles only (an earlier run's would be mixed in)
if (opts.profile && !previous) rmSync(PROFILES, { recursive: true, force: true });
/** `node` flags for a wsgw process running `command` (a CPU profile with --profile). */
const nodeFlags = (command) => (opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILES, current, command)}`] : []);
/** Starts `wsgw <args>` (args[0] is the command). */
const wsgwProc = (args, ready) => start(process.execPath, [...nodeFlags(args[0]), join(root, 'bin/wsgw.js'), ...args], ready);
const wsgw = (args) => wsgwProc([...args, '--log-level', 'info'], (v) => (v.msg === 'gateway listening' ? v.port : v.msg === 'worker subscribed' ? true : undefined));
/** A `start` of one of the bench's own scripts that prints `{"port":N}` when listening. */
const listening = (script) => start(process.execPath, [join(root, 'test/bench', script)], (v) => v.port);

/**
 * Starts processes one after another (each ready before the next starts; a starter gets the ready
 * values so far), runs `fn` with all of them, and stops every one started, the last first, whatever
 * happened.
 */
async function using(starters, fn) {
  const started = [];
  try {
    const ready = [];
    for (const starter of starters) {
      const proc = starter(ready);
      started.push(proc);
      ready.push(await proc.ready);
    }
    return await fn(ready);
  } finally {
    for (const proc of started.reverse()) await proc.stop();
  }
}

const results = [];
/** Scenarios in file order; `runAll` runs them (in rounds with --repeat). */
const registry = [];
async function scenario(key, label, fn, { once = false } = {}) {
  if (previous || (only && !only.has(key))) return;
  registry.push({ key, label, fn, once });
}
async function runOnce({ key, label, fn }, round, rounds) {
  current = key;
  process.stderr.write(`running ${label}${rounds > 1 ? ` (round ${round} of ${rounds})` : ''} ...\n`);
  try {
    return { key, label, ...(await fn()) };
  } catch (err) {
    if (process.env.BENCH_DEBUG) process.stderr.write(String(err.stack ?? err) + '\n');
    return { key, label, error: String(err.message ?? err).split('\n')[0] };
  }
}
/** The run with the median rate (the lower middle one for an even count), its own percentiles with it, and every run's rate in the note. */
function medianRun(runs) {
  const ok = runs.filter((r) => !r.error && !r.missing);
  if (ok.length < runs.length) return runs.find((r) => r.error) ?? runs[0];
  if (ok.length === 1) return ok[0];
  const sorted = [...ok].sort((a, b) => a.rate - b.rate);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)];
  const list = ok.map((r) => r.rate.toLocaleString('en-US')).join(', ');
  return { ...mid, rates: ok.map((r) => r.rate), note: `median of ${ok.length} runs (${list})${mid.note ? `; ${mid.note}` : ''}` };
}
async function runAll() {
  const rounds = Math.max(1, Math.min(Number(opts.repeat) || 1, 9));
  const runs = new Map(registry.map((s) => [s.key, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const s of registry) if (round === 1 || !s.once) runs.get(s.key).push(await runOnce(s, round, s.once ? 1 : rounds));
  }
  for (const s of registry) results.push(medianRun(runs.get(s.key)));
}

const nats = previous ? { url: '', version: previous.machine.natsServer, stop: async () => {} } : await startNats();
if (previous) results.push(...previous.results);

await scenario('bound', 'uWS in-process echo (bound), 64 B', () => using([() => listening('uws-echo.mjs')], ([port]) => load(`ws://127.0.0.1:${port}/`)));
// the same echo at the fixed rate of worker20k and floor20k: the latency this machine and generator
// add by themselves, before any NATS hop
await scenario('bound20k', 'uWS in-process echo (bound), fixed 20k msg/s, 64 B', () => using([() => listening('uws-echo.mjs')], ([port]) => load(`ws://127.0.0.1:${port}/`, { rate: 20_000 })));
await scenario('local', 'wsgw local echo, 64 B', () => using([() => wsgw(['local', '-p', '0', '--host', '127.0.0.1'])], ([port]) => load(`ws://127.0.0.1:${port}/ws`)));
for (const [key, label, shape] of [
  ['worker', 'gateway → NATS → worker echo, 64 B', {}],
  ['worker1k', 'gateway → NATS → worker echo, 1024 B', { size: 1024 }],
  ['worker20k', 'gateway → NATS → worker, fixed 20k msg/s, 64 B', { rate: 20_000 }],
]) {
  await scenario(key, label, () => {
    const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
    return using([() => wsgw(['worker', '--nats', nats.url, '--prefix', prefix]), () => wsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix])], ([, port]) => load(`ws://127.0.0.1:${port}/ws`, shape));
  });
}
/**
 * The floor (test/bench/floor/): a bare uWS gateway, bare worker, bare bridge and bare API speaking the
 * NATS protocol by hand, batched per turn, one NATS message per frame, none of wsgw's features. It is
 * what this architecture costs on this machine before any product code: the product rows are read
 * against it as well as against the bound.
 */
function floorProc(name, args, ready = (v) => v.port ?? (v.ready ? true : undefined)) {
  return start(process.execPath, [join(root, 'test/bench/floor', name), ...args], ready);
}
for (const [key, label, shape] of [
  ['floor', 'floor: bare uWS gateway → NATS → bare worker echo (no wsgw code), 64 B', {}],
  ['floor20k', 'floor: bare gateway → NATS → bare worker, fixed 20k msg/s, 64 B', { rate: 20_000 }],
]) {
  await scenario(key, label, () => using([() => floorProc('worker.mjs', [nats.url]), () => floorProc('gateway.mjs', [nats.url])], ([, port]) => load(`ws://127.0.0.1:${port}/`, shape)));
}
await scenario('bridge', 'gateway → NATS → bridge → HTTP echo app, 64 B', () => {
  const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
  return using(
    [
      () => listening('echo-app.mjs'),
      ([appPort]) => wsgwProc(['bridge', '--nats', nats.url, '--prefix', prefix, '--target', `http://127.0.0.1:${appPort}/events`, '--log-level', 'info'], (v) => (v.msg === 'bridge subscribed' ? true : undefined)),
      () => wsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix]),
    ],
    ([, , port]) => load(`ws://127.0.0.1:${port}/ws`),
  );
});
await scenario('floorbridge', "floor: bare gateway → NATS → bare bridge (undici, the contract's headers) → HTTP echo app, 64 B", () =>
  using([() => listening('echo-app.mjs'), ([appPort]) => floorProc('bridge.mjs', [nats.url, `http://127.0.0.1:${appPort}/events`]), () => floorProc('gateway.mjs', [nats.url])], ([, , port]) => load(`ws://127.0.0.1:${port}/`)),
);

/**
 * Pushpin (Debian's `pushpin`) in WebSocket-over-HTTP mode in front of an equivalent echo app. Debian's
 * shared zurl refuses 127.* targets and uses fixed ports and run directories, so Pushpin runs here
 * with its own config, templates, run and log directories in a temp dir, on free ports.
 */
async function startPushpin(appPort) {
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-bench-pushpin-'));
  for (const d of ['lib/runner', 'run', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const internal = readFileSync('/usr/lib/pushpin/internal.conf', 'utf8').replace(/ipc:\/\/\/var\/run\/zurl\/zurl-(in-stream|in|out)\b/g, 'ipc://{rundir}/{ipc_prefix}zurl-$1');
  writeFileSync(join(dir, 'lib/internal.conf'), internal);
  for (const t of readdirSync('/usr/lib/pushpin/runner').filter((f) => f.endsWith('.template'))) {
    const text = readFileSync(join('/usr/lib/pushpin/runner', t), 'utf8');
    writeFileSync(join(dir, 'lib/runner', t), t === 'zurl.conf.template' ? text.replace(/^deny=.*$/m, 'deny=') : text);
  }
  const [http, push, pushHttp, pushSub, command] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  writeFileSync(
    join(dir, 'pushpin.conf'),
    `[global]\ninclude={libdir}/internal.conf\nlibdir=${dir}/lib\nrundir=${dir}/run\nipc_prefix=bench-\nport_offset=0\nstats_connection_ttl=120\n\n` +
      `[runner]\nservices=condure,zurl,pushpin-proxy,pushpin-handler\nhttp_port=127.0.0.1:${http}\nlogdir=${dir}/log\nlog_level=2\nclient_buffer_size=8192\nclient_maxconn=50000\ncondure_bin=condure\nzurl_bin=zurl\n\n` +
      `[proxy]\nroutesfile=routes\nsig_iss=pushpin\nsig_key=changeme\nupdates_check=off\n\n` +
      `[handler]\npush_in_spec=tcp://127.0.0.1:${push}\npush_in_sub_specs=tcp://127.0.0.1:${pushSub}\npush_in_sub_connect=false\npush_in_http_addr=127.0.0.1\npush_in_http_port=${pushHttp}\nstats_spec=ipc://{rundir}/{ipc_prefix}stats\ncommand_spec=tcp://127.0.0.1:${command}\nmessage_rate=2500\nmessage_hwm=25000\nmessage_wait=5000\nid_cache_ttl=60\nconnection_subscription_max=20\nsubscription_linger=60\nstats_subscription_ttl=60\nstats_report_interval=10\n`,
  );
  writeFileSync(join(dir, 'routes'), `* 127.0.0.1:${appPort},over_http\n`);
  const child = spawn('pushpin', ['--config', join(dir, 'pushpin.conf')], { stdio: 'ignore' });
  children.add(child);
  const stop = async () => {
    if (child.exitCode === null) await new Promise((r) => (child.once('exit', r), child.kill('SIGTERM')));
    children.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  // ready when a WebSocket echo comes back through it
  const { default: WebSocket } = await import('ws');
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${http}/echo`);
      const t = setTimeout(() => (ws.terminate(), resolve(false)), 1000);
      ws.on('open', () => ws.send('ping'));
      ws.on('message', () => (clearTimeout(t), ws.close(), resolve(true)));
      ws.on('error', () => (clearTimeout(t), resolve(false)));
    });
    if (ok) return { port: http, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error('pushpin did not echo within 20 s');
}
await scenario('pushpin', 'peer: Pushpin (WebSocket-over-HTTP) → HTTP echo app, 64 B', async () => {
  let version;
  try {
    version = execFileSync('pushpin', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return { missing: 'not installed (apt-get install pushpin)' };
  }
  const app = start(process.execPath, [join(root, 'test/bench/wsoverhttp-echo.mjs')], (v) => v.port);
  const appPort = await app.ready;
  const pp = await startPushpin(appPort);
  try {
    const r = await load(`ws://127.0.0.1:${pp.port}/echo`);
    return { ...r, note: `${version.split('\n')[0]}${r.closedEarly ? `; ${r.closedEarly} of ${r.conns} connections closed by the server during the run` : ''}` };
  } finally {
    await pp.stop();
    await app.stop();
  }
});

/** autocannon against `url` with a 64-byte body; returns req/s, p99 and non-2xx counts. */
async function cannon(url) {
  const autocannon = (await import('autocannon')).default;
  const r = await autocannon({ url, method: 'POST', body: 'x'.repeat(64), connections: 50, pipelining: 1, duration: Number(opts.duration), headers: { 'content-type': 'text/plain' } });
  return { rate: Math.round(r.requests.average), p50ms: r.latency.p50, p99ms: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx, conns: 50, closedEarly: 0 };
}

await scenario('httpbound', 'plain uWS HTTP endpoint answering 202 (bound for the API)', () => using([() => listening('uws-202.mjs')], ([port]) => cannon(`http://127.0.0.1:${port}/x`)));
for (const [key, label] of [
  ['httpsend', 'POST /connections/:id/messages (wsgw connections), 64 B'],
  ['httpsendgw', 'POST /connections/:id/messages on the owning gateway (--api), 64 B'],
  ['httpbroadcast', 'POST /topics/:topic/messages, 64 B, 10 subscribers'],
]) {
  await scenario(key, label, async () => {
    const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
    // httpsendgw: the API mounted on the gateway that owns the connection (no connection service)
    const onGateway = key === 'httpsendgw';
    const g = wsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix, ...(onGateway ? ['--api'] : [])]);
    const svc = onGateway ? { ready: g.ready, stop: async () => {} } : wsgwProc(['connections', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix, '--log-level', 'info'], (v) => (v.msg === 'connection service listening' ? v.port : undefined));
    let sink;
    try {
      const [apiPort, gwPort] = await Promise.all([svc.ready, g.ready]);
      const n = key === 'httpbroadcast' ? 10 : 1;
      sink = start(process.execPath, [join(root, 'test/bench/sink.mjs'), `ws://127.0.0.1:${gwPort}/ws`, String(n)], (v) => v.ready);
      await sink.ready;
      const api = `http://127.0.0.1:${apiPort}`;
      let ids = [];
      for (let i = 0; i < 100 && ids.length < n; i++) {
        ids = (await (await fetch(`${api}/connections`)).json()).connections.map((c) => c.id);
        if (ids.length < n) await new Promise((r) => setTimeout(r, 50));
      }
      if (ids.length < n) throw new Error('the connection service did not list the sink connections');
      if (key !== 'httpbroadcast') return await cannon(`${api}/connections/${ids[0]}/messages`);
      for (const id of ids) await fetch(`${api}/connections/${id}/topics/bench`, { method: 'PUT' });
      return await cannon(`${api}/topics/bench/messages`);
    } finally {
      await sink?.stop();
      await g.stop();
      await svc.stop();
    }
  });
}

await scenario('httpfloor', 'floor: bare API → NATS request → bare gateway (POST /connections/:id/messages), 64 B', () =>
  using(
    [() => floorProc('gateway.mjs', [nats.url]), () => floorProc('api.mjs', [nats.url]), ([gwPort]) => start(process.execPath, [join(root, 'test/bench/sink.mjs'), `ws://127.0.0.1:${gwPort}/`, '1'], (v) => v.ready)],
    // the floor gateway numbers its connections from 1
    ([, apiPort]) => cannon(`http://127.0.0.1:${apiPort}/connections/1/messages`),
  ),
);

/** Broadcast fan-out: 1,000 subscribers on one topic, one publisher with 512 broadcasts outstanding. */
async function fanout(urls) {
  const g = start(process.execPath, [join(root, 'test/bench/fanout.mjs'), '--urls', urls.join(','), '--subs', '1000', '--window', '512', '--duration', opts.duration], (v) => (v.rate !== undefined ? v : undefined), runMs());
  try {
    const r = await g.ready;
    return { rate: r.rate, unit: 'deliveries/s', conns: r.conns, errors: 0, closedEarly: 0, note: `${r.broadcasts.toLocaleString('en-US')} broadcasts/s to ${r.conns.toLocaleString('en-US')} connections` };
  } finally {
    await g.stop();
  }
}
await scenario('fanoutbound', 'broadcast fan-out, uWS in-process publish (bound), 1,000 subscribers, 64 B', () => using([() => listening('uws-fanout.mjs')], ([port]) => fanout([`ws://127.0.0.1:${port}/`])));
await scenario('fanout', 'broadcast fan-out, 2 gateways + worker (ctx.publish), 1,000 subscribers, 64 B', async () => {
  const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
  const w = wsgw(['worker', '--nats', nats.url, '--prefix', prefix, '--handler', join(root, 'test/bench/fanout-handler.mjs')]);
  await w.ready;
  const gs = [0, 1].map(() => wsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix]));
  try {
    const ports = await Promise.all(gs.map((g) => g.ready));
    return { ...(await fanout(ports.map((p) => `ws://127.0.0.1:${p}/ws`))), ref: 'fanoutbound' };
  } finally {
    await Promise.all(gs.map((g) => g.stop()));
    await w.stop();
  }
});

/** Resident memory of these processes, in bytes (Linux /proc). */
function rss(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    } catch {}
  }
  return kb * 1024;
}
/**
 * RSS once V8 has released what it no longer needs: its memory reducer runs some seconds after a
 * process goes idle (seen here: 10-30 s). Polled every 3 s; done 6 s after a drop of 5% or more, or
 * at 45 s. Returns the lowest value and when it was seen (seconds).
 */
async function settledRss(pids) {
  let low = rss(pids);
  let at = 0;
  let dropped = false;
  let calm = 0;
  for (let t = 3; t <= 45 && !(dropped && calm >= 2); t += 3) {
    await new Promise((r) => setTimeout(r, 3000));
    const now = rss(pids);
    if (now < low * 0.95) [low, at, dropped, calm] = [now, t, true, 0];
    else {
      if (now < low) [low, at] = [now, t];
      calm++;
    }
  }
  return [low, at];
}
/** Direct children of `pid` (the gateway processes under `--procs`). */
function childrenOf(pid) {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}
// 127.<random>.x.y, never .0 nor .255, a fresh one each call
let sourceAddresses = Math.floor(Math.random() * 200) * 254 * 254;
function nextSourceAddress() {
  const n = sourceAddresses++;
  return `127.${1 + Math.floor(n / (254 * 254)) % 254}.${1 + (Math.floor(n / 254) % 254)}.${1 + (n % 254)}`;
}
async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Opens `conns` idle connections to a gateway from several generator processes and loopback source
 * addresses; reports connect rate, connections held and the gateway's RSS per connection.
 */
async function idle({ mode, conns, procs = 1, perGen = 15_000 }) {
  const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
  const port = await freePort();
  const ids = new Set();
  const args = mode === 'local' ? ['local', '-p', String(port), '--host', '127.0.0.1'] : ['gateway', '-p', String(port), '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix, '--procs', String(procs)];
  const g = wsgwProc([...args, '--log-level', 'info', '--log-format', 'json'], (v) => {
    if (v.msg === 'gateway listening') ids.add(v.gateway);
    return ids.size >= procs ? true : undefined;
  });
  const gens = [];
  try {
    await g.ready;
    const pids = procs > 1 ? childrenOf(g.child.pid) : [g.child.pid];
    // baseline and result are both taken once V8 has released what it no longer needs (its memory
    // reducer runs after the process has been idle a while): startup garbage on one side and the
    // connect burst's on the other would otherwise skew the difference
    const [before] = await settledRss(pids);
    const n = Math.ceil(conns / perGen);
    // fresh loopback source addresses, ~2.5k connections each: a client that binds its source address
    // gets its port without regard to the destination (ports in TIME_WAIT from an earlier scenario stay
    // unusable on a reused address), and the kernel's search for a free port slows down sharply as
    // an address's range fills
    const addrs = () => Array.from({ length: 6 }, nextSourceAddress).join(',');
    for (let i = 0; i < n; i++) {
      gens.push(start(process.execPath, [join(root, 'test/bench/idle.mjs'), '--url', `ws://127.0.0.1:${port}/ws`, '--conns', String(Math.min(perGen, conns - i * perGen)), '--addrs', addrs()], (v) => (v.opened !== undefined ? v : undefined), IDLE_GEN_MS));
    }
    const parts = await Promise.all(gens.map((x) => x.ready));
    const opened = parts.reduce((a, p) => a + p.opened, 0);
    const failed = parts.reduce((a, p) => a + p.failed, 0);
    const ms = Math.max(...parts.map((p) => p.ms));
    let registered = null;
    if (mode !== 'local') {
      // every connection's record reaches the KV bucket (written without being awaited in the upgrade)
      const { connect } = await import('@nats-io/transport-node');
      const { Kvm } = await import('@nats-io/kv');
      const nc = await connect({ servers: nats.url });
      const kv = await new Kvm(nc).open(`${prefix}_connections`);
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        registered = (await kv.status()).values;
        if (registered >= opened) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      await nc.close();
    }
    await new Promise((r) => setTimeout(r, 1000));
    const after = rss(pids);
    const [settled, settledAfterS] = await settledRss(pids);
    const kb = (bytes) => (bytes / Math.max(opened, 1) / 1024).toFixed(2);
    return {
      rate: Math.round((opened * 1000) / ms),
      unit: 'conn/s',
      conns: opened,
      errors: failed,
      closedEarly: 0,
      rssPerConnBytes: Math.round((settled - before) / Math.max(opened, 1)),
      rssPerConnJustAfterBytes: Math.round((after - before) / Math.max(opened, 1)),
      rssSettledAfterS: settledAfterS,
      rssMiB: Math.round(settled / 2 ** 20),
      registered,
      procs,
      note: `${opened.toLocaleString('en-US')} held by ${procs} process${procs > 1 ? 'es' : ''}; RSS/conn ${kb(settled - before)} KB idle (settled ${settledAfterS + 1} s after connecting), ${kb(after - before)} KB 1 s after${registered === null ? '' : `; ${registered.toLocaleString('en-US')} KV records`}`,
    };
  } finally {
    await Promise.all(gens.map((x) => x.stop()));
    await g.stop();
  }
}
// the idle scenarios take minutes each (connecting, then waiting for V8 to release memory): once
await scenario('idlelocal', 'idle 15k connections, wsgw local (no NATS, no KV): connect rate', () => idle({ mode: 'local', conns: 15_000, perGen: 7_500 }), { once: true });
await scenario('idle', 'idle 15k connections, one gateway process with KV registration', () => idle({ mode: 'gateway', conns: 15_000, perGen: 7_500 }), { once: true });
await scenario('idle100k', 'idle 100k connections, wsgw gateway --procs 6 with KV registration', () => idle({ mode: 'gateway', conns: 100_000, procs: 6 }), { once: true });
await runAll();
await nats.stop();

const bound = results.find((r) => r.key === 'bound')?.rate;
const httpBound = results.find((r) => r.key === 'httpbound')?.rate;
const machine = previous?.machine ?? { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, natsServer: nats.version, date: new Date().toISOString() };
const idleLocal = results.find((r) => r.key === 'idlelocal')?.rate;
/** What each row is compared with: the bound measured in the same run for its kind. */
function referenceOf(r) {
  if (r.key.endsWith('bound')) return r.rate;
  if (r.key.startsWith('http')) return httpBound;
  if (r.key === 'idle') return idleLocal;
  if (r.ref) return results.find((x) => x.key === r.ref)?.rate;
  if (r.key.endsWith('20k') || r.key.startsWith('idle')) return undefined;
  return bound;
}
const lines = ['| scenario | rate | vs bound | p50 ms | p99 ms | errors | notes |', '|---|---:|---:|---:|---:|---:|---|'];
for (const r of results) {
  if (r.error) lines.push(`| ${r.label} | failed: ${r.error} | | | | | |`);
  else if (r.missing) lines.push(`| ${r.label} | ${r.missing} | | | | | |`);
  else {
    const ref = referenceOf(r);
    r.vsBound = ref ? r.rate / ref : null;
    const ms = (v) => (v === undefined ? '—' : v);
    lines.push(`| ${r.label} | ${r.rate.toLocaleString('en-US')} ${r.unit ?? (r.key.startsWith('http') ? 'req/s' : 'msg/s')} | ${ref ? Math.round(100 * r.vsBound) + '%' : '—'} | ${ms(r.p50ms)} | ${ms(r.p99ms)} | ${r.errors + r.closedEarly} | ${r.note ?? ''} |`);
  }
}
const table = lines.join('\n');

// the issue's goals, each checked against this run's figures (— when a scenario did not run)
const get = (key) => results.find((r) => r.key === key && !r.error && !r.missing);
const ratio = (a, b) => (get(a) && get(b) ? get(a).rate / get(b).rate : null);
const pct = (v) => (v === null ? '—' : `${Math.round(100 * v)}%`);
const goals = [
  ['gateway → NATS → worker ≥ 50% of the uWS bound', pct(ratio('worker', 'bound')), ratio('worker', 'bound'), (v) => v >= 0.5, pct(ratio('floor', 'bound'))],
  ['p99 ≤ 15 ms at 100 connections × 10 in flight (worker)', get('worker') ? `${get('worker').p99ms} ms` : '—', get('worker')?.p99ms ?? null, (v) => v <= 15, get('floor') ? `${get('floor').p99ms} ms` : '—'],
  ['p99 ≤ 2 ms at a fixed 20k msg/s (worker)', get('worker20k') ? `${get('worker20k').p99ms} ms` : '—', get('worker20k')?.p99ms ?? null, (v) => v <= 2, `${get('floor20k') ? `${get('floor20k').p99ms} ms` : '—'}${get('bound20k') ? ` (the uWS bound at the same rate: ${get('bound20k').p99ms} ms)` : ''}`],
  ['worker ≥ 10× Pushpin, zero errors', ratio('worker', 'pushpin') === null ? '—' : `${ratio('worker', 'pushpin').toFixed(1)}×, ${get('worker').errors + get('worker').closedEarly} errors`, ratio('worker', 'pushpin'), (v) => v >= 10 && get('worker').errors + get('worker').closedEarly === 0],
  ['bridge ≥ 2× Pushpin, zero errors', ratio('bridge', 'pushpin') === null ? '—' : `${ratio('bridge', 'pushpin').toFixed(1)}×, ${get('bridge').errors + get('bridge').closedEarly} errors`, ratio('bridge', 'pushpin'), (v) => v >= 2 && get('bridge').errors + get('bridge').closedEarly === 0, ratio('floorbridge', 'pushpin') === null ? '—' : `${ratio('floorbridge', 'pushpin').toFixed(1)}×`],
  ['idle: ≤ 2 KB gateway RSS per connection with KV registration', get('idle') ? `${(get('idle').rssPerConnBytes / 1024).toFixed(2)} KB idle (${(get('idle').rssPerConnJustAfterBytes / 1024).toFixed(2)} KB 1 s after connecting)` : '—', get('idle')?.rssPerConnBytes ?? null, (v) => v <= 2048],
  ['connect rate with KV registration ≥ 80% of without', pct(ratio('idle', 'idlelocal')), ratio('idle', 'idlelocal'), (v) => v >= 0.795],
  ['100k idle connections with --procs', get('idle100k') ? `${get('idle100k').conns.toLocaleString('en-US')} held, ${get('idle100k').registered?.toLocaleString('en-US')} KV records` : '—', get('idle100k')?.conns ?? null, (v) => v >= 100_000 && get('idle100k').registered >= 100_000],
  ['broadcast fan-out ≥ 50% of uWS in-process publish', pct(ratio('fanout', 'fanoutbound')), ratio('fanout', 'fanoutbound'), (v) => v >= 0.5],
  ['HTTP send API ≥ 60% of the plain 202 endpoint (connection service)', pct(ratio('httpsend', 'httpbound')), ratio('httpsend', 'httpbound'), (v) => v >= 0.6, pct(ratio('httpfloor', 'httpbound'))],
  ['HTTP send API ≥ 60% of the plain 202 endpoint (on the owning gateway, --api)', pct(ratio('httpsendgw', 'httpbound')), ratio('httpsendgw', 'httpbound'), (v) => v >= 0.6],
].map(([goal, measured, value, test, floor = '']) => ({ goal, measured, met: value === null ? null : test(value), floor }));
// the floor column: the same figure for the bare floor processes (test/bench/floor/), same run
const goalTable = ['| goal | this run | met | floor, same run |', '|---|---|---|---|', ...goals.map((g) => `| ${g.goal} | ${g.measured} | ${g.met === null ? 'not run' : g.met ? 'yes' : '**no**'} | ${g.floor} |`)].join('\n');

/** A horizontal bar per scenario: its rate as a share of its bound (the bound rows are 100%). */
function chart() {
  const rows = results.filter((r) => typeof r.vsBound === 'number');
  const W = 900;
  const left = 430;
  const barW = W - left - 150;
  const rowH = 26;
  const max = Math.max(1, ...rows.map((r) => r.vsBound));
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const h = 50 + rows.length * rowH + 20;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${h}" fill="#fff"/>`, `<text x="10" y="20" font-size="14" font-weight="bold">${esc(`wsgw npm run bench: share of the bound measured in the same run (${machine.cores} × ${machine.cpu}, ${machine.date.slice(0, 10)})`)}</text>`];
  const x100 = left + barW / max;
  out.push(`<line x1="${x100}" y1="34" x2="${x100}" y2="${h - 14}" stroke="#999" stroke-dasharray="4 3"/><text x="${x100 + 3}" y="44" fill="#666">100%</text>`);
  rows.forEach((r, i) => {
    const y = 50 + i * rowH;
    const w = Math.max(1, (barW * r.vsBound) / max);
    const colour = r.key.endsWith('bound') ? '#9aa5b1' : r.key === 'pushpin' ? '#d98c5f' : r.key.includes('floor') ? '#b9c7d6' : '#3b82c4';
    out.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(r.label.length > 60 ? r.label.slice(0, 59) + '…' : r.label)}</text>`);
    out.push(`<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${colour}"/>`);
    out.push(`<text x="${left + w + 5}" y="${y + 15}">${Math.round(100 * r.vsBound)}% · ${esc(r.rate.toLocaleString('en-US'))}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const header = `${machine.cores} × ${machine.cpu}, Node ${machine.node}, ${machine.natsServer}; ${opts.duration} s per scenario${Number(opts.repeat) > 1 ? `, each row the median of ${opts.repeat} rounds (idle rows: one)` : ''}, 100 connections × 10 in flight unless said`;
process.stdout.write(`\n${header}\n\n${table}\n\n${goalTable}\n`);
mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(join(root, 'bench-results/latest.json'), JSON.stringify({ machine, duration: Number(opts.duration), repeat: Number(opts.repeat), results, goals }, null, 2));
writeFileSync(join(root, 'bench-results/latest.svg'), chart());
writeFileSync(join(root, 'bench-results/latest.md'), `${header}\n\n${table}\n\n${goalTable}\n`);
if (opts.profile) {
  // a flame graph beside every profile the run wrote
  const { callTree, flameSvg } = await import('./flame.mjs');
  const found = existsSync(PROFILES) ? readdirSync(PROFILES, { recursive: true }).filter((f) => String(f).endsWith('.cpuprofile')) : [];
  for (const f of found) {
    const file = join(PROFILES, String(f));
    writeFileSync(file.replace(/\.cpuprofile$/, '.svg'), flameSvg(callTree(JSON.parse(readFileSync(file, 'utf8'))), String(f)));
  }
  process.stderr.write(`profiles: ${found.length} in bench-results/profiles/<scenario>/<command>/, each with a flame graph (.svg)\n`);
}
if (!only && !opts.profile) {
  // a full run also refreshes the chart and table the README and docs/performance.md show
  writeFileSync(join(root, 'docs/bench.svg'), chart());
  writeFileSync(join(root, 'docs/bench-latest.md'), `# Latest full \`npm run bench -- --duration ${opts.duration}${Number(opts.repeat) > 1 ? ` --repeat ${opts.repeat}` : ''}\`\n\n${header}; ${machine.date}\n\n${table}\n\n## Goals\n\n${goalTable}\n`);
}
process.stderr.write(`results: bench-results/latest.{json,md,svg}${only || opts.profile ? '' : '; docs/bench.svg and docs/bench-latest.md refreshed'}\n`);
process.exit(0);
