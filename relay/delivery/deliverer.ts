// Outbound delivery of one queued job: routes recipients (MX per domain, or the smarthost
// failover list), sends over pooled connections, and reports one outcome per recipient.
// Retrying later is the queue's business; this module makes one attempt per call and
// never throws for delivery errors.
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.ts';
import { messageStream } from './body.ts';
import { CaptureSink } from './capture.ts';
import { MxResolver } from './mx.ts';
import { OAuth2Tokens, type OAuth2Login } from './oauth2/index.ts';
import type { OAuth2Credential } from './oauth2/credential.ts';
import { fromError, fromInfo, hostFailure, type HostFailure, type SmtpError } from './outcome.ts';
import { PoolRegistry, remoteOf, type OutgoingMail, type PoolSettings, type PoolTarget } from './pools.ts';
import type { DeliveryConfig, SmarthostConfig } from './schema.ts';
import { Semaphore } from './semaphore.ts';
import { NO_SMTPUTF8, needingSmtpUtf8, noSmtpUtf8Response } from './smtputf8.ts';
import { HopProbe } from './hop-probe.ts';
import { dsnGroups } from './dsn-groups.ts';
import { TargetHealth, type HealthPolicy } from './target-health.ts';
import { OutboundPolicy, OutboundRefused } from '../outbound/targets.ts';
import type { DeliveryJob, RecipientOutcome } from './types.ts';
import { domainOf } from '../util/address.ts';
import { AbortFanout } from '../util/abort-fanout.ts';
import type { Metrics } from '../metrics.ts';
import { MtaSts, StsPolicyStore } from './mta-sts.ts';
import { answeredResult, explicitDecision, mxAllowed, mxDecision, type TlsDecision, type TlsResult } from './tls-policy.ts';

export interface DelivererOptions {
  config: DeliveryConfig;
  log: Logger;
  /** Reads a secret file; default: the file's UTF-8 content, trimmed. */
  readSecret?: (path: string) => string;
  /** Token caches shared with other deliverers of the relay; default: this deliverer's own. */
  oauth2?: OAuth2Tokens;
  /** Where mode 'capture' writes its .eml files (the relay passes <dataDir>/captured). */
  captureDir?: string;
  /** Which addresses smarthosts and MX hosts may resolve to; default: the refusing policy. */
  outbound?: OutboundPolicy;
  /** TLS counters (mailfleet_delivery_tls_total, mailfleet_mta_sts_lookups_total); none counted without. */
  metrics?: Pick<Metrics, 'deliveryTls' | 'mtaStsLookups'>;
  /** MTA-STS policies, shared by the relay's deliverers and persisted; default: this deliverer's own, in memory. */
  stsPolicies?: StsPolicyStore;
}

type Route = DeliveryConfig['mode'];

/** Config with the secrets and CA files it references already read. */
interface Resolved {
  config: DeliveryConfig;
  smarthosts: { cfg: SmarthostConfig; name: string; pass?: string; ca?: string; oauth2?: OAuth2Credential }[];
  resolver: MxResolver;
  /** mx.caFile's content: trusted besides the system CAs wherever an MX certificate is verified. */
  mxCa?: string;
  /** MX mode with mtaSts.enabled. */
  mtaSts?: MtaSts;
}

/** 4.7.4 / 4.7.5: the TLS a policy required could not be had (outcome.ts hostFailure). */
const TLS_FAILURE = /^4\.7\.[45]$/;

/** Recipients per transaction (RFC 5321 §4.5.3.1.8 guarantees servers take at least 100). */
const MAX_RCPTS_PER_TRANSACTION = 100;

function poolSettings(c: DeliveryConfig): PoolSettings {
  return {
    heloName: c.heloName,
    connectTimeoutMs: c.connectTimeoutMs,
    greetingTimeoutMs: c.greetingTimeoutMs,
    socketTimeoutMs: c.socketTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    maxMessagesPerConnection: c.maxMessagesPerConnection,
  };
}

function healthPolicy(c: DeliveryConfig): HealthPolicy {
  return { backoffMs: c.hostDownBackoffMs, maxBackoffMs: Math.max(c.hostDownMaxBackoffMs, c.hostDownBackoffMs) };
}

/** A target as the health breaker sees it. */
interface Candidate { remote: string; pool: PoolTarget }

type AttemptResult =
  | { kind: 'answer'; outcomes: RecipientOutcome[] }
  | { kind: 'unreachable'; failure: HostFailure }
  /** The target went down while this attempt waited for one of its connections. */
  | { kind: 'skipped'; failure: HostFailure };

