import { STATUS_CODES } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { createJwtVerifier, findToken, KeySetUnavailable, TOKEN_PROTOCOL_PREFIX } from '../auth/jwt.js';
import type { FrameData } from '../handlers/types.js';
import { parseAuthReply, type AuthReply, type AuthRequest } from '../protocol/events.js';
import type { Meta } from '../protocol/meta.js';
import type { Subjects } from '../protocol/subjects.js';
import { routeFromPath } from './route.js';
import { RateLimiter } from './rate.js';

/** What the gateway copied out of an upgrade request (the request dies with uWS's callback). */
export interface UpgradeRequest {
  readonly url: string;
  readonly query: string;
  readonly origin: string;
  /** `Sec-WebSocket-Protocol` as offered. */
  readonly offered: string;
  /** The `--headers` copied into the connection's record. */
  readonly headers: Readonly<Record<string, string>>;
  /** Read only when `Admission.readsAuthorization` ('' otherwise). */
  readonly authorization: string;
  /** Read only when `Admission.readsCookie` ('' otherwise). */
  readonly cookie: string;
  readonly remoteAddress: string;
}

/** An HTTP status line and a message for the client, sent instead of the upgrade. */
export interface Refusal {
  readonly refuse: readonly [status: string, message: string];
}

/** A request past the synchronous checks. */
export interface Admitted {
  readonly route: string;
  /** The query as recorded: without a `token` parameter when tokens may come from the query. */
  readonly query: string;
  /** The subprotocol to select: the first offered one that is not a token entry ('' for none). */
  readonly subprotocol: string;
  /** The JWT found (header, subprotocol or query), or null. */
  readonly token: string | null;
}

/** What the authorizer granted with its acceptance: topics to join, metadata and a first frame to send on open. */
export interface AuthorizerGrant {
  readonly topics: readonly string[];
  readonly meta: Meta | null;
  readonly message?: FrameData;
  readonly binary: boolean;
}

/** The asynchronous checks' outcome: the identity (JWT claims or the authorizer's) and the authorizer's grant. */
export interface Authorized {
  readonly identity: Readonly<Record<string, unknown>> | null;
  readonly grant: AuthorizerGrant | null;
}

/** The query string without a `token` parameter (so a token never lands in records or events). */
function withoutToken(query: string): string {
  if (!/(^|&)token=/.test(query)) return query;
  const q = new URLSearchParams(query);
  q.delete('token');
  return q.toString();
}

/**
 * Who may upgrade: the origin allow-list, the per-address connect rate, the route, the JWT and the
 * authorizer (an in-process handler's `authorize`, or `P.auth`). No socket here: the gateway copies the request, asks `check` (synchronous,
 * cheapest refusals first, before anything is published) and, when `waits`, `decide` (the token's
 * signature, then the authorizer), and refuses or upgrades with what they return.
 */
export class Admission {
  readonly #config: Config;
  readonly #gatewayId: string;
  readonly #base: string;
  readonly #log: Logger;
  readonly #verifier: ReturnType<typeof createJwtVerifier>;
  readonly #origins: ReadonlySet<string> | null;
  /** `--origins` entries `<scheme>://*.<domain>[:port]`, as [`<scheme>://`, `.<domain>[:port]`]. */
  readonly #originSuffixes: ReadonlyArray<readonly [string, string]>;
  readonly #connectLimiter: RateLimiter | null;
  /** The NATS connection `P.auth` requests go through: null without `--authorize` (or without NATS). */
  readonly #authorizer: { readonly nc: NatsConnection; readonly subjects: Subjects } | null;
  /** An in-process handler's `authorize`: asked instead of `P.auth`. */
  readonly #inProcess: ((request: AuthRequest) => Promise<AuthReply>) | null;
  /** Whether the checks read the `Authorization` header (JWT or authorizer). */
  readonly readsAuthorization: boolean;
  /** Whether the checks read the `Cookie` header (the authorizer gets it). */
  readonly readsCookie: boolean;
  /** Whether an admitted request still waits for `decide` (a JWT to verify or an authorizer to ask). */
  readonly waits: boolean;

