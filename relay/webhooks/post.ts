// One webhook POST over node:http(s) rather than global fetch: the request's `lookup` is
// the outbound policy's, so the address checked is the address connected to (fetch
// resolves on its own and offers no hook without the undici package).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { OutboundPolicy } from '../outbound/targets.ts';

export interface PostOptions {
  body: string;
  headers: Record<string, string>;
  signal: AbortSignal;
  outbound: OutboundPolicy;
}

/** Resolves with the HTTP status (redirects are not followed); rejects on network errors. */
export function postJson(url: string, opts: PostOptions): Promise<number> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  // An IP literal never goes through lookup(): check it here.
  if (net.isIP(host)) {
    const why = opts.outbound.refusal(host);
    if (why) return Promise.reject(new Error(`webhook host ${host} is ${why}, which this relay may not connect to (allow it in outbound.allowAddresses)`));
  }
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: 'POST',
      headers: { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) },
      lookup: opts.outbound.lookup,
      signal: opts.signal, // carries the per-POST timeout
    }, (res) => {
      res.resume(); // the body is not used; draining frees the socket
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
