/** Base class: every wsgw error carries a stable `code` (documented in docs/errors.md). */
export class WsgwError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A user-controlled string that would reach a NATS subject is not a safe token. */
export class InvalidTokenError extends WsgwError {
  readonly kind: string;
  constructor(kind: string, reason: string) {
    super('WSGW_INVALID_TOKEN', `invalid ${kind}: ${reason}`);
    this.kind = kind;
  }
}

/** One or more configuration keys are wrong; `problems` names each by its path. */
export class ConfigError extends WsgwError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('WSGW_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = Object.freeze([...problems]);
  }
}

/** A handler module could not be loaded or does not export a handler. */
export class HandlerLoadError extends WsgwError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WSGW_HANDLER_LOAD', message, options);
  }
}

/** Listening on the requested port failed. */
export class ListenError extends WsgwError {
  constructor(host: string, port: number) {
    super('WSGW_LISTEN', `cannot listen on ${host}:${port} (port in use or not permitted)`);
  }
}
