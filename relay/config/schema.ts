// The relay's configuration: the one contract between the relay and the operator, which
// renders it into a ConfigMap through this same schema. Every object is strict (a misspelt
// key is an error naming it, never a setting silently dropped) and every field has a
// description, so `mailfleet config schema` gives editors and docs something to show;
// test/unit/config-contract.test.ts holds both rules for the whole tree.
import tls from 'node:tls';
import { z } from 'zod';
import { duration } from '../util/duration.ts';
import { cidrString } from '../util/cidr.ts';
import { outboundSchema } from '../outbound/targets.ts';
import { deliverySchema, smarthostSchema } from '../delivery/schema.ts';
import { dkimSchema } from '../dkim/schema.ts';
import { rateLimitSchema, redisLimiterSchema, authThrottleSchema } from '../limits/schema.ts';
import { suppressionSchema } from '../suppression/index.ts';
import { webhookSchema } from '../webhooks/schema.ts';
import { handoffSchema } from '../handoff/schema.ts';

// ECDHE (forward secrecy) with AEAD ciphers only: no CBC, no SHA-1 MACs, no RSA key exchange.
export const DEFAULT_TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const tlsCipherList = z.string().min(1).max(4096).refine((v) => {
  try { tls.createSecureContext({ ciphers: v }); return true; } catch { return false; }
}, { message: 'not a cipher list OpenSSL accepts (e.g. ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384)' });

const cidr = cidrString;

// RFC 1035 host names, lower-case letters, digits and hyphens; at least two labels.
export const domainName = z.string().toLowerCase().regex(
  /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/,
  { message: 'must be a domain name such as example.com' },
);

export const listenerSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]+$/, { message: 'must be lower-case letters, digits and hyphens' })
    .describe('Name used in logs and metric labels'),
  host: z.string().default('0.0.0.0').describe('Address to bind'),
  port: z.number().int().min(0).max(65535).describe('TCP port (0 picks a free one, for tests)'),
  mode: z.enum(['starttls', 'implicit', 'plain']).describe(
    'starttls: submission with STARTTLS (587); implicit: TLS from the first byte (465); '
    + 'plain: no TLS and no AUTH, only for clients in trustedNetworks'),
  proxyProtocol: z.boolean().default(false)
    .describe('Expect a PROXY protocol v1 or v2 header from the load balancer on every connection'),
  proxyFrom: z.array(cidr).default([])
    .describe('Load balancer addresses allowed to send PROXY headers (required with proxyProtocol)'),
}).refine((l) => !l.proxyProtocol || l.proxyFrom.length > 0, {
  // Otherwise any client could claim any address, e.g. one in trustedNetworks.
  path: ['proxyFrom'], message: 'proxyProtocol needs proxyFrom: the load balancer addresses whose PROXY headers are believed',
});

export const credentialSchema = z.strictObject({
  username: z.string().min(1).max(256).describe('SMTP AUTH login'),
  passwordHash: z.string().optional()
    .describe('scrypt hash from `mailfleet hash-password` (never a plain password)'),
  passwordHashFile: z.string().optional().describe('File holding the scrypt hash (a mounted Secret)'),
  domains: z.array(domainName).min(1).describe('Sender domains this login may use'),
}).refine((c) => (c.passwordHash === undefined) !== (c.passwordHashFile === undefined), {
  message: 'set exactly one of passwordHash or passwordHashFile',
});

export const trustedNetworkSchema = z.strictObject({
  cidrs: z.array(cidr).min(1).describe('Client networks allowed to send without AUTH'),
  domains: z.array(domainName).min(1).describe('Sender domains those clients may use'),
});

// Local-part patterns: '*' and '?' wildcards over the part before the '@'.
const localPartPattern = z.string().min(1).max(64).regex(/^[^@\s]+$/, { message: 'a local-part pattern has no @ or spaces (e.g. noreply, billing-*, *)' });

export const senderDomainSchema = z.strictObject({
  domain: domainName.describe('A sender domain served by this relay'),
  dkim: dkimSchema.optional().describe('DKIM keys that sign this domain\'s mail'),
  allowedSenders: z.array(localPartPattern).min(1).max(64).default(['*'])
    .describe('Local parts that may send from this domain (wildcards * and ?; at most 64 patterns of at most 64 characters, matched in linear time)'),
  fromAlignment: z.enum(['strict', 'relaxed', 'off']).default('relaxed')
    .describe('Header From must match the envelope domain (strict), be this domain or a subdomain (relaxed), or is not checked (off)'),
  rateLimit: rateLimitSchema.optional().describe('Messages this domain may send (at intake, 451 4.7.x beyond it)'),
  smarthost: smarthostSchema.optional().describe('Deliver this domain\'s mail through its own provider instead of the relay\'s route'),
});

