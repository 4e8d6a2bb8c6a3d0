import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { startNatsServer } from '../harness/nats-server.js';
import { spawnWsgw } from '../harness/process.js';

const dir = mkdtempSync(join(tmpdir(), 'wsgw-auth-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const subscribed = (l: Record<string, any>) => l.msg === 'worker subscribed';
const refusedLine = (l: Record<string, any>) => l.msg === 'cannot reach NATS, retrying';

t.test('--nats-token', async (t) => {
  const nats = await startNatsServer({ config: 'authorization { token: "tok-123" }' });
  t.teardown(() => nats.stop());
  const ok = spawnWsgw(['worker', '--nats', nats.url, '--nats-token', 'tok-123']);
  t.teardown(() => ok.stop());
  t.ok(await ok.waitFor(subscribed), 'accepted with the token');
  const bad = spawnWsgw(['worker', '--nats', nats.url], { WSGW_NATS_TOKEN: 'nope' });
  t.teardown(() => bad.stop());
  t.match((await bad.waitFor(refusedLine)).err.message, /Authorization Violation/i, 'refused with a wrong token, and says so');
});

t.test('--nats-nkey (seed file)', async (t) => {
  const user = nkeys.createUser();
  const seedFile = join(dir, 'user.nk');
  writeFileSync(seedFile, new TextDecoder().decode(user.getSeed()) + '\n');
  const nats = await startNatsServer({ config: `accounts { A { jetstream: enabled, users: [ { nkey: ${user.getPublicKey()} } ] } }` });
  t.teardown(() => nats.stop());
  const ok = spawnWsgw(['worker', '--nats', nats.url, '--nats-nkey', seedFile]);
  t.teardown(() => ok.stop());
  t.ok(await ok.waitFor(subscribed), 'accepted with the nkey');
});

t.test('--nats-creds and --nats-nkey with an unreadable file fail at start naming the option', async (t) => {
  for (const flag of ['--nats-creds', '--nats-nkey']) {
    const p = spawnWsgw(['worker', '--nats', 'nats://127.0.0.1:1', flag, join(dir, 'missing')]);
    t.equal(await p.exited(), 2, `${flag}: exit 2`);
    t.match(p.stderr, new RegExp(`option ${flag}: cannot read`));
  }
});

t.test('TLS: --nats-ca verifies the server, --nats-cert/--nats-key authenticate the client', async (t) => {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=wsgw test CA');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', 'san.ext');
  }
  const nats = await startNatsServer({ config: `tls { cert_file: "${join(dir, 'server.pem')}", key_file: "${join(dir, 'server.key')}", ca_file: "${join(dir, 'ca.pem')}", verify: true }` });
  t.teardown(() => nats.stop());
  const url = nats.url.replace('nats://', 'tls://');
  const ok = spawnWsgw(['worker', '--nats', url, '--nats-ca', join(dir, 'ca.pem'), '--nats-cert', join(dir, 'client.pem'), '--nats-key', join(dir, 'client.key')]);
  t.teardown(() => ok.stop());
  t.ok(await ok.waitFor(subscribed), 'connected over mutual TLS');
  const noCert = spawnWsgw(['worker', '--nats', url, '--nats-ca', join(dir, 'ca.pem')]);
  t.teardown(() => noCert.stop());
  t.ok(await noCert.waitFor(refusedLine), 'refused without a client certificate, and says so');
  const wrongCa = spawnWsgw(['worker', '--nats', url, '--nats-cert', join(dir, 'client.pem'), '--nats-key', join(dir, 'client.key')]);
  t.teardown(() => wrongCa.stop());
  t.ok(await wrongCa.waitFor(refusedLine), 'a server certificate from an unknown CA is not trusted');
});
