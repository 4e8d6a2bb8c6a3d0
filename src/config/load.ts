import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors/errors.js';
import { parseTrustedProxy } from './ip.js';
import { schema, envName, keysFor, defaultFor, type Command, type Config, type ConfigKey, type KeySpec } from './schema.js';

export type RawConfig = Partial<Record<ConfigKey, unknown>>;

export interface LoadConfigOptions {
  readonly command: Command;
  /** Values from flags (highest precedence). */
  readonly flags?: RawConfig;
  /** Environment (defaults to process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON config file (`--config`). */
  readonly file?: string;
}

/** Reads a JSON config file; unknown keys are errors so typos never pass silently. */
function readFile(path: string, problems: string[]): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`config file ${path}: cannot read (${(err as Error).message})`);
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    problems.push(`config file ${path}: not valid JSON (${(err as Error).message})`);
    return {};
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`config file ${path}: must hold a JSON object`);
    return {};
  }
  const out: RawConfig = {};
  for (const [k, v] of Object.entries(value)) {
    if (!(k in schema)) {
      problems.push(`config file ${path}: unknown key "${k}" (known: ${Object.keys(schema).join(', ')})`);
      continue;
    }
    out[k as ConfigKey] = v;
  }
  return out;
}

function coerce(key: ConfigKey, spec: KeySpec, raw: unknown, where: string, problems: string[]): unknown {
  const name = `${where} ${spec.flag}`;
  switch (spec.type) {
    case 'integer': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n)) {
        problems.push(`${name}: expected an integer, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      if (n < spec.min || n > spec.max) {
        problems.push(`${name}: ${n} is outside ${spec.min}..${spec.max}`);
        return undefined;
      }
      return n;
    }
    case 'string': {
      if (typeof raw !== 'string') {
        problems.push(`${name}: expected a string, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      const s = raw.trim();
      if (s === '' && (spec.optional || spec.default === '')) return '';
      if (spec.pattern && !spec.pattern.test(s)) {
        problems.push(`${name}: ${JSON.stringify(s)} is not ${spec.patternDoc}`);
        return undefined;
      }
      return s;
    }
    case 'enum': {
      if (typeof raw !== 'string' || !spec.values.includes(raw)) {
        problems.push(`${name}: ${JSON.stringify(raw)} is not one of ${spec.values.join(', ')}`);
        return undefined;
      }
      return raw;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw.trim())) return true;
      if (typeof raw === 'string' && /^(0|false|no|off|)$/i.test(raw.trim())) return false;
      problems.push(`${name}: expected true or false, got ${JSON.stringify(raw)}`);
      return undefined;
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
      if (!items || items.some((i) => typeof i !== 'string')) {
        problems.push(`${name}: expected a comma-separated list of strings, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      const list = (items as string[]).map((i) => i.trim()).filter((i) => i !== '');
      for (const item of list) {
        if (spec.itemPattern && !spec.itemPattern.test(item)) problems.push(`${name}: ${JSON.stringify(item)} is not ${spec.itemDoc}`);
      }
      if (key === 'nats' && list.length === 0) problems.push(`${name}: needs at least one URL`);
      return Object.freeze(list);
    }
  }
}

/**
 * Merges defaults < file < env < flags for one command, validates every key, reports every problem
 * at once (ConfigError), and returns a frozen Config.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const problems: string[] = [];
  const env = options.env ?? process.env;
  const fromFile = options.file ? readFile(options.file, problems) : {};
  const out: Record<string, unknown> = {};
  const allowed = new Set(keysFor(options.command));
  for (const key of Object.keys(schema) as ConfigKey[]) {
    const spec: KeySpec = schema[key];
    let value: unknown = defaultFor(spec, options.command);
    const layers: Array<[string, unknown]> = [
      [`config file:`, fromFile[key]],
      [`env ${envName(key)} /`, env[envName(key)]],
      [`option`, options.flags?.[key]],
    ];
    for (const [where, raw] of layers) {
      if (raw === undefined) continue;
      const v = coerce(key, spec, raw, where, problems);
      if (v !== undefined) value = v;
    }
    out[key] = value;
  }
  for (const key of Object.keys(options.flags ?? {}) as ConfigKey[]) {
    if (options.flags?.[key] !== undefined && !allowed.has(key)) problems.push(`option ${schema[key].flag}: not used by "wsgw ${options.command}"`);
  }
  if (problems.length) throw new ConfigError(problems);
  const credentialHeaders = (out.headers as string[]).filter((h) => ['authorization', 'cookie', 'sec-websocket-protocol', 'proxy-authorization'].includes(h));
  if (credentialHeaders.length) {
    problems.push(`option --headers: ${credentialHeaders.join(', ')} carry credentials and are never copied into records or events`);
  }
  const jwtSources = (['jwtSecret', 'jwtPublicKey', 'jwksFile', 'jwksUrl'] as const).filter((k) => out[k] !== '');
  if (jwtSources.length > 1) problems.push(`options ${jwtSources.map((k) => schema[k].flag).join(', ')}: give only one JWT key source`);
  const natsAuth = (['natsUser', 'natsToken', 'natsCreds', 'natsNkey'] as const).filter((k) => out[k] !== '');
  if (natsAuth.length > 1) problems.push(`options ${natsAuth.map((k) => schema[k].flag).join(', ')}: give only one way to authenticate to NATS`);
  if ((out.natsUser === '') !== (out.natsPassword === '')) problems.push('options --nats-user and --nats-password: give both or neither');
  if ((out.natsCert === '') !== (out.natsKey === '')) problems.push('options --nats-cert and --nats-key: give both or neither');
  if ((out.tlsCert === '') !== (out.tlsKey === '')) problems.push('options --tls-cert and --tls-key: give both or neither');
  for (const entry of (out.trustedProxies as readonly string[] | undefined) ?? []) {
    if (!parseTrustedProxy(entry)) problems.push(`option --trusted-proxies: ${JSON.stringify(entry)} is not an IP address or CIDR block such as 10.0.0.0/8`);
  }
  if (options.command === 'gateway' && out.durable === true && out.handler !== '') {
    problems.push('options --durable and --handler: durable mode stores published events for workers; a gateway with an in-process handler publishes none');
  }
  if (problems.length) throw new ConfigError(problems);
  if (options.command === 'bridge' && out.target === '') {
    throw new ConfigError(['option --target: required by "wsgw bridge" (the URL of your application, e.g. http://127.0.0.1:3000/ws-events)']);
  }
  if (out.idleTimeout !== 0 && (out.idleTimeout as number) < 8) {
    throw new ConfigError([`option --idle-timeout: ${out.idleTimeout} is too short (0 to disable, or at least 8 seconds)`]);
  }
  return Object.freeze(out) as Config;
}
