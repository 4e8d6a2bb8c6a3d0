import { isIP } from 'node:net';

/** An IP address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`); null when it is neither. */
export function parseTrustedProxy(entry: string): { address: string; prefix: number | null; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', prefixText, extra] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) return null;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) return { address, prefix: null, family };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > (version === 4 ? 32 : 128)) return null;
  return { address, prefix: Number(prefixText), family };
}
