import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { newGatewayId } from '../protocol/ids.js';

const BIN = fileURLToPath(new URL('../../bin/wsgw.js', import.meta.url));
const RESTART_BACKOFF_MS = [250, 1_000, 5_000];

/**
 * `wsgw gateway --procs N`: N gateway processes on one port (uWebSockets.js listens with SO_REUSEPORT,
 * so the kernel spreads connections over them), each its own gateway id `<id>-<i>`. This process
 * supervises: SIGTERM/SIGINT is passed on (each child drains), and a child that dies is started again
 * under a new generation id (`<id>-<i>g<n>`), so the dead one's lease expires and its connections are
 * reported lost like any dead gateway's.
 */
export function superviseGateways(args: string[], procs: number, baseId: string, log: Logger): void {
  const base = baseId || newGatewayId();
  const children = new Map<number, ChildProcess>();
  let stopping = false;

  const start = (slot: number, generation: number) => {
    const id = generation === 0 ? `${base}-${slot}` : `${base}-${slot}g${generation}`;
    const child = spawn(process.execPath, [BIN, 'gateway', ...args, '--procs', '1', '--id', id], { stdio: 'inherit' });
    children.set(slot, child);
    child.once('exit', (code, signal) => {
      children.delete(slot);
      if (stopping) {
        if (children.size === 0) process.exit(0);
        return;
      }
      const wait = RESTART_BACKOFF_MS[Math.min(generation, RESTART_BACKOFF_MS.length - 1)]!;
      log.error({ gateway: id, code, signal, restartInMs: wait }, 'gateway process exited; starting a new one');
      setTimeout(() => !stopping && start(slot, generation + 1), wait);
    });
  };
  for (let i = 1; i <= procs; i++) start(i, 0);
  log.info({ procs, ids: [...Array(procs)].map((_, i) => `${base}-${i + 1}`) }, 'supervising gateway processes');

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      for (const c of children.values()) c.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping gateway processes (each drains)');
    if (children.size === 0) process.exit(0);
    for (const c of children.values()) c.kill('SIGTERM');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('exit', () => {
    for (const c of children.values()) c.kill('SIGKILL');
  });
}
