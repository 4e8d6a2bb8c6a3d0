import { Command as Program } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import { defaultFor, envName, keysFor, schema, type Command, type Config, type ConfigKey, type KeySpec } from '../config/schema.js';
import { createConnectionService } from '../http/connection-service.js';
import { DirectoryView } from '../http/directory-view.js';
import { checkTlsFiles, scheme, tlsFiles } from '../http/app.js';
import { createBridge } from '../bridge/bridge.js';
import { Metrics } from '../metrics/metrics.js';
import { startOpsServer } from '../metrics/ops-server.js';
import { ConfigError, WsgwError } from '../errors/errors.js';
import { runDev } from './dev.js';
import { superviseGateways } from './procs.js';
import { createGateway } from '../gateway/gateway.js';
import { loadHandler } from '../handlers/load.js';
import { createWorker } from '../handlers/worker.js';
import { ensureHistoryStream, historyStreamConfig } from '../nats/history.js';
import { historyLimits } from '../protocol/history.js';
import { createExecHandler } from '../handlers/exec.js';
import { createLogger, type LogFormat } from '../log/logger.js';
import { closeNats, connectNats, type NatsAuth, type NatsConnection } from '../nats/connect.js';
import { ConnectionDirectory } from '../nats/directory.js';
import { newGatewayId } from '../protocol/ids.js';
import { createSubjects } from '../protocol/subjects.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const DESCRIPTIONS: Record<Command, string> = {
  local: 'one process, handlers in-process, no NATS: serves ws://localhost:<port><path>',
  gateway: 'WebSocket gateway on NATS: without --handler publishes every event to workers; with --handler runs it in-process and shares connection state in KV',
  worker: 'runs a handler module against NATS (queue group); without --handler, the built-in echo',
  connections: 'the connection service: HTTP API to list, message, close and subscribe any connection on any gateway',
  bridge: 'turns every WebSocket event into an HTTP POST to your application (--target) and its answers into frames',
  exec: 'serves WebSocket clients with any stdin/stdout program (like websocketd): wsgw exec [options] -- <program> [args...]',
  dev: 'one command to try it all: nats-server, two gateways (-p and -p+1), the connection service (--api-port) and a worker, with readable logs',
};

function describe(spec: KeySpec, key: ConfigKey, command: Command): string {
  const d = defaultFor(spec, command);
  const def = Array.isArray(d) ? d.join(',') : String(d);
  const values = spec.type === 'enum' ? `; one of ${spec.values.join('|')}` : '';
  return `${spec.doc} (default: ${def === '' ? 'none' : def}${values}; env ${envName(key)})`;
}