export const relayConfigSchema = z.strictObject({
  hostname: z.string().default('localhost')
    .describe('Name in the SMTP greeting, EHLO to destinations and Received headers'),
  dataDir: z.string().default('/var/lib/mailfleet').describe('Queue and state directory (a persistent volume)'),
  listeners: z.array(listenerSchema).min(1).describe('SMTP listeners')
    .refine((ls) => new Set(ls.map((l) => l.name)).size === ls.length, { message: 'listener names must be unique' }),
  tls: z.strictObject({
    certFile: z.string().optional().describe('PEM certificate chain'),
    keyFile: z.string().optional().describe('PEM private key'),
    selfSigned: z.boolean().default(false)
      .describe('Generate a self-signed certificate in dataDir on first start (development only)'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2')
      .describe('Oldest TLS version a client may use'),
    ciphers: tlsCipherList.default(DEFAULT_TLS_CIPHERS)
      .describe('OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are all AEAD); the default is ECDHE key exchange with AEAD ciphers only'),
  }).default({ selfSigned: false, minVersion: 'TLSv1.2', ciphers: DEFAULT_TLS_CIPHERS }).refine((t) => t.selfSigned || (t.certFile && t.keyFile) || (!t.certFile && !t.keyFile), {
    message: 'set both certFile and keyFile, or selfSigned: true',
  }).describe('Serving certificate for STARTTLS and implicit TLS listeners'),
  limits: z.strictObject({
    maxMessageSize: z.number().int().positive().default(25 * 1024 * 1024)
      .describe('Largest message accepted, in bytes (announced as SIZE in EHLO)'),
    maxRecipients: z.number().int().positive().default(100).describe('Recipients per message'),
    maxClients: z.number().int().positive().default(1000).describe('Concurrent SMTP sessions per listener'),
    socketTimeout: duration.default(300_000).describe('Idle time before a session is closed'),
    drainTimeout: duration.default(30_000).describe('How long open sessions may finish on shutdown'),
    greetingDelay: duration.default(0)
      .describe('Hold the greeting this long and refuse clients that talk first (an inbound-MX spam check; off for submission)'),
    bareLineEndings: z.enum(['reject', 'normalize']).default('reject')
      .describe('A bare CR or LF in DATA: reject refuses the message (550 5.6.11); normalize turns each into CRLF before any check, signature or write'),
    maxHeaderBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024)
      .describe('Largest header block accepted, in bytes; a larger one is refused with 552 5.3.4'),
    maxConnectionsPerAddress: z.number().int().positive().default(20)
      .describe('Sessions one client address (IPv6: its /64) may hold open across all listeners; more get 421 4.7.0 (trusted networks exempt)'),
    maxNewConnectionsPerMinutePerAddress: z.number().int().positive().default(600)
      .describe('New sessions one client address may open per minute; more get 421 4.7.0 (trusted networks exempt)'),
    preAuthTimeout: duration.default(30_000)
      .describe('Idle time allowed before a client authenticates: TLS handshake, PROXY header, greeting to EHLO, before AUTH (authenticated and trusted sessions get socketTimeout)'),
    maxCommandsBeforeAuth: z.number().int().positive().max(1000).default(20)
      .describe('Commands a client may send before AUTH succeeds (STARTTLS and EHLO included); then 421 4.7.0 and the connection closes (trusted networks exempt)'),
  }).default({
    maxMessageSize: 25 * 1024 * 1024, maxRecipients: 100, maxClients: 1000, socketTimeout: 300_000, drainTimeout: 30_000, greetingDelay: 0,
    bareLineEndings: 'reject', maxHeaderBytes: 1024 * 1024, maxConnectionsPerAddress: 20, maxNewConnectionsPerMinutePerAddress: 600, preAuthTimeout: 30_000, maxCommandsBeforeAuth: 20,
  })
    .describe('Limits on SMTP sessions and messages at intake'),
  credentials: z.array(credentialSchema).default([]).describe('SMTP logins and the domains each may send for'),
  trustedNetworks: z.array(trustedNetworkSchema).default([])
    .describe('Networks allowed to send without AUTH (legacy systems), each limited to domains'),
  domains: z.array(senderDomainSchema).default([]).describe('Sender domains served by this relay'),
  rateLimits: z.strictObject({
    perLogin: rateLimitSchema.optional().describe('Default limit for each SMTP login'),
    perDomain: rateLimitSchema.optional().describe('Default limit for each sender domain without its own'),
    destinations: z.record(z.string(), rateLimitSchema).default({})
      .describe('Delivery pace per recipient domain (e.g. gmail.com: {perMinute: 600}); mail waits in the queue, never fails'),
  }).default({ destinations: {} }).describe('Rate limits'),
  redis: redisLimiterSchema.optional().describe('Share rate-limit counters across the fleet through Redis'),
  authThrottle: authThrottleSchema.default(authThrottleSchema.parse({})).describe('Brute-force protection for AUTH'),
  recipientChecks: z.strictObject({
    dns: z.boolean().default(true).describe('Refuse recipients whose domain has no MX/A or a null MX (550 5.1.2)'),
    cacheSeconds: z.number().int().positive().default(300).describe('How long DNS answers are cached for this check'),
  }).default({ dns: true, cacheSeconds: 300 }).describe('Checks on each RCPT TO before the message is accepted'),
  suppression: suppressionSchema.default(suppressionSchema.parse({})).describe('Recipients that hard-bounced are refused for a while'),
  webhooks: z.array(webhookSchema).default([]).describe('Delivery events sent as signed JSON POSTs'),
  queue: z.strictObject({
    // A zero step would retry a deferring destination in a tight loop.
    retrySchedule: z.array(duration.refine((ms) => ms > 0, { message: 'a retry step must be longer than 0' })).min(1).default([60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000])
      .describe('Waits between delivery attempts; the last one repeats'),
    maxLifetime: duration.refine((ms) => ms > 0, { message: 'must be longer than 0' }).default(5 * 86_400_000).describe('How long a message may stay queued before it expires and bounces'),
    concurrency: z.number().int().positive().default(100).describe('Messages in delivery at once'),
    memoryCopyBytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(32 * 1024 * 1024)
      .describe('Bytes of newly accepted messages (each up to 256 KiB) also kept in memory for their first delivery attempt, which then does not read its file back; the file is written and synced first all the same. 0 reads every message from disk'),
  }).default({ retrySchedule: [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000], maxLifetime: 5 * 86_400_000, concurrency: 100, memoryCopyBytes: 32 * 1024 * 1024 })
    .describe('The durable queue: retries, expiry and delivery concurrency'),
  delivery: deliverySchema.default(deliverySchema.parse({})).describe('How mail leaves: MX lookup or smarthosts'),
  outbound: outboundSchema.default({ allowAddresses: [] })
    .describe('Which addresses webhooks, smarthosts and MX hosts may reach: never loopback, link-local or cloud metadata unless listed here'),
  http: z.strictObject({
    host: z.string().default('0.0.0.0').describe('Address to bind'),
    port: z.number().int().min(0).max(65535).default(9464).describe('TCP port for /metrics, /healthz and /readyz (0 picks a free one, for tests)'),
    adminTokenFile: z.string().min(1).optional().describe(
      'File holding the bearer token of the admin API (/admin/queue, used by `mailfleet queue --url`); '
      + 'the API is off unless this is set. Read per request, so a rotated Secret applies at once'),
  }).default({ host: '0.0.0.0', port: 9464 }).describe('Metrics and health endpoints, and the optional admin API'),
  handoff: handoffSchema.optional().describe(
    'Hand-off of the queue to the peers over an internal SMTP listener: on a drain request (scale-down of a persistent queue), and on SIGTERM with onShutdown (a queue that dies with the pod) (off unless set)'),
}).superRefine((cfg, ctx) => {
  // Every domain a login or a trusted network may send as must be served (listed under
  // domains), even when domains is empty: sender policy and From alignment hang off that
  // entry, and a relay that checked nothing when it served nothing was an open door.
  const served = new Set(cfg.domains.map((d) => d.domain));
  const check = (domains: string[], path: (string | number)[]) => domains.forEach((d, i) => {
    if (!served.has(d)) {
      ctx.addIssue({ code: 'custom', path: [...path, i], message: `domain ${d} is not served by this relay: list it under domains (logins and trusted networks may only name served domains)` });
    }
  });
  cfg.credentials.forEach((c, i) => check(c.domains, ['credentials', i, 'domains']));
  cfg.trustedNetworks.forEach((t, i) => check(t.domains, ['trustedNetworks', i, 'domains']));
  if (cfg.listeners.some((l) => l.mode !== 'plain') && !cfg.tls.selfSigned && !cfg.tls.certFile) {
    ctx.addIssue({ code: 'custom', path: ['tls'], message: 'TLS listeners need tls.certFile and tls.keyFile (or tls.selfSigned for development)' });
  }
  if (cfg.handoff && !cfg.tls.selfSigned && !cfg.tls.certFile) {
    ctx.addIssue({ code: 'custom', path: ['handoff'], message: 'the hand-off listener authenticates over TLS only: it needs tls.certFile and tls.keyFile (or tls.selfSigned)' });
  }
  if (cfg.listeners.some((l) => l.mode === 'plain') && cfg.trustedNetworks.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['trustedNetworks'], message: 'a plain listener needs trustedNetworks: without AUTH only those clients may send' });
  }
});

export type RelayConfigInput = z.input<typeof relayConfigSchema>;
export type RelayConfig = z.output<typeof relayConfigSchema>;
export type ListenerConfig = RelayConfig['listeners'][number];
