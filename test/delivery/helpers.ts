// Shared setup for delivery tests: spool files, jobs, sinks that share one port on several
// loopback addresses (MX delivery uses one port for every MX host), and a parsed config.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliverySchema, type DeliveryConfig, type DeliveryConfigInput } from '../../relay/delivery/schema.ts';
import type { DeliveryJob } from '../../relay/delivery/types.ts';
import { startSink, type Sink, type SinkOptions } from '../support/sink.ts';

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'mailfleet-delivery-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let seq = 0;

/** Writes `message` after `offset` junk bytes (as a spool file with a header would) and returns a job. */
export function makeJob(dir: string, recipients: string[], opts: { from?: string; message?: string; prepend?: Buffer; offset?: number } = {}): DeliveryJob {
  const id = `test-${process.pid}-${++seq}`;
  const message = Buffer.from(opts.message ?? `From: a@sender.test\r\nTo: ${recipients.join(', ')}\r\nSubject: ${id}\r\n\r\nHello ${id}\r\n`);
  const offset = opts.offset ?? 17;
  const path = join(dir, `${id}.eml`);
  writeFileSync(path, Buffer.concat([Buffer.alloc(offset, 'x'), message]));
  return {
    id, from: opts.from ?? 'a@sender.test', recipients, bodyPath: path, bodyOffset: offset, size: message.length,
    ...(opts.prepend ? { prepend: opts.prepend } : {}),
  };
}

export function config(input: DeliveryConfigInput): DeliveryConfig {
  return deliverySchema.parse(input);
}

/** Starts one sink per host, all on the same port. */
export async function sinksOnOnePort(hosts: string[], opts: (host: string) => SinkOptions = () => ({})): Promise<{ port: number; sinks: Sink[] }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const first = await startSink({ ...opts(hosts[0]!), host: hosts[0]!, port: 0 });
    const sinks = [first];
    try {
      for (const h of hosts.slice(1)) sinks.push(await startSink({ ...opts(h), host: h, port: first.port }));
      return { port: first.port, sinks };
    } catch {
      await Promise.all(sinks.map((s) => s.close()));
    }
  }
  throw new Error(`could not start sinks on one port for ${hosts.join(', ')}`);
}
