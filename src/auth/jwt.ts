import { readFileSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors/errors.js';

/** Subprotocol entry that carries a token for browsers, which cannot set headers: `wsgw.bearer.<jwt>`. */
export const TOKEN_PROTOCOL_PREFIX = 'wsgw.bearer.';

export interface TokenSources {
  readonly authorization: string;
  readonly protocols: string;
  readonly query: string;
}

/** Where a token came from, and what is left of the subprotocol list once the token entry is removed. */
export interface FoundToken {
  readonly token: string | null;
  /** The offered subprotocols without the token entry: the token is never echoed back. */
  readonly protocols: string[];
}

/** Finds the token: `Authorization: Bearer`, then a `wsgw.bearer.<jwt>` subprotocol, then `?token=` when allowed. */
export function findToken(src: TokenSources, allowQuery: boolean): FoundToken {
  const offered = src.protocols === '' ? [] : src.protocols.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const protocols = offered.filter((p) => !p.startsWith(TOKEN_PROTOCOL_PREFIX));
  const bearer = /^Bearer\s+(\S+)$/i.exec(src.authorization)?.[1];
  if (bearer) return { token: bearer, protocols };
  const fromProtocol = offered.find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  if (fromProtocol) return { token: fromProtocol.slice(TOKEN_PROTOCOL_PREFIX.length), protocols };
  if (allowQuery) {
    const q = new URLSearchParams(src.query).get('token');
    if (q) return { token: q, protocols };
  }
  return { token: null, protocols };
}

export type JwtVerifier = (token: string) => Promise<Record<string, unknown>>;

/**
 * The `--jwks-url` key set could not be fetched or read: the gateway's problem, not the token's
 * (the upgrade gets 503, not 401). Internal: it never leaves the gateway.
 */
export class KeySetUnavailable extends Error {
  readonly code = 'JWKS_UNAVAILABLE';
}

/** What jose reports about the token itself when selecting its key (anything else is about the set). */
const TOKEN_KEY_ERRORS = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_NOT_SUPPORTED', 'ERR_JOSE_ALG_NOT_ALLOWED']);

/** A remote key set (`--jwks-url`), fetched once now so a wrong URL shows in the log at start. */
function remoteKeySet(url: string, log: Logger | undefined): JWTVerifyGetKey {
  const jwks = createRemoteJWKSet(new URL(url), { timeoutDuration: 5_000 });
  jwks.reload().then(
    () => log?.info({ url, keys: jwks.jwks()?.keys.length ?? 0 }, 'JWT key set fetched'),
    (err: Error) => log?.warn({ url, err: { message: err.message } }, 'JWT key set not fetched yet; upgrades with a token get 503 until it is'),
  );
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (err) {
      if (TOKEN_KEY_ERRORS.has((err as { code?: string }).code ?? '')) throw err;
      throw new KeySetUnavailable(`key set ${url} unavailable: ${(err as Error).message}`, { cause: err });
    }
  };
}

/** Builds the verifier from the config, or null when no JWT key is configured. Reads key files once. */
export function createJwtVerifier(config: Config, log?: Logger): JwtVerifier | null {
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  try {
    if (config.jwtSecret !== '') {
      key = new TextEncoder().encode(config.jwtSecret);
      algorithms = ['HS256'];
    } else if (config.jwtPublicKey !== '') {
      key = createPublicKey(readFileSync(config.jwtPublicKey, 'utf8'));
      algorithms = key.asymmetricKeyType === 'ec' ? ['ES256'] : ['RS256'];
    } else if (config.jwksFile !== '') {
      key = createLocalJWKSet(JSON.parse(readFileSync(config.jwksFile, 'utf8')));
      algorithms = ['RS256', 'ES256', 'HS256'];
    } else if (config.jwksUrl !== '') {
      // published keys are public keys: no HS256 (a symmetric key in a public set would be a leak)
      key = remoteKeySet(config.jwksUrl, log);
      algorithms = ['RS256', 'ES256'];
    } else {
      return null;
    }
  } catch (err) {
    const flag = config.jwtPublicKey !== '' ? '--jwt-public-key' : '--jwks-file';
    throw new ConfigError([`option ${flag}: cannot load the key (${(err as Error).message})`]);
  }
  const options = { algorithms, ...(config.jwtIssuer ? { issuer: config.jwtIssuer } : {}), ...(config.jwtAudience ? { audience: config.jwtAudience } : {}) };
  return async (token) => {
    const { payload } = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
    return payload as Record<string, unknown>;
  };
}
