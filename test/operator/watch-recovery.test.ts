// The operator survives a kube-apiserver restart: its watches fail, it keeps retrying,
// and a change made while the API server was away is reconciled once it is back.
//
// The harness has no restart hook yet, so this restarts the apiserver from its own
// /proc/<pid>/cmdline and records the new pid in the cluster's pids file, which the
// harness's stop() reads (so nothing leaks).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, readyCondition, sleep, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'recover';
let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

async function restartApiServer(downMs: number, whileDown: () => Promise<void>): Promise<void> {
  const c = cluster.get();
  const pidsFile = path.join(c.dir, 'pids');
  const line = fs.readFileSync(pidsFile, 'utf8').split('\n').reverse().find((l) => l.endsWith(' kube-apiserver'));
  const pid = Number(line?.split(' ')[0]);
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
  process.kill(-pid, 'SIGKILL'); // a crash, as far as clients can tell
  await eventually('apiserver gone', async () => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), 30_000);
  await whileDown();
  await sleep(downMs);
  const fd = fs.openSync(path.join(c.dir, 'logs', 'kube-apiserver.log'), 'a');
  const child = spawn(argv[0] as string, argv.slice(1), { cwd, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.unref();
  fs.appendFileSync(pidsFile, `${child.pid} kube-apiserver\n`);
  await eventually('apiserver back', async () => (await c.request('GET', '/readyz')).status === 200, 120_000);
}

describe.skipIf(!cluster.available)('watch recovery (real control plane)', () => {
  it('reconciles a change made while the API server was down', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--leader-elect=false', '--resync', '600']);
    const apply = (obj: unknown) => c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
    await apply({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'r', namespace: NS }, spec: { hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } } } });
    await eventually('relay Ready', async () => readyCondition(await tryGetJson(c, ['get', 'emailrelay', 'r', '-n', NS]))?.status === 'True', 120_000);

    // The change is made the moment the API server is back, while the operator's watches
    // are still in their backoff: it must still arrive (rewatch from the last
    // resourceVersion, or relist after 410 Gone).
    await restartApiServer(3000, async () => {
      expect((await op!.get('/healthz')).status).toBe(200);
    });
    await apply({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name: 'after', namespace: NS }, spec: { domain: 'after.example', relayRef: { name: 'r' }, dkim: { algorithm: 'ed25519' } } });
    await eventually('SenderDomain reconciled after the restart', async () => readyCondition(await tryGetJson(c, ['get', 'senderdomain', 'after', '-n', NS]))?.status === 'True', 120_000);
    const m = (await op!.get('/metrics')).text;
    expect(m).toMatch(/mailfleet_operator_watch_restarts_total\{kind="SenderDomain",reason="(error|gone)"\} [1-9]/);
  });
});
