// SenderDomain: one domain an EmailRelay sends for, with its DKIM keys and SMTP login.
import { z } from 'zod';
import { DKIM_SELECTOR_MAX, cel, conditions, dkimSelector, domainNameWith, duration, namespaceName, objectName, rateLimit, smarthost, spfInclude } from './common.ts';

export const DKIM_ALGORITHMS = ['rsa-2048', 'ed25519', 'both'] as const;
export const DNS_PUBLISH_MODES = ['none', 'externalDNS'] as const;

export const senderDomainSpec = z.object({
  domain: domainNameWith({ rule: 'self == oldSelf', message: 'domain is immutable; create a new SenderDomain instead' })
    .describe('The sender domain, e.g. example.com (immutable)'),
  relayRef: z.object({
    name: objectName.describe('EmailRelay name'),
    namespace: namespaceName.optional()
      .describe("The EmailRelay's namespace (default: this SenderDomain's); the relay must admit this namespace in spec.senderDomains.namespaces"),
  }).describe('Relay that sends for this domain'),
  dkim: z.object({
    selector: dkimSelector.default('mailfleet').describe(`Selector of the first key; rotations add -2, -3, ... (and -ed for the Ed25519 key of algorithm both), hence at most ${DKIM_SELECTOR_MAX} characters`),
    algorithm: z.enum(DKIM_ALGORITHMS).default('rsa-2048')
      .describe('rsa-2048 (every verifier), ed25519 (RFC 8463) or both (two signatures; the Ed25519 selector gets an -ed suffix)'),
    secretRef: z.object({
      name: objectName.describe('Secret with the private key (PEM, PKCS#8 or PKCS#1) under key `private.key`, labelled mailfleet.io/use: "true"'),
      key: z.string().default('private.key').describe('Key in the Secret'),
    }).optional().describe('Use an existing key instead of generating one (no automatic rotation)'),
    rotationPeriod: duration('Rotate the key this long after it began signing').optional(),
    rotationDelay: duration('How long the operator must have seen a new selector\'s exact record in DNS, without a gap, before it signs with it (resolver caches and secondaries catch up meanwhile); signing never switches to a selector that is not in DNS').default('48h'),
    publishWithin: duration('How long a new selector\'s record may take to appear in DNS before the rotation is reported blocked (condition DKIMRotationBlocked, a Warning Event and mailfleet_operator_dkim_rotation_blocked)').default('24h'),
    retireAfter: duration('How long a replaced selector stays published').default('7d'),
  }).prefault({}).describe('DKIM signing; rotate on demand with the annotation mailfleet.io/rotate-dkim=<any new value>'),
  credentials: z.object({
    enabled: z.boolean().default(true).describe('Generate an SMTP login for this domain'),
    username: z.string().min(1).max(256).optional().describe('Login name (default: the domain)'),
    secretName: objectName.optional().describe('Secret for apps (envFrom): host, port, username, password (default <name>-smtp)'),
  }).prefault({}).describe('SMTP login for applications'),
  allowedSenders: z.array(z.string().min(1).max(64).meta(cel({ rule: "!self.contains('@') && !self.contains(' ')", message: 'a local-part pattern has no @ or spaces (e.g. noreply, billing-*, *)' })))
    .min(1).max(64).default(['*']).describe("Local parts that may send (wildcards * and ?), e.g. ['noreply', 'billing-*']"),
  fromAlignment: z.enum(['strict', 'relaxed', 'off']).default('relaxed').describe('Header From must match the envelope domain'),
  rateLimit: rateLimit.optional().describe('Messages this domain may send'),
  smarthost: smarthost.optional().describe("Deliver this domain's mail through its own provider"),
  spf: z.strictObject({
    all: z.enum(['~all', '-all']).default('~all')
      .describe("How the SPF record ends: ~all (softfail: receivers mark other senders) or -all (fail: receivers may refuse them; only once every sender of the domain is listed)"),
    include: z.array(spfInclude).max(8).optional()
      .describe('Other senders of this domain to keep in its one SPF record, e.g. _spf.google.com for Google Workspace mailboxes (written as include:<it>)'),
  }).prefault({}).describe("The SPF record status.dnsRecords suggests: the relay's route (smarthost includes or MX egress addresses) plus these"),
  dnsVerification: z.object({
    enabled: z.boolean().default(false).describe('Check that the DKIM record is published (condition DNSVerified)'),
  }).prefault({}).describe('DNS verification'),
  dns: z.strictObject({
    publish: z.enum(DNS_PUBLISH_MODES).default('none')
      .describe('none: you publish status.dnsRecords yourself; externalDNS: the operator writes them into a DNSEndpoint (externaldns.k8s.io/v1alpha1) that external-dns publishes, once the domain is served; asking for it makes proof of control required (status.verification), and only the _mailfleet TXT challenge proves it; needs the operator flag --dns-publish=true and the DNSEndpoint CRD (condition DNSPublished says what is missing)'),
    ttl: z.number().int().min(60).max(86400).default(3600).describe('TTL in seconds of the records the operator publishes (60 to 86400)'),
  }).prefault({}).describe('Publishing the DNS records automatically (docs/deliverability.md "Publishing records automatically")'),
});

