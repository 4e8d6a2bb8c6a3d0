/**
 * The one configuration schema: each key's type, default, env name, flag, doc line and the commands
 * that take it. The CLI, env parsing, config-file parsing and the README's table all come from here.
 */
export type Command = 'local' | 'gateway' | 'worker' | 'connections' | 'bridge' | 'exec' | 'dev';

interface BaseSpec {
  readonly flag: string;
  readonly short?: string;
  readonly doc: string;
  readonly commands: readonly Command[];
  /** Defaults that differ by command (the connection service listens on 8004). */
  readonly commandDefaults?: Partial<Record<Command, number | string | boolean>>;
}
export interface NumberSpec extends BaseSpec {
  readonly type: 'integer';
  readonly default: number;
  readonly min: number;
  readonly max: number;
}
export interface StringSpec extends BaseSpec {
  readonly type: 'string';
  readonly default: string;
  /** When set, the value must match (after trimming) or be empty when `optional`. */
  readonly pattern?: RegExp;
  readonly patternDoc?: string;
  readonly optional?: boolean;
}
export interface EnumSpec extends BaseSpec {
  readonly type: 'enum';
  readonly default: string;
  readonly values: readonly string[];
}
export interface ListSpec extends BaseSpec {
  readonly type: 'list';
  readonly default: readonly string[];
  readonly itemPattern?: RegExp;
  readonly itemDoc?: string;
}
export interface BooleanSpec extends BaseSpec {
  readonly type: 'boolean';
  readonly default: boolean;
}
export type KeySpec = NumberSpec | StringSpec | EnumSpec | ListSpec | BooleanSpec;

const ALL: readonly Command[] = ['local', 'gateway', 'worker', 'connections', 'bridge', 'exec'];
const FRONT: readonly Command[] = ['local', 'gateway'];
const NATS: readonly Command[] = ['gateway', 'worker', 'connections', 'bridge', 'exec'];
const HTTP: readonly Command[] = ['local', 'gateway', 'connections'];
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const TOKEN_DOC = '1-128 characters of A-Z a-z 0-9 _ -';

