// The relay's HTTP port: Prometheus metrics and the probes Kubernetes uses.
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  live(): boolean;
  ready(): boolean;
  beforeScrape?(): void;
  /** State worth reading from outside (e.g. OAuth2 credentials); no secrets. Served as JSON at /status. */
  status?(): Record<string, unknown>;
  /** The admin API (http/admin.ts), when one is configured: gets every request under /admin/. */
  admin?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}

export function startHttpServer(host: string, port: number, registry: Registry, health: HealthSource): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (url?.startsWith('/admin/')) return health.admin ? health.admin(req, res) : reply(404, 'not found (the admin API is off: set http.adminTokenFile)\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (url === '/healthz') return health.live() ? reply(200, 'ok\n') : reply(503, 'not live\n');
    if (url === '/readyz') return health.ready() ? reply(200, 'ready\n') : reply(503, 'not ready\n');
    if (url === '/status' && health.status) return reply(200, `${JSON.stringify(health.status())}\n`, 'application/json');
    if (url === '/metrics') {
      health.beforeScrape?.();
      registry.metrics().then((text) => reply(200, text, registry.contentType), (err: Error) => reply(500, `${err.message}\n`));
      return;
    }
    reply(404, 'not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.removeListener('error', reject); resolve(server); });
  });
}
