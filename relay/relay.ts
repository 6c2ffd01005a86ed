// The relay process: config → queue → intake, delivery runner, HTTP. Owns hot reload
// (SIGHUP or a changed file: a bad new config is refused and the old one keeps serving)
// and the drain on shutdown.
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { loadConfigFile, referencedFiles, ConfigError } from './config/load.ts';
import type { RelayConfig } from './config/schema.ts';
import { buildRuntime, type RelayRuntime } from './config/runtime.ts';
import { QueueStore } from './queue/store.ts';
import { DeliveryRunner, type DeliveryEvent } from './queue/runner.ts';
import { Deliverer } from './delivery/deliverer.ts';
import { StsPolicyStore } from './delivery/mta-sts.ts';
import { OAuth2Tokens } from './delivery/oauth2/index.ts';
import { Intake, type IntakePolicy } from './smtp/intake.ts';
import { startHttpServer } from './http/server.ts';
import { adminHandler } from './http/admin.ts';
import { QueueControl } from './queue/control.ts';
import { claimDataDir } from './queue/lock.ts';
import { ensureSelfSignedCert } from './tls/selfsigned.ts';
import crypto from 'node:crypto';
import tls from 'node:tls';
import { LocalLimiter, RedisLimiter, AuthThrottle, type RateLimiter } from './limits/index.ts';
import { SuppressionList, FleetSuppression, PLATFORM } from './suppression/index.ts';
import { domainOf } from './util/address.ts';
import { WebhookDispatcher } from './webhooks/index.ts';
import { createSenderPolicy } from './senders/policy.ts';
import { RecipientDnsCheck } from './senders/recipient-dns.ts';
import type { DeliveryConfig } from './delivery/schema.ts';
import { OutboundPolicy } from './outbound/targets.ts';
import { HandoffReceiver } from './handoff/receiver.ts';
import { HandoffSender } from './handoff/sender.ts';
import { DrainWatch } from './handoff/annotations.ts';

// Permanent failures whose enhanced code says the mailbox or domain is gone (5.1.x, or
// 5.2.1 disabled): those recipients go on the suppression list. A bare 550 without an
// enhanced code is as often a policy or content refusal, so it suppresses nothing.
/** A webhook's outbox directory name: stable for its URL. */
function webhookId(url: string): string {
  return crypto.createHash('sha256').update(url).digest('hex').slice(0, 16);
}

/** After the runner stopped, how long delivery pools may take to close. */
const CLOSE_WAIT_MS = 300;
/**
 * With handoff.onShutdown: how long past limits.drainTimeout the hand-off may go on for the
 * messages whose delivery attempts the deadline aborted (and whatever else is left). The
 * operator's terminationGracePeriodSeconds is drainTimeout + 30 s: this 10 s, the runner's
 * 1 s abort grace and the closing below (well under 2 s) leave more than 15 s before SIGKILL.
 */
export const SHUTDOWN_HANDOFF_GRACE_MS = 10_000;
/** Queue ids named in the log line of what a shutdown could not hand off (the count is whole). */
const MAX_LOGGED_IDS = 1_000;

function isHardBounce(enhanced: string | undefined): boolean {
  return enhanced !== undefined && (/^5\.1\.\d+$/.test(enhanced) || enhanced === '5.2.1');
}

interface Prepared {
  cfg: RelayConfig;
  limiter: RateLimiter | undefined;
  limiterKey: string;
  authThrottle: AuthThrottle | undefined;
  throttleKey: string;
  recipientDns: RecipientDnsCheck | undefined;
  domainDeliverers: Map<string, { key: string; deliverer: Deliverer }>;
  webhooks: Map<string, WebhookDispatcher>;
  /** Hooks whose settings changed: reopened on their outbox at commit. */
  reopen: Map<string, RelayConfig['webhooks'][number]>;
  created: Array<{ close(): unknown }>;
  outbound: OutboundPolicy;
}