  constructor(options: {
    config: Config;
    gatewayId: string;
    base: string;
    log: Logger;
    nats: { readonly nc: NatsConnection; readonly subjects: Subjects } | null;
    /** An in-process handler that decides upgrades (exports `authorize`): asked instead of `P.auth`, with or without NATS. */
    authorize?: (request: AuthRequest) => Promise<AuthReply>;
  }) {
    const { config } = options;
    this.#config = config;
    this.#gatewayId = options.gatewayId;
    this.#base = options.base;
    this.#log = options.log;
    this.#verifier = createJwtVerifier(config, options.log);
    const exact = new Set<string>();
    const suffixes: Array<readonly [string, string]> = [];
    for (const o of config.origins) {
      const wildcard = o.indexOf('://*.');
      if (wildcard < 0) exact.add(o);
      else suffixes.push([o.slice(0, wildcard + 3), o.slice(wildcard + 4)]);
    }
    this.#origins = config.origins.length ? exact : null;
    this.#originSuffixes = suffixes;
    this.#connectLimiter = config.connectRate > 0 ? new RateLimiter(config.connectRate, config.connectRate) : null;
    this.#inProcess = options.authorize ?? null;
    this.#authorizer = config.authorize && this.#inProcess === null ? options.nats : null;
    const asks = this.#authorizer !== null || this.#inProcess !== null;
    this.readsAuthorization = this.#verifier !== null || asks;
    this.readsCookie = asks;
    this.waits = this.#verifier !== null || asks;
  }

