import { jetstreamManager, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/** The limits of a stream a process brings to its own options when they differ. */
export type StreamLimit = 'max_age' | 'max_bytes' | 'max_msgs_per_subject';

/**
 * Creates one of wsgw's streams when missing, or brings the named limits of the existing one to
 * `config`'s (the last process started with other options wins; a user that may not update streams,
 * as deploy/nats's are, keeps the current ones, with a warning). `what` names the stream in the log
 * ("inbound stream"); a failed creation throws what `failed` makes of the server's reason.
 */
export async function ensureStream(
  nc: NatsConnection,
  config: Partial<StreamConfig> & { readonly name: string },
  limits: readonly StreamLimit[],
  what: string,
  log: Logger,
  failed: (reason: string, cause: unknown) => Error,
): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  const name = config.name;
  const wanted = Object.fromEntries(limits.map((k) => [k, config[k]]));
  try {
    const current = (await jsm.streams.info(name)).config;
    if (limits.some((k) => current[k] !== config[k])) {
      try {
        await jsm.streams.update(name, { ...current, ...wanted });
        log.info({ stream: name, ...wanted }, `${what} limits updated`);
      } catch (err) {
        log.warn({ err: { message: (err as Error).message }, stream: name, wanted, current: Object.fromEntries(limits.map((k) => [k, current[k]])) }, `${what} limits differ and could not be updated; keeping the current ones`);
      }
    }
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
    try {
      await jsm.streams.add(config);
    } catch (e) {
      throw failed((e as Error).message, e);
    }
    log.info({ stream: name, ...wanted }, `${what} created`);
  }
  return jsm;
}
