import { InvalidTokenError } from '../errors/errors.js';

/** Longest token accepted in a subject position (route, topic, gateway id, connection token). */
export const MAX_TOKEN_LENGTH = 128;

const TOKEN_RE = /^[A-Za-z0-9_-]+$/;

/**
 * True when `value` is safe as one NATS subject token: only `[A-Za-z0-9_-]`, 1..128 chars.
 * This excludes `.`, `*`, `>`, whitespace, control and non-ASCII characters, and `$` (system subjects).
 */
export function isToken(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TOKEN_LENGTH && TOKEN_RE.test(value);
}

/** Throws InvalidTokenError naming `kind` unless `value` is a safe token. Call before any NATS call. */
export function assertToken(kind: string, value: unknown): string {
  if (isToken(value)) return value;
  if (typeof value !== 'string') throw new InvalidTokenError(kind, `expected a string, got ${typeof value}`);
  if (value.length === 0) throw new InvalidTokenError(kind, 'must not be empty');
  if (value.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError(kind, `longer than ${MAX_TOKEN_LENGTH} characters`);
  throw new InvalidTokenError(kind, `${JSON.stringify(value.slice(0, 40))} may only contain A-Z a-z 0-9 _ -`);
}
