// The hand-off's part of the relay config (docs/operator.md, "Scale-down, deletion and
// queued mail"): where the drain request appears, the internal SMTP listener the fleet hands
// queued mail to, its token, the pods that stay, and whether SIGTERM hands the queue over too.
import { z } from 'zod';
import { dnsServerAddress } from '../delivery/schema.ts';

// host:port; the host a DNS name or an IPv4 address (pod DNS names, or a headless Service's
// name that stands for all its ready pods).
const peer = z.string().max(300).regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, { message: 'must be host:port, e.g. relay-0.relay-headless.mail.svc:2526' });

export const handoffSchema = z.strictObject({
  annotationsFile: z.string().min(1).optional().describe(
    'The pod\'s annotations as a downward-API file; the annotation mailfleet.io/drain-requested there starts a drain '
    + '(polled like the config). Unset: this relay never drains by itself'),
  host: z.string().default('0.0.0.0').describe('Address the hand-off listener binds'),
  port: z.number().int().min(0).max(65535).describe(
    'TCP port of the internal hand-off listener: SMTP with STARTTLS and AUTH CRAM-MD5 with the fleet token, only for the fleet\'s own pods (0 picks a free one, for tests)'),
  tokenFile: z.string().min(1).describe(
    'File holding the fleet token (a Secret shared by the fleet): the sending pod authenticates to the receiving one with it (CRAM-MD5, never sent). Read per session, so a rotated Secret applies at once'),
  peers: z.array(peer).max(1000).default([]).describe(
    'Hand-off listeners of the pods that stay (host:port); a draining relay hands its queue to them. A name stands for every address it resolves to '
    + '(a headless Service: its ready pods); this relay\'s own listener is skipped. A peer that is draining itself refuses, so the list may include leaving pods'),
  dnsServers: z.array(dnsServerAddress).min(1).max(8).optional().describe(
    "Resolvers for the peers' names instead of the system's (getaddrinfo, with the pod's DNS search path), e.g. ['127.0.0.1:5353']"),
  connections: z.number().int().min(1).max(32).default(4).describe('Messages handed off at once while draining'),
  onShutdown: z.boolean().default(false).describe(
    'On SIGTERM too, once intake stopped: hand what is still queued to the peers until the queue is empty or the shutdown budget '
    + '(limits.drainTimeout plus 10 s) is spent, and log what stays as lost. For a queue that does not outlive its pod (an emptyDir); '
    + 'the pod\'s termination grace period must exceed drainTimeout by more than 12 s'),
}).refine((h) => !h.onShutdown || h.peers.length > 0, { path: ['onShutdown'], message: 'onShutdown needs peers to hand the queue to' });

export type HandoffConfig = z.output<typeof handoffSchema>;
export type HandoffConfigInput = z.input<typeof handoffSchema>;
