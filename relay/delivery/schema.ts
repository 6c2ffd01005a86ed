// The `delivery:` block of the relay config. Owned here, embedded by the config loader and
// rendered by the operator, so every field has a default that is safe for production.
//
// TLS policy, deliberately different per route:
//  - MX: STARTTLS is opportunistic (used when offered, plaintext otherwise) and the peer's
//    certificate is NOT verified, because MX host names come from unauthenticated DNS and
//    most MX certificates would fail verification anyway; refusing them would only push the
//    mail to plaintext (RFC 7435 opportunistic security). With `mx.requireTls` the session
//    must be encrypted, and the certificate is verified against the MX host name unless
//    `mx.tlsRejectUnauthorized` says otherwise.
//  - Smarthost: a fixed, configured provider, so TLS is required and verified by default.
//  - MX with MTA-STS (RFC 8461, on by default): a recipient domain that publishes an
//    `enforce` policy gets only the MX hosts its policy lists, over TLS with a certificate
//    verified against the MX host name; otherwise its mail waits (4.7.5), never bounces at
//    once. `testing` policies change nothing but are checked, and failures reported.
//  - `destinations.<name>.tls` overrides all of the above for one destination: `require`
//    (TLS with a verified certificate) or `opportunistic`; MTA-STS is then not consulted.
import { z } from 'zod';
import { oauth2Schema } from './oauth2/schema.ts';

/** A DNS server to ask instead of the system's (also the hand-off's peer names). */
export const dnsServerAddress = z.string().regex(
  /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:]+)(:\d{1,5})?$/,
  "a DNS server as 'IP' or 'IP:PORT' ('[IPv6]:PORT' for IPv6 with a port)",
);

export const smarthostSchema = z.strictObject({
  name: z.string().min(1).optional().describe('Shown in logs and metrics (default host:port)'),
  host: z.string().min(1).max(253).describe('Provider host name, e.g. email-smtp.eu-west-1.amazonaws.com'),
  port: z.number().int().min(1).max(65535).default(587).describe('Provider port (587 STARTTLS, 465 implicit TLS)'),
  tls: z.enum(['starttls', 'implicit', 'none']).default('starttls')
    .describe("starttls upgrades after EHLO, implicit is TLS from the first byte (465), none is plaintext"),
  requireTls: z.boolean().default(true).describe("Refuse to send unless the session is encrypted (must be false with tls 'none')"),
  tlsRejectUnauthorized: z.boolean().default(true).describe("Verify the provider's certificate"),
  caFile: z.string().min(1).optional().describe('PEM file of extra CAs to trust for this smarthost (e.g. a private CA)'),
  auth: z.strictObject({
    user: z.string().min(1).describe('Provider login (with oauth2: the mailbox the relay sends as)'),
    passwordFile: z.string().min(1).optional()
      .describe('File holding the password (a mounted Secret); read at config load, never logged'),
    oauth2: oauth2Schema.optional(),
  }).refine((a) => (a.passwordFile === undefined) !== (a.oauth2 === undefined), {
    message: 'set exactly one of passwordFile or oauth2',
  }).optional().describe('SMTP AUTH at the provider: a password, or an OAuth 2.0 token (only over TLS unless requireTls is off)'),
});

export const mxSchema = z.strictObject({
  port: z.number().int().min(1).max(65535).default(25).describe('Port of the MX hosts (25; another only for tests)'),
  dnsServers: z.array(dnsServerAddress).min(1).optional()
    .describe("Resolvers to ask instead of the system's, e.g. ['127.0.0.1:5353']"),
  dnsTimeoutMs: z.number().int().positive().default(5_000).describe('Time one DNS query may take, in milliseconds'),
  requireTls: z.boolean().default(false).describe('Refuse to send to an MX host that does not offer STARTTLS'),
  tlsRejectUnauthorized: z.boolean().optional()
    .describe('Verify MX certificates against the MX host name; default: only when requireTls is set (see the policy above)'),
  maxAddresses: z.number().int().positive().default(10)
    .describe('Addresses tried per destination per attempt, over all its MX hosts (Postfix: smtp_mx_address_limit)'),
  caFile: z.string().min(1).optional()
    .describe('PEM file of CAs trusted besides the system ones wherever an MX certificate is verified (requireTls, MTA-STS enforce, tls: require) and for MTA-STS policy hosts, e.g. a private CA'),
});

export const mtaStsSchema = z.strictObject({
  enabled: z.boolean().default(true).describe(
    'Honour the MTA-STS policies (RFC 8461) of recipient domains in MX mode: enforce → only the MX hosts the policy lists, '
    + 'TLS with a verified certificate, otherwise the mail waits (4.7.5) and is retried; testing → delivered as before, failures logged and counted'),
  port: z.number().int().min(1).max(65535).default(443)
    .describe('HTTPS port of the policy hosts (mta-sts.<domain>); 443, another only for tests'),
  fetchTimeoutMs: z.number().int().positive().max(60_000).default(10_000)
    .describe('Time one policy fetch (address lookup, TLS, HTTP) may take, in milliseconds (RFC 8461 allows at most a minute)'),
  recheckIntervalMs: z.number().int().positive().default(60_000)
    .describe('How long the _mta-sts TXT answer of a domain is reused before it is asked again for a new policy id, in milliseconds'),
  errorRetryMs: z.number().int().positive().default(300_000)
    .describe('After a failed policy fetch with no cached policy to fall back on, mail goes out without a policy and the fetch is tried again after this long, in milliseconds'),
});

