import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const WSGW_BIN = fileURLToPath(new URL('../../bin/wsgw.js', import.meta.url));

export interface WsgwProcess {
  readonly child: ChildProcess;
  readonly lines: Array<Record<string, any>>;
  stderr: string;
  /** Waits for a log line matching `pred`. */
  waitFor(pred: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** SIGTERM, then the exit code (SIGKILL after a deadline). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited(): Promise<number | null>;
}

/** Runs `wsgw <args>` as a child process with NDJSON logs parsed line by line. */
export function spawnWsgw(args: string[], env: Record<string, string> = {}): WsgwProcess {
  const child = spawn(process.execPath, [WSGW_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, any>> = [];
  const waiters = new Set<() => void>();
  let buf = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ raw: line });
      }
    }
    for (const w of waiters) w();
  });
  const p: WsgwProcess = {
    child,
    lines,
    stderr: '',
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          }
        };
        const onExit = () => {
          cleanup();
          reject(new Error(`wsgw exited before the expected log line; stderr: ${p.stderr}\nstdout: ${JSON.stringify(lines.slice(-5))}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`expected log line not seen in ${timeoutMs} ms; last lines: ${JSON.stringify(lines.slice(-5))} stderr: ${p.stderr}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', onExit);
        };
        waiters.add(check);
        child.once('exit', onExit);
        check();
      });
    },
    async exited() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const [code] = await once(child, 'exit');
      return code as number | null;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const done = p.exited();
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
  };
  child.stderr!.on('data', (b: Buffer) => (p.stderr += b.toString()));
  return p;
}

/** A loopback port that was free a moment ago (for a server that must start later on a known port). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Two adjacent free loopback ports (`wsgw dev` uses port and port + 1). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    const srv = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(p + 1, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      srv.close();
      await once(srv, 'close');
      return p;
    }
  }
  throw new Error('no two adjacent free ports found');
}
