// The image (localhost/mailfleet:dev, `npm run image:build`) run the way the operator runs it:
// the operator's renderer makes the StatefulSet, ConfigMap and Secret of an EmailRelay, and
// pod-runner.ts runs the relay container from them with podman (uid/gid/fsGroup, read-only
// root, dropped capabilities, no-new-privileges, the config, secrets, TLS and queue volumes)
// in a network namespace of the test's own. Then: mail over STARTTLS with AUTH, DKIM-signed,
// delivered to a sink on loopback; SIGTERM drains; the queue survives on its volume.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCert } from '../support/certs.ts';
import { eventually } from '../support/eventually.ts';
import { metricValue } from '../support/relay-harness.ts';
import { createNetNs, type NetNs } from './netns.ts';
import { IMAGE, ensureImage, imageTierAvailable, podman, runDetached, uniqueName, type Container } from './podman.ts';
import { podRun, podSysctls, type PodRun } from './pod-runner.ts';
import { renderRelay, type RenderedRelay } from './rendered.ts';

const available = imageTierAvailable('image');
const SINK_PORT = 2525;
const DOMAIN = 'example.com';

describe.skipIf(!available)('the relay image, run as the operator renders it', () => {
  let dir: string;
  let ns: NetNs;
  let rendered: RenderedRelay;
  let pod: PodRun;
  let relay: Container | undefined;
  let sink: ReturnType<NetNs['spawn']> | undefined;
  const sinkDir = () => path.join(dir, 'sink');
  const podName = 'edge-0';

  const startSink = async () => {
    // postfix's smtp-sink: accepts everything, one file per transaction under sinkDir.
    sink = ns.spawn('smtp-sink', ['-u', 'nobody', '-d', `${sinkDir()}/msg.`, `127.0.0.1:${SINK_PORT}`, '16']);
    await eventually('the sink to listen', async () => (await ns.exec('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${SINK_PORT}`])).code === 0, 20_000);
  };
  const stopSink = async () => {
    if (!sink) return;
    if (sink.exitCode !== null || sink.signalCode !== null) { sink = undefined; return; }
    const gone = new Promise((r) => sink!.once('exit', r));
    sink.kill('SIGKILL');
    await gone;
    sink = undefined;
  };
  const startRelay = async () => {
    relay = await runDetached(uniqueName('mailfleet-relay'), pod.args);
    await eventually('the readiness probe to pass', async () => (await probe('readinessProbe')) === 200, 90_000, { context: () => '' });
  };
  const probe = async (which: keyof PodRun['probes']) => {
    const p = pod.probes[which]!;
    const r = await ns.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${p.port}${p.path}`]);
    return Number(r.stdout.trim());
  };
  const metrics = async () => (await ns.exec('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${pod.probes.readinessProbe!.port}/metrics`])).stdout;
  const sinkFiles = () => fs.readdirSync(sinkDir()).filter((f) => f.startsWith('msg.')).map((f) => fs.readFileSync(path.join(sinkDir(), f)));
  const submissionPort = () => {
    const c = (rendered.workload.spec.template.spec.containers as any[]).find((x) => x.name === 'relay');
    return c.ports.find((p: any) => p.name === 'submission').containerPort as number;
  };
  const swaks = (extra: string[], subject: string) => ns.exec('swaks', [
    '--server', '127.0.0.1', '--port', String(submissionPort()), '--helo', 'client.test',
    '--from', `noreply@${DOMAIN}`, '--to', 'someone@dest.test',
    '--header', `Subject: ${subject}`, '--body', `body of ${subject}\n`, '--timeout', '30', ...extra,
  ], { timeoutMs: 45_000 });
  const login = () => ['--tls', '--auth', 'PLAIN', '--auth-user', rendered.login.username, '--auth-password', rendered.login.password];

  beforeAll(async () => {
    ensureImage();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailfleet-image-'));
    fs.chmodSync(dir, 0o755); // the sink writes as nobody below it
    fs.mkdirSync(sinkDir(), { mode: 0o777 });
    fs.chmodSync(sinkDir(), 0o777);
    rendered = await renderRelay({
      name: 'edge', namespace: 'mail', image: IMAGE, password: 'image-test-app-password',
      relay: {
        tls: { secretName: 'edge-tls' },
        drainTimeout: '5s',
        queue: { persistence: { enabled: true }, retrySchedule: ['1s'] },
        delivery: { mode: 'smarthost', smarthosts: [{ host: '127.0.0.1', port: SINK_PORT, tls: 'none', requireTls: false }] },
      },
      domain: { domain: DOMAIN, allowedSenders: ['noreply'], credentials: { enabled: true } },
    });
    expect(rendered.workload.kind).toBe('StatefulSet');
    const cert = testCert(['relay.test', '127.0.0.1']);
    const tlsSecret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'edge-tls', namespace: 'mail' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': cert.cert, 'tls.key': cert.key } };
    ns = await createNetNs(podSysctls(rendered.workload));
    pod = podRun({ workload: rendered.workload, containerName: 'relay', objects: [...rendered.objects, tlsSecret], dir, podName, netns: ns.path });
    await startSink();
    await startRelay();
  }, 40 * 60_000);

  afterAll(async () => {
    if (relay && process.env.MAILFLEET_TEST_DEBUG) console.log(await relay.logs());
    await relay?.remove();
    await stopSink();
    await ns?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs with the uid, read-only root, capabilities and no-new-privileges of the rendered pod', async () => {
    // what the StatefulSet declares (read by pod-runner) ...
    expect(pod.user.uid).toBeGreaterThan(0);
    expect(pod.readOnlyRoot).toBe(true);
    expect(pod.capDrop).toContain('ALL');
    expect(pod.noNewPrivileges).toBe(true);
    expect(Object.keys(pod.volumes).sort()).toEqual(expect.arrayContaining(['config', 'data', 'secrets', 'tls']));
    // ... is what the relay process really has
    const status = (await podman(['exec', relay!.name, 'cat', '/proc/1/status'])).stdout;
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.split(/\s+/) ?? [];
    expect(field('Uid')).toEqual(Array(4).fill(String(pod.user.uid)));
    expect(field('Gid')).toEqual(Array(4).fill(String(pod.user.gid)));
    expect(field('Groups').filter(Boolean).map(Number).sort()).toEqual([...new Set([pod.user.gid, ...pod.user.groups])].sort());
    expect(field('CapEff')).toEqual(['0000000000000000']);
    expect(field('CapBnd')).toEqual(['0000000000000000']);
    expect(field('NoNewPrivs')).toEqual(['1']);
    expect(field('Seccomp')).toEqual(['2']); // filtered: the runtime's default profile
    const cmdline = (await podman(['exec', relay!.name, 'cat', '/proc/1/cmdline'])).stdout.split('\0').filter(Boolean);
    expect(cmdline.slice(-3)).toEqual(rendered.workload.spec.template.spec.containers[0].args);
    // the root filesystem is read-only; the queue volume is writable by the relay
    const ro = await podman(['exec', relay!.name, 'touch', '/app/x']);
    expect(ro.code).not.toBe(0);
    expect(ro.stderr).toMatch(/Read-only file system/);
    const data = pod.volumes.data!;
    expect((await podman(['exec', relay!.name, 'touch', `${data.mountPath}/.probe`])).code).toBe(0);
    expect((await podman(['exec', relay!.name, 'touch', `${pod.volumes.config!.mountPath}/x`])).code).not.toBe(0);
  });

  it('answers its probes', async () => {
    expect(await probe('livenessProbe')).toBe(200);
    expect(await probe('startupProbe')).toBe(200);
    expect(await probe('readinessProbe')).toBe(200);
  });

  it('refuses AUTH before STARTTLS', async () => {
    const r = await swaks(['--auth', 'PLAIN', '--auth-user', rendered.login.username, '--auth-password', rendered.login.password], 'no tls');
    expect(r.code).not.toBe(0);
    expect(sinkFiles().length).toBe(0);
  });

  it('accepts mail over STARTTLS with AUTH, DKIM-signs it and delivers it to the sink', async () => {
    const r = await swaks(login(), 'signed');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/<~ {2}250 /);
    const msg = await eventually('the message at the sink', () => sinkFiles().find((b) => b.includes('body of signed')), 60_000, { context: () => `${r.stdout}` });
    expect(msg.toString()).toMatch(/^DKIM-Signature:/m);
    const res = await dkimVerify(msg, {
      resolver: async (name: string) => {
        const v = rendered.dkimTxt[name];
        if (!v) throw Object.assign(new Error(`no TXT for ${name}`), { code: 'ENOTFOUND' });
        return [[v]];
      },
    });
    expect(res.results.map((x) => [x.signingDomain, x.status?.result])).toEqual([[DOMAIN, 'pass']]);
    const m = await metrics();
    expect(metricValue(m, 'mailfleet_messages_delivered_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'mailfleet_auth_successes_total')).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it('drains on SIGTERM, keeps undelivered mail on the queue volume, and delivers it after a restart', async () => {
    await stopSink();
    const r = await swaks(login(), 'queued');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await eventually('a deferral while the sink is down', async () => metricValue(await metrics(), 'mailfleet_messages_deferred_total') >= 1, 60_000);
    // the relay's queue layout: committed messages under <dataDir>/queue/msg
    const msgDir = path.join(pod.volumes.data!.hostDir, 'queue', 'msg');
    const queued = () => (fs.existsSync(msgDir) ? fs.readdirSync(msgDir) : []);
    expect(queued().length).toBeGreaterThan(0);

    const kill = await podman(['kill', '--signal', 'TERM', relay!.name]);
    expect(kill.code).toBe(0);
    expect(await relay!.wait()).toBe(0);
    const logs = await relay!.logs();
    expect(logs).toMatch(/draining sessions/);
    expect(logs).toMatch(/"relay stopped"/);
    await relay!.remove();
    expect(queued().length).toBeGreaterThan(0);

    await startSink();
    await startRelay();
    await eventually('the queued message delivered after the restart', () => sinkFiles().some((b) => b.includes('body of queued')), 60_000);
  }, 240_000);
});
