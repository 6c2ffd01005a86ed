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
import { z } from 'zod';

const hostPort = z.string().regex(
  /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:]+)(:\d{1,5})?$/,
  "a DNS server as 'IP' or 'IP:PORT' ('[IPv6]:PORT' for IPv6 with a port)",
);

export const smarthostSchema = z.object({
  /** Shown in logs and outcomes; defaults to host:port. */
  name: z.string().min(1).optional(),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(587),
  /** 'starttls' upgrades after EHLO, 'implicit' is TLS from the first byte (465), 'none' is plaintext. */
  tls: z.enum(['starttls', 'implicit', 'none']).default('starttls'),
  /** Refuse to send unless the session is encrypted. Must be false with tls 'none'. */
  requireTls: z.boolean().default(true),
  tlsRejectUnauthorized: z.boolean().default(true),
  /** PEM file of extra CAs to trust for this smarthost (e.g. a private CA). */
  caFile: z.string().min(1).optional(),
  auth: z.object({
    user: z.string().min(1),
    /** File holding the password (a mounted Secret); read at config load, never logged. */
    passwordFile: z.string().min(1),
  }).optional(),
});

export const mxSchema = z.object({
  port: z.number().int().min(1).max(65535).default(25),
  /** Resolvers to ask instead of the system's, e.g. ['127.0.0.1:5353']. */
  dnsServers: z.array(hostPort).min(1).optional(),
  dnsTimeoutMs: z.number().int().positive().default(5_000),
  requireTls: z.boolean().default(false),
  /** Verify MX certificates. Default: only when requireTls is set (see the policy above). */
  tlsRejectUnauthorized: z.boolean().optional(),
  /** Addresses tried per destination per attempt, over all its MX hosts (Postfix: smtp_mx_address_limit). */
  maxAddresses: z.number().int().positive().default(10),
});

export const destinationSchema = z.object({
  maxConnections: z.number().int().positive().optional(),
  // messagesPerMinute: shaping is not implemented yet; it will be added here.
});

export const deliverySchema = z.object({
  mode: z.enum(['mx', 'smarthost']).default('mx'),
  mx: mxSchema.prefault({}),
  smarthosts: z.array(smarthostSchema).default([]),
  /** Name sent with EHLO; default: the OS host name. */
  heloName: z.string().min(1).optional(),
  connectTimeoutMs: z.number().int().positive().default(30_000),
  greetingTimeoutMs: z.number().int().positive().default(30_000),
  socketTimeoutMs: z.number().int().positive().default(120_000),
  /** Pooled connections idle longer than this are closed (RFC 5321 servers wait 5 min). */
  idleTimeoutMs: z.number().int().positive().default(60_000),
  /** Cap on concurrent connections to one destination host (IP and port) and, by default, to one recipient domain. */
  maxConnectionsPerDestination: z.number().int().positive().default(10),
  maxMessagesPerConnection: z.number().int().positive().default(1000),
  /**
   * Per-destination overrides. Keys are recipient domains in MX mode (e.g. 'gmail.com'),
   * smarthost names (or host:port when unnamed) in smarthost mode; case-insensitive.
   */
  destinations: z.record(z.string().min(1), destinationSchema).default({}),
}).superRefine((cfg, ctx) => {
  if (cfg.mode === 'smarthost' && cfg.smarthosts.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['smarthosts'],
      message: "delivery.smarthosts must list at least one smarthost when delivery.mode is 'smarthost'",
    });
  }
  cfg.smarthosts.forEach((s, i) => {
    if (s.tls === 'none' && s.requireTls) {
      ctx.addIssue({
        code: 'custom',
        path: ['smarthosts', i, 'requireTls'],
        message: `delivery.smarthosts[${i}] (${s.name ?? s.host}): tls 'none' cannot satisfy requireTls; set requireTls: false to send in plaintext`,
      });
    }
  });
});

export type DeliveryConfig = z.infer<typeof deliverySchema>;
export type DeliveryConfigInput = z.input<typeof deliverySchema>;
export type SmarthostConfig = z.infer<typeof smarthostSchema>;
