// Leader election edge cases on a real control plane: a holder whose clock is behind ours
// keeps its lease while it renews, and a leader whose renewals hang (its connection to the
// API server black-holed by a loopback TCP proxy) stops acting before a standby can take over.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, sleep, startOperatorProcess, useOperatorCluster, type OperatorProcess } from './support.ts';

const cluster = useOperatorCluster();
const LEASE_NS = 'mailfleet-system';
const running: OperatorProcess[] = [];
const closers: (() => void)[] = [];
afterAll(async () => {
  for (const c of closers) c();
  await Promise.all(running.map((o) => o.stop('SIGKILL')));
}, 30_000);

async function start(kubeconfig: string, lease: string): Promise<OperatorProcess> {
  const op = await startOperatorProcess(kubeconfig, ['--lease-name', lease, '--lease-duration', '4', '--identity', `${lease}-${running.length}`]);
  running.push(op);
  return op;
}

/** The text of /readyz, or 'gone' once the process no longer answers. */
async function readyz(op: OperatorProcess): Promise<string> {
  try {
    return (await op.get('/readyz')).text.trim();
  } catch {
    return 'gone';
  }
}

const microTime = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

/** A TCP proxy to the API server that can be made a black hole: bytes stop, nothing closes. */
async function blackHoleProxy(target: URL): Promise<{ port: number; freeze(): void; close(): void }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    if (frozen) return; // accepted, never answered
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('data', (d) => { if (!frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!frozen) client.write(d); });
    client.on('close', () => { if (!frozen) upstream.destroy(); });
    upstream.on('close', () => { if (!frozen) client.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() { frozen = true; },
    close() { server.close(); for (const s of sockets) s.destroy(); },
  };
}

describe.skipIf(!cluster.available)('leader election edge cases (real control plane)', () => {
  it('does not take a lease its holder keeps renewing, however far behind the holder\'s clock is', async () => {
    const c = cluster.get();
    const skewMs = 3_600_000; // the holder's clock runs an hour behind ours
    const lease = (renewedAt: number) => ({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'skew', namespace: LEASE_NS },
      spec: { holderIdentity: 'slow-clock', leaseDurationSeconds: 4, acquireTime: microTime(renewedAt), renewTime: microTime(renewedAt) },
    });
    await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(lease(Date.now() - skewMs)) });
    const op = await start(cluster.operatorKubeconfig(), 'skew');
    // The holder renews every second for twice the lease duration: it is alive, so we wait.
    for (let i = 0; i < 8; i++) {
      await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(lease(Date.now() - skewMs)) });
      expect(await readyz(op), `renewal ${i}`).toBe('standby');
      await sleep(1000);
    }
    expect(await op.writes()).toBe(0);
    // The holder stops renewing: after one lease duration of silence (our clock), we lead.
    await eventually('skew lease taken once the holder is silent', async () => (await readyz(op)) === 'leader', 60_000);
    const taken = JSON.parse((await c.kubectl(['get', 'lease', 'skew', '-n', LEASE_NS, '-o', 'json'])).stdout);
    expect(taken.spec.holderIdentity).toBe('skew-0');
  });

  it('a leader whose renewals hang stops acting before a standby takes the lease', async () => {
    const c = cluster.get();
    const proxy = await blackHoleProxy(new URL(c.server));
    closers.push(() => proxy.close());
    const viaProxy = path.join(c.dir, 'operator-via-proxy.kubeconfig');
    fs.writeFileSync(viaProxy, fs.readFileSync(cluster.operatorKubeconfig(), 'utf8').replace(c.server, `https://127.0.0.1:${proxy.port}`), { mode: 0o600 });

    const first = await start(viaProxy, 'hang');
    await eventually('first leads', async () => (await readyz(first)) === 'leader', 60_000);
    const second = await start(cluster.operatorKubeconfig(), 'hang');
    expect(await readyz(second)).toBe('standby');

    proxy.freeze(); // the renewal in flight, and every later one, hangs without an error
    await eventually('second leads', async () => (await readyz(second)) === 'leader', 60_000);
    // renewDeadline < leaseDuration: by the time anyone else could lead, the first has given up.
    expect(await readyz(first)).not.toBe('leader');
    expect(first.logs()).toContain('could not renew the lease before the deadline');
  });
});
