// EmailRelay: a fleet of relay pods with one configuration. See operator/api/common.ts for
// how this schema becomes the CRD and the TS types.
import { z } from 'zod';
import {
  cel, conditions, credentialsSecretRef, domainName, duration, labelSelector, objectName, port, quantity, rateLimit, secretKeyRef, smarthost,
} from './common.ts';
import { parseCidr } from '../../relay/util/cidr.ts';
import { webhookEventTypes } from '../../relay/webhooks/schema.ts';

// A DNS name as EHLO takes it (any case, no trailing dot); the MX-mode rules below say which ones are public.
const HOSTNAME_RE = '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';
const HOSTNAME_MESSAGE = 'must be a DNS name such as mail.example.com (letters, digits, hyphens and dots; no trailing dot)';

const IS_MX = "!has(self.delivery) || !has(self.delivery.mode) || self.delivery.mode == 'mx'";
const INTERNAL_SUFFIXES = ['.svc', '.local', '.internal', '.localdomain'];

/**
 * What a receiving MX host must be able to resolve: in MX mode the hostname is the relay's
 * identity (EHLO, Received, the PTR of its egress addresses), so a name only the cluster
 * knows, or none at all, makes every receiver distrust the mail. Each rule is stated for the
 * API server (CEL) and for the operator's own parse (test), with one message.
 */
const MX_HOSTNAME_RULES: { cel: string; test: (h: string | undefined) => boolean; message: string; reason?: 'FieldValueRequired' }[] = [
  {
    cel: 'has(self.hostname)',
    test: (h) => h !== undefined,
    reason: 'FieldValueRequired' as const,
    message: 'hostname is required when delivery.mode is mx (the default): set the public FQDN of the relay\'s egress address (its PTR name), e.g. mail.example.com; receiving MX hosts see it in EHLO and Received',
  },
  {
    cel: `!has(self.hostname) || !(${INTERNAL_SUFFIXES.map((x) => `self.hostname.lowerAscii().endsWith('${x}')`).join(' || ')} || self.hostname.lowerAscii().contains('.svc.') || !self.hostname.contains('.'))`,
    test: (h) => h === undefined || !(INTERNAL_SUFFIXES.some((x) => h.toLowerCase().endsWith(x)) || h.toLowerCase().includes('.svc.') || !h.includes('.')),
    message: 'hostname must be a public FQDN in MX mode: a cluster-internal or single-label name (.svc, .cluster.local, .local, .internal) cannot be resolved by receiving MX hosts',
  },
  {
    cel: "!has(self.hostname) || !self.hostname.matches(r'^[0-9.]+$')",
    test: (h) => h === undefined || !/^[0-9.]+$/.test(h),
    message: 'hostname must be a name, not an IP address: receivers distrust an EHLO without a name',
  },
];

const EGRESS_MESSAGE = 'must be an IPv4 or IPv6 address or CIDR, such as 203.0.113.25, 203.0.113.0/28 or 2001:db8::25';
const egressAddress = z.string().max(49).meta(cel({ rule: 'isIP(self) || isCIDR(self)', message: EGRESS_MESSAGE }))
  .refine((v) => { try { parseCidr(v); return true; } catch { return false; } }, { message: EGRESS_MESSAGE });

const listener = (defaultPort: number, what: string) => z.object({
  enabled: z.boolean().default(true).describe(`Serve ${what}`),
  port: port.default(defaultPort).describe(`Port (default ${defaultPort})`),
}).describe(what);

