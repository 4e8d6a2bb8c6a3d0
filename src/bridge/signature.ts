import { createHmac, timingSafeEqual } from 'node:crypto';

/** The request headers the bridge signs, in signing order. */
export const SIGNED_HEADERS = ['wsgw-timestamp', 'wsgw-event', 'wsgw-conn', 'wsgw-gateway', 'wsgw-route', 'wsgw-binary', 'wsgw-seq'] as const;

/** Signed after SIGNED_HEADERS only when the request carries it, so requests without it sign as before. */
export const META_HEADER = 'wsgw-meta';

/**
 * `Wsgw-Signature: v1=<hex>` where hex = HMAC-SHA256(secret, canonical) and canonical is each signed
 * header's value followed by "\n", in SIGNED_HEADERS order (empty string when absent), then, when the
 * request has `Wsgw-Meta`, its value followed by "\n", then the raw body.
 */
export function canonicalBytes(headers: Readonly<Record<string, string | undefined>>, body: Uint8Array): Buffer {
  let head = SIGNED_HEADERS.map((h) => (headers[h] ?? '') + '\n').join('');
  const meta = headers[META_HEADER];
  if (meta !== undefined) head += meta + '\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

export function sign(secret: string, headers: Readonly<Record<string, string | undefined>>, body: Uint8Array): string {
  return 'v1=' + createHmac('sha256', secret).update(canonicalBytes(headers, body)).digest('hex');
}

/** Verifies a signature header in constant time (what an application does; also used by tests). */
export function verify(secret: string, signature: string, headers: Readonly<Record<string, string | undefined>>, body: Uint8Array): boolean {
  const expected = Buffer.from(sign(secret, headers, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
