/**
 * The one configuration schema: each key's type, default, env name, flag, doc line and the commands
 * that take it. The CLI, env parsing, config-file parsing and the README's table all come from here.
 */
export type Command = 'local' | 'gateway' | 'worker';

interface BaseSpec {
  readonly flag: string;
  readonly short?: string;
  readonly doc: string;
  readonly commands: readonly Command[];
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
export type KeySpec = NumberSpec | StringSpec | EnumSpec | ListSpec;

const ALL: readonly Command[] = ['local', 'gateway', 'worker'];
const FRONT: readonly Command[] = ['local', 'gateway'];
const NATS: readonly Command[] = ['gateway', 'worker'];
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const TOKEN_DOC = '1-128 characters of A-Z a-z 0-9 _ -';

export const schema = {
  port: { type: 'integer', flag: '--port', short: '-p', default: 8000, min: 0, max: 65535, commands: FRONT, doc: 'TCP port for WebSocket and HTTP (0 picks a free port)' },
  host: { type: 'string', flag: '--host', default: '0.0.0.0', commands: FRONT, doc: 'Address to listen on' },
  path: { type: 'string', flag: '--path', default: '/ws', pattern: /^\/[A-Za-z0-9_\-/]*$/, patternDoc: 'an absolute URL path such as /ws', commands: FRONT, doc: 'WebSocket endpoint; `<path>/<route>` selects a route' },
  handler: { type: 'string', flag: '--handler', default: '', optional: true, commands: ALL, doc: 'Handler module (file path or package); local and worker default to the built-in echo, gateway without it publishes to NATS' },
  nats: { type: 'list', flag: '--nats', default: ['nats://127.0.0.1:4222'], itemPattern: /^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+:\d+$/, itemDoc: 'a NATS URL such as nats://host:4222', commands: NATS, doc: 'NATS server URLs, comma-separated' },
  id: { type: 'string', flag: '--id', default: '', optional: true, pattern: TOKEN, patternDoc: TOKEN_DOC, commands: FRONT, doc: 'Gateway id (unique per process); random `gw-...` when empty' },
  prefix: { type: 'string', flag: '--prefix', default: 'wsgw', pattern: TOKEN, patternDoc: TOKEN_DOC, commands: NATS, doc: 'Subject prefix P and KV bucket prefix' },
  queue: { type: 'string', flag: '--queue', default: 'wsgw-workers', pattern: TOKEN, patternDoc: TOKEN_DOC, commands: ['worker'], doc: 'NATS queue group the worker joins' },
  routeField: { type: 'string', flag: '--route-field', default: '', optional: true, pattern: /^[A-Za-z0-9_$-]{1,64}$/, patternDoc: 'a top-level JSON field name', commands: FRONT, doc: 'Top-level JSON field of text frames that selects the route (like `action`); path route is used when empty' },
  headers: { type: 'list', flag: '--headers', default: ['user-agent', 'origin', 'x-forwarded-for'], itemPattern: /^[a-z0-9-]{1,64}$/, itemDoc: 'a lower-case header name', commands: FRONT, doc: 'Request headers copied into the connection info' },
  maxPayload: { type: 'integer', flag: '--max-payload', default: 512 * 1024, min: 128, max: 64 * 1024 * 1024, commands: FRONT, doc: 'Largest frame in bytes; larger frames close the connection (1009). Keep below NATS max_payload' },
  maxConnections: { type: 'integer', flag: '--max-connections', default: 100_000, min: 1, max: 10_000_000, commands: FRONT, doc: 'Connections per process; more are refused with 503 before the upgrade' },
  idleTimeout: { type: 'integer', flag: '--idle-timeout', default: 120, min: 0, max: 960, commands: FRONT, doc: 'Seconds without traffic before a connection is closed (pings keep it alive); 0 disables' },
  maxBackpressure: { type: 'integer', flag: '--max-backpressure', default: 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, commands: FRONT, doc: 'Bytes buffered for a slow client before the backpressure policy applies' },
  backpressurePolicy: { type: 'enum', flag: '--backpressure-policy', default: 'drop', values: ['drop', 'close'], commands: FRONT, doc: 'What happens past max-backpressure: drop the frame, or close the connection (4001)' },
  outageBuffer: { type: 'integer', flag: '--outage-buffer', default: 10_000, min: 0, max: 10_000_000, commands: ['gateway'], doc: 'Inbound frames buffered while NATS is away; past it, the sending client is closed (4101)' },
  kvReplicas: { type: 'integer', flag: '--kv-replicas', default: 1, min: 1, max: 5, commands: NATS, doc: 'Replicas of the KV buckets when wsgw creates them (3 on a cluster)' },
  leaseMs: { type: 'integer', flag: '--lease-ms', default: 15_000, min: 1_000, max: 600_000, commands: ['gateway'], doc: 'Gateway lease length; heartbeats every third of it, and a lease older than this is dead' },
  logLevel: { type: 'enum', flag: '--log-level', default: 'info', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], commands: ALL, doc: 'Log level of the NDJSON logs on stdout' },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof schema;

type ValueOf<S> = S extends { type: 'integer' } ? number : S extends { type: 'list' } ? readonly string[] : string;
/** The validated, frozen configuration. */
export type Config = { readonly [K in ConfigKey]: ValueOf<(typeof schema)[K]> };

/** `WSGW_MAX_PAYLOAD` for `maxPayload`. */
export function envName(key: ConfigKey): string {
  return 'WSGW_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export function keysFor(command: Command): ConfigKey[] {
  return (Object.keys(schema) as ConfigKey[]).filter((k) => (schema[k].commands as readonly Command[]).includes(command));
}