export const emailRelaySpec = z.object({
  replicas: z.number().int().min(0).default(2).describe('Relay pods (ignored while autoscaling is set: the HPA scales this object)'),
  image: z.string().min(1).optional().describe("Relay image; honoured only when the operator runs with --allow-image-override (chart value allowImageOverride), else the relay is refused (Degraded ImageOverrideNotAllowed); default: the platform's relay image"),
  hostname: z.string().max(253).meta(cel({ rule: `self.matches(r'${HOSTNAME_RE}')`, message: HOSTNAME_MESSAGE }))
    .refine((h) => new RegExp(HOSTNAME_RE).test(h), { message: HOSTNAME_MESSAGE }).optional()
    .describe('Name in the SMTP greeting, EHLO and Received headers. Required in MX mode: the public FQDN that the egress addresses\' PTR records name '
      + '(receiving MX hosts check it); default in smarthost mode <name>.<namespace>.svc.cluster.local'),
  resources: z.object({
    requests: z.record(z.string(), quantity).optional().describe('Requested resources, e.g. cpu: 100m, memory: 128Mi'),
    limits: z.record(z.string(), quantity).optional().describe('Resource limits'),
  }).optional().describe('Container resources'),
  listeners: z.object({
    submission: listener(587, 'SMTP submission with STARTTLS and AUTH').prefault({}),
    implicitTls: listener(465, 'SMTP submission over implicit TLS and AUTH').prefault({}),
    plain: z.object({ port: port.describe('Port for the plain listener, e.g. 25') }).optional()
      .describe('Plain SMTP without TLS or AUTH, only for clients in trustedNetworks'),
  }).prefault({}).describe('SMTP listeners'),
  tls: z.object({
    secretName: objectName.optional().describe('kubernetes.io/tls Secret with tls.crt and tls.key, labelled mailfleet.io/use: "true"'),
    issuerRef: z.object({
      name: objectName.describe('cert-manager Issuer or ClusterIssuer name'),
      kind: z.enum(['Issuer', 'ClusterIssuer']).default('Issuer').describe('Issuer or ClusterIssuer'),
      group: z.string().default('cert-manager.io').describe('Issuer API group'),
    }).optional().describe('Have cert-manager issue the certificate (a Certificate object is created)'),
    dnsNames: z.array(z.string().min(1).max(253)).max(32).optional().describe('Names for the cert-manager certificate (default: the hostname)'),
  }).optional().meta(cel({ rule: '!(has(self.secretName) && has(self.issuerRef))', message: 'set tls.secretName or tls.issuerRef, not both' }))
    .describe('Serving certificate; without it the relay makes a self-signed one (development only)'),
  senderDomains: z.object({
    namespaces: z.object({
      from: z.enum(['Same', 'All', 'Selector']).default('Same')
        .describe('Same: only SenderDomains in this EmailRelay\'s namespace; All: any namespace; Selector: namespaces whose labels match selector'),
      selector: labelSelector.optional().describe('With from: Selector, the Namespace labels that admit a namespace (re-evaluated when a Namespace\'s labels change)'),
    }).prefault({}).meta(cel(
      { rule: "!has(self.from) || self.from != 'Selector' || has(self.selector)", message: 'from: Selector needs a selector' },
      { rule: "!has(self.selector) || (has(self.from) && self.from == 'Selector')", message: 'selector is used only with from: Selector' },
    )).refine((n) => (n.from === 'Selector') === (n.selector !== undefined), { message: 'set selector exactly when from is Selector' })
      .describe('Which namespaces may attach SenderDomains to this relay (as Gateway API allowedRoutes); a SenderDomain from elsewhere gets RelayNotAllowed and nothing is rendered for it'),
    requireVerification: z.boolean().optional()
      .describe('Serve a domain only after its owner proved control in DNS (its DKIM record, or the _mailfleet TXT challenge in its status); default: true for SenderDomains from other namespaces, false for this namespace'),
    dnsPublish: z.enum(['Allowed', 'Forbidden']).default('Allowed')
      .describe('Whether the SenderDomains of this relay may have their records published through external-dns (their spec.dns.publish: externalDNS, which also needs the operator flag --dns-publish=true); Forbidden: none is, their DNSEndpoints are deleted and they report DNSPublished=False RelayForbidsPublishing'),
  }).prefault({}).describe('Who may attach SenderDomains, and what they must prove'),
  trustedNetworks: z.array(z.object({
    cidrs: z.array(z.string().min(2).max(43)).min(1).max(64).describe('Client networks (IP or CIDR) that may send without AUTH'),
    domains: z.array(domainName).min(1).max(100).describe('Sender domains those clients may use; a domain this relay does not serve (no Ready SenderDomain owning it) is left out and listed in status.unservedTrustedDomains'),
  })).max(16).optional().describe('Networks allowed to send without AUTH (legacy systems), each limited to domains'),
  delivery: z.object({
    mode: z.enum(['mx', 'smarthost']).default('mx').describe('mx: deliver to recipient MX hosts; smarthost: relay through a provider'),
    smarthosts: z.array(smarthost).max(16).optional().describe('Providers in failover order'),
    destinations: z.record(z.string(), z.object({
      maxConnections: z.number().int().min(1).optional().describe('Concurrent connections to this destination'),
      messagesPerMinute: z.number().int().min(1).optional().describe('Delivery pace; mail waits in the queue beyond it'),
      tls: z.enum(['require', 'opportunistic']).optional().describe(
        "TLS to this destination, overriding its MTA-STS policy and the smarthost's own TLS settings: require (a verified certificate, else the mail waits) or opportunistic (TLS when offered, certificate not checked)"),
    })).optional().describe('Per-destination limits and TLS keyed by recipient domain (MX mode) or smarthost name, e.g. gmail.com'),
    dnsServers: z.array(z.string().min(1).max(64)).max(8).optional().describe("Resolvers for MX lookups as 'IP' or 'IP:PORT' (default: the pod's)"),
    egress: z.strictObject({
      addresses: z.array(egressAddress).min(1).max(32)
        .describe("Public addresses (IPv4, IPv6 or CIDR) the relay's mail leaves from (the NAT gateway or node addresses): "
          + "listed as ip4:/ip6: in the SenderDomains' SPF record, and their PTR records are checked against hostname (condition EgressIdentityVerified)"),
    }).optional().describe('Where MX-mode mail leaves the cluster; without it the SenderDomains\' SPF record is reported incomplete'),
  }).prefault({}).meta(cel({
    rule: "!has(self.mode) || self.mode != 'smarthost' || (has(self.smarthosts) && size(self.smarthosts) > 0)",
    message: 'delivery.smarthosts must list at least one smarthost when mode is smarthost',
  })).describe('How mail leaves the relay'),
  queue: z.object({
    persistence: z.object({
      enabled: z.boolean().default(true).describe('Keep the queue on a PersistentVolumeClaim per pod (a StatefulSet); off: emptyDir (a Deployment): a stopping pod hands its queue to the ready pods on SIGTERM, '
        + 'and what it cannot hand over within drainTimeout + 10 s is lost with it, as is the queue of a pod killed without SIGTERM or of pods that all go at once; '
        + 'deleting the EmailRelay waits until every pod has delivered its queue (unless annotated mailfleet.io/skip-drain: "true")'),
      size: quantity.default('1Gi').describe('Volume size'),
      storageClassName: z.string().optional().describe('StorageClass (default: the cluster default)'),
    }).prefault({}).describe('Queue storage'),
    retrySchedule: z.array(duration('Wait')).min(1).optional().describe('Waits between delivery attempts; the last repeats'),
    maxLifetime: duration('Time a message may stay queued before it bounces').default('5d'),
    maxDrainTime: duration('How long a scale-down or deletion waits for the leaving pods to hand over or deliver their queues before it reports Stalled (DrainStalled); it keeps waiting after that, a volume with mail is never deleted').default('1h'),
  }).prefault({}).describe('The durable queue'),
  drainTimeout: duration('How long open SMTP sessions may finish on shutdown').default('30s'),
  rateLimits: z.object({
    perDomain: rateLimit.optional().describe('Default limit for each sender domain without its own'),
    perLogin: rateLimit.optional().describe('Default limit for each SMTP login'),
  }).optional().describe('Default rate limits'),
  redis: z.object({
    url: z.string().min(1).meta(cel({ rule: "self.startsWith('redis://') || self.startsWith('rediss://')", message: 'must start with redis:// or rediss://' }))
      .describe('redis:// or rediss:// URL without password'),
    passwordSecretRef: secretKeyRef('password', 'the Redis password').optional(),
  }).optional().describe('Share rate-limit counters across the fleet through Redis'),
  autoscaling: z.object({
    minReplicas: z.number().int().min(1).default(2).describe('Lower bound'),
    maxReplicas: z.number().int().min(1).describe('Upper bound'),
    targetCPUUtilizationPercentage: z.number().int().min(1).max(100).default(70).describe('Average CPU target'),
  }).optional().meta(cel({ rule: '!has(self.minReplicas) || self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' }))
    .describe('HorizontalPodAutoscaler on this EmailRelay (scale subresource)'),
  podDisruptionBudget: z.object({
    enabled: z.boolean().default(true).describe('Create a PodDisruptionBudget'),
    maxUnavailable: z.number().int().min(0).default(1).describe('Pods that may be disrupted at once'),
  }).prefault({}).describe('Voluntary disruption budget'),
  networkPolicy: z.object({
    enabled: z.boolean().default(false).describe('Create a NetworkPolicy allowing only SMTP and metrics ingress'),
    allowFrom: z.array(z.string().min(2).max(43)).max(64).optional().describe('CIDRs allowed to reach the SMTP ports (default: anywhere)'),
  }).prefault({}).describe('Ingress restrictions'),
  metrics: z.object({
    serviceMonitor: z.object({
      enabled: z.boolean().default(false).describe('Create a ServiceMonitor (when the Prometheus Operator CRD exists)'),
      interval: duration('Scrape interval').optional(),
    }).prefault({}),
  }).prefault({}).describe('Prometheus scraping'),
  webhooks: z.array(z.object({
    url: z.string().min(1).meta(cel({ rule: "self.startsWith('http://') || self.startsWith('https://')", message: 'must be an http:// or https:// URL' }))
      .describe('Receiver URL'),
    secretRef: secretKeyRef('secret', 'the HMAC signing secret'),
    events: z.array(z.enum(webhookEventTypes)).min(1).optional()
      .describe('Event types to send (default all)'),
  })).max(16).optional().describe('Delivery events as signed JSON POSTs'),
}).meta(cel({
  // An autoscaler removes pods whenever load drops: with an emptyDir queue each removal
  // stakes the deferred mail of the pod it removes on its SIGTERM hand-off finishing in time.
  rule: '!has(self.autoscaling) || !has(self.queue) || !has(self.queue.persistence) || !has(self.queue.persistence.enabled) || self.queue.persistence.enabled',
  message: 'autoscaling needs queue.persistence.enabled: with an emptyDir queue a pod the autoscaler removes keeps its deferred mail only if its SIGTERM hand-off finishes in time',
}, ...MX_HOSTNAME_RULES.map((r) => ({ rule: `!(${IS_MX}) || (${r.cel})`, message: r.message, fieldPath: '.hostname', ...(r.reason ? { reason: r.reason } : {}) })))).refine((s) => !s.autoscaling || s.queue.persistence.enabled, {
  path: ['autoscaling'],
  message: 'autoscaling needs queue.persistence.enabled: with an emptyDir queue a pod the autoscaler removes keeps its deferred mail only if its SIGTERM hand-off finishes in time',
}).superRefine((s, ctx) => {
  if (s.delivery.mode !== 'mx') return;
  for (const r of MX_HOSTNAME_RULES) if (!r.test(s.hostname)) ctx.addIssue({ code: 'custom', path: ['hostname'], message: r.message });
});

