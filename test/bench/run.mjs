// `npm run bench`: every scenario in one run on this machine, each next to the bound measured in the
// same run. Starts its own nats-server on a free port; every process it starts is stopped at the end.
// Usage: npm run bench [-- --duration 5 --only local,worker]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values: opts } = parseArgs({ options: { duration: { type: 'string', default: '5' }, only: { type: 'string', default: '' } } });
const only = opts.only ? new Set(opts.only.split(',')) : null;
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));

function start(cmd, args, ready) {
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (b) => (err = (err + b).slice(-2000)));
  const found = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not ready in 20 s\n${out}${err}`)), 20_000);
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
        return { url, version: execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(), stop: () => (child.kill('SIGTERM'), rmSync(dir, { recursive: true, force: true })) };
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('nats-server did not start');
}

/**
 * Offers `conns` connections (closed loop with `inflight` frames each, or a fixed total `rate`) from
 * `procs` generator processes at once (one process cannot saturate a uWS server), and merges them.
 */
async function load(url, { conns = 100, inflight = 10, size = 64, rate = 0, procs = 2 } = {}) {
  const args = ['--url', url, '--duration', opts.duration, '--conns', String(conns / procs), '--inflight', String(inflight), '--size', String(size), '--rate', String(rate / procs)];
  const parts = await Promise.all(
    Array.from({ length: procs }, () => {
      const g = start(process.execPath, [join(root, 'test/bench/loadgen.mjs'), ...args], (v) => (v.rate !== undefined ? v : undefined));
      return g.ready.finally(() => g.stop());
    }),
  );
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  // the worse generator's percentiles: an upper bound on the merged ones
  return { conns: sum('conns'), rate: sum('rate'), p50ms: Math.max(...parts.map((p) => p.p50ms)), p99ms: Math.max(...parts.map((p) => p.p99ms)), errors: sum('errors'), closedEarly: sum('closedEarly') };
}

const wsgw = (args) => start(process.execPath, [join(root, 'bin/wsgw.js'), ...args, '--log-level', 'info'], (v) => (v.msg === 'gateway listening' ? v.port : v.msg === 'worker subscribed' ? true : undefined));

const results = [];
async function scenario(key, label, fn) {
  if (only && !only.has(key)) return;
  process.stderr.write(`running ${label} ...\n`);
  try {
    results.push({ key, label, ...(await fn()) });
  } catch (err) {
    results.push({ key, label, error: String(err.message ?? err).split('\n')[0] });
  }
}

const nats = await startNats();

await scenario('bound', 'uWS in-process echo (bound), 64 B', async () => {
  const s = start(process.execPath, [join(root, 'test/bench/uws-echo.mjs')], (v) => v.port);
  const port = await s.ready;
  try {
    return await load(`ws://127.0.0.1:${port}/`);
  } finally {
    await s.stop();
  }
});
await scenario('local', 'wsgw local echo, 64 B', async () => {
  const s = wsgw(['local', '-p', '0', '--host', '127.0.0.1']);
  const port = await s.ready;
  try {
    return await load(`ws://127.0.0.1:${port}/ws`);
  } finally {
    await s.stop();
  }
});
for (const [key, label, shape] of [
  ['worker', 'gateway → NATS → worker echo, 64 B', {}],
  ['worker1k', 'gateway → NATS → worker echo, 1024 B', { size: 1024 }],
  ['worker20k', 'gateway → NATS → worker, fixed 20k msg/s, 64 B', { rate: 20_000 }],
]) {
  await scenario(key, label, async () => {
    const prefix = 'bench' + Math.random().toString(36).slice(2, 8);
    const w = wsgw(['worker', '--nats', nats.url, '--prefix', prefix]);
    await w.ready;
    const g = wsgw(['gateway', '-p', '0', '--host', '127.0.0.1', '--nats', nats.url, '--prefix', prefix]);
    try {
      const port = await g.ready;
      return await load(`ws://127.0.0.1:${port}/ws`, shape);
    } finally {
      await g.stop();
      await w.stop();
    }
  });
}
nats.stop();

const bound = results.find((r) => r.key === 'bound')?.rate;
const machine = { cpu: cpus()[0]?.model, cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, natsServer: nats.version, date: new Date().toISOString() };
const lines = ['| scenario | msg/s | vs bound | p50 ms | p99 ms | errors |', '|---|---:|---:|---:|---:|---:|'];
for (const r of results) {
  if (r.error) lines.push(`| ${r.label} | failed: ${r.error} | | | | |`);
  else lines.push(`| ${r.label} | ${r.rate.toLocaleString('en-US')} | ${bound && r.key !== 'worker20k' ? Math.round((100 * r.rate) / bound) + '%' : '—'} | ${r.p50ms} | ${r.p99ms} | ${r.errors + r.closedEarly} |`);
}
const table = lines.join('\n');
process.stdout.write(`\n${machine.cores} × ${machine.cpu}, Node ${machine.node}, ${machine.natsServer}; ${opts.duration} s per scenario, 100 connections × 10 in flight unless said\n\n${table}\n`);
mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(join(root, 'bench-results/latest.json'), JSON.stringify({ machine, results }, null, 2));
process.exit(0);