export interface RelayOptions {
  config: RelayConfig;
  configFile?: string; // watched for changes when set
  log: Logger;
  metrics?: Metrics;
  watchIntervalMs?: number;
  policy?: (relay: Relay) => IntakePolicy;
  onEvent?: (e: DeliveryEvent) => void;
  /** Smarthost OAuth2 token caches (tests inject one with short retry waits). */
  oauth2?: OAuth2Tokens;
}

export class Relay {
  readonly log: Logger;
  readonly metrics: Metrics;
  private runtimeState: RelayRuntime;
  private readonly opts: RelayOptions;
  private store!: QueueStore;
  /** MTA-STS policies of every deliverer, kept under <dataDir>/mta-sts/ across restarts. */
  private stsPolicies = new StsPolicyStore();
  private runner!: DeliveryRunner;
  private deliverer!: Deliverer;
  private intake!: Intake;
  private limiter!: RateLimiter;
  private limiterKey = '';
  private authThrottle!: AuthThrottle;
  private authThrottleKey = '';
  private suppression: SuppressionList | undefined;
  private fleetSuppression: FleetSuppression | undefined;
  private recipientDns: RecipientDnsCheck | undefined;
  private webhooks = new Map<string, WebhookDispatcher>();
  private domainDeliverers = new Map<string, { key: string; deliverer: Deliverer }>();
  /** One token cache per OAuth2 credential, shared by the relay route and per-domain smarthosts. */
  private readonly oauth2: OAuth2Tokens;
  private outbound!: OutboundPolicy;
  private reloading: Promise<boolean> = Promise.resolve(true);
  private httpServer!: http.Server;
  private watched: string[] = [];
  private ready = false;
  private stopping: Promise<void> | undefined;
  private releaseDataDir: (() => void) | undefined;
  private handoffReceiver: HandoffReceiver | undefined;
  private handoffSender: HandoffSender | undefined;
  private drainWatch: DrainWatch | undefined;
  /** The drain request being served (its annotation value), when the operator asked this pod to leave. */
  private drainRequest: string | undefined;

  constructor(opts: RelayOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.metrics = opts.metrics ?? createMetrics();
    this.oauth2 = opts.oauth2 ?? new OAuth2Tokens({ log: this.log.child({ component: 'oauth2' }), registry: this.metrics.registry });
    this.runtimeState = buildRuntime(opts.config);
  }

  get config(): RelayConfig { return this.runtimeState.config; }
  get runtime(): RelayRuntime { return this.runtimeState; }
  get queue(): QueueStore { return this.store; }

