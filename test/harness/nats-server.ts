import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

/** Finds nats-server: $NATS_SERVER_BIN, /usr/sbin/nats-server, or PATH. Throws with the install command. */
export function natsServerBinary(): string {
  const candidates = [process.env.NATS_SERVER_BIN, '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('nats-server not found: install it with `apt-get update && apt-get install -y nats-server` (or set NATS_SERVER_BIN)');
  }
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after a deadline). */
  stop(): Promise<void>;
  /** Kills with SIGKILL (fault injection). */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same store. */
  restart(): Promise<NatsServer>;
}

export interface StartOptions {
  readonly jetstream?: boolean;
  /** Fixed port (for restarts); default -1 picks a free one. */
  readonly port?: number;
  /** Reuse a store dir (for restarts). */
  readonly dir?: string;
  /** Extra config text appended to the generated config file. */
  readonly config?: string;
  /** Remove `dir` on stop though it was given (a restart of a server whose dir was made here). */
  readonly ownsDir?: boolean;
}

const START_DEADLINE_MS = 10_000;

async function waitForPortsFile(dir: string, child: ChildProcess, log: () => string): Promise<number> {
  const deadline = Date.now() + START_DEADLINE_MS;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`nats-server exited at start:\n${log()}`);
    const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
    if (file) {
      try {
        const ports = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nats: string[] };
        const url = ports.nats[0]!;
        return Number(new URL(url.replace(/^nats:/, 'http:')).port);
      } catch {
        // file being written; look again
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nats-server did not report its port within ${START_DEADLINE_MS} ms:\n${log()}`);
}

/** Starts a real nats-server on a free loopback port with its own temp JetStream store. */
export async function startNatsServer(options: StartOptions = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'wsgw-nats-'));
  for (const f of readdirSync(dir)) if (f.endsWith('.ports')) rmSync(join(dir, f));
  const conf = [
    'host: 127.0.0.1',
    `port: ${options.port ?? -1}`,
    `ports_file_dir: "${dir}"`,
    options.jetstream === false ? '' : `jetstream { store_dir: "${join(dir, 'js')}", max_memory_store: 256MB, max_file_store: 1GB }`,
    options.config ?? '',
  ].join('\n');
  writeFileSync(join(dir, 'server.conf'), conf);
  const child = spawn(bin, ['-c', join(dir, 'server.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  });
  const port = await waitForPortsFile(dir, child, () => output);
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    process: child,
    stop: async () => {
      await stopWith('SIGTERM');
      if (!options.dir || options.ownsDir) rmSync(dir, { recursive: true, force: true });
    },
    kill: () => stopWith('SIGKILL'),
    // the restarted server removes the temp dir on stop when this one would have
    restart: () => startNatsServer({ ...options, port, dir, ownsDir: !options.dir || options.ownsDir === true }),
  };
  return server;
}