/** The recipient domain to route by (a root-anchored 'example.com.' is example.com); '' when unroutable. */
function routeDomain(rcpt: string): string {
  return rcpt.lastIndexOf('@') > 0 ? domainOf(rcpt).replace(/\.$/, '') : '';
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class Deliverer {
  private resolved: Resolved;
  private readonly log: Logger;
  private readonly readSecret: (path: string) => string;
  private readonly oauth2: OAuth2Tokens;
  /** Token logins per smarthost and user, so a send does not build a handler each time. */
  private readonly logins = new Map<string, OAuth2Login>();
  private readonly pools: PoolRegistry;
  private readonly capture: CaptureSink | undefined;
  /** Concurrency per recipient domain (MX mode); per-host caps live in the pools. */
  private readonly destinations = new Map<string, Semaphore>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly aborts = new AbortFanout();
  private readonly health: TargetHealth<Candidate>;
  private readonly probe = new HopProbe();
  private closed = false;
  private outbound: OutboundPolicy;
  private readonly metrics: DelivererOptions['metrics'];
  private readonly stsPolicies: StsPolicyStore;

  constructor(opts: DelivererOptions) {
    this.log = opts.log.child({ component: 'delivery' });
    this.readSecret = opts.readSecret ?? ((path) => readFileSync(path, 'utf8').trim());
    this.oauth2 = opts.oauth2 ?? new OAuth2Tokens({ log: this.log });
    this.capture = opts.captureDir ? new CaptureSink(opts.captureDir, this.log) : undefined;
    this.metrics = opts.metrics;
    this.stsPolicies = opts.stsPolicies ?? new StsPolicyStore();
    this.outbound = opts.outbound ?? new OutboundPolicy();
    this.resolved = this.resolve(opts.config);
    this.pools = new PoolRegistry(poolSettings(opts.config), this.log);
    this.health = new TargetHealth<Candidate>({
      policy: healthPolicy(opts.config),
      probe: async (c) => {
        try {
          await this.pools.verify(c.pool);
        } catch (err) {
          const f = hostFailure(err as SmtpError, c.remote, c.pool.requireTls);
          // refused credentials (or an identity provider that is down) say nothing about the
          // host: the attempt defers with that reason, the host stays usable
          if (f.reachable) return;
          throw Object.assign(new Error(f.response), { enhanced: f.enhanced });
        }
      },
      onChange: (remote, state, detail) => (state === 'down'
        ? this.log.warn({ remote, ...detail }, 'delivery target marked down')
        : this.log.info({ remote }, 'delivery target is up again')),
    });
  }

  /** How the breaker sees a host ('host[ip]:port'), for tests. */
  targetState(remote: string): ReturnType<TargetHealth<Candidate>['stateOf']> {
    return this.health.stateOf(remote);
  }

  /** The MX resolver (and DNS cache) of the current config, shared with the RCPT-time check. */
  get resolver(): MxResolver {
    return this.resolved.resolver;
  }

  /**
   * Hot reload. Secrets and CA files are read first: if one is unreadable this throws and
   * the old config stays in force. Pools whose settings changed are retired (closed once
   * idle); new sends use new pools.
   */
  updateConfig(config: DeliveryConfig, outbound: OutboundPolicy = this.outbound): void {
    const next = this.resolve(config);
    this.resolved = next;
    this.logins.clear();
    this.outbound = outbound;
    const valid = new Set(next.config.mode === 'smarthost' ? next.smarthosts.map((s) => JSON.stringify(this.smarthostTarget(s))) : []);
    const mx = this.mxPolicy(next.config);
    const caps = new Set([next.config.maxConnectionsPerDestination, ...Object.values(next.config.destinations).map((d) => d.maxConnections)]);
    // an MX pool's TLS settings are part of its key: one made for a policy no longer in
    // force is simply not chosen again and closes once idle
    this.pools.update(poolSettings(config), (t) => t.route === 'mx'
      ? next.config.mode === 'mx' && t.port === mx.port && caps.has(t.maxConnections) && (t.ca === undefined || t.ca === next.mxCa)
      // a pool's ip is the smarthost's resolved address; the configured target had its host there
      : valid.has(JSON.stringify({ ...t, ip: t.host })));
    for (const [key, sem] of this.destinations) sem.setLimit(this.destinationCap(key));
    this.health.setPolicy(healthPolicy(config));
    this.log.info({ mode: config.mode, smarthosts: next.smarthosts.map((s) => s.name) }, 'delivery config updated');
  }

  /**
   * One attempt for every open recipient of the job. An aborted `signal` (shutdown) ends
   * the attempt at once: recipients without an answer yet are deferred, never lost.
   */
  async deliver(job: DeliveryJob, signal?: AbortSignal): Promise<RecipientOutcome[]> {
    const route: Route = this.resolved.config.mode;
    if (this.closed || signal?.aborted) {
      return job.recipients.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.3.2', response: 'relay is shutting down', route }));
    }
    const p = this.deliverAll(job, route, signal).catch((err: unknown) => {
      // a bug, not a delivery error: keep the mail, say what happened
      this.log.error({ queueId: job.id, err }, 'delivery failed unexpectedly');
      return job.recipients.map((recipient): RecipientOutcome => ({
        recipient, status: 'deferred', enhanced: '4.3.0', response: `internal delivery error: ${(err as Error).message}`, route,
      }));
    });
    this.inFlight.add(p);
    try {
      if (!signal) return await p;
      // Whatever is still waiting (a DNS answer, a probe) must not hold a shutdown past its
      // deadline: the abort answers for it; a send it might still start sees the aborted signal.
      let cancel = () => {};
      const cut = new Promise<RecipientOutcome[]>((resolve) => {
        cancel = this.aborts.on(signal, () => resolve(job.recipients.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.3.2', response: 'delivery aborted: relay is shutting down', route }))));
      });
      try {
        return await Promise.race([p, cut]);
      } finally {
        cancel();
      }
    } finally {
      this.inFlight.delete(p);
    }
  }

  /** Stops taking attempts; the ones running (already aborted at shutdown) end first, for at most waitMs. */
  async close(waitMs?: number): Promise<void> {
    this.closed = true;
    const running = Promise.allSettled([...this.inFlight]);
    if (waitMs === undefined) await running;
    else await Promise.race([running, new Promise((r) => setTimeout(r, waitMs).unref())]);
    await this.pools.close(waitMs);
  }

  // ---- routing ----

  private async deliverAll(job: DeliveryJob, route: Route, signal: AbortSignal | undefined): Promise<RecipientOutcome[]> {
    if (route === 'capture') return this.capture!.deliver(job); // resolve() made sure there is one
    const byRecipient = new Map<string, RecipientOutcome>();
    if (route === 'smarthost') {
      for (const o of await this.toSmarthosts(job, job.recipients, signal)) byRecipient.set(o.recipient, o);
    } else {
      const groups = new Map<string, string[]>();
      for (const r of job.recipients) {
        const d = routeDomain(r);
        if (!d) {
          byRecipient.set(r, { recipient: r, status: 'failed', enhanced: '5.1.3', response: `invalid recipient address '${r}'`, route });
          continue;
        }
        groups.set(d, [...(groups.get(d) ?? []), r]);
      }
      const results = await Promise.all([...groups].map(([domain, rcpts]) => this.toDomain(job, domain, rcpts, signal)));
      for (const o of results.flat()) byRecipient.set(o.recipient, o);
    }
    return job.recipients.map((r) => byRecipient.get(r) ?? {
      recipient: r, status: 'deferred', enhanced: '4.3.0', response: 'no outcome recorded (internal error)', route,
    });
  }

  private async toDomain(job: DeliveryJob, domain: string, rcpts: string[], signal: AbortSignal | undefined): Promise<RecipientOutcome[]> {
    const plan = await this.resolved.resolver.plan(domain);
    if (plan.kind === 'verdict') {
      this.log.info({ queueId: job.id, route: 'mx', destination: domain, recipients: rcpts.length, outcome: plan.status, response: plan.response }, 'delivery attempt');
      return rcpts.map((recipient) => ({ recipient, status: plan.status, enhanced: plan.enhanced, response: plan.response, route: 'mx' }));
    }
    // An MX host name is whatever the recipient's DNS says: it must not lead to our own
    // loopback or the cloud metadata service.
    // each target's address is judged once per attempt
    const judged = plan.targets.map((t) => ({ t, why: this.outbound.refusal(t.ip) }));
    const refused = judged.filter((x) => x.why);
    const reachable = judged.filter((x) => !x.why).map((x) => x.t);
    if (reachable.length === 0) {
      const response = `MX hosts of ${domain} resolve only to addresses this relay may not connect to: ${refused.map((r) => `${r.t.host}[${r.t.ip}] (${r.why})`).join(', ')}`;
      this.log.warn({ queueId: job.id, route: 'mx', destination: domain, recipients: rcpts.length, outcome: 'failed', response }, 'delivery attempt');
      return rcpts.map((recipient) => ({ recipient, status: 'failed', enhanced: '5.4.4', response, route: 'mx' }));
    }
    const policy = this.mxPolicy(this.resolved.config);
    const tls = await this.mxTlsDecision(domain);
    let usable = reachable;
    if (tls.sts) {
      const sts = tls.sts;
      const outside = reachable.filter((t) => !mxAllowed(t.host, sts));
      if (outside.length > 0) {
        const hosts = [...new Set(outside.map((t) => t.host))];
        this.countTls(tls, 'mx_mismatch');
        this.log.warn({ queueId: job.id, destination: domain, policy: tls.policy, stsId: sts.id, hosts, policyMx: sts.mx }, 'MX hosts not listed in the MTA-STS policy');
      }
      if (tls.policy === 'mta-sts-enforce') {
        usable = reachable.filter((t) => mxAllowed(t.host, sts));
        if (usable.length === 0) {
          // RFC 8461 §5.2: never deliver to an MX the policy does not list; the mail waits
          // (the policy or the MX may be fixed) and bounces only when it expires
          const response = `MTA-STS policy of ${domain} (enforce, id ${sts.id}) lists none of its MX hosts (${[...new Set(reachable.map((t) => t.host))].join(', ')}); policy mx: ${sts.mx.join(', ')}`;
          this.log.warn({ queueId: job.id, route: 'mx', destination: domain, recipients: rcpts.length, outcome: 'deferred', response }, 'delivery attempt');
          return rcpts.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.7.5', response, route: 'mx' }));
        }
      }
    }
    const targets = usable.map((t): PoolTarget => ({
      route: 'mx', host: t.host, ip: t.ip, port: policy.port, tls: 'starttls', requireTls: tls.requireTls,
      // nodemailer opens a new connection when a send starts before the previous one has
      // released its connection, so only the pool's own maxConnections truly caps
      // connections: a domain with its own cap gets pools sized to it
      rejectUnauthorized: tls.verify, maxConnections: this.destinationCap(domain),
      ...(tls.verify && this.resolved.mxCa ? { ca: this.resolved.mxCa } : {}),
    }));
    return this.throughTargets(job, domain, domain, rcpts, targets, 'mx', signal, () => tls);
  }

  /** The TLS decision for a recipient domain in MX mode (tls-policy.ts). */
  private async mxTlsDecision(domain: string): Promise<TlsDecision> {
    const own = this.destinationEntry(domain);
    const label = own?.entry.tls ? own.key : 'other';
    const explicit = explicitDecision(own?.entry.tls, label);
    if (explicit) return explicit;
    const mx = this.mxPolicy(this.resolved.config);
    const defaults = { requireTls: mx.requireTls, verify: mx.rejectUnauthorized };
    if (!this.resolved.mtaSts) return mxDecision(undefined, label, defaults);
    const answer = await this.resolved.mtaSts.policyFor(domain);
    return mxDecision(answer.policy, label, defaults);
  }

  /** A smarthost's decision: its destinations entry's tls, else its own settings. */
  private smarthostTlsDecision(target: PoolTarget, name: string): TlsDecision {
    const explicit = explicitDecision(this.destinationEntry(name)?.entry.tls, name);
    return explicit ?? { policy: 'none', label: name, requireTls: target.requireTls, verify: target.rejectUnauthorized };
  }

  private countTls(d: TlsDecision, result: TlsResult): void {
    this.metrics?.deliveryTls.inc({ destination: d.label, policy: d.policy, result });
  }

  private async toSmarthosts(job: DeliveryJob, rcpts: string[], signal: AbortSignal | undefined): Promise<RecipientOutcome[]> {
    // the list order is the failover order; each smarthost's cap is its pool's size
    const decisions = new Map<PoolTarget, TlsDecision>();
    const targets = this.resolved.smarthosts.map((s) => {
      const t = this.smarthostTarget(s, job.from);
      decisions.set(t, this.smarthostTlsDecision(t, s.name));
      return t;
    });
    return this.throughTargets(job, null, 'smarthost', rcpts, targets, 'smarthost', signal, (t) => decisions.get(t)!);
  }

  /**
   * For each transaction-sized chunk of recipients, the health breaker picks the first
   * target that is up (target-health.ts): the first host that answers decides; a host that
   * cannot be reached is marked down and the chunk goes to the next one at once. When every
   * target is down the chunk is deferred without opening a connection.
   */
  private async throughTargets(
    job: DeliveryJob, destKey: string | null, destination: string, rcpts: string[], targets: PoolTarget[], route: Route,
    signal: AbortSignal | undefined, tlsOf: (target: PoolTarget) => TlsDecision,
  ): Promise<RecipientOutcome[]> {
    const deferAll = (chunk: string[], response: string, enhanced: string, extra: Partial<RecipientOutcome> = {}) =>
      chunk.map((recipient): RecipientOutcome => ({ recipient, status: 'deferred', enhanced, response, route, ...extra }));
    let release: (() => void) | undefined;
    try {
      release = destKey ? await this.destination(destKey).acquire(signal) : undefined;
    } catch {
      return deferAll(rcpts, 'relay is shutting down', '4.3.2');
    }
    try {
      const out: RecipientOutcome[] = [];
      for (const chunk of chunks(rcpts, MAX_RCPTS_PER_TRANSACTION)) {
        const failures: { remote: string; failure: HostFailure }[] = [];
        let done: RecipientOutcome[] | undefined;
        const left: Candidate[] = targets.map((pool) => ({ remote: remoteOf(pool), pool }));
        // Bounded: every turn removes one target from `left`.
        while (!done && left.length > 0) {
          if (signal?.aborted) { done = deferAll(chunk, 'relay is shutting down', '4.3.2'); break; }
          const pick = await this.health.choose(left, route === 'smarthost' ? 'unknown' : 'up', signal);
          if (pick.kind === 'down') {
            if (failures.length === 0) {
              const what = route === 'mx' ? (targets.length > 1 ? 'every MX address' : 'the MX address') : (targets.length > 1 ? 'every smarthost' : 'the smarthost');
              done = deferAll(chunk, signal?.aborted ? 'relay is shutting down' : `${what} of ${destination} is marked down after failures (last: ${pick.reason})`, pick.enhanced);
              // down because the TLS its policy requires failed (at a probe, or earlier): a TLS failure too
              if (TLS_FAILURE.test(pick.enhanced) && left[0]) this.countTls(tlsOf(left[0].pool), 'failed');
            }
            break;
          }
          left.splice(left.indexOf(pick.target), 1);
          const r = await this.attempt(job, destination, chunk, pick.target.pool, { waitSignal: pick.signal, ...(signal ? { signal } : {}) }, tlsOf(pick.target.pool));
          if (r.kind === 'answer') {
            this.health.succeeded(pick.target.remote);
            done = r.outcomes;
            break;
          }
          // a 421 counts too: the host said it is closing the channel (and busy hosts say so)
          if (r.kind === 'unreachable' && !r.failure.reachable) this.health.failed(pick.target.remote, r.failure.response, r.failure.enhanced);
          failures.push({ remote: pick.target.remote, failure: r.failure });
        }
        if (!done) {
          const last = failures[failures.length - 1];
          const response = failures.length > 1
            ? `all ${failures.length} ${route === 'mx' ? 'MX addresses' : 'smarthosts'} failed: ${failures.map((f) => f.failure.response).join('; ')}`
            : last?.failure.response ?? 'no destination to try';
          done = deferAll(chunk, response, last?.failure.enhanced ?? '4.4.1', {
            ...(last?.failure.code ? { code: last.failure.code } : {}), ...(last ? { remote: last.remote } : {}),
          });
        }
        out.push(...done);
      }
      return out;
    } finally {
      release?.();
    }
  }

  /**
   * Recipients whose envelope needs SMTPUTF8 go to this target only if it announces it;
   * otherwise they fail here (smtputf8.ts) and the others, if any, are sent without them.
   */
  private async attempt(
    job: DeliveryJob, destination: string, rcpts: string[], configured: PoolTarget, signals: { waitSignal: AbortSignal; signal?: AbortSignal },
    tls: TlsDecision,
  ): Promise<AttemptResult> {
    const r = await this.attemptOn(job, destination, rcpts, configured, signals, tls);
    if (r.kind === 'answer') this.countTls(tls, answeredResult(tls));
    else if (r.kind === 'unreachable' && TLS_FAILURE.test(r.failure.enhanced)) this.countTls(tls, 'failed');
    return r;
  }

  private async attemptOn(
    job: DeliveryJob, destination: string, rcpts: string[], configured: PoolTarget, signals: { waitSignal: AbortSignal; signal?: AbortSignal },
    tls: TlsDecision,
  ): Promise<AttemptResult> {
    let target = configured;
    if (target.route === 'smarthost') {
      // Connect to the address checked here, not to a second lookup's answer.
      try {
        const [ip] = await this.outbound.resolve(target.host, `smarthost ${target.host}`);
        target = { ...target, ip: ip! };
      } catch (err) {
        const response = err instanceof OutboundRefused ? err.message : `smarthost ${target.host}: address lookup failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        this.log.warn({ queueId: job.id, route: 'smarthost', destination, remote: remoteOf(target), recipients: rcpts.length, outcome: 'unreachable', response }, 'delivery attempt');
        return { kind: 'unreachable', failure: { response, enhanced: err instanceof OutboundRefused ? '4.4.1' : '4.4.3' } };
      }
    }
    if (tls.policy === 'mta-sts-testing') await this.checkTestingPolicy(job, destination, target, tls);
    const utf8 = needingSmtpUtf8(job.from, rcpts);
    if (utf8.length === 0) return this.sendByDsn(job, destination, rcpts, target, signals);
    const remote = remoteOf(target);
    let supported: boolean;
    try {
      supported = await this.probe.announces(`${remote}/${target.tls}`, this.pools.sessionOptions(target), 'SMTPUTF8');
    } catch (err) {
      const r = fromError(rcpts, err as SmtpError, { remote, route: target.route }, false, target.requireTls);
      return r.kind === 'answer' ? r : { kind: 'unreachable', failure: r.failure };
    }
    if (supported) return this.sendByDsn(job, destination, rcpts, target, signals);
    const response = noSmtpUtf8Response(remote);
    this.log.info({ queueId: job.id, route: target.route, destination, remote, recipients: utf8.length, outcome: 'failed', code: NO_SMTPUTF8.code, response }, 'delivery attempt');
    const failed = utf8.map((recipient): RecipientOutcome => ({ recipient, ...NO_SMTPUTF8, response, remote, route: target.route }));
    const rest = rcpts.filter((r) => !utf8.includes(r));
    if (rest.length === 0) return { kind: 'answer', outcomes: failed };
    const sent = await this.sendByDsn(job, destination, rest, target, signals);
    return sent.kind === 'answer' ? { kind: 'answer', outcomes: [...failed, ...sent.outcomes] } : sent;
  }

  /**
   * A `testing` policy changes nothing about the delivery; what `enforce` would have
   * refused is reported: a session with TLS required and the certificate verified is tried
   * on a session of its own (cached per host for 10 minutes).
   */
  private async checkTestingPolicy(job: DeliveryJob, destination: string, target: PoolTarget, tls: TlsDecision): Promise<void> {
    const strict: PoolTarget = { ...target, requireTls: true, rejectUnauthorized: true, ...(this.resolved.mxCa ? { ca: this.resolved.mxCa } : {}) };
    const problem = await this.probe.verifiedTlsProblem(`${remoteOf(target)}/verified`, this.pools.sessionOptions(strict));
    if (!problem) return;
    this.countTls(tls, 'testing_failure');
    this.log.warn({ queueId: job.id, destination, remote: remoteOf(target), stsId: tls.sts?.id, problem }, 'MTA-STS testing policy: this delivery would fail under enforce (TLS with a verified certificate)');
  }

  /**
   * nodemailer takes one set of DSN parameters per transaction, so recipients with
   * different NOTIFY/ORCPT go in transactions of their own (dsn-groups.ts), one after the
   * other on the target. A NOTIFY=SUCCESS recipient that was delivered is marked with
   * whether the hop announced DSN (then the success notice is the hop's business).
   */
  private async sendByDsn(
    job: DeliveryJob, destination: string, rcpts: string[], target: PoolTarget, signals: { waitSignal: AbortSignal; signal?: AbortSignal },
  ): Promise<AttemptResult> {
    const groups = dsnGroups(job, rcpts);
    const outcomes: RecipientOutcome[] = [];
    for (const [i, g] of groups.entries()) {
      const r = await this.send(job, destination, g.rcpts, target, signals, g.dsn);
      if (r.kind === 'answer') { outcomes.push(...r.outcomes); continue; }
      // the first transaction decides whether this target is usable at all (failover)
      if (i === 0) return r;
      // the target went away between transactions: the rest waits for the retry
      for (const rest of groups.slice(i)) {
        outcomes.push(...rest.rcpts.map((recipient): RecipientOutcome => ({
          recipient, status: 'deferred', enhanced: r.failure.enhanced, response: r.failure.response, remote: remoteOf(target), route: target.route,
        })));
      }
      break;
    }
    const successWanted = outcomes.filter((o) => o.status === 'delivered' && job.rcptDsn?.[o.recipient]?.notify?.includes('SUCCESS'));
    if (successWanted.length > 0) {
      const hopDsn = await this.probe.announces(`${remoteOf(target)}/${target.tls}`, this.pools.sessionOptions(target), 'DSN').catch(() => false);
      for (const o of successWanted) o.nextHopDsn = hopDsn;
    }
    return { kind: 'answer', outcomes };
  }

  private async send(
    job: DeliveryJob, destination: string, rcpts: string[], target: PoolTarget, signals: { waitSignal: AbortSignal; signal?: AbortSignal },
    dsn?: OutgoingMail['dsn'],
  ): Promise<AttemptResult> {
    const remote = remoteOf(target);
    const base = { remote, route: target.route };
    const raw = messageStream(job);
    const started = Date.now();
    let result: AttemptResult;
    try {
      const info = await this.pools.send(target, { from: job.from, to: rcpts, raw, ...(dsn ? { dsn } : {}) }, signals);
      result = { kind: 'answer', outcomes: fromInfo(rcpts, info, base) };
    } catch (err) {
      if (signals.signal?.aborted) {
        // Shutdown: whatever the host did with a message it may have started to get, the
        // retry after the restart delivers it (at-least-once), so defer, never drop.
        result = { kind: 'answer', outcomes: rcpts.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.3.2', response: 'delivery aborted: relay is shutting down', ...base })) };
      } else if (signals.waitSignal.aborted && !raw.readableDidRead) {
        result = { kind: 'skipped', failure: { response: (signals.waitSignal.reason as Error).message, enhanced: '4.4.1' } };
      } else {
        result = fromError(rcpts, err as SmtpError, base, raw.readableDidRead, target.requireTls);
      }
    } finally {
      raw.destroy();
    }
    const fields = { queueId: job.id, route: target.route, destination, remote, recipients: rcpts.length, durationMs: Date.now() - started };
    if (result.kind === 'answer') {
      const outcomes = result.outcomes;
      const count = (s: string) => outcomes.filter((o) => o.status === s).length;
      const delivered = count('delivered');
      const outcome = delivered === rcpts.length ? 'delivered' : delivered > 0 ? 'partial' : count('failed') === rcpts.length ? 'failed' : 'deferred';
      const first = outcomes.find((o) => o.status !== 'delivered') ?? outcomes[0];
      this.log.info({ ...fields, outcome, delivered, deferred: count('deferred'), failed: count('failed'), code: first?.code, response: first?.response }, 'delivery attempt');
    } else if (result.kind === 'skipped') {
      this.log.debug({ ...fields, outcome: 'skipped', response: result.failure.response }, 'delivery attempt');
    } else {
      this.log.warn({ ...fields, outcome: 'unreachable', code: result.failure.code, response: result.failure.response }, 'delivery attempt');
    }
    return result;
  }

  // ---- config ----

  private resolve(config: DeliveryConfig): Resolved {
    if (config.mode === 'capture' && !this.capture) throw new Error("delivery.mode 'capture': this deliverer has no capture directory");
    const smarthosts = config.smarthosts.map((cfg, i) => {
      const name = cfg.name ?? `${cfg.host}:${cfg.port}`;
      const read = (what: string, path: string) => {
        try {
          return this.readSecret(path);
        } catch (err) {
          // the path is not a secret; the content never reaches a message
          throw new Error(`delivery.smarthosts[${i}] (${name}): cannot read ${what} ${path}: ${(err as Error).message}`);
        }
      };
      const o = cfg.auth?.oauth2;
      let oauth2: OAuth2Credential | undefined;
      if (o) {
        const opt = (what: string, path: string | undefined) => (path === undefined ? undefined : read(what, path));
        const src = o.microsoft ?? o.refreshToken;
        try {
          oauth2 = this.oauth2.credential(name, o, {
            clientSecret: opt('clientSecretFile', src?.clientSecretFile),
            certificate: opt('certificateFile', o.microsoft?.certificateFile),
            privateKey: opt('privateKeyFile', o.microsoft?.privateKeyFile),
            serviceAccountKey: opt('serviceAccountKeyFile', o.google?.serviceAccountKeyFile),
            refreshToken: opt('refreshTokenFile', o.refreshToken?.refreshTokenFile),
            ca: opt('tokenCaFile', o.tokenCaFile),
          });
        } catch (err) {
          if ((err as Error).message.startsWith('delivery.smarthosts[')) throw err;
          throw new Error(`delivery.smarthosts[${i}] (${name}): auth.oauth2: ${(err as Error).message}`);
        }
      }
      return {
        cfg, name,
        ...(cfg.auth?.passwordFile ? { pass: read('passwordFile', cfg.auth.passwordFile) } : {}),
        ...(cfg.caFile ? { ca: read('caFile', cfg.caFile) } : {}),
        ...(oauth2 ? { oauth2 } : {}),
      };
    });
    const resolver = new MxResolver({ dnsServers: config.mx.dnsServers, timeoutMs: config.mx.dnsTimeoutMs, maxAddresses: config.mx.maxAddresses });
    let mxCa: string | undefined;
    if (config.mx.caFile) {
      try {
        mxCa = this.readSecret(config.mx.caFile);
      } catch (err) {
        throw new Error(`delivery.mx.caFile: cannot read ${config.mx.caFile}: ${(err as Error).message}`);
      }
    }
    const mtaSts = config.mode === 'mx' && config.mtaSts.enabled
      ? new MtaSts({
        config: config.mtaSts, store: this.stsPolicies, resolver: resolver.dns, outbound: () => this.outbound, ca: mxCa,
        log: this.log, onLookup: (result) => this.metrics?.mtaStsLookups.inc({ result }),
      })
      : undefined;
    return { config, smarthosts, resolver, ...(mxCa ? { mxCa } : {}), ...(mtaSts ? { mtaSts } : {}) };
  }

  private mxPolicy(c: DeliveryConfig) {
    return { port: c.mx.port, requireTls: c.mx.requireTls, rejectUnauthorized: c.mx.tlsRejectUnauthorized ?? c.mx.requireTls };
  }

  /** `sender` is the envelope sender; with oauth2 userFromSender it is the login (but not the null sender). */
  private smarthostTarget(s: Resolved['smarthosts'][number], sender = ''): PoolTarget {
    const { cfg } = s;
    const target: PoolTarget = {
      route: 'smarthost', host: cfg.host, ip: cfg.host, port: cfg.port, tls: cfg.tls, requireTls: cfg.requireTls,
      rejectUnauthorized: cfg.tlsRejectUnauthorized, ca: s.ca,
      auth: cfg.auth && s.pass !== undefined ? { user: cfg.auth.user, pass: s.pass } : undefined,
      maxConnections: this.destinationCap(s.name),
    };
    // an explicit per-destination policy wins over the smarthost's own TLS settings
    const explicit = this.destinationEntry(s.name)?.entry.tls;
    if (explicit) {
      target.requireTls = explicit === 'require';
      target.rejectUnauthorized = explicit === 'require';
    }
    const o = cfg.auth?.oauth2;
    if (cfg.auth && o && s.oauth2) {
      const user = o.userFromSender && sender ? sender : cfg.auth.user;
      const id = `${s.oauth2.id}\0${user.toLowerCase()}`;
      let login = this.logins.get(id);
      if (!login) {
        if (this.logins.size >= 10_000) this.logins.clear();
        login = this.oauth2.login(s.oauth2, o, user, remoteOf(target));
        this.logins.set(id, login);
      }
      target.oauth2 = login;
    }
    return target;
  }

  private destination(key: string): Semaphore {
    let sem = this.destinations.get(key);
    if (!sem) {
      sem = new Semaphore(this.destinationCap(key));
      this.destinations.set(key, sem);
    }
    // forget idle destinations so MX mode does not keep one entry per domain ever seen
    if (this.destinations.size > 10_000) {
      for (const [k, s] of this.destinations) if (s.idle && k !== key) this.destinations.delete(k);
    }
    return sem;
  }

  /** Cap for a recipient domain or smarthost name: its `destinations` entry, else the default. */
  private destinationCap(name: string): number {
    return this.destinationEntry(name)?.entry.maxConnections ?? this.resolved.config.maxConnectionsPerDestination;
  }

  /** The `destinations` entry for a recipient domain or smarthost name (keys are case-insensitive). */
  private destinationEntry(name: string): { key: string; entry: DeliveryConfig['destinations'][string] } | undefined {
    const lower = name.toLowerCase();
    for (const [k, v] of Object.entries(this.resolved.config.destinations)) {
      if (k.toLowerCase() === lower) return { key: lower, entry: v };
    }
    return undefined;
  }
}