/** Shutdown on SIGINT/SIGTERM: stop in reverse order of start; a second signal exits at once. */
function onSignals(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function natsAuthOf(config: Config): NatsAuth {
  return { user: config.natsUser, password: config.natsPassword, token: config.natsToken, creds: config.natsCreds, nkey: config.natsNkey, ca: config.natsCa, cert: config.natsCert, key: config.natsKey };
}

/** Connects and opens the KV directory (creating it, or only binding for workers); both retry until NATS (with JetStream) is there. */
async function startNats(config: Config, name: string, log: Logger, signal: AbortSignal, create = true): Promise<{ nc: NatsConnection; directory: ConnectionDirectory }> {
  const nc = await connectNats({ servers: config.nats, name, log, signal, auth: natsAuthOf(config) });
  for (let attempt = 1; ; attempt++) {
    try {
      const directory = await ConnectionDirectory.open(nc, { prefix: config.prefix, replicas: config.kvReplicas, log, create });
      // --history: this process creates the stream, or brings its limits to its own
      if (config.history > 0) {
        const subjects = createSubjects(config.prefix);
        const limits = historyLimits(config);
        await ensureHistoryStream(nc, subjects, limits, config.kvReplicas, log);
        // lost with a store, or deleted by hand: created again by the directory's looks at its buckets
        directory.keepStream(historyStreamConfig(subjects, limits, config.kvReplicas));
      }
      return { nc, directory };
    } catch (err) {
      if (signal.aborted) throw err;
      log.warn({ err: { message: (err as Error).message }, attempt }, 'cannot open the KV buckets (is JetStream enabled? start nats-server with -js); retrying');
      await new Promise((r) => setTimeout(r, Math.min(5_000, 500 * attempt)));
    }
  }
}

async function run(command: Command, flags: Record<string, unknown>, programArgv: string[] = []): Promise<void> {
  const { config: file, ...rest } = flags;
  const config = loadConfig({ command, flags: rest as Partial<Record<ConfigKey, unknown>>, file: file as string | undefined });
  if (command === 'exec' && programArgv.length === 0) throw new ConfigError(['wsgw exec needs a program to run: wsgw exec [options] -- <program> [args...]']);
  if (command === 'dev') {
    if (config.port === 0 || config.port === 65535) throw new ConfigError(['option --port: wsgw dev needs a fixed port (it also uses the next one)']);
    return runDev({ port: config.port, apiPort: config.apiPort, handler: config.handler });
  }
  // a bad certificate or key is reported before anything starts (a gateway connects to NATS first)
  if (command === 'local' || command === 'gateway' || command === 'connections') checkTlsFiles(tlsFiles(config));
  const log = createLogger(config.logLevel, 'wsgw', config.logFormat as LogFormat).child({ component: command });
  if (command === 'gateway' && config.procs > 1) {
    if (config.port === 0) throw new ConfigError(['option --procs: needs a fixed --port (the processes share it)']);
    // the children get everything but --procs and --id, which the supervisor sets per child
    return superviseGateways(gatewayArgsWithout(process.argv.slice(3), ['--procs', '--id']), config.procs, config.id, log);
  }
  const abort = new AbortController();
  let stop: () => Promise<void> = async () => abort.abort(new Error('shut down while starting'));
  onSignals(log, () => stop());

  if (command === 'local') {
    const handler = await loadHandler(config.handler);
    const gw = await createGateway({ config, id: config.id || 'local', log, handler });
    stop = () => gw.close(config.drainMs);
    const shown = config.host === '0.0.0.0' ? 'localhost' : config.host;
    const tls = tlsFiles(config);
    log.info(`ready: ${scheme(tls, true)}://${shown}:${gw.port}${config.path} (handler: ${config.handler || 'built-in echo'})${config.demo ? `; chat page: ${scheme(tls, false)}://${shown}:${gw.port}/` : ''}`);
    return;
  }

  const handler = command === 'worker' || config.handler ? await loadHandler(config.handler) : undefined;
  if (command === 'gateway') {
    const id = config.id || newGatewayId();
    const { nc, directory } = await startNats(config, `wsgw-gateway ${id}@${hostname()}`, log, abort.signal);
    const api = config.api ? { view: await DirectoryView.start(directory, log, config.goneRetention * 1000) } : undefined;
    const gw = await createGateway({ config, id, log, handler, nats: { nc, subjects: createSubjects(config.prefix), directory }, api });
    stop = async () => {
      await gw.close(config.drainMs);
      await closeNats(nc);
    };
    return;
  }

  if (command === 'connections') {
    const { nc, directory } = await startNats(config, `wsgw-connections@${hostname()}`, log, abort.signal);
    const service = await createConnectionService({ config, nc, subjects: createSubjects(config.prefix), directory, log });
    stop = async () => {
      await service.close();
      await closeNats(nc);
    };
    return;
  }

  if (command === 'bridge') {
    const nc = await connectNats({ servers: config.nats, name: `wsgw-bridge@${hostname()}`, log, signal: abort.signal, auth: natsAuthOf(config) });
    const metrics = new Metrics('bridge');
    const bridge = await createBridge({ config, nc, subjects: createSubjects(config.prefix), log, metrics });
    const ops = config.metricsPort ? await startOpsServer(config.host, config.metricsPort, metrics, () => (nc.isClosed() ? 'NATS connection closed' : null)) : null;
    stop = async () => {
      ops?.close();
      await bridge.close();
      await closeNats(nc);
    };
    return;
  }

  const exec = command === 'exec' ? createExecHandler({ argv: programArgv, perConnection: config.perConnection, maxProcs: config.maxProcs, log }) : null;
  const { nc, directory } = await startNats(config, `wsgw-${command}@${hostname()}`, log, abort.signal, false);
  const metrics = new Metrics('worker');
  const worker = await createWorker({ nc, subjects: createSubjects(config.prefix), directory, handler: exec ?? handler!, queue: config.queue, log, durable: config.durable ? { ackWaitMs: config.durableAckWait } : undefined, metrics });
  const ops = config.metricsPort ? await startOpsServer(config.host, config.metricsPort, metrics, () => (nc.isClosed() ? 'NATS connection closed' : null)) : null;
  stop = async () => {
    ops?.close();
    await worker.close();
    await exec?.stop();
    await closeNats(nc);
  };
}

/** argv without the named options (`--name value` and `--name=value`). */
function gatewayArgsWithout(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (names.includes(a)) {
      i++;
      continue;
    }
    if (names.some((n) => a.startsWith(n + '='))) continue;
    out.push(a);
  }
  return out;
}

export function buildProgram(): Program {
  const program = new Program('wsgw')
    .description('WebSocket gateway: uWebSockets.js at the edge, NATS behind it, handlers in any language')
    .version(pkg.version)
    .showHelpAfterError()
    .addHelpText('after', '\nEvery option can also come from the environment (WSGW_...) or a JSON file (--config). Precedence: defaults < file < env < flags.');
  for (const command of ['local', 'gateway', 'worker', 'connections', 'bridge', 'exec', 'dev'] as const) {
    const cmd = program.command(command).description(DESCRIPTIONS[command]).option('--config <file>', 'JSON config file with any of the options below');
    for (const key of keysFor(command)) {
      const spec: KeySpec = schema[key];
      cmd.option(`${spec.short ? spec.short + ', ' : ''}${spec.flag}${spec.type === 'boolean' ? '' : ' <value>'}`, describe(spec, key, command));
    }
    if (command === 'exec') {
      cmd.argument('[program...]', 'the program and its arguments, after --').action(async (programArgv: string[], opts: Record<string, unknown>) => {
        await run(command, opts, programArgv);
      });
    } else {
      cmd.action(async (opts: Record<string, unknown>) => {
        await run(command, opts);
      });
    }
  }
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof WsgwError) {
      process.stderr.write(`wsgw: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`wsgw: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
}
