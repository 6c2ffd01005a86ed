// `mailfleet operator`: the control plane. Flags (env in brackets):
//   --kubeconfig FILE            [KUBECONFIG] default: in-cluster, then ~/.kube/config
//   --image IMAGE                [MAILFLEET_IMAGE] relay image when EmailRelay.spec.image is unset
//   --http ADDR:PORT             [MAILFLEET_OPERATOR_HTTP] /metrics /healthz /readyz, default 0.0.0.0:8080
//   --leader-elect=false         run without a Lease (a single replica)
//   --lease-namespace NS         [POD_NAMESPACE] default "default"
//   --lease-name NAME            default mailfleet-operator
//   --lease-duration SECONDS     default 15 (renew deadline 10, retry period 2; scaled down with it)
//   --identity ID                [POD_NAME] default hostname-pid
//   --resync SECONDS             default 300: every object is reconciled again this often
//   --workers N                  default 4
//   --dns-servers IP[:PORT],...  [MAILFLEET_DNS_SERVERS] resolvers for SenderDomain DNS verification
//   --watch-timeout SECONDS      server-side watch timeout (default 240-300)
//   --log-level LEVEL            [MAILFLEET_LOG_LEVEL] default info
import http from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { DEFAULT_IMAGE } from './reconcilers/relay.ts';
import { Controller } from './runtime/controller.ts';
import { Kube, isWrite, loadKubeConfig } from './runtime/kube.ts';
import { LeaderElector } from './runtime/leader.ts';
import { createOperatorMetrics } from './runtime/metrics.ts';

export interface OperatorHandle {
  /** Resolves when the operator has stopped; the value is the exit code. */
  done: Promise<number>;
  stop(): Promise<number>;
}

/** Runs the operator until SIGTERM/SIGINT (or stop()); resolves with the process exit code. */
export async function runOperator(argv: string[]): Promise<number> {
  const h = await startOperator(argv, { signals: true });
  return h.done;
}

export async function startOperator(argv: string[], opts: { signals?: boolean } = {}): Promise<OperatorHandle> {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      kubeconfig: { type: 'string' },
      image: { type: 'string' },
      http: { type: 'string' },
      'leader-elect': { type: 'string', default: 'true' },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string', default: 'mailfleet-operator' },
      'lease-duration': { type: 'string', default: '15' },
      identity: { type: 'string' },
      resync: { type: 'string', default: '300' },
      workers: { type: 'string', default: '4' },
      'dns-servers': { type: 'string' },
      'watch-timeout': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const log = pino({
    level: values['log-level'] ?? process.env.MAILFLEET_LOG_LEVEL ?? 'info',
    base: { app: 'mailfleet-operator' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'data', '*.data'], censor: '[redacted]' },
  });
  const metrics = createOperatorMetrics();
  const kc = loadKubeConfig(values.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0]);
  const kube = new Kube({ kubeconfig: kc, requests: metrics.apiRequests });
  const identity = values.identity ?? process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`;
  const leaseSeconds = Number(values['lease-duration']);
  const dnsServers = (values['dns-servers'] ?? process.env.MAILFLEET_DNS_SERVERS)?.split(',').map((s) => s.trim()).filter(Boolean);
  const watchTimeout = values['watch-timeout'] ? Number(values['watch-timeout']) : undefined;
  const controller = new Controller({
    kube, log, metrics, identity,
    image: values.image ?? process.env.MAILFLEET_IMAGE ?? DEFAULT_IMAGE,
    resyncMs: Number(values.resync) * 1000,
    workers: Number(values.workers),
    ...(dnsServers ? { dnsServers } : {}),
    ...(watchTimeout ? { watchSeconds: [watchTimeout, watchTimeout] as [number, number] } : {}),
  });
  const elector = values['leader-elect'] === 'false' ? undefined : new LeaderElector({
    kube, log, identity, leaseSeconds,
    namespace: values['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'default',
    name: values['lease-name'] as string,
    renewDeadlineMs: Math.round(leaseSeconds * 1000 * 2 / 3),
    retryPeriodMs: Math.max(200, Math.round(leaseSeconds * 1000 / 7.5)),
  });

  let leading = false;
  let stopping = false;
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/metrics') {
      metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
      }, (e: Error) => res.writeHead(500).end(e.message));
      return;
    }
    if (url === '/healthz') return void res.writeHead(stopping ? 503 : 200).end(stopping ? 'stopping\n' : 'ok\n');
    if (url === '/readyz') {
      // A standby is ready (it is waiting, as designed); a leader once its caches are synced.
      const ok = !stopping && (!leading || controller.synced);
      return void res.writeHead(ok ? 200 : 503).end(ok ? (leading ? 'leader\n' : 'standby\n') : 'not ready\n');
    }
    if (url === '/debug/writes') {
      // Sum of write requests (apply/create/update/patch/delete), leases excluded: the quiet check.
      metrics.apiRequests.get().then((m) => {
        const writes = m.values.filter((v) => isWrite(String(v.labels.verb)) && v.labels.resource !== 'leases').reduce((a, v) => a + v.value, 0);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ writes, leading }));
      }, (e: Error) => res.writeHead(500).end(e.message));
      return;
    }
    res.writeHead(404).end();
  });
  const [host, port] = (() => {
    const a = values.http ?? process.env.MAILFLEET_OPERATOR_HTTP ?? '0.0.0.0:8080';
    const i = a.lastIndexOf(':');
    return [a.slice(0, i) || '0.0.0.0', Number(a.slice(i + 1))] as const;
  })();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
  const addr = server.address();
  log.info({ http: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : addr, identity }, 'operator started');

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => { resolveDone = r; });
  const stop = async (code = 0): Promise<number> => {
    if (stopping) return done;
    stopping = true;
    log.info({ code }, 'shutting down');
    await controller.stop().catch((e: Error) => log.warn({ err: e.message }, 'controller stop failed'));
    await elector?.release();
    metrics.leader.set(0);
    await new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    kube.close();
    resolveDone(code);
    return done;
  };
  if (opts.signals) {
    const onSignal = (sig: string) => { log.info({ signal: sig }, 'signal received'); void stop(0); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  const lead = async () => {
    if (elector) {
      await elector.run((why) => {
        log.error({ why }, 'leadership lost; exiting so a fresh process can stand by');
        void stop(1);
      });
      if (stopping) return;
    }
    leading = true;
    metrics.leader.set(1);
    await controller.start();
  };
  lead().catch((e: Error) => { log.error({ err: e.message }, 'operator failed'); void stop(1); });
  return { done, stop: () => stop(0) };
}

if (import.meta.main) {
  runOperator(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    console.error(e);
    process.exit(1);
  });
}
