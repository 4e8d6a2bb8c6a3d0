import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * NDJSON to stdout (pino). Untrusted data goes under its own key; errors under `err`.
 * Tokens and payloads are never logged above debug.
 */
export function createLogger(level: string = 'info', name = 'wsgw'): Logger {
  return pino({
    name,
    level: level as LevelWithSilent,
    redact: { paths: ['*.authorization', '*.token', '*.password', 'headers.authorization', 'headers.cookie'], censor: '[redacted]' },
  });
}