  /** Queue control over the live queue: the runner knows what is in delivery and schedules. */
  queueControl(): QueueControl {
    return new QueueControl({
      store: this.store, hostname: this.config.hostname, log: this.log,
      hooks: { busy: (id) => this.runner.busy(id), schedule: (q) => this.runner.enqueue(q) },
    });
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const { store, recovered, discarded, corrupt } = await QueueStore.open(path.join(cfg.dataDir, 'queue'), { memoryCopyBytes: cfg.queue.memoryCopyBytes });
    this.store = store;
    this.releaseDataDir = claimDataDir(cfg.dataDir);
    this.log.info({ dataDir: cfg.dataDir, recovered, discarded }, 'queue opened');
    if (corrupt.length) this.log.error({ files: corrupt, dir: path.join(cfg.dataDir, 'queue', 'corrupt') }, 'unreadable queue files set aside');
    this.outbound = new OutboundPolicy(cfg.outbound);
    this.stsPolicies = new StsPolicyStore(path.join(cfg.dataDir, 'mta-sts', 'policies.json'), this.log);
    this.deliverer = new Deliverer({
      config: cfg.delivery, outbound: this.outbound, log: this.log, oauth2: this.oauth2, captureDir: path.join(cfg.dataDir, 'captured'),
      metrics: this.metrics, stsPolicies: this.stsPolicies,
    });
    await this.commitComponents(await this.prepareComponents(cfg));
    if (cfg.suppression.enabled) this.suppression = await SuppressionList.open(cfg.dataDir, { logger: this.log });
    // With Redis the fleet shares one list (a Redis change needs a restart to apply here).
    if (this.suppression && cfg.redis) this.fleetSuppression = new FleetSuppression({ config: cfg.redis, list: this.suppression, log: this.log });
    this.runner = new DeliveryRunner({
      store, deliverer: (domain) => (domain && this.domainDeliverers.get(domain)?.deliverer) || this.deliverer,
      destinationGate: async (domain) => {
        const rule = this.config.rateLimits.destinations[domain];
        return rule ? this.limiter.take(`dest:${domain}`, rule) : { allowed: true, retryAfterMs: 0 };
      },
      policy: cfg.queue, concurrency: cfg.queue.concurrency,
      hostname: cfg.hostname, log: this.log, metrics: this.metrics, onEvent: (e) => this.onDeliveryEvent(e),
    });
    const tlsPair = this.tlsMaterial();
    if (tlsPair) this.tlsFingerprint = this.fingerprint(tlsPair);
    this.intake = new Intake({
      runtime: () => this.runtimeState, store, onQueued: (q) => this.runner.enqueue(q), log: this.log, metrics: this.metrics,
      ...(tlsPair ? { tls: tlsPair } : {}),
      policy: this.opts.policy ? this.opts.policy(this) : createSenderPolicy({
        runtime: () => this.runtimeState, limiter: () => this.limiter, authThrottle: () => this.authThrottle,
        ...(this.suppression ? { suppression: this.suppression } : {}),
        recipientDns: () => this.recipientDns, log: this.log, metrics: this.metrics,
        onSuppressed: (rcpt, reason, session) => this.emitWebhook({
          type: 'suppressed', queueId: '', recipient: rcpt, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', response: reason,
        }),
      }),
    });
    this.httpServer = await startHttpServer(cfg.http.host, cfg.http.port, this.metrics.registry, {
      live: () => true,
      // A draining pod leaves the Service's endpoints: clients and peers go elsewhere.
      ready: () => this.ready && !this.drainRequest,
      status: () => ({ oauth2: this.oauth2.states(), ...this.drainStatus() }),
      ...(cfg.http.adminTokenFile ? {
        admin: adminHandler({ tokenFile: cfg.http.adminTokenFile, control: () => this.queueControl(), log: this.log }),
      } : {}),
      beforeScrape: () => {
        this.metrics.queueMessages.set(this.store.size);
        const oldest = this.store.oldestReceivedAt();
        this.metrics.queueOldest.set(oldest ? (Date.now() - oldest) / 1000 : 0);
        this.metrics.queueMemoryCopyBytes.set(this.store.memoryCopyBytes);
      },
    });
    await this.intake.start(cfg.listeners);
    if (cfg.handoff) await this.startHandoff(cfg, tlsPair);
    this.runner.start();
    this.watchFiles();
    this.ready = true;
    if (cfg.handoff?.annotationsFile) {
      this.drainWatch = new DrainWatch(cfg.handoff.annotationsFile, this.opts.watchIntervalMs ?? Number(process.env.MAILFLEET_WATCH_INTERVAL_MS ?? 2000), (r) => this.setDrain(r));
    }
    this.log.info({ listeners: this.intake.addresses(), http: this.httpAddress(), ...(this.handoffReceiver ? { handoff: this.handoffReceiver.address() } : {}) }, 'relay ready');
  }

  private async startHandoff(cfg: RelayConfig, tlsPair: { key: Buffer; cert: Buffer } | undefined): Promise<void> {
    // The schema demands TLS material with handoff: AUTH only ever happens over TLS.
    if (!tlsPair) throw new Error('handoff needs TLS (tls.certFile/keyFile or tls.selfSigned)');
    // A reload that drops the block keeps the listener as started (it changes at the next restart).
    const handoff = cfg.handoff!;
    this.handoffReceiver = new HandoffReceiver({
      config: () => this.config.handoff ?? handoff, hostname: cfg.hostname, tls: tlsPair, minTlsVersion: cfg.tls.minVersion, ciphers: cfg.tls.ciphers,
      maxMessageSize: () => this.config.limits.maxMessageSize, store: this.store, onQueued: (q) => this.runner.enqueue(q),
      draining: () => this.drainRequest !== undefined, log: this.log,
    });
    await this.handoffReceiver.start();
    this.handoffSender = new HandoffSender({
      config: () => this.config.handoff ?? handoff, hostname: cfg.hostname, store: this.store,
      reserve: (id) => this.runner.reserve(id), unreserve: (id) => this.runner.unreserve(id), self: this.handoffReceiver.address(), log: this.log,
    });
  }

