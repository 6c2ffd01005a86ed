// The dispatcher against a real HTTP receiver on loopback.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import client from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  signWebhook,
  verifyWebhookSignature,
  outboxName,
  WebhookDispatcher,
  webhookSchema,
  type WebhookDispatcherOptions,
} from '../../relay/webhooks/index.ts';
import { loopbackSinks } from '../support/outbound.ts';

const secret = 'whsec-test-0123456789';

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A receiver that answers with the next status in `statuses` (then 200) and records everything. */
async function receiver(statuses: number[] = []): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = statuses.shift() ?? 200;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${addr.port}/hooks`, got, server };
}

describe('webhook signatures', () => {
  it('verify with the secret, and fail on a changed body, wrong secret or stale timestamp', () => {
    const body = '{"type":"delivered"}';
    const now = 1_700_000_000;
    const header = signWebhook(secret, body, now);
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(secret, header, body, 300, now + 10)).toBe(true);
    expect(verifyWebhookSignature(secret, header, Buffer.from(body), 300, now)).toBe(true);
    expect(verifyWebhookSignature(secret, header, body + ' ', 300, now)).toBe(false);
    expect(verifyWebhookSignature('other', header, body, 300, now)).toBe(false);
    expect(verifyWebhookSignature(secret, header, body, 300, now + 301)).toBe(false);
    expect(verifyWebhookSignature(secret, `${header},v1=${'0'.repeat(64)}`, body, 300, now)).toBe(true);
    expect(verifyWebhookSignature(secret, 'garbage', body)).toBe(false);
    expect(verifyWebhookSignature(secret, undefined, body)).toBe(false);
  });

  it('config schema: defaults, http(s) only', () => {
    expect(webhookSchema.parse({ url: 'https://hooks.example.com/x', secretFile: '/s' })).toMatchObject({
      timeoutMs: 10_000,
      maxAgeHours: 24,
      concurrency: 4,
      retryBaseMs: 5_000,
      retryMaxMs: 600_000,
      maxOutboxEvents: 100_000,
    });
    const bad = webhookSchema.safeParse({ url: 'ftp://x/y', secretFile: '/s' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/http/);
    expect(webhookSchema.safeParse({ url: 'https://x/', secretFile: '/s', events: ['opened'] }).success).toBe(false);
  });
});

describe('WebhookDispatcher', () => {
  let dir: string;
  const servers: Server[] = [];
  const dispatchers: WebhookDispatcher[] = [];
  const open = async (url: string, extra: Partial<WebhookDispatcherOptions['config']> = {}, registry?: client.Registry) => {
    const d = await WebhookDispatcher.open({
      dir, outbound: () => loopbackSinks,
      config: { url, secretFile: join(dir, 'secret'), retryBaseMs: 20, retryMaxMs: 100, ...extra },
      ...(registry ? { registry } : {}),
    });
    dispatchers.push(d);
    return d;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailfleet-webhooks-'));
    writeFileSync(join(dir, 'secret'), `${secret}\n`);
  });
  afterEach(async () => {
    for (const d of dispatchers.splice(0)) await d.close();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('POSTs a signed event that the receiver can verify', async () => {
    const r = await receiver();
    servers.push(r.server);
    const d = await open(r.url);
    expect(await d.emit({ type: 'delivered', queueId: 'Q1', recipient: 'bob@example.com', from: 'app@example.org', response: '250 ok', code: 250 })).toBe(true);
    await vi.waitFor(() => expect(r.got).toHaveLength(1), { timeout: 10_000, interval: 20 });
    const { headers, body } = r.got[0]!;
    expect(verifyWebhookSignature(secret, headers['x-mailfleet-signature'] as string, body)).toBe(true);
    const event = JSON.parse(body);
    expect(event).toMatchObject({ type: 'delivered', queueId: 'Q1', recipient: 'bob@example.com', from: 'app@example.org', code: 250 });
    expect(headers['x-mailfleet-event-id']).toBe(event.id);
    expect(Number.isFinite(Date.parse(event.timestamp))).toBe(true);
    expect(headers['content-type']).toBe('application/json');
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 5_000, interval: 20 });
  });

  it('retries a receiver that fails twice, then counts the send', async () => {
    const r = await receiver([500, 503]);
    servers.push(r.server);
    const registry = new client.Registry();
    const d = await open(r.url, {}, registry);
    await d.emit({ type: 'bounced', queueId: 'Q2', recipient: 'x@example.com', code: '550 5.1.1' });
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 10_000, interval: 20 });
    expect(r.got).toHaveLength(3);
    const ids = new Set(r.got.map((g) => g.headers['x-mailfleet-event-id']));
    expect(ids.size).toBe(1); // the same event each time
    expect(new Set(r.got.map((g) => g.body)).size).toBe(1);
    const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]?.value;
    expect(await value('mailfleet_webhook_failed_attempts_total')).toBe(2);
    expect(await value('mailfleet_webhook_sent_total')).toBe(1);
    expect(await value('mailfleet_webhook_outbox_events')).toBe(0);
  });

  it('delivers after a restart the events left in the outbox', async () => {
    // First run: nobody listens on the URL, so nothing can be delivered.
    const closedPort = await receiver();
    const deadUrl = closedPort.url;
    await new Promise((r) => closedPort.server.close(r));
    const first = await open(deadUrl);
    for (let i = 0; i < 5; i++) await first.emit({ type: 'deferred', queueId: `Q${i}`, recipient: `r${i}@example.com` });
    expect(first.outboxSize).toBe(5);
    await first.close();

    const r = await receiver();
    servers.push(r.server);
    const second = await open(r.url);
    expect(second.outboxSize).toBe(5);
    await vi.waitFor(() => expect(second.outboxSize).toBe(0), { timeout: 10_000, interval: 20 });
    expect(r.got.map((g) => JSON.parse(g.body).queueId).sort()).toEqual(['Q0', 'Q1', 'Q2', 'Q3', 'Q4']);
    await second.close();

    // Acknowledged events are not sent again on the next open.
    const third = await open(r.url);
    expect(third.outboxSize).toBe(0);
  });

  it('kill -9 after emit resolved loses no event', async () => {
    const r = await receiver();
    servers.push(r.server);
    // A separate process emits to a dead URL, reports each resolved emit, and is killed hard.
    const mod = new URL('../../relay/webhooks/index.ts', import.meta.url).href;
    const script = `
      import { WebhookDispatcher } from ${JSON.stringify(mod)};
      const d = await WebhookDispatcher.open({ dir: process.argv[1], secret: 's',
        config: { url: 'http://127.0.0.1:9/x', secretFile: '/unused', retryBaseMs: 60000 } });
      for (let i = 0; ; i++) {
        await d.emit({ type: 'deferred', queueId: 'C' + i, recipient: 'r@example.com' });
        process.stdout.write('C' + i + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await vi.waitFor(() => expect(out.split('\n').length).toBeGreaterThan(50), { timeout: 20_000, interval: 20 });
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGKILL');
    await exited;
    const confirmed = out.split('\n').filter(Boolean);
    const d = await open(r.url);
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 20_000, interval: 20 });
    const got = new Set(r.got.map((g) => JSON.parse(g.body).queueId));
    expect(confirmed.filter((q) => !got.has(q))).toEqual([]);
  });

  it('compacts the outbox once acknowledged events dominate it', async () => {
    const r = await receiver();
    servers.push(r.server);
    const d = await open(r.url, { concurrency: 8 });
    // Emitted together: group commit writes them in few batches; each is durable on resolve.
    const accepted = await Promise.all(
      Array.from({ length: 700 }, (_, i) => d.emit({ type: 'delivered', queueId: `Q${i}`, recipient: `r${i}@example.com` })),
    );
    expect(accepted.every(Boolean)).toBe(true);
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 30_000, interval: 50 });
    await d.emit({ type: 'delivered', queueId: 'last', recipient: 'z@example.com' });
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 10_000, interval: 20 });
    await d.close();
    // 701 event + 701 done records were written; compaction keeps the file under its
    // 1000-record threshold.
    const lines = readFileSync(join(dir, outboxName), 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeLessThanOrEqual(1000);
    const reopened = await open(r.url);
    expect(reopened.outboxSize).toBe(0);
    expect(new Set(r.got.map((g) => JSON.parse(g.body).queueId)).size).toBe(701);
  });

  it('drops an event past its max age, with a metric', async () => {
    const r = await receiver([500, 500, 500, 500, 500, 500, 500, 500, 500, 500]);
    servers.push(r.server);
    const registry = new client.Registry();
    const d = await open(r.url, { maxAgeHours: 0.0001 }, registry); // 360 ms
    await d.emit({ type: 'expired', queueId: 'Q9', recipient: 'late@example.com' });
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 10_000, interval: 20 });
    const dropped = (await registry.getSingleMetric('mailfleet_webhook_dropped_total')!.get()).values;
    expect(dropped).toEqual([expect.objectContaining({ labels: { reason: 'max_age' }, value: 1 })]);
    expect(r.got.length).toBeGreaterThan(1);
  });

  it('sends only the event types in the filter', async () => {
    const r = await receiver();
    servers.push(r.server);
    const d = await open(r.url, { events: ['bounced', 'suppressed'] });
    expect(await d.emit({ type: 'delivered', queueId: 'A', recipient: 'a@example.com' })).toBe(false);
    expect(await d.emit({ type: 'bounced', queueId: 'B', recipient: 'b@example.com' })).toBe(true);
    expect(await d.emit({ type: 'suppressed', queueId: 'C', recipient: 'c@example.com' })).toBe(true);
    await vi.waitFor(() => expect(d.outboxSize).toBe(0), { timeout: 10_000, interval: 20 });
    expect(r.got.map((g) => JSON.parse(g.body).type).sort()).toEqual(['bounced', 'suppressed']);
  });
});
