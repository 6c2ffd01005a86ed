// The operator's HTTP endpoints: /metrics (Prometheus), /healthz (liveness), /readyz
// (readiness: a standby waiting for the Lease is ready, a leader once its caches are synced),
// and /debug/writes (write requests so far, leases excluded: the quiet-cluster check).
import http from 'node:http';
import type { OperatorMetrics } from './metrics.ts';
import { isWrite } from './kube.ts';

export interface Probe {
  ok: boolean;
  text: string;
}

export interface ProbeServerOptions {
  metrics: OperatorMetrics;
  healthz: () => Probe;
  readyz: () => Probe;
  /** Whether this replica leads, for /debug/writes. */
  leading: () => boolean;
}

/** Live unless stopping or a watch is stuck (a restart is what fixes that). */
export function operatorHealth(stopping: boolean, stalledKinds: string[]): Probe {
  if (stopping) return { ok: false, text: 'stopping' };
  if (stalledKinds.length) return { ok: false, text: `watch stalled: ${stalledKinds.join(', ')}` };
  return { ok: true, text: 'ok' };
}

/** A standby is ready (it is waiting, as designed); a leader once its caches are synced. */
export function operatorReadiness(stopping: boolean, leading: boolean, synced: boolean): Probe {
  if (stopping || (leading && !synced)) return { ok: false, text: 'not ready' };
  return { ok: true, text: leading ? 'leader' : 'standby' };
}

export function createProbeServer(o: ProbeServerOptions): http.Server {
  return http.createServer((req, res) => {
    const url = req.url ?? '/';
    const probe = (p: Probe) => void res.writeHead(p.ok ? 200 : 503).end(`${p.text}\n`);
    if (url === '/metrics') {
      o.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': o.metrics.registry.contentType }).end(text);
      }, (e: Error) => res.writeHead(500).end(e.message));
      return;
    }
    if (url === '/healthz') return probe(o.healthz());
    if (url === '/readyz') return probe(o.readyz());
    if (url === '/debug/writes') {
      o.metrics.apiRequests.get().then((m) => {
        const writes = m.values.filter((v) => isWrite(String(v.labels.verb)) && v.labels.resource !== 'leases').reduce((a, v) => a + v.value, 0);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ writes, leading: o.leading() }));
      }, (e: Error) => res.writeHead(500).end(e.message));
      return;
    }
    res.writeHead(404).end();
  });
}

/** "host:port" → [host, port]; an empty host means every interface. */
export function parseListenAddress(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  return [a.slice(0, i) || '0.0.0.0', Number(a.slice(i + 1))];
}
