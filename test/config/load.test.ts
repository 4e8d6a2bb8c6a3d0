import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { envName, schema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'wsgw-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(content: unknown): string {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

t.test('defaults', async (t) => {
  const c = loadConfig({ command: 'gateway', env: {} });
  t.equal(c.port, 8000);
  t.same(c.nats, ['nats://127.0.0.1:4222']);
  t.equal(c.prefix, 'wsgw');
  t.ok(Object.isFrozen(c), 'frozen');
});

t.test('precedence: defaults < file < env < flags', async (t) => {
  const f = file({ port: 7001, prefix: 'fromfile', maxPayload: 2048 });
  const env = { WSGW_PORT: '7002', WSGW_PREFIX: 'fromenv' };
  const c = loadConfig({ command: 'gateway', env, file: f, flags: { port: '7003' } });
  t.equal(c.port, 7003, 'flag wins');
  t.equal(c.prefix, 'fromenv', 'env beats file');
  t.equal(c.maxPayload, 2048, 'file beats default');
});

t.test('env names and lists', async (t) => {
  t.equal(envName('maxPayload'), 'WSGW_MAX_PAYLOAD');
  const c = loadConfig({ command: 'gateway', env: { WSGW_NATS: 'nats://a:1, nats://b:2' } });
  t.same(c.nats, ['nats://a:1', 'nats://b:2']);
});

t.test('every problem is reported at once, naming the option', async (t) => {
  const err = t.throws(() =>
    loadConfig({ command: 'gateway', env: { WSGW_MAX_CONNECTIONS: 'lots' }, flags: { port: '70000', prefix: 'a.b', backpressurePolicy: 'explode', nats: 'http://x' } }),
  ) as ConfigError;
  t.type(err, ConfigError);
  t.equal(err.code, 'WSGW_CONFIG');
  t.match(err.problems.join('\n'), /--port: 70000 is outside 0\.\.65535/);
  t.match(err.problems.join('\n'), /--prefix: "a\.b" is not/);
  t.match(err.problems.join('\n'), /--backpressure-policy: "explode" is not one of drop, close/);
  t.match(err.problems.join('\n'), /env WSGW_MAX_CONNECTIONS \/ --max-connections: expected an integer/);
  t.match(err.problems.join('\n'), /--nats: "http:\/\/x" is not a NATS URL/);
});

t.test('config file errors', async (t) => {
  t.throws(() => loadConfig({ command: 'local', env: {}, file: file({ prot: 1 }) }), { message: /unknown key "prot"/ });
  t.throws(() => loadConfig({ command: 'local', env: {}, file: file('{nope') }), { message: /not valid JSON/ });
  t.throws(() => loadConfig({ command: 'local', env: {}, file: join(dir, 'missing.json') }), { message: /cannot read/ });
  t.throws(() => loadConfig({ command: 'local', env: {}, file: file([1]) }), { message: /must hold a JSON object/ });
});

t.test('an option the command does not take is refused', async (t) => {
  t.throws(() => loadConfig({ command: 'worker', env: {}, flags: { port: 1 } }), { message: /--port: not used by "wsgw worker"/ });
});

t.test('idle timeout must be 0 or at least 8 seconds', async (t) => {
  t.throws(() => loadConfig({ command: 'local', env: {}, flags: { idleTimeout: 3 } }), { message: /--idle-timeout: 3 is too short/ });
  t.equal(loadConfig({ command: 'local', env: {}, flags: { idleTimeout: 0 } }).idleTimeout, 0);
});

t.test('every key has a doc line, a flag and at least one command', async (t) => {
  for (const [key, spec] of Object.entries(schema)) {
    t.ok(spec.doc.length > 10 && spec.flag.startsWith('--') && spec.commands.length > 0, key);
  }
});
