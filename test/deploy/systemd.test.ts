import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { envName, keysFor, schema, type Command, type ConfigKey } from '../../src/config/schema.js';

const dir = new URL('../../deploy/systemd/', import.meta.url).pathname;
const units = readdirSync(dir).filter((f) => f.endsWith('.service'));
const envFile = readFileSync(join(dir, 'wsgw.env'), 'utf8');
const accounts = readFileSync(new URL('../../deploy/nats/accounts-users.conf', import.meta.url), 'utf8');

/** KEY=value lines of an env file or of `Environment=` entries. */
function envVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^(?:Environment=)?(WSGW_[A-Z_]+)=(.*)$/gm)) out[m[1]!] = m[2]!;
  return out;
}

/** The wsgw command and its flags from ExecStart, with systemd specifiers replaced by sample values. */
function execStart(unit: string): { command: Command; flags: Record<string, string | boolean> } {
  const line = /^ExecStart=.*?wsgw\.js (\w+)(.*)$/m.exec(unit);
  if (!line) throw new Error('no wsgw ExecStart');
  const words = line[2]!.trim().split(/\s+/).filter((w) => w !== '').map((w) => w.replace(/%i/g, '8000').replace(/%H/g, 'host'));
  const byFlag = new Map((Object.keys(schema) as ConfigKey[]).map((k) => [schema[k].flag, k]));
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < words.length; i++) {
    const key = byFlag.get(words[i]!);
    if (!key) throw new Error(`unknown flag ${words[i]} in ExecStart`);
    if (schema[key].type === 'boolean') flags[key] = true;
    else flags[key] = words[++i]!;
  }
  return { command: line[1] as Command, flags };
}

t.test('every unit runs a real wsgw command with flags and env that command accepts', async (t) => {
  const shared = envVars(envFile);
  const knownEnv = new Set((Object.keys(schema) as ConfigKey[]).map(envName));
  for (const name of Object.keys(shared)) t.ok(knownEnv.has(name), `wsgw.env: ${name} is a wsgw variable`);
  for (const file of units) {
    const text = readFileSync(join(dir, file), 'utf8');
    const { command, flags } = execStart(text);
    const own = envVars(text);
    for (const name of Object.keys(own)) {
      t.ok(keysFor(command).some((k) => envName(k) === name), `${file}: ${name} is an option of wsgw ${command}`);
    }
    // the whole configuration the unit produces must load, as it would at start
    t.doesNotThrow(() => loadConfig({ command, flags: flags as Record<ConfigKey, unknown>, env: { ...shared, ...own, WSGW_NATS_PASSWORD: 'x' } }), `${file}: wsgw ${command} accepts it`);
    const user = own.WSGW_NATS_USER;
    t.ok(user && new RegExp(`user: ${user},`).test(accounts), `${file}: NATS user ${user} exists in deploy/nats/accounts-users.conf`);
  }
});

t.test('ports agree with the README and the rest of deploy/', async (t) => {
  const connections = execStart(readFileSync(join(dir, 'wsgw-connections.service'), 'utf8'));
  t.equal(connections.flags.port, '8004', 'the connection service on 8004');
  const gateway = readFileSync(join(dir, 'wsgw-gateway@.service'), 'utf8');
  t.match(gateway, /--port %i/, 'gateway instances are their port (wsgw-gateway@8000, @8001)');
  t.match(gateway, /LimitNOFILE=20000/);
  t.ok(Number(execStart(gateway).flags.maxConnections) < 20000, 'max connections below the file descriptor limit');
});

t.test('systemd-analyze verify accepts every unit (and does catch a broken one)', async (t) => {
  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (analyze.status !== 0) throw new Error('systemd-analyze is required for this test: apt-get install -y systemd');
  const tmp = mkdtempSync(join(tmpdir(), 'wsgw-units-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const verify = (path: string) => spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 20_000 }).stderr.trim();
  for (const file of units) {
    // a template needs an instance name to be verified
    const name = file.replace('@.service', '@8000.service');
    writeFileSync(join(tmp, name), readFileSync(join(dir, file), 'utf8'));
    t.equal(verify(join(tmp, name)), '', `${file} verifies without complaints`);
  }
  writeFileSync(join(tmp, 'broken.service'), readFileSync(join(dir, 'wsgw-connections.service'), 'utf8').replace('Restart=always', 'Restart=sometimes'));
  t.match(verify(join(tmp, 'broken.service')), /restart specifier/, 'a broken unit is reported');
});
