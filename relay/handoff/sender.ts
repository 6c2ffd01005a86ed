// The draining side of the hand-off: every queued message goes to one of the peers (the
// pods that stay) over their hand-off listener, with its record; it leaves this queue only
// after the peer's 250 (at-least-once: a 250 lost on the way makes the peer see the same
// queue id again, which it answers "already queued"). A message in a delivery attempt right
// now is left to that attempt and looked at again next round. A peer name stands for every
// address it resolves to (a headless Service's ready pods), each tried and backed off on its
// own; this relay's own listener is never one of them. When no peer takes mail (none
// configured, all draining or unreachable) the relay keeps delivering its queue itself.
import crypto from 'node:crypto';
import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Logger } from '../log.ts';
import { messageStream } from '../delivery/body.ts';
import type { QueuedMessage, QueueStore } from '../queue/store.ts';
import { encodeRecord, hasReceipt, openRecipients } from './record.ts';
import { HANDOFF_USER, readFleetToken } from './receiver.ts';
import type { HandoffConfig } from './schema.ts';

export interface SenderDeps {
  config(): HandoffConfig;
  hostname: string;
  store: QueueStore;
  /** Takes a message away from delivery (false: an attempt runs now). */
  reserve(id: string): boolean;
  /** Gives it back (when it is still queued). */
  unreserve(id: string): void;
  /** This relay's own hand-off listener (its address as bound): never a peer. */
  self?: { host: string; port: number };
  log: Logger;
}

/** One address a peer entry stands for. */
export interface PeerTarget {
  /** The entry as configured (host:port), for the log. */
  peer: string;
  address: string;
  port: number;
  /** address:port: what a refusal backs off. */
  key: string;
}

/** How long a peer that refused or could not be reached is skipped. */
const PEER_BACKOFF_MS = 5_000;
/**
 * Peers are pods of the same cluster: a connection takes milliseconds, and one that takes
 * seconds is to an address whose pod is gone (DNS answers from before it left, no RST). A
 * shutdown hand-off has 10 s after the drain deadline: waiting 10 s for such an address
 * would spend all of it on one message.
 */
const CONNECT_TIMEOUT_MS = 3_000;
/** Wait between rounds that moved nothing (no peer, all refusing, all in delivery). */
const IDLE_ROUND_MS = 1_000;

class HandoffRefused extends Error {
  readonly permanent: boolean;
  constructor(message: string, permanent: boolean) {
    super(message);
    this.name = 'HandoffRefused';
    this.permanent = permanent;
  }
}

function splitPeer(peer: string): { host: string; port: number } {
  const i = peer.lastIndexOf(':');
  return { host: peer.slice(0, i), port: Number(peer.slice(i + 1)) };
}

const unmapped = (a: string) => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');

/**
 * Whether address:port is this relay's own listener. Bound to one address, only that one
 * is; bound to every address (0.0.0.0 in a pod), any of this host's: the interfaces (the pod
 * IP a headless Service's name resolves to) and loopback.
 */
export function isOwnListener(self: { host: string; port: number } | undefined, address: string, port: number): boolean {
  if (!self || port !== self.port) return false;
  const a = unmapped(address);
  if (self.host !== '0.0.0.0' && self.host !== '::') return a === unmapped(self.host);
  if (a.startsWith('127.') || a === '::1') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => unmapped(i.address) === a));
}

/** Every address a peer's host stands for: an IP as it is, a name through DNS (all its A and AAAA records). */
async function peerAddresses(host: string, cfg: HandoffConfig): Promise<string[]> {
  if (net.isIP(host)) return [host];
  if (!cfg.dnsServers) {
    // getaddrinfo honours the pod's DNS search path (relay-headless.ns.svc)
    return (await dns.lookup(host, { all: true })).map((a) => a.address);
  }
  const resolver = new dns.Resolver({ timeout: 5_000, tries: 2 });
  resolver.setServers(cfg.dnsServers);
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (out.length === 0 && v4.status === 'rejected') throw v4.reason as Error;
  return out;
}

export class HandoffSender {
  private readonly deps: SenderDeps;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly peerDownUntil = new Map<string, number>();
  /** Messages a peer refused for good (5xx): left to ordinary delivery. */
  private readonly refused = new Set<string>();
  private next = 0;
  /** The last resolution error per peer entry, so a name without records is logged once. */
  private readonly resolveErrors = new Map<string, string>();
  /** Sessions in progress: closed by stop(), so a shutdown never waits for a slow peer. */
  private readonly sessions = new Set<SMTPConnection>();
  handedOff = 0;

  constructor(deps: SenderDeps) {
    this.deps = deps;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run().catch((err: Error) => this.deps.log.error({ err: err.message }, 'hand-off loop failed; the queue is delivered from here'));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    for (const c of this.sessions) c.close();
    await this.loop;
    this.loop = undefined;
  }

  /** Resolves once the queue is empty, or at `until` (epoch ms), whichever comes first. */
  async emptied(until: number): Promise<void> {
    // Bounded by `until`.
    while (this.deps.store.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(50, Math.max(until - Date.now(), 1))));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  private async run(): Promise<void> {
    const log = this.deps.log.child({ component: 'handoff' });
    log.info({ queued: this.deps.store.size, peers: this.deps.config().peers }, 'draining: handing the queue to the peers');
    // Bounded by stop(): each round looks at a snapshot of the queue once, and at the peers'
    // addresses as DNS gives them then (a pod that left or came is seen next round).
    while (this.running) {
      const cfg = this.deps.config();
      const ids = [...this.deps.store.messages()].map((q) => q.meta.id).filter((id) => !this.refused.has(id));
      const targets = ids.length ? await this.targets(cfg, log) : [];
      if (targets.length === 0) { await this.sleep(IDLE_ROUND_MS); continue; }
      let moved = 0;
      const work = ids.slice();
      const worker = async () => {
        while (this.running && work.length) if (await this.handOne(work.shift()!, targets, cfg, log)) moved++;
      };
      await Promise.all(Array.from({ length: Math.min(cfg.connections, ids.length) }, worker));
      if (moved === 0) await this.sleep(IDLE_ROUND_MS);
    }
  }