export const dnsRecord = z.object({
  type: z.string().describe('Record type (TXT)'),
  name: z.string().describe('Fully qualified owner name, with the trailing dot'),
  ttl: z.number().int().describe('Suggested TTL in seconds'),
  value: z.string().describe('The record value, whole'),
  values: z.array(z.string()).describe('The value as TXT character-strings of at most 255 bytes each, in order (what a DNS provider asks for when a value is long)'),
  zone: z.string().describe('The record as one zone-file line, ready to paste'),
  purpose: z.string().describe('dkim, spf or dmarc'),
  selector: z.string().optional().describe('The DKIM selector of a dkim record'),
  required: z.boolean().describe('False for suggestions'),
  incomplete: z.string().optional().describe('Set when the record cannot be written yet (value empty, zone a comment): what is missing, e.g. the egress addresses of an MX relay'),
});

export const senderDomainStatus = z.object({
  observedGeneration: z.number().int().optional().describe('Last generation reconciled'),
  conditions: conditions.optional(),
  dkim: z.object({
    activeSelectors: z.array(z.string()).optional().describe('Selectors signing now'),
    selectors: z.array(z.object({
      selector: z.string(),
      algorithm: z.string(),
      state: z.enum(['published', 'active', 'retiring']).describe('published: in DNS, not yet signing; active: signing; retiring: listed until retired'),
      since: z.string().describe('When the key entered this state'),
    })).optional().describe('Every selector that must be in DNS'),
  }).optional().describe('DKIM keys'),
  dnsRecords: z.array(dnsRecord).optional().describe('Exactly what to publish in DNS'),
  credentialsSecret: z.string().optional().describe('Secret with host, port, username, password for envFrom'),
  verification: z.object({
    required: z.boolean().describe('Whether proof of control is required before the domain is served (the relay\'s requireVerification, and always with dns.publish: externalDNS)'),
    state: z.enum(['NotRequired', 'Pending', 'Verified', 'GracePeriod', 'Lost']).describe('NotRequired; Pending: no proof yet; Verified; GracePeriod: proof gone, still served until graceEndsAt; Lost: proof gone past the grace period, not served'),
    method: z.enum(['dkim', 'challenge']).optional().describe('What proved control: the published DKIM record, or the TXT challenge'),
    challenge: z.object({
      name: z.string().describe('Owner name of the TXT record, with the trailing dot'),
      value: z.string().describe('The TXT value, exactly'),
      zone: z.string().describe('The record as one zone-file line'),
    }).optional().describe('The TXT record that proves control (publishing the DKIM records in status.dnsRecords works too)'),
    verifiedAt: z.string().optional().describe('Since when control is proven (the first successful check after the proof was last missing)'),
    graceEndsAt: z.string().optional().describe('While the proof is missing: when the domain stops being served'),
  }).optional().describe('Proof of control over the domain (DNS)'),
});

export type SenderDomainSpec = z.output<typeof senderDomainSpec>;
export type SenderDomainSpecInput = z.input<typeof senderDomainSpec>;
export type SenderDomainStatus = z.output<typeof senderDomainStatus>;
export type DnsRecord = z.infer<typeof dnsRecord>;