/** Per-destination TLS: overrides mx.requireTls, MTA-STS and a smarthost's own TLS settings. */
export const destinationTlsSchema = z.enum(['require', 'opportunistic']).describe(
  'require: STARTTLS (or implicit TLS) with a certificate verified against the host name (mx.caFile or the smarthost caFile add CAs), '
  + 'else the mail waits (4.7.4); opportunistic: TLS when offered, certificate not checked; '
  + 'either way MTA-STS is not consulted for this destination (an explicit policy wins)');

export const destinationSchema = z.strictObject({
  maxConnections: z.number().int().positive().optional()
    .describe('Concurrent connections to this destination (default maxConnectionsPerDestination)'),
  tls: destinationTlsSchema.optional(),
});

export const deliverySchema = z.strictObject({
  mode: z.enum(['mx', 'smarthost', 'capture']).default('mx').describe(
    "mx: deliver to the recipient domains' MX hosts; smarthost: relay through a provider; "
    + 'capture: send nothing, write each message as an .eml file under <dataDir>/captured/ (development; per-domain smarthosts are captured too)'),
  mx: mxSchema.prefault({}).describe('MX delivery: DNS and TLS policy'),
  mtaSts: mtaStsSchema.prefault({}).describe('MTA-STS (RFC 8461) in MX mode: policy fetch, cache and enforcement'),
  smarthosts: z.array(smarthostSchema).default([]).describe('Providers in failover order (smarthost mode)'),
  heloName: z.string().min(1).optional().describe('Name sent with EHLO; default: the OS host name'),
  // 10 s: a reachable host completes a TCP handshake in well under a second; the breaker
  // (target-health.ts) pays this at most once per backoff for a host that drops SYNs.
  connectTimeoutMs: z.number().int().positive().default(10_000).describe('Time to open a TCP connection, in milliseconds'),
  greetingTimeoutMs: z.number().int().positive().default(30_000).describe("Time to wait for the server's greeting, in milliseconds"),
  socketTimeoutMs: z.number().int().positive().default(120_000).describe('Idle time on an open connection before it is given up, in milliseconds'),
  idleTimeoutMs: z.number().int().positive().default(60_000)
    .describe('Pooled connections idle longer than this are closed, in milliseconds (RFC 5321 servers wait 5 min)'),
  maxConnectionsPerDestination: z.number().int().positive().default(10)
    .describe('Cap on concurrent connections to one destination host (IP and port) and, by default, to one recipient domain'),
  maxMessagesPerConnection: z.number().int().positive().default(1000).describe('Messages sent over one connection before it is closed'),
  hostDownBackoffMs: z.number().int().positive().default(30_000).describe(
    'A destination host that timed out, refused or would not start a session is skipped this long, in milliseconds, '
    + 'then probed (a session without mail); each failed probe doubles the wait'),
  hostDownMaxBackoffMs: z.number().int().positive().default(300_000)
    .describe('Longest time a failed destination host is skipped before the next probe, in milliseconds'),
  destinations: z.record(z.string().min(1), destinationSchema).default({}).describe(
    "Per-destination overrides. Keys are recipient domains in MX mode (e.g. 'gmail.com'), "
    + 'smarthost names (or host:port when unnamed) in smarthost mode; case-insensitive. A key with a tls policy is '
    + 'also its own destination label in mailfleet_delivery_tls_total (others count as other)'),
}).superRefine((cfg, ctx) => {
  if (cfg.mode === 'smarthost' && cfg.smarthosts.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['smarthosts'],
      message: "delivery.smarthosts must list at least one smarthost when delivery.mode is 'smarthost'",
    });
  }
  for (const [key, d] of Object.entries(cfg.destinations)) {
    const sh = cfg.smarthosts.find((s) => (s.name ?? `${s.host}:${s.port}`).toLowerCase() === key.toLowerCase());
    if (d.tls === 'require' && sh?.tls === 'none') {
      ctx.addIssue({
        code: 'custom',
        path: ['destinations', key, 'tls'],
        message: `delivery.destinations.${key}.tls: 'require' cannot be met by smarthost ${key}, whose tls is 'none'`,
      });
    }
    if (d.tls === 'opportunistic' && sh?.auth?.oauth2) {
      ctx.addIssue({
        code: 'custom',
        path: ['destinations', key, 'tls'],
        message: `delivery.destinations.${key}.tls: smarthost ${key} uses oauth2, whose bearer token must never travel in plaintext; remove 'opportunistic'`,
      });
    }
  }
  cfg.smarthosts.forEach((s, i) => {
    if (s.tls === 'none' && s.requireTls) {
      ctx.addIssue({
        code: 'custom',
        path: ['smarthosts', i, 'requireTls'],
        message: `delivery.smarthosts[${i}] (${s.name ?? s.host}): tls 'none' cannot satisfy requireTls; set requireTls: false to send in plaintext`,
      });
    }
    if (s.auth?.oauth2 && !s.requireTls) {
      ctx.addIssue({
        code: 'custom',
        path: ['smarthosts', i, 'requireTls'],
        message: `delivery.smarthosts[${i}] (${s.name ?? s.host}): oauth2 needs requireTls: a bearer token must never travel in plaintext`,
      });
    }
  });
});

export type DeliveryConfig = z.infer<typeof deliverySchema>;
export type DeliveryConfigInput = z.input<typeof deliverySchema>;
export type SmarthostConfig = z.infer<typeof smarthostSchema>;
export type MtaStsConfig = z.infer<typeof mtaStsSchema>;
export type DestinationTls = z.infer<typeof destinationTlsSchema>;
export type SmarthostConfigInput = z.input<typeof smarthostSchema>;
