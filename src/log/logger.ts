import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** `auto`: readable lines in a terminal, NDJSON otherwise (pipes, files, log shippers). */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * NDJSON to stdout (pino). Untrusted data goes under its own key; errors under `err`.
 * Tokens and payloads are never logged above debug. In a terminal (`auto`) the same records are
 * written as readable lines by pino-pretty, synchronously, so nothing is lost on exit.
 */
export function createLogger(level: string = 'info', name = 'wsgw', format: LogFormat = 'auto'): Logger {
  const options = {
    name,
    level: level as LevelWithSilent,
    redact: { paths: ['*.authorization', '*.token', '*.password', 'headers.authorization', 'headers.cookie'], censor: '[redacted]' },
  };
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!readable) return pino(options);
  return pino(
    options,
    pretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,name,component', singleLine: true, messageFormat: '{if component}{component} | {end}{msg}' }),
  );
}
