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
//   --egress-recheck SECONDS     default 900: MX relays' egress PTR records are checked again this often
//   --watch-timeout SECONDS      server-side watch timeout (default 240-300)
//   --cache-sync-timeout SECONDS default 120: a leader whose caches cannot list everything by then exits 1
//   --verify-interval SECONDS    default 3600: a verified domain's DNS proof of control is checked again this often
//   --verify-grace SECONDS       default 86400: a domain whose proof disappeared is served this long, then not
//   --log-level LEVEL            [MAILFLEET_LOG_LEVEL] default info
//   --watch-namespaces NS,...    list, watch and write only in these namespaces (the namespace-scoped
//                                install, under Roles); default: every namespace (a ClusterRole)
//   --allow-image-override=true  honour EmailRelay spec.image; default false: such a relay is not
//                                rendered and reports Degraded ImageOverrideNotAllowed
//   --dns-publish=true           SenderDomains with spec.dns.publish: externalDNS get their records
//                                written into DNSEndpoints for external-dns, once their control is proven
//                                by the _mailfleet TXT challenge (docs/tenancy.md); default false
//   --test-only-pod-status-urls FILE  TEST SEAM: read relay pods' /status from the URLs in FILE
//                                ({"ns/pod": "http://..."}) instead of through pods/proxy; for a test
//                                control plane whose pods run no containers (test/operator/scale-down.test.ts)
import os from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { EmailRelayController } from './controllers/emailrelay.ts';
import { EgressIdentityChecker } from './controllers/egress-identity.ts';
import { TestOnlyUrlStatusReader } from './controllers/drain.ts';
import { SenderDomainController } from './controllers/senderdomain.ts';
import { DEFAULT_IMAGE } from './render/relay-pod.ts';
import { Applier } from './runtime/apply.ts';
import { createProbeServer, operatorHealth, operatorReadiness, parseListenAddress } from './runtime/http.ts';
import { Kube, loadKubeConfig } from './runtime/kube.ts';
import { LeaderElector, kubeLeases } from './runtime/leader.ts';
import { Manager } from './runtime/manager.ts';
import { createOperatorMetrics } from './runtime/metrics.ts';
import { OAuth2ProbeCache } from '../relay/delivery/oauth2/probe.ts';
import { DomainVerifier } from './tenancy/verification.ts';
import { describeScope, parseWatchNamespaces } from './runtime/watch-scope.ts';

/** A flag that must be a number > 0; anything else stops the start with the flag's name. */
function positive(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!value || !Number.isFinite(n) || n <= 0) throw new Error(`--${flag}: "${value ?? ''}" is not a positive number`);
  return n;
}

