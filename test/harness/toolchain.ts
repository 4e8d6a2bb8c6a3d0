import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** True when `cmd` is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Runs a build step; throws with its output when it fails. */
export function build(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
}

export interface Program {
  readonly child: ChildProcess;
  /** stderr so far (the workers log there). */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts a worker program and waits for its `{"msg":"worker subscribed"}` line on stdout (every wsgw
 * worker in another language prints it once its subscriptions are live).
 */
export async function startProgram(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 15_000): Promise<Program> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b) => (err = (err + b).slice(-4000)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd}: no "worker subscribed" line in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code} before subscribing; stderr: ${err}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"worker subscribed"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { child, stderr: () => err, stop };
}