export const emailRelayStatus = z.object({
  observedGeneration: z.number().int().optional().describe('Last generation reconciled'),
  conditions: conditions.optional(),
  replicas: z.number().int().optional().describe('Pods created'),
  readyReplicas: z.number().int().optional().describe('Pods ready'),
  selector: z.string().optional().describe('Label selector of the pods (for the scale subresource and HPA)'),
  endpoint: z.object({
    host: z.string().describe('Service DNS name'),
    ports: z.record(z.string(), z.number().int()).describe('Listener name to port'),
  }).optional().describe('Where applications connect'),
  domains: z.number().int().optional().describe('SenderDomains served (in the rendered config)'),
  unservedSenderDomains: z.array(z.string()).optional()
    .describe('namespace/name of the SenderDomains that own their domain on this relay but are left out of its config (Degraded, not verified, no signing key, a Secret that cannot be used); each says why in its own status'),
  overBudgetSenderDomains: z.array(z.string()).optional()
    .describe('namespace/name of the unserved SenderDomains that render but find no room left in the relay\'s Secret or config (1 MiB − 16 KiB each, filled oldest first); each reports Degraded SecretBudgetExceeded'),
  unservedTrustedDomains: z.array(z.string()).optional()
    .describe('trustedNetworks domains left out of the relay config because no SenderDomain is served for them here'),
});

export type EmailRelaySpec = z.output<typeof emailRelaySpec>;
export type EmailRelaySpecInput = z.input<typeof emailRelaySpec>;
export type EmailRelayStatus = z.output<typeof emailRelayStatus>;

// credentialsSecretRef is re-exported for callers that build smarthost auth.
export { credentialsSecretRef };
