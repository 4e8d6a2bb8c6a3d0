import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { isConnectionId } from '../protocol/ids.js';
import { isApplicationCloseCode } from '../protocol/close-codes.js';
import type { Conn, Context, Handler } from './types.js';

export interface ExecOptions {
  /** The program and its arguments. */
  readonly argv: readonly string[];
  /** One process per connection (websocketd's model) instead of one shared process. */
  readonly perConnection: boolean;
  /** Per-connection mode: processes running at once; past it, new connections are closed with 4429. */
  readonly maxProcs: number;
  readonly log: Logger;
  /** Shared mode: topic every connection joins, for `broadcast` lines. */
  readonly topic?: string;
  /** Bytes queued on a program's stdin before frames for it are dropped. */
  readonly maxStdinBacklog?: number;
  /** How long a program gets after SIGTERM before SIGKILL. */
  readonly killAfterMs?: number;
}

/** Close code for "too many programs running, try again later" (4000 + HTTP 429, as 4403 is 4000 + 403). */
const TOO_MANY = 4429;
const DEFAULT_TOPIC = 'exec';
const DEFAULT_BACKLOG = 1024 * 1024;
const DEFAULT_KILL_AFTER_MS = 2_000;

/** Stops a program: SIGTERM, then SIGKILL if it is still there after `ms`. */
function kill(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Text of a frame as one or more stdin lines: a frame holding newlines becomes several lines. */
function asLines(text: string): string {
  return text.endsWith('\n') ? text : text + '\n';
}

/**
 * `wsgw exec`: serves WebSocket clients with any program that reads stdin and writes stdout, in the
 * spirit of websocketd. Runs as a handler, so it works in every mode (`wsgw exec` runs it as a worker).
 *
 * Per-connection mode: one process per connection, with the connection in its environment; each text
 * frame is a line on its stdin, each stdout line a text frame back; the process exiting closes the
 * connection (1000), the connection closing stops the process.
 *
 * Shared mode: one process for every connection. stdin gets `open <connId> <path>[?<query>]`,
 * `msg <connId> <text>` and `close <connId> <code>` lines; stdout lines are commands:
 * `send <connId> <text>`, `broadcast <text>` (every connection), `close <connId> [<code> [<reason>]]`.
 *
 * Binary frames are not line-shaped: they are dropped, with a debug log. stderr goes to the log.
 */
export function createExecHandler(options: ExecOptions): Handler & { stop(): Promise<void> } {
  const { argv, log } = options;
  const killAfterMs = options.killAfterMs ?? DEFAULT_KILL_AFTER_MS;
  const maxBacklog = options.maxStdinBacklog ?? DEFAULT_BACKLOG;
  const topic = options.topic ?? DEFAULT_TOPIC;
  if (argv.length === 0) throw new Error('wsgw exec needs a program: wsgw exec [options] -- <program> [args...]');

  function start(env: NodeJS.ProcessEnv, tag: Record<string, unknown>): ChildProcess {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', (err) => log.error({ err, ...tag, program: argv[0] }, 'program failed to start'));
    child.stdin!.on('error', () => undefined); // a program that exits early closes its stdin under us
    createInterface({ input: child.stderr! }).on('line', (line) => log.warn({ ...tag, stderr: line.slice(0, 2000) }, 'program stderr'));
    return child;
  }
  function write(child: ChildProcess, text: string, tag: Record<string, unknown>): void {
    const stdin = child.stdin!;
    if (stdin.destroyed || !stdin.writable) return;
    if (stdin.writableLength > maxBacklog) {
      log.warn({ ...tag, backlog: stdin.writableLength }, 'program is not reading its stdin: frame dropped');
      return;
    }
    stdin.write(text);
  }

  if (options.perConnection) {
    const procs = new Map<string, ChildProcess>();
    return {
      open(conn: Conn) {
        if (procs.size >= options.maxProcs) {
          log.warn({ conn: conn.id, running: procs.size }, 'too many programs running: connection refused (--max-procs)');
          conn.close(TOO_MANY, 'too many connections, try again later');
          return;
        }
        const r = conn.request;
        const query = r?.query ?? '';
        const child = start(
          {
            WSGW_CONN_ID: conn.id,
            WSGW_GATEWAY: conn.gateway,
            WSGW_PATH: r?.path ?? '',
            WSGW_QUERY: query,
            WSGW_REMOTE_ADDR: r?.remoteAddress ?? '',
            // websocketd's (CGI) names, so its programs run unchanged
            QUERY_STRING: query,
            REMOTE_ADDR: r?.remoteAddress ?? '',
            PATH_INFO: r?.path ?? '',
          },
          { conn: conn.id },
        );
        procs.set(conn.id, child);
        createInterface({ input: child.stdout! }).on('line', (line) => conn.send(line));
        child.once('exit', (code, signal) => {
          if (procs.get(conn.id) !== child) return; // stopped because the connection closed
          procs.delete(conn.id);
          log.debug({ conn: conn.id, code, signal }, 'program exited: closing its connection');
          conn.close(1000, 'program exited');
        });
      },
      message(conn: Conn, message) {
        const child = procs.get(conn.id);
        if (!child) return;
        if (message.binary) return log.debug({ conn: conn.id }, 'binary frame dropped (programs read lines)');
        write(child, asLines(message.text()), { conn: conn.id });
      },
      async close(conn: Conn) {
        const child = procs.get(conn.id);
        if (!child) return;
        procs.delete(conn.id);
        child.stdin!.end();
        await kill(child, killAfterMs);
      },
      async stop() {
        const all = [...procs.values()];
        procs.clear();
        await Promise.all(all.map((c) => kill(c, killAfterMs)));
      },
    };
  }

  // shared mode: one program; lines carry the connection id
  let ctxRef: Context | null = null;
  let stopping = false;
  let child: ChildProcess;
  const startShared = () => {
    child = start({}, { program: argv[0] });
    createInterface({ input: child.stdout! }).on('line', (line) => command(line));
    child.once('exit', (code, signal) => {
      if (stopping) return;
      log.error({ code, signal, program: argv[0] }, 'shared program exited: restarting it in 1 s');
      setTimeout(() => !stopping && startShared(), 1_000).unref();
    });
  };
  startShared();
  const bad = (line: string, why: string) => log.warn({ line: line.slice(0, 200) }, `program wrote an invalid line: ${why} (expected send <connId> <text> | broadcast <text> | close <connId> [code [reason]])`);
  function command(line: string): void {
    const ctx = ctxRef;
    if (!ctx) return bad(line, 'no connection has opened yet');
    const sp = line.indexOf(' ');
    const verb = sp < 0 ? line : line.slice(0, sp);
    const rest = sp < 0 ? '' : line.slice(sp + 1);
    if (verb === 'broadcast') return ctx.publish(topic, rest);
    const sp2 = rest.indexOf(' ');
    const id = sp2 < 0 ? rest : rest.slice(0, sp2);
    const arg = sp2 < 0 ? '' : rest.slice(sp2 + 1);
    if (verb !== 'send' && verb !== 'close') return bad(line, `unknown command ${JSON.stringify(verb.slice(0, 20))}`);
    if (!isConnectionId(id)) return bad(line, 'not a connection id');
    if (verb === 'send') return ctx.send(id, arg);
    const m = /^(\d+)?(?: (.*))?$/.exec(arg);
    const code = m?.[1] === undefined ? undefined : Number(m[1]);
    if (!m || (code !== undefined && !isApplicationCloseCode(code))) return bad(line, 'close code must be 1000 or 3000-4999');
    ctx.close(id, code, m[2]);
  }
  return {
    async open(conn: Conn, ctx: Context) {
      ctxRef = ctx;
      await conn.subscribe(topic);
      const r = conn.request;
      write(child, `open ${conn.id} ${r?.path ?? ''}${r?.query ? '?' + r.query : ''}\n`, { conn: conn.id });
    },
    message(conn: Conn, message, ctx: Context) {
      ctxRef = ctx;
      if (message.binary) return log.debug({ conn: conn.id }, 'binary frame dropped (programs read lines)');
      // one line per line of the frame, each carrying the connection id
      for (const line of message.text().split('\n')) write(child, `msg ${conn.id} ${line}\n`, { conn: conn.id });
    },
    close(conn: Conn, info) {
      write(child, `close ${conn.id} ${info.code}\n`, { conn: conn.id });
    },
    async stop() {
      stopping = true;
      child.stdin!.end();
      await kill(child, killAfterMs);
    },
  };
}