export const schema = {
  port: { type: 'integer', flag: '--port', short: '-p', default: 8000, commandDefaults: { connections: 8004 }, min: 0, max: 65535, commands: [...HTTP, 'dev'], doc: 'TCP port for WebSocket and HTTP (0 picks a free port); the connection service defaults to 8004; `wsgw dev` uses it and the next one' },
  apiPort: { type: 'integer', flag: '--api-port', default: 8004, min: 1, max: 65535, commands: ['dev'], doc: 'Port of the connection service started by `wsgw dev`' },
  host: { type: 'string', flag: '--host', default: '0.0.0.0', commands: [...HTTP, 'worker', 'bridge', 'exec'], doc: 'Address to listen on (worker, bridge and exec: for --metrics-port)' },
  tlsCert: { type: 'string', flag: '--tls-cert', default: '', optional: true, commands: HTTP, doc: 'PEM certificate (chain) file: serve wss:// and https:// on the port (with --tls-key); plain ws:// and http:// when empty' },
  tlsKey: { type: 'string', flag: '--tls-key', default: '', optional: true, commands: HTTP, doc: 'PEM private key file of --tls-cert (unencrypted)' },
  path: { type: 'string', flag: '--path', default: '/ws', pattern: /^\/[A-Za-z0-9_\-/]*$/, patternDoc: 'an absolute URL path such as /ws', commands: FRONT, doc: 'WebSocket endpoint; `<path>/<route>` selects a route' },
  handler: { type: 'string', flag: '--handler', default: '', optional: true, commands: ['local', 'gateway', 'worker', 'dev'], doc: 'Handler module (file path or package); local and worker default to the built-in echo, gateway without it publishes to NATS' },
  nats: { type: 'list', flag: '--nats', default: ['nats://127.0.0.1:4222'], itemPattern: /^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+:\d+$/, itemDoc: 'a NATS URL such as nats://host:4222', commands: NATS, doc: 'NATS server URLs, comma-separated' },
  id: { type: 'string', flag: '--id', default: '', optional: true, pattern: TOKEN, patternDoc: TOKEN_DOC, commands: FRONT, doc: 'Gateway id (unique per process); random `gw-...` when empty' },
  natsUser: { type: 'string', flag: '--nats-user', default: '', optional: true, commands: NATS, doc: 'NATS user name (with --nats-password)' },
  natsPassword: { type: 'string', flag: '--nats-password', default: '', optional: true, commands: NATS, doc: 'NATS password; prefer the env variable to the flag' },
  natsToken: { type: 'string', flag: '--nats-token', default: '', optional: true, commands: NATS, doc: 'NATS authentication token' },
  natsCreds: { type: 'string', flag: '--nats-creds', default: '', optional: true, commands: NATS, doc: 'NATS credentials file (JWT + nkey seed, from nsc)' },
  natsNkey: { type: 'string', flag: '--nats-nkey', default: '', optional: true, commands: NATS, doc: 'File holding a NATS nkey seed (SU...)' },
  natsCa: { type: 'string', flag: '--nats-ca', default: '', optional: true, commands: NATS, doc: 'CA certificate file to verify the NATS server (TLS)' },
  natsCert: { type: 'string', flag: '--nats-cert', default: '', optional: true, commands: NATS, doc: 'Client certificate file for NATS TLS (with --nats-key)' },
  natsKey: { type: 'string', flag: '--nats-key', default: '', optional: true, commands: NATS, doc: 'Client key file for NATS TLS' },
  prefix: { type: 'string', flag: '--prefix', default: 'wsgw', pattern: TOKEN, patternDoc: TOKEN_DOC, commands: NATS, doc: 'Subject prefix P and KV bucket prefix' },
  queue: { type: 'string', flag: '--queue', default: 'wsgw-workers', commandDefaults: { bridge: 'wsgw-bridge', exec: 'wsgw-exec' }, pattern: TOKEN, patternDoc: TOKEN_DOC, commands: ['worker', 'bridge', 'exec'], doc: 'NATS queue group the worker (default wsgw-workers), bridge (default wsgw-bridge) or exec (default wsgw-exec) joins' },
  perConnection: { type: 'boolean', flag: '--per-connection', default: false, commands: ['exec'], doc: 'exec: one process per connection (environment: WSGW_CONN_ID, WSGW_PATH, WSGW_QUERY, WSGW_REMOTE_ADDR); default is one shared process with lines prefixed by connection id' },
  maxProcs: { type: 'integer', flag: '--max-procs', default: 100, min: 1, max: 10_000, commands: ['exec'], doc: 'exec --per-connection: programs running at once; past it new connections are closed with 4429 (try again later)' },
  routeField: { type: 'string', flag: '--route-field', default: '', optional: true, pattern: /^[A-Za-z0-9_$-]{1,64}$/, patternDoc: 'a top-level JSON field name', commands: FRONT, doc: 'Top-level JSON field of text frames that selects the route (like `action`); path route is used when empty' },
  headers: { type: 'list', flag: '--headers', default: ['user-agent', 'origin', 'x-forwarded-for'], itemPattern: /^[a-z0-9-]{1,64}$/, itemDoc: 'a lower-case header name', commands: FRONT, doc: 'Request headers copied into the connection info' },
  maxPayload: { type: 'integer', flag: '--max-payload', default: 512 * 1024, min: 128, max: 64 * 1024 * 1024, commands: [...FRONT, 'connections', 'bridge'], doc: 'Largest frame in bytes: larger client frames close the connection (1009), larger API bodies and bridge answers are refused (413). Keep below NATS max_payload' },
  compression: { type: 'enum', flag: '--compression', default: 'off', values: ['off', 'shared', 'dedicated'], commands: FRONT, doc: 'permessage-deflate with clients that offer it: off; shared (no memory per connection, each frame compressed on its own); dedicated (a 4 KB window per connection: better on repetitive streams). Frames under 128 bytes go uncompressed' },
  maxConnections: { type: 'integer', flag: '--max-connections', default: 100_000, min: 1, max: 10_000_000, commands: FRONT, doc: 'Connections per process; more are refused with 503 before the upgrade' },
  idleTimeout: { type: 'integer', flag: '--idle-timeout', default: 120, min: 0, max: 960, commands: FRONT, doc: 'Seconds without traffic before a connection is closed (pings keep it alive); 0 disables' },
  tokenExpiry: { type: 'enum', flag: '--token-expiry', default: 'close', values: ['close', 'ignore'], commands: FRONT, doc: "What a connection's token expiring does: `close` closes it with 4103 when its identity's `exp` passes (the JWT's, or the `exp` of an --authorize answer's identity); `ignore`: the token only admits the upgrade" },
  maxConnectionAge: { type: 'integer', flag: '--max-connection-age', default: 0, min: 0, max: 30 * 24 * 3600, commands: FRONT, doc: 'Seconds after which a connection is closed with 4104 (reconnect), each at a random point of the last tenth so a burst of connections does not reconnect at once: moves clients onto gateways added since, and re-checks their tokens; 0 disables' },
  maxBackpressure: { type: 'integer', flag: '--max-backpressure', default: 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, commands: FRONT, doc: 'Bytes buffered for a slow client before the backpressure policy applies' },
  backpressurePolicy: { type: 'enum', flag: '--backpressure-policy', default: 'drop', values: ['drop', 'close'], commands: FRONT, doc: 'What happens past max-backpressure: drop the frame, or close the connection (4001)' },
  outageBuffer: { type: 'integer', flag: '--outage-buffer', default: 10_000, min: 0, max: 10_000_000, commands: ['gateway'], doc: 'Inbound frames buffered while NATS is away; past it, the sending client is closed (4101)' },
  origins: { type: 'list', flag: '--origins', default: [], itemPattern: /^https?:\/\/(\*\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/, itemDoc: 'an origin such as https://app.example.com (scheme, host, optional port; no path), or https://*.example.com for its subdomains', commands: FRONT, doc: 'Allowed Origin headers, comma-separated: exact origins, or `https://*.example.com` for any subdomain of example.com (same scheme and port; not example.com itself). When set, a missing, `null` or other Origin gets 403. Empty allows any' },
  subprotocols: { type: 'list', flag: '--subprotocols', default: [], itemPattern: /^(?!wsgw\.bearer\.)[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/, itemDoc: 'a subprotocol name (RFC 6455 token characters, not wsgw.bearer.*)', commands: FRONT, doc: 'Subprotocols this gateway speaks, comma-separated: the first a client offers that is listed is selected, and a client that offers some but none listed gets 400 naming them. Empty selects the first offered' },
  jwtSecret: { type: 'string', flag: '--jwt-secret', default: '', optional: true, commands: FRONT, doc: 'Require a JWT signed with this HS256 secret at upgrade (claims become the identity)' },
  jwtPublicKey: { type: 'string', flag: '--jwt-public-key', default: '', optional: true, commands: FRONT, doc: 'Require a JWT verified with this PEM public key file (RS256 or ES256)' },
  jwksFile: { type: 'string', flag: '--jwks-file', default: '', optional: true, commands: FRONT, doc: 'Require a JWT verified against the keys in this JWKS JSON file (matched by kid)' },
  jwksUrl: { type: 'string', flag: '--jwks-url', default: '', optional: true, pattern: /^https?:\/\/[^\s]+$/, patternDoc: 'an http:// or https:// URL', commands: FRONT, doc: 'Require a JWT (RS256 or ES256) verified against the key set published at this URL, as identity providers do: fetched at start and when stale (10 minutes), again for an unknown kid at most every 30 s; while it cannot be fetched, upgrades get 503' },
  jwtIssuer: { type: 'string', flag: '--jwt-issuer', default: '', optional: true, commands: FRONT, doc: 'Required `iss` claim, when set' },
  jwtAudience: { type: 'string', flag: '--jwt-audience', default: '', optional: true, commands: FRONT, doc: 'Required `aud` claim, when set' },
  tokenQuery: { type: 'boolean', flag: '--token-query', default: false, commands: FRONT, doc: 'Also accept the JWT as `?token=` (URLs end up in logs and history: prefer the header or the subprotocol)' },
  trustedProxies: { type: 'list', flag: '--trusted-proxies', default: [], itemPattern: /^[0-9A-Fa-f:.]{2,45}(\/\d{1,3})?$/, itemDoc: 'an IP address or CIDR block such as 10.0.0.0/8', commands: FRONT, doc: 'Proxies (IP addresses or CIDR blocks, comma-separated) whose X-Forwarded-For is believed: a connection from one of them gets, as its address (records, events, the authorizer, --connect-rate), the right-most X-Forwarded-For entry that is not itself a trusted proxy. Empty: the TCP peer is the client' },
  maxConnectionsPerIp: { type: 'integer', flag: '--max-connections-per-ip', default: 0, min: 0, max: 1_000_000, commands: FRONT, doc: 'Connections open (or being admitted) from one IP address at once, per gateway process; more get 429 before the upgrade. 0 disables' },
  connectRate: { type: 'integer', flag: '--connect-rate', default: 0, min: 0, max: 1_000_000, commands: FRONT, doc: 'New connections per second allowed from one IP address (burst of the same size); more get 429. 0 disables' },
  messageRate: { type: 'integer', flag: '--message-rate', default: 0, min: 0, max: 10_000_000, commands: FRONT, doc: 'Frames per second allowed from one connection (burst of twice that); past it the connection is closed with 1008. 0 disables' },
  authorize: { type: 'boolean', flag: '--authorize', default: false, commands: ['gateway'], doc: 'Ask the authorizer on `P.auth` (a worker whose handler exports `authorize`, or `wsgw bridge` and your app) before every upgrade; a refusal gets its HTTP status, no answer gets 503. An in-process handler that exports `authorize` is asked without it' },
  procs: { type: 'integer', flag: '--procs', default: 1, min: 1, max: 64, commands: ['gateway'], doc: 'Gateway processes on this port (SO_REUSEPORT spreads connections over them), ids `<id>-1..N`; a supervisor restarts any that dies' },
  demo: { type: 'boolean', flag: '--demo', default: false, commandDefaults: { local: true }, commands: FRONT, doc: 'Serve the chat demo page (ui/chat.html, for services/examples/chat.js) at `/`; on by default in local mode (WSGW_DEMO=false turns it off)' },
  api: { type: 'boolean', flag: '--api', default: false, commands: ['gateway'], doc: 'Also serve the connections HTTP API (as `wsgw connections` does) on the gateway port' },
  token: { type: 'string', flag: '--token', default: '', optional: true, commands: ['gateway', 'connections'], doc: 'Bearer token required by the connections HTTP API (`Authorization: Bearer <token>`); none when empty' },
  requestTimeout: { type: 'integer', flag: '--request-timeout', default: 5_000, min: 100, max: 120_000, commands: ['local', 'gateway', 'connections'], doc: 'Milliseconds to wait for the owning gateway (connections API: then 504) or the authorizer (`--authorize`, or a handler\'s `authorize`: then 503)' },
  target: { type: 'string', flag: '--target', default: '', optional: true, pattern: /^https?:\/\/[^\s]+$/, patternDoc: 'an http:// or https:// URL', commands: ['bridge'], doc: 'URL of the application the bridge POSTs every event to (required by `wsgw bridge`)' },
  secret: { type: 'string', flag: '--secret', default: '', optional: true, commands: ['bridge'], doc: 'HMAC-SHA256 key: the bridge signs every request (`Wsgw-Signature`) so the application can verify it' },
  bridgeConcurrency: { type: 'integer', flag: '--bridge-concurrency', default: 256, min: 1, max: 10_000, commands: ['bridge'], doc: 'Requests in flight to the application at once (never more than one per connection)' },
  bridgeTimeout: { type: 'integer', flag: '--bridge-timeout', default: 10_000, min: 100, max: 600_000, commands: ['bridge'], doc: 'Milliseconds to wait for the application to answer one request' },
  bridgeRetries: { type: 'integer', flag: '--bridge-retries', default: 3, min: 0, max: 20, commands: ['bridge'], doc: 'Retries (with backoff) after a 5xx, a timeout or a connection error; then the event is given up' },
  bridgeQueue: { type: 'integer', flag: '--bridge-queue', default: 10_000, min: 1, max: 10_000_000, commands: ['bridge'], doc: 'Events waiting for the application, over all connections; past it new events are given up at once' },
  bridgeErrorFrame: { type: 'boolean', flag: '--bridge-error-frame', default: false, commands: ['bridge'], doc: 'When an event is given up, send the client a JSON error frame `{"error":"bridge_unavailable",...}`' },
  drainMs: { type: 'integer', flag: '--drain-ms', default: 10_000, commandDefaults: { local: 0 }, min: 0, max: 600_000, commands: ['gateway', 'local'], doc: 'On SIGTERM/SIGINT: stop accepting, then close clients with 4100 (reconnect elsewhere) spread evenly over this many ms, publish their close events, remove their records, exit; 0 closes all at once with 1001' },
  durable: { type: 'boolean', flag: '--durable', default: false, commands: ['gateway', 'worker', 'bridge'], doc: 'Durable mode: the gateway stores inbound events in the JetStream stream `P_inbound` (acked, de-duplicated); the worker (or bridge) consumes it through a durable consumer and acks after the handler (after the application answered, or the event was given up)' },
  durableMaxAge: { type: 'integer', flag: '--durable-max-age', default: 3600, min: 1, max: 365 * 24 * 3600, commands: ['gateway'], doc: 'Seconds an unacknowledged inbound event is kept in the durable stream' },
  durableMaxBytes: { type: 'integer', flag: '--durable-max-bytes', default: 256 * 1024 * 1024, min: 1024 * 1024, max: 1024 * 1024 * 1024 * 1024, commands: ['gateway'], doc: 'Size limit of the durable stream in bytes (oldest events are dropped past it); JetStream reserves it, so keep it within the server limits' },
  durableAckWait: { type: 'integer', flag: '--durable-ack-wait', default: 30_000, min: 500, max: 3_600_000, commands: ['worker', 'bridge'], doc: 'Milliseconds a durable worker may take per event before it is redelivered to another worker (a durable bridge tells the stream it is still working on the events it holds every third of it)' },
  metricsPort: { type: 'integer', flag: '--metrics-port', default: 0, min: 0, max: 65535, commands: ['worker', 'bridge', 'exec'], doc: 'Serve /healthz, /readyz and /metrics on this port (gateways and the connection service serve them on their own port); 0 disables' },
  history: { type: 'integer', flag: '--history', default: 0, min: 0, max: 10_000, commands: ['local', 'gateway', 'worker', 'connections'], doc: 'Topic history: keep the last N broadcasts of each topic for handlers (`ctx.history`) and `GET /topics/:topic/history` to read back; with NATS a JetStream stream `P_history` that this process creates or updates (one process with it is enough), in local mode memory; 0 leaves it as it is (off unless some process turned it on)' },
  historyTtl: { type: 'integer', flag: '--history-ttl', default: 3600, min: 1, max: 365 * 24 * 3600, commands: ['local', 'gateway', 'worker', 'connections'], doc: 'Seconds a broadcast stays in the topic history (with --history)' },
  historyMaxBytes: { type: 'integer', flag: '--history-max-bytes', default: 64 * 1024 * 1024, min: 1024 * 1024, max: 1024 * 1024 * 1024 * 1024, commands: ['local', 'gateway', 'worker', 'connections'], doc: 'Size limit of the whole topic history in bytes, over every topic (the oldest broadcasts go first); JetStream reserves it, so keep it within the server limits' },
  kvReplicas: { type: 'integer', flag: '--kv-replicas', default: 1, min: 1, max: 5, commands: NATS, doc: 'Replicas of the KV buckets and the durable stream when wsgw creates them (3 on a cluster)' },
  goneRetention: { type: 'integer', flag: '--gone-retention', default: 1_800, min: 1, max: 30 * 86_400, commands: ['gateway', 'connections'], doc: 'Seconds a closed connection stays known as gone (the API answers 410, then 404): its KV delete marker is purged after that, by one process of the cluster every third of it (at most every 10 minutes)' },
  leaseMs: { type: 'integer', flag: '--lease-ms', default: 15_000, min: 1_000, max: 600_000, commands: ['gateway', 'connections'], doc: 'Gateway lease length: gateways renew every third of it; a gateway silent longer is declared dead and its connections reported lost (gateways and the connection service sweep every third of it)' },
  logFormat: { type: 'enum', flag: '--log-format', default: 'auto', values: ['auto', 'json', 'pretty'], commands: ALL, doc: 'Log output: NDJSON, readable lines, or auto (readable in a terminal, NDJSON otherwise)' },
  logLevel: { type: 'enum', flag: '--log-level', default: 'info', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], commands: ALL, doc: 'Log level of the NDJSON logs on stdout' },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof schema;

type ValueOf<S> = S extends { type: 'integer' } ? number : S extends { type: 'list' } ? readonly string[] : S extends { type: 'boolean' } ? boolean : string;
/** The validated, frozen configuration. */
export type Config = { readonly [K in ConfigKey]: ValueOf<(typeof schema)[K]> };

/** `WSGW_MAX_PAYLOAD` for `maxPayload`. */
export function envName(key: ConfigKey): string {
  return 'WSGW_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** The default of `key` for `command`. */
export function defaultFor(spec: KeySpec, command: Command): unknown {
  return spec.commandDefaults?.[command] ?? spec.default;
}

export function keysFor(command: Command): ConfigKey[] {
  return (Object.keys(schema) as ConfigKey[]).filter((k) => (schema[k].commands as readonly Command[]).includes(command));
}