/** A flag that must be exactly true or false (the chart renders --flag={{ bool }}). */
function boolean(flag: string, value: string | undefined): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new Error(`--${flag}: "${value ?? ''}" is not true or false`);
}

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
      'egress-recheck': { type: 'string', default: '900' },
      'watch-timeout': { type: 'string' },
      'cache-sync-timeout': { type: 'string', default: '120' },
      'verify-interval': { type: 'string', default: '3600' },
      'verify-grace': { type: 'string', default: '86400' },
      'log-level': { type: 'string' },
      'watch-namespaces': { type: 'string' },
      'allow-image-override': { type: 'string', default: 'false' },
      'dns-publish': { type: 'string', default: 'false' },
      'test-only-pod-status-urls': { type: 'string' },
    },
  });
  const leaseSeconds = positive('lease-duration', values['lease-duration']);
  const watchTimeout = values['watch-timeout'] ? positive('watch-timeout', values['watch-timeout']) : undefined;
  const resyncMs = positive('resync', values.resync) * 1000;
  const workers = Math.max(1, Math.floor(positive('workers', values.workers)));
  const cacheSyncTimeoutMs = positive('cache-sync-timeout', values['cache-sync-timeout']) * 1000;
  const verifyIntervalMs = positive('verify-interval', values['verify-interval']) * 1000;
  const verifyGraceMs = positive('verify-grace', values['verify-grace']) * 1000;
  const namespaces = parseWatchNamespaces(values['watch-namespaces']);
  const allowImageOverride = boolean('allow-image-override', values['allow-image-override']);
  const dnsPublish = boolean('dns-publish', values['dns-publish']);
  const egressRecheckMs = positive('egress-recheck', values['egress-recheck']) * 1000;
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
  const dnsServers = (values['dns-servers'] ?? process.env.MAILFLEET_DNS_SERVERS)?.split(',').map((s) => s.trim()).filter(Boolean);
  const manager = new Manager({
    kube, log, metrics,
    resyncMs, workers, cacheSyncTimeoutMs, ...(namespaces ? { namespaces } : {}),
    ...(watchTimeout ? { watchSeconds: [watchTimeout, watchTimeout] as [number, number] } : {}),
  });
  const apply = new Applier({ kube, log, cache: manager.cache, identity, ...(namespaces ? { namespaces } : {}) });
  // one verifier for both controllers: a relay serves a domain exactly when its SenderDomain reports it verified
  const verifier = new DomainVerifier({ dnsServers, intervalMs: verifyIntervalMs, graceMs: verifyGraceMs });
  // one cache of identity-provider answers: a credential named by a relay and a domain is asked once
  const oauth2Probes = new OAuth2ProbeCache({ failedTtlMs: 300_000 });
  manager.add(new EmailRelayController({
    kube, log, apply, cache: manager.cache, apis: () => manager.apis, oauth2Probes, verifier,
    image: values.image ?? process.env.MAILFLEET_IMAGE ?? DEFAULT_IMAGE, allowImageOverride,
    egressIdentity: new EgressIdentityChecker({ dnsServers, recheckMs: egressRecheckMs }),
    ...(values['test-only-pod-status-urls'] ? { podStatus: new TestOnlyUrlStatusReader(values['test-only-pod-status-urls']) } : {}),
  }));
  manager.add(new SenderDomainController({
    kube, log, apply, cache: manager.cache, oauth2Probes, metrics, verifier, apis: () => manager.apis, dnsPublish, ...(dnsServers ? { dnsServers } : {}),
  }));
  const elector = values['leader-elect'] === 'false' ? undefined : new LeaderElector({
    leases: kubeLeases(kube), log, identity, leaseSeconds,
    namespace: values['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'default',
    name: values['lease-name'] as string,
    renewDeadlineMs: Math.round(leaseSeconds * 1000 * 2 / 3),
    retryPeriodMs: Math.max(200, Math.round(leaseSeconds * 1000 / 7.5)),
  });

  let leading = false;
  let stopping = false;
  const server = createProbeServer({
    metrics,
    leading: () => leading,
    healthz: () => operatorHealth(stopping, manager.stalled()),
    readyz: () => operatorReadiness(stopping, leading, manager.synced),
  });
  const [host, port] = parseListenAddress(values.http ?? process.env.MAILFLEET_OPERATOR_HTTP ?? '0.0.0.0:8080');
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
  const addr = server.address();
  log.info({ http: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : addr, identity, watching: describeScope(namespaces), allowImageOverride, dnsPublish }, 'operator started');

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => { resolveDone = r; });
  const stop = async (code = 0): Promise<number> => {
    if (stopping) return done;
    stopping = true;
    log.info({ code }, 'shutting down');
    await manager.stop().catch((e: Error) => log.warn({ err: e.message }, 'manager stop failed'));
    await elector?.release();
    metrics.leader.set(0);
    await new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    kube.close();
    resolveDone(code);
    return done;
  };
  /** The one way the operator fails: log why and exit 1, so a fresh process starts (or stands by). */
  const fail = (why: string) => {
    if (stopping) return;
    log.error({ why }, 'operator failed; exiting');
    void stop(1);
  };
  if (opts.signals) {
    const onSignal = (sig: string) => { log.info({ signal: sig }, 'signal received'); void stop(0); };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  const lead = async () => {
    if (elector) {
      await elector.run((why) => fail(`leadership lost: ${why}`));
      if (stopping) return;
    }
    leading = true;
    metrics.leader.set(1);
    await manager.run();
  };
  lead().catch((e: Error) => fail(e.message));
  return { done, stop: () => stop(0) };
}

if (import.meta.main) {
  runOperator(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    console.error(e);
    process.exit(1);
  });
}
