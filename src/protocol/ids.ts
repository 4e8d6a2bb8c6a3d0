import { randomBytes } from 'node:crypto';
import { InvalidTokenError } from '../errors/errors.js';
import { isToken, MAX_TOKEN_LENGTH } from './tokens.js';

/** A parsed connection id `<gatewayId>.<token>`. */
export interface ConnectionIdParts {
  readonly gateway: string;
  readonly token: string;
}

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'latin1');
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;
const TOKEN_LENGTH = 16;
const scratch = Buffer.alloc(TOKEN_LENGTH);

/** A 16-character random token from [A-Za-z0-9] (~95 bits). Pooled randomness keeps the upgrade path cheap. */
export function newToken(): string {
  if (poolOffset + TOKEN_LENGTH > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  for (let i = 0; i < TOKEN_LENGTH; i++) scratch[i] = ALPHABET[pool[poolOffset++]! % 62]!;
  // one flat string: appending a character at a time left a chain of V8 cons strings (about 100
  // bytes more per connection, held for the connection's life)
  return scratch.toString('latin1', 0, TOKEN_LENGTH);
}

/** A gateway id for a process that was given none: `gw-<random>`. */
export function newGatewayId(): string {
  return `gw-${newToken().slice(0, 10)}`;
}

export function formatConnectionId(gateway: string, token: string): string {
  return `${gateway}.${token}`;
}

/** Parses and validates `<gatewayId>.<token>`; throws InvalidTokenError on anything else. */
export function parseConnectionId(id: unknown): ConnectionIdParts {
  if (typeof id !== 'string') throw new InvalidTokenError('connection id', `expected a string, got ${typeof id}`);
  if (id.length > 2 * MAX_TOKEN_LENGTH + 1) throw new InvalidTokenError('connection id', 'too long');
  const dot = id.indexOf('.');
  if (dot < 0) throw new InvalidTokenError('connection id', 'expected <gatewayId>.<token>');
  const gateway = id.slice(0, dot);
  const token = id.slice(dot + 1);
  if (!isToken(gateway) || !isToken(token)) {
    throw new InvalidTokenError('connection id', `${JSON.stringify(id.slice(0, 60))} is not <gatewayId>.<token> of A-Z a-z 0-9 _ -`);
  }
  return { gateway, token };
}

export function isConnectionId(id: unknown): id is string {
  try {
    parseConnectionId(id);
    return true;
  } catch {
    return false;
  }
}
