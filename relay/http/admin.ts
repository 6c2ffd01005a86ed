// The admin API on the relay's HTTP port: queue control for `mailfleet queue … --url`
// (also through `kubectl exec` or a port-forward). Off unless http.adminTokenFile is set;
// every request carries `Authorization: Bearer <token>`, compared in constant time with the
// file's content, which is read per request so a rotated Secret applies at once.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import type { Logger } from '../log.ts';
import { parseDuration } from '../util/duration.ts';
import { QueueControlError, type QueueControl, type QueueFilter } from '../queue/control.ts';
import { QueueImportError, type DeliveryState } from '../queue/store.ts';

export interface AdminOptions {
  tokenFile: string;
  control: () => QueueControl;
  log: Logger;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

function authorized(req: http.IncomingMessage, tokenFile: string): boolean {
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  if (!token) return false; // an empty Secret opens nothing
  const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
  return crypto.timingSafeEqual(digest(given), digest(token));
}

/** Filters from the query string: sender, recipient (domains), minAge, maxAge (durations like 1h). */
export function filterFromQuery(q: URLSearchParams): QueueFilter {
  const age = (name: string) => {
    const v = q.get(name);
    if (v === null) return undefined;
    try {
      return parseDuration(v);
    } catch (err) {
      throw new QueueControlError(400, `${name}: ${(err as Error).message}`);
    }
  };
  return { sender: q.get('sender') ?? undefined, recipient: q.get('recipient') ?? undefined, minAgeMs: age('minAge'), maxAgeMs: age('maxAge') };
}

/** Handles /admin/…; answers 404 for the rest of that path space. */
export function adminHandler(opts: AdminOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    void (async () => {
      let ok: boolean;
      try {
        ok = authorized(req, opts.tokenFile);
      } catch (err) {
        opts.log.error({ err: (err as Error).message, file: opts.tokenFile }, 'admin token file unreadable');
        return json(503, { error: 'the admin token file cannot be read' });
      }
      if (!ok) {
        req.resume();
        res.setHeader('www-authenticate', 'Bearer');
        return json(401, { error: 'a valid admin token is required (Authorization: Bearer …)' });
      }
      const url = new URL(req.url ?? '/', 'http://admin');
      const parts = url.pathname.split('/').filter(Boolean); // ['admin', 'queue', id?, action?]
      const control = opts.control();
      const m = req.method;
      if (parts[1] !== 'queue' || parts.length > 4) return json(404, { error: 'not found' });
      const [, , id, action] = parts;
      if (m === 'GET' && !id) return json(200, { messages: control.list(filterFromQuery(url.searchParams)) });
      if (m === 'POST' && id === 'retry' && !action) return json(200, await control.retryAll(filterFromQuery(url.searchParams)));
      if (m === 'POST' && id === 'import' && !action) {
        const header = req.headers['x-mailfleet-state'];
        let state: DeliveryState | undefined;
        try {
          state = typeof header === 'string' && header ? JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as DeliveryState : undefined;
        } catch {
          throw new QueueControlError(400, 'x-mailfleet-state is not base64 JSON');
        }
        return json(201, { id: await control.import(req, state) });
      }
      if (!id) return json(405, { error: `${m} not allowed here` });
      if (m === 'GET' && !action) return json(200, await control.show(id));
      if (m === 'DELETE' && !action) return json(200, { deleted: id, ...(await control.delete(id, { dsn: url.searchParams.get('dsn') === 'true' })) });
      if (m === 'POST' && action === 'retry') return json(200, { id, result: await control.retry(id) });
      if (m === 'POST' && action === 'hold') { await control.hold(id); return json(200, { id, held: true }); }
      if (m === 'POST' && action === 'release') { await control.release(id); return json(200, { id, held: false }); }
      return json(404, { error: 'not found' });
    })().catch((err: Error) => {
      if (err instanceof QueueControlError) return json(err.status, { error: err.message });
      if (err instanceof QueueImportError) return json(err.reason === 'exists' ? 409 : 400, { error: err.message });
      opts.log.error({ err: err.message, url: req.url }, 'admin request failed');
      json(500, { error: err.message });
    });
  };
}