  /** The synchronous checks, in this order: origin, connect rate, route, a token's presence. */
  check(r: UpgradeRequest): Refusal | Admitted {
    if (this.#origins && !this.#origins.has(r.origin) && !this.#subdomainOrigin(r.origin)) return { refuse: ['403 Forbidden', `origin ${JSON.stringify(r.origin.slice(0, 100))} is not allowed`] };
    if (this.#connectLimiter && !this.#connectLimiter.take(r.remoteAddress)) return { refuse: ['429 Too Many Requests', 'too many new connections from this address; slow down'] };
    const route = routeFromPath(this.#base, r.url);
    if (route === null) return { refuse: ['404 Not Found', `no WebSocket endpoint at ${r.url}`] };
    if (typeof route !== 'string') return { refuse: ['400 Bad Request', `invalid route ${JSON.stringify(route.invalid.slice(0, 64))}: use A-Z a-z 0-9 _ -`] };
    const found = findToken({ authorization: r.authorization, protocols: r.offered, query: r.query }, this.#config.tokenQuery);
    if (this.#verifier && found.token === null) {
      // a token sent where this gateway does not look: say where it does
      const ignored = !this.#config.tokenQuery && new URLSearchParams(r.query).has('token') ? ' (?token= is read only with --token-query)' : '';
      return { refuse: ['401 Unauthorized', `a token is required: Authorization: Bearer <jwt>, or the subprotocol wsgw.bearer.<jwt>${ignored}`] };
    }
    // the token entry is never selected, and a client (every browser, and ws) fails a handshake that
    // selects none of the subprotocols it offered: it would open and at once drop, with no reason given
    const speaks = this.#config.subprotocols;
    if (found.protocols.length === 0 && r.offered.includes(TOKEN_PROTOCOL_PREFIX)) {
      const example = speaks.length > 0 ? `one of ${speaks.join(', ')}` : `e.g. new WebSocket(url, ['${TOKEN_PROTOCOL_PREFIX}' + jwt, 'wsgw'])`;
      return { refuse: ['400 Bad Request', `offer a subprotocol of your own next to ${TOKEN_PROTOCOL_PREFIX}<jwt> (${example}): the token entry is never selected, and a client fails a handshake that selects none of its subprotocols`] };
    }
    // the token entry is never echoed: the first other offered subprotocol is selected, or with
    // --subprotocols the first offered that the gateway speaks
    const subprotocol = speaks.length === 0 || found.protocols.length === 0 ? (found.protocols[0] ?? '') : (found.protocols.find((p) => speaks.includes(p)) ?? null);
    if (subprotocol === null) return { refuse: ['400 Bad Request', `none of the offered subprotocols is spoken here; offer one of ${speaks.join(', ')}`] };
    return { route, query: this.#config.tokenQuery ? withoutToken(r.query) : r.query, subprotocol, token: found.token };
  }

  /** True when `origin` is a subdomain origin an `https://*.example.com` entry allows (one or more labels, same scheme and port). */
  #subdomainOrigin(origin: string): boolean {
    for (const [scheme, suffix] of this.#originSuffixes) {
      if (!origin.startsWith(scheme) || !origin.endsWith(suffix)) continue;
      const labels = origin.slice(scheme.length, origin.length - suffix.length);
      if (/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(labels)) return true;
    }
    return false;
  }

  /** The token's signature and claims, then the authorizer (each when configured), for connection `id`. */
  async decide(r: UpgradeRequest, a: Admitted, id: string): Promise<Refusal | Authorized> {
    let identity: Record<string, unknown> | null = null;
    if (this.#verifier) {
      try {
        identity = await this.#verifier(a.token!);
      } catch (err) {
        if (err instanceof KeySetUnavailable) {
          this.#log.warn({ err: { message: err.message } }, 'upgrade refused: JWT key set unavailable');
          return { refuse: ['503 Service Unavailable', 'the token cannot be checked now (key set unavailable); try again later'] };
        }
        // the reason, never the token
        const reason = (err as { code?: string }).code ?? 'invalid';
        this.#log.info({ remoteAddress: r.remoteAddress, reason }, 'upgrade refused: token rejected');
        return { refuse: ['401 Unauthorized', `token rejected (${reason})`] };
      }
    }
    const nats = this.#authorizer;
    const inProcess = this.#inProcess;
    if (nats === null && inProcess === null) return { identity, grant: null };
    const authRequest: AuthRequest = {
      id,
      gateway: this.#gatewayId,
      path: r.url,
      query: a.query,
      // credentials go to the authorizer only, never into records or events
      headers: { ...r.headers, ...(r.authorization ? { authorization: r.authorization } : {}), ...(r.cookie ? { cookie: r.cookie } : {}) },
      remoteAddress: r.remoteAddress,
      subprotocol: a.subprotocol,
      ...(identity ? { identity } : {}),
    };
    let reply: AuthReply;
    if (inProcess !== null) {
      // bounded as a P.auth request is: a handler that never settles refuses, it does not hold the client
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<AuthReply>((resolve) => {
        timer = setTimeout(() => {
          this.#log.warn({ conn: id, timeoutMs: this.#config.requestTimeout }, 'authorize did not answer in time; upgrade refused');
          resolve({ ok: false, status: 503, message: 'authorizer unavailable' });
        }, this.#config.requestTimeout);
      });
      reply = await Promise.race([inProcess(authRequest), late]);
      clearTimeout(timer);
    } else {
      try {
        reply = parseAuthReply((await nats!.nc.request(nats!.subjects.auth, JSON.stringify(authRequest), { timeout: this.#config.requestTimeout })).json());
      } catch (err) {
        this.#log.warn({ err: { message: (err as Error).message } }, 'authorizer did not answer; upgrade refused');
        reply = { ok: false, status: 503, message: 'authorizer unavailable' };
      }
    }
    if (!reply.ok) {
      const status = reply.status ?? 403;
      return { refuse: [`${status} ${STATUS_CODES[status] ?? 'Refused'}`, reply.message || 'refused by the authorizer'] };
    }
    const first = reply.message === undefined ? undefined : reply.binary ? Buffer.from(reply.message, 'base64') : reply.message;
    return { identity: reply.identity ?? identity, grant: { topics: reply.topics ?? [], meta: reply.meta ?? null, message: first, binary: reply.binary === true } };
  }
}