  /** What /status says about a drain: the operator reads it before it lets a pod go. */
  private drainStatus(): { draining: boolean; queued: number; sessions: number; drainRequested?: string; handedOff?: number } {
    return {
      // sessions: a transaction open when the drain began (a client's, or a peer's hand-off) may still commit a message
      draining: this.drainRequest !== undefined, queued: this.store.size,
      sessions: (this.intake?.openSessions ?? 0) + (this.handoffReceiver?.openSessions ?? 0),
      ...(this.drainRequest ? { drainRequested: this.drainRequest, handedOff: this.handoffSender?.handedOff ?? 0 } : {}),
    };
  }

  /** The drain request appeared, changed or went (scaled back up before the drain finished). */
  private setDrain(request: string | undefined): void {
    if (this.stopping) return;
    const was = this.drainRequest;
    this.drainRequest = request;
    if (request && !was) {
      this.log.info({ drainRequested: request, queued: this.store.size }, 'drain requested: readiness off, new sessions get 421, handing the queue to the peers');
      this.intake.setDraining(true);
      this.handoffSender?.start();
    } else if (!request && was) {
      this.log.info({ queued: this.store.size }, 'drain withdrawn: taking mail again');
      this.intake.setDraining(false);
      void this.handoffSender?.stop();
    }
  }

  /**
   * Builds everything a config needs that can fail (new limiter, DNS check, per-domain
   * deliverers reading their password files, webhook dispatchers reading their secrets)
   * without touching what serves now. commitComponents() then swaps it in; discard()
   * undoes a preparation that will not be used. This keeps a reload all-or-nothing.
   */
  private async prepareComponents(cfg: RelayConfig): Promise<Prepared> {
    const created: Array<{ close(): unknown }> = [];
    try {
      const outbound = new OutboundPolicy(cfg.outbound);
      const limiterKey = JSON.stringify(cfg.redis ?? null);
      const limiter = limiterKey === this.limiterKey ? undefined
        : cfg.redis ? new RedisLimiter({ config: cfg.redis, logger: this.log, registry: this.metrics.registry }) : new LocalLimiter();
      if (limiter) created.push(limiter);
      const throttleKey = JSON.stringify(cfg.authThrottle);
      const authThrottle = throttleKey === this.authThrottleKey ? undefined : new AuthThrottle(cfg.authThrottle, {
        // The fleet's counters live where the rate limits do: whatever limiter serves now.
        redis: () => (this.limiter instanceof RedisLimiter ? { client: this.limiter.redis, keyPrefix: this.limiter.config.keyPrefix } : undefined),
      });
      if (authThrottle) created.push(authThrottle);
      const recipientDns = cfg.recipientChecks.dns
        ? new RecipientDnsCheck({ resolver: () => this.deliverer.resolver, ttlSeconds: cfg.recipientChecks.cacheSeconds })
        : undefined;
      const domainDeliverers = new Map<string, { key: string; deliverer: Deliverer }>();
      for (const d of cfg.domains) {
        // capture takes every message, those of domains with their own smarthost too: a dev relay sends nothing
        if (!d.smarthost || cfg.delivery.mode === 'capture') continue;
        const route: DeliveryConfig = { ...cfg.delivery, mode: 'smarthost', smarthosts: [d.smarthost] };
        const key = JSON.stringify({ route, outbound: cfg.outbound });
        const have = this.domainDeliverers.get(d.domain);
        if (have?.key === key) { domainDeliverers.set(d.domain, have); continue; }
        const deliverer = new Deliverer({ config: route, outbound, log: this.log.child({ domain: d.domain }), oauth2: this.oauth2, metrics: this.metrics, stsPolicies: this.stsPolicies });
        created.push(deliverer);
        domainDeliverers.set(d.domain, { key, deliverer });
      }
      const webhooks = new Map<string, WebhookDispatcher>();
      const reopen = new Map<string, RelayConfig['webhooks'][number]>();
      for (const w of cfg.webhooks) {
        const id = webhookId(w.url);
        const have = this.webhooks.get(id);
        if (have && JSON.stringify(have.config) === JSON.stringify(w)) { webhooks.set(id, have); continue; }
        // A changed hook keeps its outbox directory: the old dispatcher closes first at commit.
        if (have) reopen.set(id, w);
        else webhooks.set(id, await this.openWebhook(cfg, id, w, created));
      }
      return { cfg, limiter, limiterKey, authThrottle, throttleKey, recipientDns, domainDeliverers, webhooks, reopen, created, outbound };
    } catch (err) {
      await Promise.allSettled(created.map(async (c) => c.close()));
      throw err;
    }
  }

