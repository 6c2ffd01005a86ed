// CIDR matching for trusted networks, on node:net's BlockList (IPv4, IPv6, v4-mapped).
import net from 'node:net';
import { z } from 'zod';

export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address, prefixText, ...rest] = cidr.split('/');
  const family = net.isIPv4(address ?? '') ? 'ipv4' : net.isIPv6(address ?? '') ? 'ipv6' : undefined;
  if (!address || !family || rest.length) throw new Error(`"${cidr}" is not an IP address or CIDR`);
  const max = family === 'ipv4' ? 32 : 128;
  // Digits only: Number('') is 0, so a bare trailing slash ("10.0.0.0/") would mean the whole internet.
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) throw new Error(`"${cidr}" has a bad prefix length`);
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) throw new Error(`"${cidr}" has a bad prefix length`);
  return { address, prefix, family };
}

export class CidrSet {
  private readonly list = new net.BlockList();
  constructor(cidrs: string[]) {
    for (const c of cidrs) {
      const { address, prefix, family } = parseCidr(c);
      this.list.addSubnet(address, prefix, family);
    }
  }
  has(ip: string): boolean {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
    const addr = v4 ?? ip;
    const family = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : undefined;
    return family !== undefined && this.list.check(addr, family);
  }
}

/** A config field holding one IP address or CIDR. */
export const cidrString = z.string().refine((v) => {
  try { parseCidr(v); return true; } catch { return false; }
}, { message: 'must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8' });
