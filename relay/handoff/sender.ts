// The draining side of the scale-down hand-off: every queued message goes to one of the
// peers (the pods that stay) over their hand-off listener, with its record; it leaves this
// queue only after the peer's 250 (at-least-once: a 250 lost on the way makes the peer see
// the same queue id again, which it answers "already queued"). A message in a delivery
// attempt right now is left to that attempt and looked at again next round. When no peer
// takes mail (none configured, all draining or unreachable) the relay keeps delivering its
// queue itself, as always.
import dns from 'node:dns/promises';
import net from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Logger } from '../log.ts';
import { messageStream } from '../delivery/body.ts';
import type { QueuedMessage, QueueStore } from '../queue/store.ts';
import { encodeRecord, openRecipients } from './record.ts';
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
  log: Logger;
}

/** How long a peer that refused or could not be reached is skipped. */
const PEER_BACKOFF_MS = 5_000;
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

export class HandoffSender {
  private readonly deps: SenderDeps;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly peerDownUntil = new Map<string, number>();
  /** Messages a peer refused for good (5xx): left to ordinary delivery. */
  private readonly refused = new Set<string>();
  private next = 0;
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

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  private async run(): Promise<void> {
    const log = this.deps.log.child({ component: 'handoff' });
    log.info({ queued: this.deps.store.size, peers: this.deps.config().peers }, 'draining: handing the queue to the peers');
    // Bounded by stop(): each round looks at a snapshot of the queue once.
    while (this.running) {
      const cfg = this.deps.config();
      const ids = [...this.deps.store.messages()].map((q) => q.meta.id).filter((id) => !this.refused.has(id));
      if (cfg.peers.length === 0 || ids.length === 0) { await this.sleep(IDLE_ROUND_MS); continue; }
      let moved = 0;
      const work = ids.slice();
      const worker = async () => {
        while (this.running && work.length) if (await this.handOne(work.shift()!, cfg, log)) moved++;
      };
      await Promise.all(Array.from({ length: Math.min(cfg.connections, ids.length) }, worker));
      if (moved === 0) await this.sleep(IDLE_ROUND_MS);
    }
  }

  /** The peers to try for one message, starting with the next in turn, skipping those backing off. */
  private peersInTurn(peers: string[]): string[] {
    const now = Date.now();
    const start = this.next++ % peers.length;
    const order = [...peers.slice(start), ...peers.slice(0, start)];
    return order.filter((p) => (this.peerDownUntil.get(p) ?? 0) <= now);
  }

  private async handOne(id: string, cfg: HandoffConfig, log: Logger): Promise<boolean> {
    const q = this.deps.store.get(id);
    if (!q) return false;
    // Every recipient final but the file still here (an attempt crashed): delivery cleans it up.
    if (openRecipients(q).length === 0) { this.refused.add(id); return false; }
    if (!this.deps.reserve(id)) return false;
    try {
      for (const peer of this.peersInTurn(cfg.peers)) {
        if (!this.running) return false;
        try {
          const response = await this.sendTo(peer, q, cfg);
          await this.deps.store.remove(id);
          this.handedOff++;
          log.info({ queueId: id, peer, response }, 'handed off');
          return true;
        } catch (err) {
          const permanent = err instanceof HandoffRefused && err.permanent;
          log.warn({ queueId: id, peer, err: (err as Error).message }, permanent ? 'hand-off refused for good; delivered from here' : 'hand-off failed; trying another peer');
          if (permanent) { this.refused.add(id); return false; }
          this.peerDownUntil.set(peer, Date.now() + PEER_BACKOFF_MS);
        }
      }
      return false;
    } finally {
      this.deps.unreserve(id);
    }
  }

  /** One SMTP session: STARTTLS, AUTH CRAM-MD5 with the fleet token, one transaction, QUIT. */
  private async sendTo(peer: string, q: QueuedMessage, cfg: HandoffConfig): Promise<string> {
    const { host, port } = splitPeer(peer);
    // getaddrinfo honours the pod's DNS search path (relay-0.relay-headless.ns.svc)
    const ip = net.isIP(host) ? host : (await dns.lookup(host)).address;
    const token = readFleetToken(cfg.tokenFile);
    const record = { meta: q.meta, state: q.state };
    const open = openRecipients(record);
    const conn = new SMTPConnection({
      host: ip, port, secure: false, requireTLS: true, name: this.deps.hostname,
      // The peers' certificate names the relay's public hostname, not the pod: the fleet
      // token (never sent, CRAM-MD5) and the NetworkPolicy are what admit a peer.
      tls: { rejectUnauthorized: false },
      connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 120_000, logger: false, debug: false,
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