  private async openWebhook(cfg: RelayConfig, id: string, w: RelayConfig['webhooks'][number], created: Array<{ close(): unknown }>): Promise<WebhookDispatcher> {
    const d = await WebhookDispatcher.open({
      dir: path.join(cfg.dataDir, 'webhooks', id), config: w, logger: this.log, registry: this.metrics.registry, outbound: () => this.outbound,
    });
    created.push(d);
    return d;
  }

  private async discard(p: Prepared): Promise<void> {
    await Promise.allSettled(p.created.map(async (c) => c.close()));
  }

  /** Swaps prepared components in and closes what they replace. Cannot fail half-way. */
  private async commitComponents(p: Prepared): Promise<void> {
    if (p.limiter) { void this.limiter?.close(); this.limiter = p.limiter; this.limiterKey = p.limiterKey; }
    if (p.authThrottle) { this.authThrottle?.close(); this.authThrottle = p.authThrottle; this.authThrottleKey = p.throttleKey; }
    this.recipientDns = p.recipientDns;
    this.outbound = p.outbound;
    for (const [domain, d] of this.domainDeliverers) {
      if (p.domainDeliverers.get(domain) !== d) void d.deliverer.close();
    }
    this.domainDeliverers = p.domainDeliverers;
    for (const [id, d] of this.webhooks) if (p.webhooks.get(id) !== d) await d.close().catch(() => {});
    // Changed hooks reopen on their outbox now that the old dispatcher let go of it.
    for (const [id, w] of p.reopen) {
      try {
        p.webhooks.set(id, await this.openWebhook(p.cfg, id, w, p.created));
      } catch (err) {
        this.log.error({ err: (err as Error).message, url: w.url }, 'webhook could not be reopened; its events wait in the outbox');
      }
    }
    this.webhooks = p.webhooks;
  }

  private emitWebhook(e: Parameters<WebhookDispatcher['emit']>[0]): void {
    for (const d of this.webhooks.values()) {
      d.emit(e).catch((err: Error) => this.log.error({ queueId: e.queueId, err: err.message }, 'webhook event not recorded'));
    }
  }

  private onDeliveryEvent(e: DeliveryEvent): void {
    // A bounce lands on the list of the sender domain whose mail bounced, so one tenant's
    // destinations never decide what another may send. Bounces of DSNs (null sender) have no
    // tenant to charge and suppress nothing.
    const senderDomain = e.from ? domainOf(e.from) : '';
    if (e.type === 'bounced' && this.suppression && isHardBounce(e.enhanced) && senderDomain) {
      const ttl = this.config.suppression.ttlHours * 3_600_000;
      const scope = this.config.suppression.scope === 'platform' ? PLATFORM : senderDomain;
      this.suppression.add(e.recipient, { reason: e.response, ...(e.enhanced ?? e.code ? { code: e.enhanced ?? String(e.code) } : {}), source: `queue ${e.queueId}` }, ttl, scope)
        .catch((err: Error) => this.log.error({ queueId: e.queueId, err: err.message }, 'suppression add failed'));
    }
    this.emitWebhook({
      type: e.type, queueId: e.queueId, recipient: e.recipient, from: e.from, response: e.response,
      ...(e.code !== undefined ? { code: e.code } : {}),
    });
    this.opts.onEvent?.(e);
  }

