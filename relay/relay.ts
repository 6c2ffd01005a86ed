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
import { Intake, type IntakePolicy } from './smtp/intake.ts';
import { startHttpServer } from './http/server.ts';
import { ensureSelfSignedCert } from './tls/selfsigned.ts';

export interface RelayOptions {
  config: RelayConfig;
  configFile?: string; // watched for changes when set
  log: Logger;
  metrics?: Metrics;
  watchIntervalMs?: number;
  policy?: (relay: Relay) => IntakePolicy;
  onEvent?: (e: DeliveryEvent) => void;
}

export class Relay {
  readonly log: Logger;
  readonly metrics: Metrics;
  private runtimeState: RelayRuntime;
  private readonly opts: RelayOptions;
  private store!: QueueStore;
  private runner!: DeliveryRunner;
  private deliverer!: Deliverer;
  private intake!: Intake;
  private httpServer!: http.Server;
  private watched: string[] = [];
  private ready = false;
  private stopping: Promise<void> | undefined;

  constructor(opts: RelayOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.metrics = opts.metrics ?? createMetrics();
    this.runtimeState = buildRuntime(opts.config);
  }

  get config(): RelayConfig { return this.runtimeState.config; }
  get runtime(): RelayRuntime { return this.runtimeState; }
  get queue(): QueueStore { return this.store; }

  async start(): Promise<void> {
    const cfg = this.config;
    const { store, recovered, discarded } = await QueueStore.open(path.join(cfg.dataDir, 'queue'));
    this.store = store;
    this.log.info({ dataDir: cfg.dataDir, recovered, discarded }, 'queue opened');
    this.deliverer = new Deliverer({ config: cfg.delivery, log: this.log.child({ component: 'delivery' }) });
    this.runner = new DeliveryRunner({
      store, deliverer: this.deliverer, policy: cfg.queue, concurrency: cfg.queue.concurrency,
      hostname: cfg.hostname, log: this.log, metrics: this.metrics, ...(this.opts.onEvent ? { onEvent: this.opts.onEvent } : {}),
    });
    this.intake = new Intake({
      runtime: () => this.runtimeState, store, onQueued: (q) => this.runner.enqueue(q), log: this.log, metrics: this.metrics,
      ...(this.tlsMaterial() ? { tls: this.tlsMaterial()! } : {}),
      ...(this.opts.policy ? { policy: this.opts.policy(this) } : {}),
    });
    this.httpServer = await startHttpServer(cfg.http.host, cfg.http.port, this.metrics.registry, {
      live: () => true,
      ready: () => this.ready,
      beforeScrape: () => {
        this.metrics.queueMessages.set(this.store.size);
        const oldest = this.store.oldestReceivedAt();
        this.metrics.queueOldest.set(oldest ? (Date.now() - oldest) / 1000 : 0);
      },
    });
    await this.intake.start(cfg.listeners);
    this.runner.start();
    this.watchFiles();
    this.ready = true;
    this.log.info({ listeners: this.intake.addresses(), http: this.httpAddress() }, 'relay ready');
  }

  private tlsMaterial(): { key: Buffer; cert: Buffer } | undefined {
    const t = this.config.tls;
    if (t.certFile && t.keyFile) return { cert: fs.readFileSync(t.certFile), key: fs.readFileSync(t.keyFile) };
    if (t.selfSigned) {
      const files = ensureSelfSignedCert(this.config.dataDir, this.config.hostname);
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

  /** Re-reads the config file. Returns false (and keeps the old config) when it is invalid. */
  reload(reason = 'signal'): boolean {
    if (!this.opts.configFile) return false;
    try {
      const next = loadConfigFile(this.opts.configFile);
      const runtime = buildRuntime(next);
      const before = JSON.stringify(this.config.listeners);
      if (JSON.stringify(next.listeners) !== before) this.log.warn('listener changes take effect at the next restart');
      this.deliverer.updateConfig(next.delivery);
      this.runner.setPolicy(next.queue, next.queue.concurrency);
      this.runtimeState = runtime;
      this.metrics.configReloads.inc({ result: 'ok' });
      this.log.info({ reason, file: this.opts.configFile }, 'config reloaded');
      this.watchFiles();
      return true;
    } catch (err) {
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
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) this.reload(`changed: ${f}`);
      });
    }
    this.watched = files;
  }

  /**
   * SIGTERM: readiness off at once (the Service stops sending new clients), intake stops
   * and open sessions get the drain time, then delivery workers finish their attempt.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      this.log.info('shutting down: readiness off, draining sessions');
      for (const f of this.watched) fs.unwatchFile(f);
      await this.intake?.close(this.config.limits.drainTimeout);
      await this.runner?.stop();
      await this.deliverer?.close();
      const closed = new Promise<void>((resolve) => this.httpServer ? this.httpServer.close(() => resolve()) : resolve());
      this.httpServer?.closeAllConnections();
      await closed;
      this.log.info('relay stopped');
    })();
    return this.stopping;
  }
}
