import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type Authenticator, type NatsConnection } from '@nats-io/transport-node';
import { ConfigError } from '../errors/errors.js';
import type { Logger } from 'pino';
import { installFastReader } from './fast-reader.js';

export type { NatsConnection };

/** How a service authenticates to NATS and secures the link (all optional). */
export interface NatsAuth {
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** Path of a credentials file (JWT + seed). */
  readonly creds?: string;
  /** Path of a file holding an nkey seed. */
  readonly nkey?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** nats.js connection options for the given credentials; files are read once, errors name the option. */
export function natsAuthOptions(auth: NatsAuth = {}): { user?: string; pass?: string; token?: string; authenticator?: Authenticator; tls?: { caFile?: string; certFile?: string; keyFile?: string } } {
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError([`option ${flag}: cannot read ${path} (${(err as Error).message})`]);
    }
  };
  const out: ReturnType<typeof natsAuthOptions> = {};
  if (auth.user) Object.assign(out, { user: auth.user, pass: auth.password });
  if (auth.token) out.token = auth.token;
  if (auth.creds) out.authenticator = credsAuthenticator(read(auth.creds, '--nats-creds'));
  if (auth.nkey) out.authenticator = nkeyAuthenticator(new TextEncoder().encode(read(auth.nkey, '--nats-nkey').toString('utf8').trim()));
  if (auth.ca || auth.cert) out.tls = { ...(auth.ca ? { caFile: auth.ca } : {}), ...(auth.cert ? { certFile: auth.cert, keyFile: auth.key } : {}) };
  return out;
}

export interface ConnectNatsOptions {
  readonly servers: readonly string[];
  readonly auth?: NatsAuth;
  /** Client name shown by the server (`wsgw-gateway gw-1`). */
  readonly name: string;
  readonly log: Logger;
  /** Aborting stops the start-up retry loop (shutdown before NATS was ever reached). */
  readonly signal?: AbortSignal;
}

const MAX_BACKOFF_MS = 5_000;

/**
 * Connects to NATS and never gives up: the first connection is retried with backoff (each failure is
 * logged, so an operator sees why start-up waits), and once connected the client reconnects forever
 * (nats.js defaults to giving up after ~20 s, which a gateway must never do).
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const { log, signal } = options;
  // read credential files once, before the retry loop: a missing file is a configuration error to
  // report at once, not an unreachable server to retry forever
  const auth = natsAuthOptions(options.auth);
  let attempt = 0;
  for (;;) {
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    try {
      const nc = await connect({
        servers: [...options.servers],
        name: options.name,
        ...auth,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        reconnectJitter: 200,
        timeout: 2_000,
        pingInterval: 10_000,
        maxPingOut: 3,
      });
      // nats.js reads as it always did when its internals are not the expected ones
      if (!installFastReader(nc)) log.debug('nats.js internals not as expected: reading through its own parser');
      if (attempt > 0) log.info({ servers: options.servers, server: nc.getServer() }, 'connected to NATS');
      else log.debug({ server: nc.getServer() }, 'connected to NATS');
      return nc;
    } catch (err) {
      // wrong credentials or permissions will not fix themselves, but the operator may be fixing the
      // server right now: keep retrying, and say plainly what the server answered
      attempt++;
      const wait = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(attempt, 5));
      log.warn({ servers: options.servers, attempt, retryInMs: wait, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'cannot reach NATS, retrying');
      await abortableDelay(wait, signal);
    }
  }
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface StatusWatcher {
  /** True while the client has a live server connection. */
  readonly connected: boolean;
}

/**
 * Tracks connected/disconnected from the client's status stream. nats.js silently discards publishes
 * made while disconnected, so callers must check `connected` and hold their own data meanwhile.
 */
export function watchStatus(nc: NatsConnection, log: Logger, hooks: { onDisconnect?(): void; onReconnect?(): void } = {}): StatusWatcher {
  const state = { connected: true };
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          if (state.connected) log.warn({ server: s.server }, 'NATS disconnected; buffering');
          state.connected = false;
          hooks.onDisconnect?.();
          break;
        case 'reconnect':
          state.connected = true;
          log.info({ server: s.server }, 'NATS reconnected');
          hooks.onReconnect?.();
          break;
        case 'error':
          log.warn({ err: { message: String(s.error?.message ?? s.error) } }, 'NATS error');
          break;
        case 'slowConsumer':
          log.warn({ sub: s.sub?.getSubject?.() }, 'NATS slow consumer: messages dropped by the client');
          break;
        default:
          break;
      }
    }
  })().catch((err) => log.error({ err }, 'NATS status watcher failed'));
  return state;
}

/** Resolves with the promise's outcome, or with `false` after `ms` (the promise is left to settle). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | false> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
}

/**
 * Drains the connection (pending messages go out, subscriptions finish) but never waits longer than
 * `timeoutMs`: a drain while the server is unreachable would wait forever, so it is then closed.
 */
export async function closeNats(nc: NatsConnection, timeoutMs = 5_000): Promise<void> {
  if (nc.isClosed()) return;
  const drained = await within(
    nc.drain().then(
      () => true,
      () => false,
    ),
    timeoutMs,
  );
  if (!drained && !nc.isClosed()) await nc.close();
}
