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
}

type Route = DeliveryConfig['mode'];

/** Config with the secrets and CA files it references already read. */
interface Resolved {
  config: DeliveryConfig;
  smarthosts: { cfg: SmarthostConfig; name: string; pass?: string; ca?: string; oauth2?: OAuth2Credential }[];
  resolver: MxResolver;
}

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
  private readonly health: TargetHealth<Candidate>;
  private readonly probe = new HopProbe();
  private closed = false;
  private outbound: OutboundPolicy;

  constructor(opts: DelivererOptions) {
    this.log = opts.log.child({ component: 'delivery' });
    this.readSecret = opts.readSecret ?? ((path) => readFileSync(path, 'utf8').trim());
    this.oauth2 = opts.oauth2 ?? new OAuth2Tokens({ log: this.log });
    this.capture = opts.captureDir ? new CaptureSink(opts.captureDir, this.log) : undefined;
    this.resolved = this.resolve(opts.config);
    this.outbound = opts.outbound ?? new OutboundPolicy();
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
    this.pools.update(poolSettings(config), (t) => t.route === 'mx'
      ? next.config.mode === 'mx' && t.port === mx.port && t.requireTls === mx.requireTls
        && t.rejectUnauthorized === mx.rejectUnauthorized && caps.has(t.maxConnections)
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
      let onAbort: (() => void) | undefined;
      const cut = new Promise<RecipientOutcome[]>((resolve) => {
        onAbort = () => resolve(job.recipients.map((recipient) => ({ recipient, status: 'deferred', enhanced: '4.3.2', response: 'delivery aborted: relay is shutting down', route })));
        signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        return await Promise.race([p, cut]);
      } finally {
        signal.removeEventListener('abort', onAbort!);
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
    const refused = plan.targets.map((t) => ({ t, why: this.outbound.refusal(t.ip) })).filter((x) => x.why);
    const reachable = plan.targets.filter((t) => !this.outbound.refusal(t.ip));
    if (reachable.length === 0) {
      const response = `MX hosts of ${domain} resolve only to addresses this relay may not connect to: ${refused.map((r) => `${r.t.host}[${r.t.ip}] (${r.why})`).join(', ')}`;
      this.log.warn({ queueId: job.id, route: 'mx', destination: domain, recipients: rcpts.length, outcome: 'failed', response }, 'delivery attempt');
      return rcpts.map((recipient) => ({ recipient, status: 'failed', enhanced: '5.4.4', response, route: 'mx' }));
    }
    const policy = this.mxPolicy(this.resolved.config);
    const targets = reachable.map((t): PoolTarget => ({
      route: 'mx', host: t.host, ip: t.ip, port: policy.port, tls: 'starttls', requireTls: policy.requireTls,
      // nodemailer opens a new connection when a send starts before the previous one has
      // released its connection, so only the pool's own maxConnections truly caps
      // connections: a domain with its own cap gets pools sized to it
      rejectUnauthorized: policy.rejectUnauthorized, maxConnections: this.destinationCap(domain),
    }));
    return this.throughTargets(job, domain, domain, rcpts, targets, 'mx', signal);
  }

  private async toSmarthosts(job: DeliveryJob, rcpts: string[], signal: AbortSignal | undefined): Promise<RecipientOutcome[]> {
    // the list order is the failover order; each smarthost's cap is its pool's size
    const targets = this.resolved.smarthosts.map((s) => this.smarthostTarget(s, job.from));
    return this.throughTargets(job, null, 'smarthost', rcpts, targets, 'smarthost', signal);
  }

  /**
   * For each transaction-sized chunk of recipients, the health breaker picks the first
   * target that is up (target-health.ts): the first host that answers decides; a host that
   * cannot be reached is marked down and the chunk goes to the next one at once. When every
   * target is down the chunk is deferred without opening a connection.
   */
  private async throughTargets(
    job: DeliveryJob, destKey: string | null, destination: string, rcpts: string[], targets: PoolTarget[], route: Route,
    signal: AbortSignal | undefined,
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
            }
            break;
          }
          left.splice(left.indexOf(pick.target), 1);
          const r = await this.attempt(job, destination, chunk, pick.target.pool, { waitSignal: pick.signal, ...(signal ? { signal } : {}) });
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
    return { config, smarthosts, resolver };
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
    const c = this.resolved.config;
    const lower = name.toLowerCase();
    for (const [k, v] of Object.entries(c.destinations)) {
      if (k.toLowerCase() === lower && v.maxConnections) return v.maxConnections;
    }
    return c.maxConnectionsPerDestination;
  }
}
