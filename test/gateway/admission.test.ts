import t from 'tap';
import { SignJWT } from 'jose';
import { Admission, type UpgradeRequest } from '../../src/gateway/admission.js';
import { quietLog, testConfig } from '../harness/stack.js';

// Admission touches no socket: these call it with plain request data (the gateway's own tests drive
// the same checks through real upgrades in security.test.ts, limits.test.ts and bridge.test.ts)
const SECRET = 'admission-test-secret-0123456789abcdef';
const request = (over: Partial<UpgradeRequest> = {}): UpgradeRequest => ({
  url: '/ws',
  query: '',
  origin: 'https://app.example.com',
  offered: '',
  headers: {},
  authorization: '',
  cookie: '',
  remoteAddress: '127.0.0.1',
  ...over,
});
const admission = (flags: Record<string, unknown> = {}) => new Admission({ config: testConfig('local', flags), gatewayId: 'gw1', base: '/ws', log: quietLog, nats: null });

t.test('the synchronous checks, cheapest first', async (t) => {
  const open = admission();
  t.equal(open.waits, false, 'nothing to wait for without a JWT key or an authorizer');
  t.equal(open.readsAuthorization, false);
  t.same(open.check(request({ url: '/ws/orders', offered: 'chat.v1, chat.v2' })), { route: 'orders', query: '', subprotocol: 'chat.v1', token: null }, 'route from the path, first offered subprotocol');
  t.same(open.check(request({ url: '/other' })), { refuse: ['404 Not Found', 'no WebSocket endpoint at /other'] });
  t.match(open.check(request({ url: '/ws/bad.route' })), { refuse: ['400 Bad Request', /invalid route/] });

  const strict = admission({ origins: ['https://app.example.com'], connectRate: 1 });
  t.match(strict.check(request({ origin: 'https://evil.example' })), { refuse: ['403 Forbidden', /origin "https:\/\/evil.example" is not allowed/] }, 'origin before the rate: a refused origin spends no token');
  t.match(strict.check(request()), { route: 'default' }, 'first connection from the address');
  t.match(strict.check(request()), { refuse: ['429 Too Many Requests', /slow down/] }, 'second one within the second');
  t.match(strict.check(request({ remoteAddress: '127.0.0.2' })), { route: 'default' }, 'another address has its own bucket');
});

t.test('--subprotocols: the first offered that the gateway speaks; none of them offered, 400 naming them', async (t) => {
  const a = admission({ subprotocols: 'chat.v2,chat.v1' });
  t.match(a.check(request({ offered: 'chat.v3, chat.v1, chat.v2' })), { subprotocol: 'chat.v1' }, "the client's order: its first that is spoken");
  t.match(a.check(request({ offered: 'chat.v3' })), { refuse: ['400 Bad Request', 'none of the offered subprotocols is spoken here; offer one of chat.v2, chat.v1'] });
  t.match(a.check(request()), { subprotocol: '' }, 'a client that offers none is served without one');
  t.match(a.check(request({ offered: 'wsgw.bearer.abc, chat.v2' })), { subprotocol: 'chat.v2', token: 'abc' }, 'next to a token entry');
  t.match(a.check(request({ offered: 'wsgw.bearer.abc' })), { refuse: ['400 Bad Request', /next to wsgw\.bearer\.<jwt> \(one of chat\.v2, chat\.v1\)/] }, 'the token entry alone: told which to offer');
  for (const bad of ['wsgw.bearer.x', 'a b', 'a"b', 'é']) {
    t.throws(() => testConfig('gateway', { subprotocols: bad }), { name: 'ConfigError', message: /--subprotocols/ }, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test('--origins: exact origins, and https://*.example.com for subdomains only', async (t) => {
  const a = admission({ origins: 'https://app.example.com,https://*.example.org,http://*.dev.example.net:3000' });
  const allowed = (origin: string) => !('refuse' in a.check(request({ origin })));
  t.ok(allowed('https://app.example.com'), 'exact');
  t.notOk(allowed('https://other.example.com'), 'exact means exact');
  t.ok(allowed('https://a.example.org'), 'a subdomain');
  t.ok(allowed('https://a.b.example.org'), 'a deeper subdomain');
  t.notOk(allowed('https://example.org'), 'not the domain itself');
  t.notOk(allowed('https://evil-example.org'), 'not a name that merely ends the same');
  t.notOk(allowed('https://a.example.org.evil.net'), 'not a longer name');
  t.notOk(allowed('http://a.example.org'), 'same scheme only');
  t.notOk(allowed('https://a.example.org:8443'), 'same port only');
  t.ok(allowed('http://x.dev.example.net:3000'), 'with a port');
  t.notOk(allowed(''), 'a missing Origin');
  t.notOk(allowed('null'));
  for (const bad of ['https://a.*.example.com', 'https://*example.com', 'https://*.com', 'https://*', 'https://app.example.com/path']) {
    t.throws(() => testConfig('gateway', { origins: bad }), { name: 'ConfigError', message: /--origins/ }, `refused: ${bad}`);
  }
});

t.test('a JWT: required before anything async, never echoed, stripped from the recorded query', async (t) => {
  const jwt = admission({ jwtSecret: SECRET, tokenQuery: true });
  t.equal(jwt.waits, true);
  t.equal(jwt.readsAuthorization, true);
  t.match(jwt.check(request()), { refuse: ['401 Unauthorized', /a token is required/] });
  const token = await new SignJWT({ sub: 'ann' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
  const viaProtocol = jwt.check(request({ offered: `wsgw.bearer.${token}, chat.v1` }));
  t.same(viaProtocol, { route: 'default', query: '', subprotocol: 'chat.v1', token }, 'the token entry is not selected');
  t.match(jwt.check(request({ offered: `wsgw.bearer.${token}` })), { refuse: ['400 Bad Request', /offer a subprotocol of your own/] }, 'the token entry alone: a client would fail the handshake, so 400');
  t.match(admission().check(request({ offered: `wsgw.bearer.${token}` })), { refuse: ['400 Bad Request', /offer a subprotocol of your own/] }, 'also on a gateway that checks no token');
  t.same(admission().check(request({ offered: ' , ' })), { route: 'default', query: '', subprotocol: '', token: null }, 'an empty offer is no token entry: no subprotocol selected, admitted');
  const viaQuery = jwt.check(request({ query: `room=a&token=${token}` }));
  t.match(viaQuery, { query: 'room=a', token }, 'the token leaves the query before it is recorded');

  const r = request({ authorization: `Bearer ${token}` });
  const admitted = jwt.check(r);
  if ('refuse' in admitted) throw new Error('admitted expected');
  t.match(await jwt.decide(r, admitted, 'gw1.abc'), { identity: { sub: 'ann' }, grant: null }, 'the claims become the identity');
  const forged = request({ authorization: `Bearer ${token.slice(0, -2)}xx` });
  const f = jwt.check(forged);
  if ('refuse' in f) throw new Error('admitted expected');
  t.match(await jwt.decide(forged, f, 'gw1.abd'), { refuse: ['401 Unauthorized', /token rejected/] }, 'a forged signature is refused');
});
