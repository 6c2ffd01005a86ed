// A small authoritative DNS server on loopback (UDP and TCP, same port) for relay tests:
// MX answers for delivery, TXT answers for DKIM/SPF verification, PTR answers for reverse DNS. Point a
// node:dns Resolver at it with `resolver.setServers([dns.address])`.
//
// Zone semantics, as a real authoritative server would answer:
//   - name in the zone, type present      → NOERROR with the records
//   - name in the zone, type absent       → NOERROR, no answers (NODATA; c-ares reports ENODATA)
//   - name not in the zone                → NXDOMAIN (c-ares reports ENOTFOUND)
//   - name with `servfail: true`          → SERVFAIL for every type (c-ares reports ESERVFAIL)
// Names are case-insensitive and may be written with or without the trailing dot.
import dns2 from 'dns2';
import { reverseName } from '../../relay/util/reverse-name.ts';

export { reverseName };
type DnsHandler = Parameters<typeof dns2.createTCPServer>[0] & {};

const { Packet } = dns2;

export interface ZoneRecords {
  MX?: { preference: number; exchange: string }[];   // exchange '' or '.' is a null MX (RFC 7505)
  A?: string[];
  AAAA?: string[];
  /** Each entry is one TXT record; strings longer than 255 bytes are split into character-strings. */
  TXT?: string[];
  CNAME?: string;
  /** Reverse names: key the zone by the in-addr.arpa / ip6.arpa name (reverseName() makes it from an address). */
  PTR?: string[];
  servfail?: boolean;
}
export type Zone = Record<string, ZoneRecords>;

export interface TestDnsServer {
  address: string;   // '127.0.0.1:PORT', the form Resolver.setServers takes
  port: number;
  /** Replaces the whole zone; queries after the call see the new one. */
  setZone(zone: Zone): void;
  /** Number of queries answered so far (any type), e.g. to check caching. */
  queries(): number;
  close(): Promise<void>;
}

const TTL = 60;

function normalize(zone: Zone): Map<string, ZoneRecords> {
  const out = new Map<string, ZoneRecords>();
  for (const [name, recs] of Object.entries(zone)) out.set(canonical(name), recs);
  return out;
}

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** Splits a TXT value into ≤255-byte character-strings (RFC 1035 §3.3.14), on byte boundaries. */
export function txtChunks(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length === 0) return [Buffer.alloc(0)];
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) chunks.push(bytes.subarray(i, i + 255));
  return chunks;
}

function answersFor(name: string, type: number, recs: ZoneRecords): object[] {
  const base = { name, class: Packet.CLASS.IN, ttl: TTL };
  const T = Packet.TYPE;
  switch (type) {
    case T.MX:
      // dns2 encodes '' as the root name; '.' is normalised to it
      return (recs.MX ?? []).map((mx) => ({
        ...base, type: T.MX, priority: mx.preference, exchange: mx.exchange === '.' ? '' : mx.exchange.replace(/\.$/, ''),
      }));
    case T.A:
      return (recs.A ?? []).map((address) => ({ ...base, type: T.A, address }));
    case T.AAAA:
      return (recs.AAAA ?? []).map((address) => ({ ...base, type: T.AAAA, address }));
    case T.TXT:
      return (recs.TXT ?? []).map((value) => ({ ...base, type: T.TXT, data: txtChunks(value) }));
    case T.PTR:
      return (recs.PTR ?? []).map((domain) => ({ ...base, type: T.PTR, domain: domain.replace(/\.$/, '') }));
    default:
      return [];
  }
}

/** Starts the server on 127.0.0.1 and a free port (UDP and TCP share the number). */
export async function startDnsServer(initial: Zone = {}): Promise<TestDnsServer> {
  let zone = normalize(initial);
  let count = 0;
  const handle: DnsHandler = (request, send) => {
    count++;
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const question = request.questions[0];
    if (!question) {
      response.header.rcode = Packet.RCODE.FORMERR;
      void send(response);
      return;
    }
    const name = canonical(question.name);
    const recs = zone.get(name);
    if (!recs) {
      response.header.rcode = Packet.RCODE.NXDOMAIN;
    } else if (recs.servfail) {
      response.header.rcode = Packet.RCODE.SERVFAIL;
    } else if (recs.CNAME && question.type !== Packet.TYPE.CNAME) {
      response.answers.push({ name: question.name, type: Packet.TYPE.CNAME, class: Packet.CLASS.IN, ttl: TTL, domain: recs.CNAME } as never);
      const target = zone.get(canonical(recs.CNAME));
      if (target) response.answers.push(...(answersFor(recs.CNAME, question.type, target) as never[]));
    } else {
      response.answers.push(...(answersFor(question.name, question.type, recs) as never[]));
    }
    void send(response);
  };
  // UDP on a free port, then TCP on the same number; a few tries in the unlikely case
  // another process holds that TCP port.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const udp = dns2.createUDPServer(handle);
    const tcp = dns2.createTCPServer(handle);
    try {
      await udp.listen(0, '127.0.0.1');
      const port = udp.address().port;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => { tcp.off('error', reject); resolve(); });
      });
      return {
        address: `127.0.0.1:${port}`,
        port,
        setZone(next) { zone = normalize(next); },
        queries: () => count,
        close: async () => {
          await Promise.all([
            new Promise<void>((resolve) => udp.close(() => resolve())),
            new Promise<void>((resolve) => tcp.close(() => resolve())),
          ]);
        },
      };
    } catch (err) {
      lastErr = err;
      try { udp.close(); } catch { /* not bound */ }
      tcp.close();
    }
  }
  throw new Error(`test DNS server could not listen on 127.0.0.1: ${String(lastErr)}`);
}
