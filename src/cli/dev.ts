import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WsgwError } from '../errors/errors.js';

export interface DevOptions {
  /** First gateway port; the second is port + 1. */
  readonly port: number;
  /** Connection service port. */
  readonly apiPort: number;
  /** Handler module for the worker ('' = echo). */
  readonly handler: string;
  readonly out?: NodeJS.WritableStream;
}

const NATS_INSTALL = 'apt-get update && apt-get install -y nats-server';
const BIN = fileURLToPath(new URL('../../bin/wsgw.js', import.meta.url));
const COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m', '\x1b[34m'];
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function findNatsServer(): string {
  for (const p of [process.env.NATS_SERVER_BIN, '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (p && existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (r.status === 0) return r.stdout.trim();
  throw new WsgwError('WSGW_NO_NATS_SERVER', `wsgw dev needs nats-server on PATH. Install it with:\n  sudo ${NATS_INSTALL}`);
}

/**
 * `wsgw dev`: the seed's multi-process walk-through in one command. Starts nats-server (own port and
 * temp store), two gateways, the connection service and a worker, prints readable prefixed logs and
 * the URLs to try, and stops everything (in reverse order) on Ctrl-C.
 */
export async function runDev(options: DevOptions): Promise<void> {
  const out = options.out ?? process.stdout;
  const nats = findNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-dev-'));
  writeFileSync(join(dir, 'nats.conf'), `host: 127.0.0.1\nport: -1\nports_file_dir: "${dir}"\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
  const children: Array<{ name: string; child: ChildProcess }> = [];
  let color = 0;
  const prefix = (name: string) => `${COLORS[color++ % COLORS.length]}${name.padEnd(11)}\x1b[0m| `;

  /** Pipes a child's NDJSON logs as `name | level message key=value` (nats-server: warnings and errors only). */
  function pipe(name: string, child: ChildProcess, keep: (line: string) => boolean = () => true): void {
    const tag = prefix(name);
    let buf = '';
    const onData = (b: Buffer) => {
      buf += b.toString();
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
        const line = buf.slice(0, i);
        if (!keep(line)) continue;
        let text = line;
        try {
          const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, component: _c, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const extra = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
            .join(' ');
          text = `${LEVELS[level as number] ?? level} ${msg}${extra ? '  ' + extra : ''}`;
        } catch {
          // not JSON (nats-server's own log): as is
        }
        out.write(tag + text + '\n');
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    children.push({ name, child });
  }

  // children get their own process group: a terminal's Ctrl-C reaches only this process, which then
  // stops them in order (worker and gateways first, NATS last) instead of all at once
  const natsChild = spawn(nats, ['-c', join(dir, 'nats.conf')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  // nats-server 2.9 has no quiet flag: its banner would drown the rest
  pipe('nats', natsChild, (line) => /\[(WRN|ERR|FTL)\]/.test(line));
  let natsUrl = '';
  for (const deadline = Date.now() + 10_000; !natsUrl; ) {
    if (Date.now() > deadline) throw new WsgwError('WSGW_NO_NATS_SERVER', 'nats-server did not start within 10 s');
    const f = readdirSync(dir).find((x) => x.endsWith('.ports'));
    if (f) {
      try {
        natsUrl = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nats: string[] }).nats[0]!;
      } catch {
        // being written
      }
    }
    if (!natsUrl) await new Promise((r) => setTimeout(r, 25));
  }

  // children log NDJSON, which this process turns into its own prefixed lines
  const wsgw = (name: string, args: string[]) => pipe(name, spawn(process.execPath, [BIN, ...args, '--nats', natsUrl, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
  // topic history on (the chat shows a room's last lines to who joins): its stream is per temporary server
  wsgw('connections', ['connections', '-p', String(options.apiPort), '--history', '100']);
  wsgw(`gw-${options.port}`, ['gateway', '-p', String(options.port), '--id', `dev-${options.port}`, '--drain-ms', '0', '--demo']);
  wsgw(`gw-${options.port + 1}`, ['gateway', '-p', String(options.port + 1), '--id', `dev-${options.port + 1}`, '--drain-ms', '0', '--demo']);
  wsgw('worker', ['worker', ...(options.handler ? ['--handler', options.handler] : [])]);

  out.write(
    [
      '',
      `wsgw dev: nats-server ${natsUrl} (temporary store), 2 gateways, the connection service and a worker (${options.handler || 'echo'}).`,
      `  Chat page:  http://localhost:${options.port}/   http://localhost:${options.port + 1}/   (one tab on each: they chat through NATS)`,
      `  WebSocket:  ws://localhost:${options.port}/ws   ws://localhost:${options.port + 1}/ws`,
      `  Admin page:  http://localhost:${options.apiPort}/ui`,
      `  Connections API:  http://localhost:${options.apiPort}/connections   http://localhost:${options.apiPort}/gateways   (topic history on: GET /topics/<topic>/history)`,
      `  Metrics:  http://localhost:${options.port}/metrics`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n') + '\n',
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    out.write('\nwsgw dev: stopping\n');
    // reverse order of start: worker, gateways, connection service, then NATS
    for (const { child } of [...children].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // whatever else ends this process must not leave the cluster running
  process.on('exit', () => {
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
  });
  // a child that dies on its own takes the whole dev cluster down, loudly
  for (const { name, child } of children) {
    child.once('exit', (code, signal) => {
      if (stopping) return;
      out.write(`wsgw dev: ${name} exited (${signal ?? code}); stopping the rest\n`);
      void stop();
    });
  }
}