  private tlsFingerprint = '';

  private fingerprint(tls: { key: Buffer; cert: Buffer }): string {
    return crypto.createHash('sha256').update(tls.cert).update(tls.key).digest('hex');
  }

  private tlsMaterial(cfg: RelayConfig = this.config): { key: Buffer; cert: Buffer } | undefined {
    const t = cfg.tls;
    if (t.certFile && t.keyFile) {
      const pair = { cert: fs.readFileSync(t.certFile), key: fs.readFileSync(t.keyFile) };
      // Fails on a key that does not match its certificate, before anything uses the pair.
      tls.createSecureContext(pair);
      return pair;
    }
    if (t.selfSigned) {
      const files = ensureSelfSignedCert(cfg.dataDir, cfg.hostname);
      return { cert: fs.readFileSync(files.certFile), key: fs.readFileSync(files.keyFile) };
    }
    return undefined;
  }

  listenerAddresses(): Record<string, { host: string; port: number }> {
    return this.intake.addresses();
  }

  httpAddress(): { host: string; port: number } {
    const a = this.httpServer.address() as { address: string; port: number };
    return { host: a.address, port: a.port };
  }

  /**
   * Re-reads the config file. Resolves false (and everything keeps the old config) when the
   * file, or anything it names, is invalid. Reloads run one at a time.
   */
  reload(reason = 'signal'): Promise<boolean> {
    this.reloading = this.reloading.then(() => this.reloadNow(reason));
    return this.reloading;
  }

  private async reloadNow(reason: string): Promise<boolean> {
    if (!this.opts.configFile || this.stopping) return false;
    let prepared: Prepared | undefined;
    try {
      const next = loadConfigFile(this.opts.configFile);
      const runtime = buildRuntime(next);
      if (JSON.stringify(next.listeners) !== JSON.stringify(this.config.listeners)) this.log.warn('listener changes take effect at the next restart');
      // Everything that reads files or can refuse is done before anything is swapped.
      const tlsPair = this.tlsMaterial(next);
      prepared = await this.prepareComponents(next);
      this.deliverer.updateConfig(next.delivery, prepared.outbound); // refuses (throws) without changing anything
      await this.commitComponents(prepared);
      this.runner.setPolicy(next.queue, next.queue.concurrency);
      this.store.setMemoryCopyBytes(next.queue.memoryCopyBytes);
      this.runtimeState = runtime;
      // Renewed certificates (cert-manager rewrites the Secret) apply to new handshakes.
      const handoffListener = (c: RelayConfig) => (c.handoff ? `${c.handoff.host}:${c.handoff.port}:${c.handoff.annotationsFile ?? ''}` : '');
      if (handoffListener(next) !== handoffListener(this.config)) this.log.warn('hand-off listener and annotations file changes take effect at the next restart');
      if (tlsPair && this.fingerprint(tlsPair) !== this.tlsFingerprint) {
        this.intake.updateTls(tlsPair);
        this.handoffReceiver?.updateTls(tlsPair);
        this.tlsFingerprint = this.fingerprint(tlsPair);
        this.log.info({ reason }, 'TLS certificate reloaded');
      }
      this.metrics.configReloads.inc({ result: 'ok' });
      this.log.info({ reason, file: this.opts.configFile }, 'config reloaded');
      this.watchFiles();
      return true;
    } catch (err) {
      if (prepared) await this.discard(prepared);
      this.metrics.configReloads.inc({ result: 'invalid' });
      const issues = err instanceof ConfigError ? err.issues : [(err as Error).message];
      this.log.error({ reason, file: this.opts.configFile, issues }, 'new config refused, the previous one keeps serving');
      return false;
    }
  }