  /** Every address of every peer, once each, without this relay's own listener. */
  private async targets(cfg: HandoffConfig, log: Logger): Promise<PeerTarget[]> {
    const out = new Map<string, PeerTarget>();
    await Promise.all(cfg.peers.map(async (peer) => {
      const { host, port } = splitPeer(peer);
      let addresses: string[];
      try {
        addresses = await peerAddresses(host, cfg);
      } catch (err) {
        // a headless Service without a ready pod has no records: nobody to hand to right now
        // (said once per peer and error, not every round)
        const msg = (err as Error).message;
        if (this.resolveErrors.get(peer) !== msg) log.warn({ peer, err: msg }, 'hand-off peer name did not resolve');
        this.resolveErrors.set(peer, msg);
        return;
      }
      this.resolveErrors.delete(peer);
      for (const address of addresses) {
        if (isOwnListener(this.deps.self, address, port)) continue;
        const key = net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
        if (!out.has(key)) out.set(key, { peer, address, port, key });
      }
    }));
    return [...out.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  /** The addresses to try for one message, starting with the next in turn, skipping those backing off. */
  private targetsInTurn(targets: PeerTarget[]): PeerTarget[] {
    const now = Date.now();
    const start = this.next++ % targets.length;
    const order = [...targets.slice(start), ...targets.slice(0, start)];
    return order.filter((t) => (this.peerDownUntil.get(t.key) ?? 0) <= now);
  }

  private async handOne(id: string, targets: PeerTarget[], cfg: HandoffConfig, log: Logger): Promise<boolean> {
    const q = this.deps.store.get(id);
    if (!q) return false;
    // Every recipient final but the file still here (an attempt crashed): delivery cleans it up.
    if (openRecipients(q).length === 0) { this.refused.add(id); return false; }
    if (!this.deps.reserve(id)) return false;
    try {
      for (const t of this.targetsInTurn(targets)) {
        if (!this.running) return false;
        try {
          const response = await this.sendTo(t, q, cfg);
          await this.deps.store.remove(id);
          this.handedOff++;
          log.info({ queueId: id, peer: t.peer, address: t.key, response }, 'handed off');
          return true;
        } catch (err) {
          const permanent = err instanceof HandoffRefused && err.permanent;
          log.warn({ queueId: id, peer: t.peer, address: t.key, err: (err as Error).message }, permanent ? 'hand-off refused for good; delivered from here' : 'hand-off failed; trying another peer');
          if (permanent) { this.refused.add(id); return false; }
          this.peerDownUntil.set(t.key, Date.now() + PEER_BACKOFF_MS);
        }
      }
      return false;
    } finally {
      this.deps.unreserve(id);
    }
  }

  /** One SMTP session: STARTTLS, AUTH CRAM-MD5 with the fleet token, one transaction, QUIT. */
  private async sendTo(target: PeerTarget, q: QueuedMessage, cfg: HandoffConfig): Promise<string> {
    const token = readFleetToken(cfg.tokenFile);
    const nonce = crypto.randomBytes(16).toString('hex');
    const record = { meta: q.meta, state: q.state, receipt: { nonce } };
    const open = openRecipients(record);
    const conn = new SMTPConnection({
      host: target.address, port: target.port, secure: false, requireTLS: true, name: this.deps.hostname,
      // The peers' certificate names the relay's public hostname, not the pod: the fleet
      // token (never sent, CRAM-MD5) and the NetworkPolicy are what admit a peer.
      tls: { rejectUnauthorized: false },
      connectionTimeout: CONNECT_TIMEOUT_MS, greetingTimeout: 10_000, socketTimeout: 120_000, logger: false, debug: false,
    });
    this.sessions.add(conn);
    const body = messageStream({ bodyPath: q.path, bodyOffset: 0, size: q.meta.size, prepend: encodeRecord(record) });
    try {
      return await new Promise<string>((resolve, reject) => {
        const fail = (err: Error & { responseCode?: number }) => reject(new HandoffRefused(err.message, (err.responseCode ?? 0) >= 500 && (err.responseCode ?? 0) !== 530 && (err.responseCode ?? 0) !== 535));
        conn.once('error', fail);
        conn.connect(() => {
          conn.login({ user: HANDOFF_USER, pass: token, method: 'CRAM-MD5' } as never, (err) => {
            if (err) return fail(err);
            conn.send({ from: q.meta.from, to: open }, body, (err2, info) => {
              if (err2) return fail(err2);
              if (info.rejected.length) return fail(Object.assign(new Error(`recipients refused: ${info.rejected.join(', ')}`), { responseCode: 550 }));
              // A 250 without the receipt came from something without the fleet token:
              // the message stays here (that listener has seen a copy; nothing is lost).
              if (!hasReceipt(info.response, token, q.meta.id, nonce)) return reject(new Error(`the peer answered "${info.response}" without a receipt for the fleet token: not a relay of this fleet; the message stays queued here`));
              resolve(info.response);
            });
          });
        });
      });
    } finally {
      this.sessions.delete(conn);
      body.destroy();
      conn.quit();
      conn.close();
    }
  }
}
