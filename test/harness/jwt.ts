import { SignJWT } from 'jose';
import { TestClient } from './ws-client.js';

/** An HS256 JWT with `claims`, issued now, expiring after `exp` (a jose time span: '5m', '-1m'). */
export function hs256(claims: Record<string, unknown>, secret: string, exp = '5m'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

/** A client of a `--jwt-secret` gateway, as user `sub` (its token in the Authorization header). */
export async function connectAs(url: string, sub: string, secret: string): Promise<TestClient> {
  return TestClient.connectKept(url, { headers: { authorization: `Bearer ${await hs256({ sub }, secret)}` } });
}
