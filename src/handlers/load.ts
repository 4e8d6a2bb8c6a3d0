import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HandlerLoadError } from '../errors/errors.js';
import { echoHandler } from './echo.js';
import type { Handler } from './types.js';

const CALLBACKS = ['authorize', 'open', 'message', 'close'] as const;

/** Checks that `value` has the handler shape and returns it; throws HandlerLoadError naming the problem. */
export function asHandler(value: unknown, from: string): Handler {
  if (typeof value !== 'object' || value === null) {
    throw new HandlerLoadError(`${from}: the default export must be an object with open/message/close callbacks`);
  }
  const v = value as Record<string, unknown>;
  for (const name of CALLBACKS) {
    if (v[name] !== undefined && typeof v[name] !== 'function') throw new HandlerLoadError(`${from}: "${name}" must be a function`);
  }
  if (!CALLBACKS.some((n) => typeof v[n] === 'function')) {
    throw new HandlerLoadError(`${from}: exports none of authorize, open, message, close`);
  }
  return value as Handler;
}

/** Loads a handler module by file path (relative to the working directory) or package name; '' is the built-in echo. */
export async function loadHandler(spec: string): Promise<Handler> {
  if (spec === '' || spec === 'echo') return echoHandler;
  const isPath = spec.startsWith('.') || spec.startsWith('/') || /\.[cm]?[jt]s$/.test(spec);
  const url = isPath ? pathToFileURL(resolve(spec)).href : spec;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new HandlerLoadError(`cannot load handler module ${spec}: ${(err as Error).message}`, { cause: err });
  }
  return asHandler(mod.default ?? mod.handler, spec);
}
