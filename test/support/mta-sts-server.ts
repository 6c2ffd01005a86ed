// A loopback HTTPS server playing the policy hosts (mta-sts.<domain>) of MTA-STS tests:
// it answers GET /.well-known/mta-sts.txt with the policy set for the Host header's
// domain (404 without one) and records every request, so a test sees what was fetched.
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface PolicyServer {
  port: number;
  /** Host headers of the requests so far. */
  requests: string[];
  /** The policy text served for mta-sts.<domain>; undefined removes it (404). */
  setPolicy(domain: string, text: string | undefined): void;
  close(): Promise<void>;
}

export async function startPolicyServer(opts: { host: string; key: string; cert: string; port?: number }): Promise<PolicyServer> {
  const policies = new Map<string, string>();
  const requests: string[] = [];
  const server = https.createServer({ key: opts.key, cert: opts.cert }, (req, res) => {
    const host = String(req.headers.host ?? '').toLowerCase();
    requests.push(host);
    const text = host.startsWith('mta-sts.') ? policies.get(host.slice('mta-sts.'.length)) : undefined;
    if (req.url !== '/.well-known/mta-sts.txt' || text === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host, () => { server.off('error', reject); resolve(); });
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    setPolicy: (domain, text) => { if (text === undefined) policies.delete(domain); else policies.set(domain, text); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** An RFC 8461 policy file. */
export function policyText(mode: 'enforce' | 'testing' | 'none', mx: string[], maxAge = 86_400): string {
  return ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ''].join('\r\n');
}
