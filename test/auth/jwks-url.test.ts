import t from 'tap';
import { createServer, type Server } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { echoHandler } from '../../src/handlers/echo.js';
import { startGateway, testConfig } from '../harness/stack.js';
import { TestClient, eventually } from '../harness/ws-client.js';

/** An identity provider's key set endpoint on a free port: what it answers can be changed, and requests are counted. */
async function keySetServer(t: Tap.Test) {
  const state = { status: 200, body: '{"keys":[]}', requests: 0 };
  const server: Server = createServer((_req, res) => {
    state.requests++;
    res.writeHead(state.status, { 'content-type': 'application/json' }).end(state.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { state, url: `http://127.0.0.1:${port}/.well-known/jwks.json` };
}

const provider = await generateKeyPair('RS256');
const stranger = await generateKeyPair('RS256');
const publicJwk = { ...(await exportJWK(provider.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
const sign = (key: CryptoKey, kid: string) => new SignJWT({ sub: 'ann' }).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt().setExpirationTime('5m').sign(key);
const bearer = async (key: CryptoKey, kid: string) => ({ headers: { authorization: `Bearer ${await sign(key, kid)}` } });

/**
 * uWebSockets.js 3.0.6 now and then drops a gateway's first asynchronously upgraded connection
 * (docs/reliability.md, Known limits): each gateway's first accepted connection is only opened and closed.
 */
async function warmUp(url: string, key: CryptoKey) {
  const c = await TestClient.connect(url, await bearer(key, 'k1'));
  await c.close();
}

/** A provider publishing the k1 key and a gateway using it, past its fetch at start and its warm-up. */
async function servingGateway(t: Tap.Test) {
  const idp = await keySetServer(t);
  idp.state.body = JSON.stringify({ keys: [publicJwk] });
  const g = await startGateway({ handler: echoHandler, flags: { jwksUrl: idp.url } });
  t.teardown(() => g.close());
  await eventually(() => idp.state.requests >= 1, 5_000, 'the key set fetched at start');
  await warmUp(g.url, provider.privateKey);
  return { idp, g };
}

t.test('--jwks-url: tokens are checked against the provider’s published keys', async (t) => {
  const { idp, g } = await servingGateway(t);

  const c = await TestClient.connectKept(g.url, await bearer(provider.privateKey, 'k1'));
  t.teardown(() => c.close());
  c.send('signed by the provider');
  t.equal((await c.next()).text(), 'signed by the provider', 'accepted');
  await t.rejects(TestClient.connect(g.url, await bearer(stranger.privateKey, 'k1')), { status: 401, body: /token rejected/ }, 'a signature by another key under the same kid is refused');
  await t.rejects(TestClient.connect(g.url, await bearer(stranger.privateKey, 'unknown')), { status: 401, body: /token rejected/ }, 'a kid the set does not have is refused as the token’s fault');
  t.equal(idp.state.requests, 1, 'one fetch served all of them (an unknown kid refetches only after the cooldown)');
});

t.test('--jwks-url unreachable: upgrades get 503 (not 401) until the provider answers again', async (t) => {
  const idp = await keySetServer(t);
  idp.state.status = 500;
  const g = await startGateway({ handler: echoHandler, flags: { jwksUrl: idp.url } });
  t.teardown(() => g.close());
  await t.rejects(TestClient.connect(g.url, await bearer(provider.privateKey, 'k1')), { status: 503, body: /key set unavailable/ }, 'the gateway’s problem, said as such');
  idp.state.body = 'not json';
  idp.state.status = 200;
  await t.rejects(TestClient.connect(g.url, await bearer(provider.privateKey, 'k1')), { status: 503 }, 'a set that is not JSON is unavailable too');
  idp.state.body = JSON.stringify({ keys: [publicJwk] });
  await warmUp(g.url, provider.privateKey);
  const c = await TestClient.connectKept(g.url, await bearer(provider.privateKey, 'k1'));
  t.teardown(() => c.close());
  c.send('back');
  t.equal((await c.next()).text(), 'back', 'accepted once the set can be fetched');
});

t.test('--jwks-url: a rotated-in key is fetched once the cooldown after the last fetch is over, with no restart', { timeout: 90_000 }, async (t) => {
  const { idp, g } = await servingGateway(t);
  const next = await generateKeyPair('RS256');
  const k2 = await bearer(next.privateKey, 'k2');
  await t.rejects(TestClient.connect(g.url, k2), { status: 401 }, 'a key the provider has not published yet');
  idp.state.body = JSON.stringify({ keys: [publicJwk, { ...(await exportJWK(next.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' }] });
  // jose fetches again for an unknown kid only 30 s after its last fetch: poll until then (kept:
  // uWebSockets.js now and then drops a connection upgraded after an asynchronous check as it opens)
  const c = await eventually(() => TestClient.connectKept(g.url, k2), 60_000, 'the new key accepted');
  t.teardown(() => c.close());
  c.send('rotated');
  t.equal((await c.next()).text(), 'rotated', 'a token signed with the new key is accepted');
  t.equal(idp.state.requests, 2, 'one more fetch, not one per refused attempt');
  const old = await TestClient.connectKept(g.url, await bearer(provider.privateKey, 'k1'));
  t.teardown(() => old.close());
  t.pass('the old key still works while it is published');
});

t.test('--jwks-url is one JWT key source among the others, and must be http(s)', async (t) => {
  t.throws(() => testConfig('gateway', { jwksUrl: 'https://idp.example/jwks.json', jwtSecret: 'x' }), { message: /give only one JWT key source/ });
  t.throws(() => testConfig('gateway', { jwksUrl: 'ftp://idp.example/jwks.json' }), { message: /--jwks-url/ });
});
