import { isToken } from '../protocol/tokens.js';

export const DEFAULT_ROUTE = 'default';

/**
 * The route from the URL: `<base>` or `<base>/` -> `default`, `<base>/<route>` -> route.
 * Returns null when the URL is not under base, and `{ invalid }` when the segment is not a safe token.
 */
export function routeFromPath(base: string, url: string): string | null | { invalid: string } {
  if (url === base || url === base + '/') return DEFAULT_ROUTE;
  if (!url.startsWith(base + '/')) return null;
  const segment = url.slice(base.length + 1);
  return isToken(segment) ? segment : { invalid: segment };
}

const decoder = new TextDecoder();

/**
 * The route from a top-level JSON field of a text frame (like AWS's `$request.body.action`).
 * Missing field, non-string value or non-JSON frame -> `fallback`; a string that is not a safe token ->
 * `{ invalid }` so the caller refuses it before any NATS call.
 */
export function routeFromField(field: string, frame: ArrayBuffer, fallback: string): string | { invalid: string } {
  let value: unknown;
  try {
    const parsed: unknown = JSON.parse(decoder.decode(frame));
    value = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)[field] : undefined;
  } catch {
    return fallback;
  }
  if (typeof value !== 'string') return fallback;
  return isToken(value) ? value : { invalid: value };
}
