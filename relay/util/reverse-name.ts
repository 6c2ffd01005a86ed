// The owner name of an address's PTR record (RFC 1035 §3.5, RFC 3596 §2.5). Looked up with
// resolvePtr rather than dns.reverse, which reports every failure (SERVFAIL, timeout) as
// ENOTFOUND and so cannot tell a missing record from a broken resolver.
import net from 'node:net';

export function reverseName(address: string): string {
  if (net.isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!net.isIPv6(address)) throw new Error(`not an IP address: ${address}`);
  // expand to 8 groups of 4 hex digits (an embedded IPv4 tail becomes two groups)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(address)?.[1];
  const text = v4 ? address.replace(v4, v4.split('.').map(Number).reduce<string[]>((g, n, i) => {
    if (i % 2 === 0) g.push(n.toString(16).padStart(2, '0')); else g[g.length - 1] += n.toString(16).padStart(2, '0');
    return g;
  }, []).join(':')) : address;
  const [head = '', tail = ''] = text.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = text.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${all.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.')}.ip6.arpa`;
}
