import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { echoHandler } from '../../src/handlers/echo.js';
import { checkTlsFiles } from '../../src/http/app.js';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';
import { startConnectionService, startGateway, testConfig, uniquePrefix } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

// a certificate for 127.0.0.1 and a key that is not its own, made for this run
const dir = mkdtempSync(join(tmpdir(), 'wsgw-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-key.pem', '-out', 'other-cert.pem', '-days', '1', '-subj', '/CN=other');
writeFileSync(join(dir, 'junk.pem'), 'not a PEM file\n');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
const ca = readFileSync(cert);
const tls = { tlsCert: cert, tlsKey: key };
const https = new Agent({ connect: { ca } });
t.teardown(() => https.close());

async function get(url: string, init: { method?: string; body?: string } = {}) {
  const res = await request(url, { dispatcher: https, method: (init.method ?? 'GET') as 'GET', body: init.body });
  return { status: res.statusCode, json: (await res.body.json()) as any };
}

t.test('local mode with --tls-cert/--tls-key: wss:// and https:// on one port, plain ws:// refused', async (t) => {
  const g = await startGateway({ handler: echoHandler, flags: tls });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`wss://127.0.0.1:${g.gw.port}/ws`, { ca });
  t.teardown(() => c.close());
  c.send('over TLS');
  t.equal((await c.next()).text(), 'over TLS', 'echoed over wss://');
  t.match(await get(`https://127.0.0.1:${g.gw.port}/healthz`), { status: 200, json: { ok: true, connections: 1 } }, 'HTTP routes over https://');
  await t.rejects(TestClient.connect(`ws://127.0.0.1:${g.gw.port}/ws`), 'plain ws:// gets no upgrade from a TLS port');
  await t.rejects(TestClient.connect(`wss://127.0.0.1:${g.gw.port}/ws`), /self.signed|unable to verify|certificate/i, 'a client that does not trust the certificate refuses it');
  c.send('still here');
  t.equal((await c.next()).text(), 'still here', 'the trusted client is unaffected');
});

t.test('gateway and connection service with TLS: the seed scenario over wss:// and https://', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const svc = await startConnectionService({ natsUrl: nats.url, prefix, flags: tls });
  t.teardown(() => svc.close());
  const g = await startGateway({ natsUrl: nats.url, prefix, id: 'gwtls', flags: tls });
  t.teardown(() => g.close());
  const c = await TestClient.connect(`wss://127.0.0.1:${g.gw.port}/ws`, { ca });
  t.teardown(() => c.close());
  const base = `https://127.0.0.1:${svc.service.port}`;
  const list = await eventually(async () => {
    const r = await get(`${base}/connections`);
    return r.json.connections.length === 1 ? r : null;
  }, 5_000, 'the connection listed over https://');
  const id = list.json.connections[0].id;
  t.match(list.json.connections[0], { gateway: 'gwtls' });
  t.same(await get(`${base}/connections/${id}/messages`, { method: 'POST', body: 'pushed over https' }), { status: 200, json: { ok: true } });
  t.equal((await c.next()).text(), 'pushed over https', 'the send reached the wss:// client');
});

t.test('certificate and key problems are refused with the option named', async (t) => {
  t.throws(() => testConfig('local', { tlsCert: cert }), { name: 'ConfigError', message: /--tls-cert and --tls-key: give both or neither/ });
  t.throws(() => testConfig('worker', tls), { message: /option --tls-cert: not used by "wsgw worker"/ }, 'only the commands that listen take it');
  const cases: Array<[string, string, RegExp]> = [
    [join(dir, 'missing.pem'), key, /option --tls-cert: cannot read .*missing\.pem/],
    [join(dir, 'junk.pem'), key, /option --tls-cert: .*junk\.pem is not a PEM certificate/],
    [cert, join(dir, 'junk.pem'), /option --tls-key: .*junk\.pem is not an unencrypted PEM private key/],
    [cert, join(dir, 'other-key.pem'), /the key in .*other-key\.pem does not belong to the certificate in .*cert\.pem/],
  ];
  for (const [c, k, message] of cases) t.throws(() => checkTlsFiles({ cert: c, key: k }), { name: 'ConfigError', code: 'WSGW_CONFIG', message }, `refused: ${message}`);
  await t.rejects(startGateway({ handler: echoHandler, flags: { tlsCert: cert, tlsKey: join(dir, 'other-key.pem') } }), { message: /does not belong/ }, 'a gateway does not start with them');

  // the CLI says so and exits 2 before connecting to NATS (nothing listens on port 1)
  const p = spawnWsgw(['gateway', '--nats', 'nats://127.0.0.1:1', '-p', '0', '--tls-cert', cert, '--tls-key', join(dir, 'other-key.pem')]);
  t.equal(await p.exited(), 2, 'exit 2');
  t.match(p.stderr, /invalid configuration:\n\s+- options --tls-cert and --tls-key: the key in .* does not belong/);
});
