import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoHandler } from '../../src/handlers/echo.js';
import { loadConfig } from '../../src/config/load.js';
import { natsServerBinary, startNatsServer } from '../harness/nats-server.js';
import { startRemoteStack } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

const shipped = readFileSync(new URL('../../deploy/nats/single.conf', import.meta.url), 'utf8');

t.test('nats-server accepts the shipped single-node config (and its check does reject a bad one)', async (t) => {
  const check = (path: string) => execFileSync(natsServerBinary(), ['-t', '-c', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.doesNotThrow(() => check(new URL('../../deploy/nats/single.conf', import.meta.url).pathname), 'shipped config passes nats-server -t');
  const dir = mkdtempSync(join(tmpdir(), 'wsgw-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.conf'), 'port: "not a port"\njetstream { max_file_store: lots }\n');
  t.throws(() => check(join(dir, 'bad.conf')), 'a broken config fails the same check');
});

t.test('its max_payload leaves room for the default frame limit', async (t) => {
  const mb = Number(/^max_payload:\s*(\d+)MB/m.exec(shipped)?.[1]);
  t.ok(mb * 1024 * 1024 > loadConfig({ command: 'gateway', env: {} }).maxPayload + 4096);
});

t.test('wsgw runs against a server started from it (ports and store rewritten for the test)', async (t) => {
  const body = shipped
    .replace(/^host:.*$/m, '')
    .replace(/^port:.*$/m, '')
    .replace(/^http_port:.*$/m, '')
    .replace(/jetstream \{[\s\S]*?\n\}/m, '');
  const nats = await startNatsServer({ config: body });
  t.teardown(() => nats.stop());
  const { gateway: g } = await startRemoteStack(t, nats.url, echoHandler);
  const c = await TestClient.connect(g.url);
  t.teardown(() => c.close());
  c.send('via shipped config');
  t.equal((await c.next()).text(), 'via shipped config');
});