  // Polling stat() follows symlinks, which is what a Kubernetes ConfigMap or Secret
  // volume swaps on update; an inotify watch on the file itself would miss that.
  private watchFiles(): void {
    if (!this.opts.configFile) return;
    const files = [this.opts.configFile, ...referencedFiles(this.config)];
    for (const f of this.watched) if (!files.includes(f)) fs.unwatchFile(f);
    const interval = this.opts.watchIntervalMs ?? Number(process.env.MAILFLEET_WATCH_INTERVAL_MS ?? 2000);
    for (const f of files) {
      if (this.watched.includes(f)) continue;
      fs.watchFile(f, { interval, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void this.reload(`changed: ${f}`);
      });
    }
    this.watched = files;
  }

  /**
   * SIGTERM: readiness off at once (the Service stops sending new clients); everything is
   * bounded by limits.drainTimeout from here. Intake stops: idle sessions get 421 at once,
   * open transactions may finish until the deadline. Delivery keeps going meanwhile; at the
   * deadline attempts still running are aborted and their recipients stay queued. What
   * follows (closing pools, webhooks, journals) takes well under 2 s.
   *
   * With handoff.onShutdown (a queue that dies with the pod) the hand-off to the peers runs
   * beside the session drain and delivery from the start (a message in an attempt is left to
   * it), until the queue is empty or the deadline; what the deadline's abort freed gets
   * SHUTDOWN_HANDOFF_GRACE_MS more. Whatever is still queued then is logged as lost.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const deadline = Date.now() + this.config.limits.drainTimeout;
      const handOver = this.config.handoff?.onShutdown === true ? this.handoffSender : undefined;
      this.ready = false;
      this.log.info({ drainTimeoutMs: this.config.limits.drainTimeout, handOver: handOver !== undefined }, handOver
        ? 'shutting down: readiness off, draining sessions, handing the queue to the peers'
        : 'shutting down: readiness off, draining sessions');
      for (const f of this.watched) fs.unwatchFile(f);
      this.drainWatch?.close();
      handOver?.start();
      // Without onShutdown a hand-off in progress ends here; its message stays queued (the peer may have it too: at-least-once).
      await Promise.all([this.intake?.close(deadline), handOver ? undefined : this.handoffSender?.stop(), this.handoffReceiver?.close()]);
      if (handOver) await handOver.emptied(deadline);
      await this.runner?.stop(deadline);
      if (handOver) {
        await handOver.emptied(deadline + SHUTDOWN_HANDOFF_GRACE_MS);
        await handOver.stop();
        this.reportNotHandedOff(handOver.handedOff);
      }
      await this.deliverer?.close(CLOSE_WAIT_MS);
      await Promise.all([...this.domainDeliverers.values()].map((d) => d.deliverer.close(CLOSE_WAIT_MS)));
      await Promise.all([...this.webhooks.values()].map((d) => d.close()));
      await this.fleetSuppression?.close();
      await this.suppression?.close();
      await this.limiter?.close();
      this.authThrottle?.close();
      const closed = new Promise<void>((resolve) => this.httpServer ? this.httpServer.close(() => resolve()) : resolve());
      this.httpServer?.closeAllConnections();
      await closed;
      this.releaseDataDir?.();
      this.log.info('relay stopped');
    })();
    return this.stopping;
  }

  /** The shutdown hand-off is over: what is still queued goes with this pod's data directory. */
  private reportNotHandedOff(handedOff: number): void {
    const ids = [...this.store.messages()].map((q) => q.meta.id);
    if (ids.length === 0) {
      this.log.info({ handedOff }, 'shutdown hand-off complete: the queue is empty');
      return;
    }
    this.log.error({
      notHandedOff: ids.length, handedOff, queueIds: ids.slice(0, MAX_LOGGED_IDS),
      ...(ids.length > MAX_LOGGED_IDS ? { queueIdsNotListed: ids.length - MAX_LOGGED_IDS } : {}),
    }, 'shutdown hand-off incomplete: these queued messages could not be handed to a peer and are lost with this pod\'s emptyDir queue (unless its data directory outlives it)');
  }
}
