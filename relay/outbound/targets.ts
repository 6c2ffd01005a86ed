// Where the relay may open outbound connections: webhook URLs, smarthosts and MX targets
// are addresses a tenant or a remote DNS zone can choose, so none of them may reach the
// pod's own loopback, link-local addresses or a cloud metadata service (the credentials
// of the node live there) unless the relay config explicitly allows the address.
// Private ranges (10/8, 172.16/12, 192.168/16, fd00::/8) stay allowed: that is where
// cluster-internal Services (an in-cluster smarthost, a webhook receiver) live.
//
// Checks run on resolved addresses, and the connection then goes to the checked address
// (lookup() below, or the IP handed to the SMTP pool), so a name that resolves
// differently the second time (DNS rebinding) cannot slip past.
import dns from 'node:dns';
import net from 'node:net';
import { z } from 'zod';
import { CidrSet, cidrString } from '../util/cidr.ts';

const refusedRanges: Array<[string, string]> = [
  ['127.0.0.0/8', 'loopback'],
  ['::1/128', 'loopback'],
  ['0.0.0.0/8', 'this-host'],
  ['::/128', 'unspecified'],
  ['169.254.0.0/16', 'link-local'], // 169.254.169.254: AWS, GCP, Azure, OCI metadata
  ['fe80::/10', 'link-local'],
  ['fd00:ec2::254/128', 'cloud metadata'], // AWS IMDS over IPv6
  ['100.100.100.200/32', 'cloud metadata'], // Alibaba Cloud
  ['192.0.0.192/32', 'cloud metadata'], // Oracle Cloud (legacy endpoint)
];
const refused = refusedRanges.map(([cidr, why]) => ({ set: new CidrSet([cidr]), why }));

export const outboundSchema = z.object({
  allowAddresses: z.array(cidrString).default([])
    .describe('Addresses otherwise refused as outbound targets (loopback, link-local, cloud metadata) that webhooks, smarthosts and MX hosts may reach anyway, e.g. 127.0.0.1/32 for a smarthost sidecar; for tests and single-host setups'),
}).strict();

export type OutboundConfig = z.output<typeof outboundSchema>;

export class OutboundRefused extends Error {
  readonly target: string;
  readonly address: string;
  readonly why: string;
  constructor(target: string, address: string, why: string) {
    super(`${target} resolves to ${address} (${why}), which this relay may not connect to (allow it in outbound.allowAddresses)`);
    this.target = target;
    this.address = address;
    this.why = why;
  }
}

export class OutboundPolicy {
  private readonly allowed: CidrSet;

  constructor(config: Pick<OutboundConfig, 'allowAddresses'> = { allowAddresses: [] }) {
    this.allowed = new CidrSet(config.allowAddresses);
  }

  /** Why the address is refused, or undefined when the relay may connect to it. */
  refusal(ip: string): string | undefined {
    if (this.allowed.has(ip)) return undefined;
    return refused.find((r) => r.set.has(ip))?.why;
  }

  /**
   * Resolves a host (name or IP literal) to the addresses to connect to. Refuses the whole
   * host when any address is refused: a name that mixes a public and a metadata address is
   * an attack, not a failover list.
   */
  async resolve(host: string, target: string): Promise<string[]> {
    const bare = host.replace(/^\[(.*)\]$/, '$1');
    const ips = net.isIP(bare) ? [bare] : (await dns.promises.lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
    for (const ip of ips) {
      const why = this.refusal(ip);
      if (why) throw new OutboundRefused(target, ip, why);
    }
    return ips;
  }

  /** A `lookup` for http.request / net.connect that refuses what this policy refuses. */
  readonly lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) { (callback as (e: Error) => void)(err); return; }
      const list = addresses as dns.LookupAddress[];
      const bad = list.map((a) => ({ a, why: this.refusal(a.address) })).find((x) => x.why);
      if (bad) { (callback as (e: Error) => void)(new OutboundRefused(hostname, bad.a.address, bad.why!)); return; }
      if ((options as dns.LookupOptions).all) (callback as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      else (callback as (e: null, a: string, f: number) => void)(null, list[0]!.address, list[0]!.family);
    });
  };
}
