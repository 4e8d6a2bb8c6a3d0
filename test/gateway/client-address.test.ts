import t from 'tap';
import { ClientAddress } from '../../src/gateway/client-address.js';
import type { Handler } from '../../src/handlers/types.js';
import { startGateway, testConfig } from '../harness/stack.js';
import { TestClient } from '../harness/ws-client.js';

t.test('X-Forwarded-For is believed from trusted proxies only, read from the nearest hop', async (t) => {
  const none = new ClientAddress([]);
  t.equal(none.enabled, false);
  t.equal(none.resolve('198.51.100.7', '203.0.113.1'), '198.51.100.7', 'without --trusted-proxies the peer is the client');

  const c = new ClientAddress(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  t.equal(c.resolve('127.0.0.1', '203.0.113.1'), '203.0.113.1', 'one trusted proxy: its header names the client');
  t.equal(c.resolve('127.0.0.1', ''), '127.0.0.1', 'no header: the peer');
  t.equal(c.resolve('198.51.100.7', '203.0.113.1'), '198.51.100.7', 'an untrusted peer is the client, whatever it claims');
  t.equal(c.resolve('127.0.0.1', '203.0.113.9, 203.0.113.1, 10.1.2.3'), '203.0.113.1', 'trusted hops are skipped from the right; a forged left part is ignored');
  t.equal(c.resolve('127.0.0.1', '10.0.0.2, 10.0.0.3'), '10.0.0.2', 'every hop trusted: the left-most');
  t.equal(c.resolve('127.0.0.1', 'garbage, 10.0.0.3'), '10.0.0.3', 'a hop that is not an address ends the walk at the last trusted one');
  t.equal(c.resolve('127.0.0.1', 'unknown'), '127.0.0.1');
  t.equal(c.resolve('::ffff:127.0.0.1', '203.0.113.1'), '203.0.113.1', 'an IPv4 peer on a dual-stack socket');
  t.equal(c.resolve('fd00::1', '2001:db8::5'), '2001:db8::5', 'IPv6');
  t.throws(() => new ClientAddress(['10.0.0.0/33']), /not an IP address or CIDR block/);
});

t.test('--trusted-proxies is validated when the config loads', async (t) => {
  t.same(testConfig('gateway', { trustedProxies: '127.0.0.1, 10.0.0.0/8,fd00::/8' }).trustedProxies, ['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  t.throws(() => testConfig('gateway', { trustedProxies: '10.0.0.0/33' }), { name: 'ConfigError', message: /option --trusted-proxies: "10.0.0.0\/33" is not an IP address or CIDR block/ });
  t.throws(() => testConfig('gateway', { trustedProxies: 'proxy.internal' }), { name: 'ConfigError', message: /--trusted-proxies/ });
});

/** Tells each client the address the gateway recorded for it. */
const whoAmI: Handler = {
  open(conn) {
    conn.send(conn.request.remoteAddress);
  },
};

t.test('a gateway behind a trusted proxy: the forwarded address is the connection’s, and what --connect-rate counts', async (t) => {
  const g = await startGateway({ handler: whoAmI, flags: { trustedProxies: '127.0.0.1', connectRate: 1 } });
  t.teardown(() => g.close());
  const via = (address: string) => TestClient.connect(g.url, { headers: { 'x-forwarded-for': address } });
  const a = await via('203.0.113.1');
  const b = await via('203.0.113.2');
  t.teardown(() => Promise.all([a.close(), b.close()]));
  t.equal((await a.next()).text(), '203.0.113.1', 'recorded as the forwarded client');
  t.equal((await b.next()).text(), '203.0.113.2', 'another client behind the same proxy is not limited by the first');
  await t.rejects(via('203.0.113.1'), { status: 429 }, 'the same client again within the second');
});

t.test('a gateway whose peer is not a trusted proxy ignores X-Forwarded-For', async (t) => {
  const g = await startGateway({ handler: whoAmI, flags: { trustedProxies: '10.0.0.1', connectRate: 1 } });
  t.teardown(() => g.close());
  const a = await TestClient.connect(g.url, { headers: { 'x-forwarded-for': '203.0.113.1' } });
  t.teardown(() => a.close());
  t.equal((await a.next()).text(), '127.0.0.1', 'the TCP peer, not the claimed address');
  await t.rejects(TestClient.connect(g.url, { headers: { 'x-forwarded-for': '203.0.113.2' } }), { status: 429 }, 'a forged header does not get around --connect-rate');
});
