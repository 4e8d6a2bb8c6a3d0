import { BlockList, isIP } from 'node:net';
import { parseTrustedProxy } from '../config/ip.js';

/**
 * The client's address for a connection that may come through proxies (`--trusted-proxies`). When
 * the TCP peer is a trusted proxy, `X-Forwarded-For` is read from the right (the hop nearest to the
 * gateway) and the first address that is not itself a trusted proxy is the client. A peer that is
 * not trusted is the client, whatever its headers say: a forged header from the Internet changes
 * nothing. An entry that is not an IP address ends the walk at the last trusted hop.
 */
export class ClientAddress {
  readonly #trusted = new BlockList();
  /** False without `--trusted-proxies`: the peer is the client and the header is never read. */
  readonly enabled: boolean;

  constructor(trustedProxies: readonly string[]) {
    for (const entry of trustedProxies) {
      const p = parseTrustedProxy(entry);
      if (!p) throw new Error(`not an IP address or CIDR block: ${entry}`);
      if (p.prefix === null) this.#trusted.addAddress(p.address, p.family);
      else this.#trusted.addSubnet(p.address, p.prefix, p.family);
    }
    this.enabled = trustedProxies.length > 0;
  }

  #isTrusted(address: string): boolean {
    const version = isIP(address);
    if (version === 0) return false;
    if (this.#trusted.check(address, version === 4 ? 'ipv4' : 'ipv6')) return true;
    // an IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d
    const mapped = /^(?:0{0,4}:){0,5}ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    return mapped !== undefined && this.#trusted.check(mapped, 'ipv4');
  }

  /** The client's address, from the TCP peer's and the request's `X-Forwarded-For` ('' if none). */
  resolve(peer: string, forwardedFor: string): string {
    if (!this.enabled || forwardedFor === '' || !this.#isTrusted(peer)) return peer;
    const hops = forwardedFor.split(',');
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim();
      if (isIP(hop) === 0) break;
      client = hop;
      if (!this.#isTrusted(hop)) break;
    }
    return client;
  }
}
