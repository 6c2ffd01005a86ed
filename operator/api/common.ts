// Building blocks shared by the two custom resources. Each zod schema here is the single
// source for three things: the CRD's OpenAPI schema (operator/api/crd.ts converts it), the TS
// types the reconcilers use, and the parse that applies defaults at reconcile time (so an
// object written before a default existed still reconciles the same way).
//
// Shapes the relay config also has (rate limits, smarthosts, durations) are taken from the
// relay's own schemas, so the CRD cannot accept what the relay would refuse; where the CRD
// must restate one (RE2 patterns, Secret references), test/unit/crd-contract.test.ts
// holds the two side by side.
//
// Rules a structural schema cannot say are CEL rules attached with .meta(), so the API
// server refuses bad objects with a readable message. Kubernetes evaluates `pattern` and
// CEL `matches()` with RE2: no look-around in any regular expression here.
import { z } from 'zod';
import { DURATION_HINT, DURATION_PATTERN } from '../../relay/util/duration.ts';
import { rateLimitSchema } from '../../relay/limits/schema.ts';
import { smarthostSchema } from '../../relay/delivery/schema.ts';
import { googleSourceSchema, microsoftSourceSchema, oauth2Schema, refreshTokenSourceSchema } from '../../relay/delivery/oauth2/schema.ts';

export const GROUP = 'mailfleet.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** One CEL rule for x-kubernetes-validations. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}
export const cel = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

// RE2-compatible: labels of letters, digits and inner hyphens, at least two labels.
export const DOMAIN_RE = '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const SELECTOR_RE = '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';
export const NAME_RE = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

const domainRule: CelRule = {
  rule: `self.matches(r'${DOMAIN_RE}')`,
  message: 'must be a lower-case domain name such as example.com (letters, digits, hyphens; at least two labels)',
};
/** A domain name; extra CEL rules are merged (a second .meta() would replace the first). */
export const domainNameWith = (...extra: CelRule[]) => z.string().max(253).meta(cel(domainRule, ...extra));
export const domainName = domainNameWith();

/** A DNS label's limit (RFC 1035 §2.3.4); a selector the operator derives must fit it whole. */
export const DNS_LABEL_MAX = 63;
/**
 * The most a key rotation appends to a SenderDomain's selector (operator/render/dkim.ts
 * selectorFor): `-<generation>` (up to 6 digits) and, with algorithm both, `-ed`.
 */
export const SELECTOR_SUFFIX_MAX = '-999999-ed'.length;
/** A SenderDomain's spec.dkim.selector: what leaves room for that suffix within one DNS label. */
export const DKIM_SELECTOR_MAX = DNS_LABEL_MAX - SELECTOR_SUFFIX_MAX;

// The cap is a CEL rule only (maxLength stays 63, for the CEL cost estimate): an object stored
// before it keeps parsing, and its rotation is refused with a condition (planDkim) instead.
export const dkimSelector = z.string().max(DNS_LABEL_MAX).meta(cel({
  rule: `self.matches(r'${SELECTOR_RE}')`,
  message: 'must be a DKIM selector (RFC 6376 §3.1): dot-separated DNS labels such as mail or s2024.mail',
}, {
  rule: `size(self) <= ${DKIM_SELECTOR_MAX}`,
  message: `must have at most ${DKIM_SELECTOR_MAX} characters: key rotations append -<generation> and, with algorithm both, -ed `
    + `(up to ${SELECTOR_SUFFIX_MAX} characters), and the selector they publish must stay within one ${DNS_LABEL_MAX}-character DNS label`,
}));

/** A duration in the relay's grammar (relay/util/duration.ts), always a string in a CRD. */
export const duration = (what: string) => z.string().max(32).regex(new RegExp(DURATION_PATTERN)).describe(`${what}, as ${DURATION_HINT}`);

export const port = z.number().int().meta(cel({
  rule: 'self >= 1 && self <= 65535', message: 'must be a TCP port between 1 and 65535',
}));

export const objectName = z.string().min(1).max(253).regex(new RegExp(NAME_RE))
  .describe('Name of an object in the same namespace');

/** A namespace name (a DNS-1123 label). */
export const namespaceName = z.string().min(1).max(63).regex(new RegExp(NAME_RE)).describe('Namespace name');

const labelKey = z.string().min(1).max(317).describe('Label key, e.g. team or mailfleet.io/tenant');
const labelValue = z.string().max(63).describe('Label value');

/** metav1.LabelSelector: every matchLabels pair and every expression must hold. */
export const labelSelector = z.object({
  matchLabels: z.record(z.string(), labelValue).optional().describe('Labels that must all be present with these values'),
  matchExpressions: z.array(z.object({
    key: labelKey,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).describe('In, NotIn, Exists or DoesNotExist'),
    values: z.array(labelValue).max(64).optional().describe('Values for In and NotIn (at least one); none for Exists and DoesNotExist'),
  }).meta(cel(
    { rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)", message: 'In and NotIn need at least one value' },
    { rule: "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0", message: 'Exists and DoesNotExist take no values' },
  )).refine((e) => (e.operator === 'In' || e.operator === 'NotIn') ? (e.values?.length ?? 0) > 0 : (e.values?.length ?? 0) === 0, {
    message: 'In and NotIn need at least one value; Exists and DoesNotExist take none',
  })).max(16).optional().describe('Expressions that must all hold'),
}).describe('A label selector (metav1.LabelSelector); an empty one selects everything');

export const secretKeyRef = (defaultKey: string, what: string) => z.object({
  name: objectName.describe(`Secret in the same namespace holding ${what}, labelled mailfleet.io/use: "true"`),
  key: z.string().min(1).default(defaultKey).describe(`Key in that Secret (default ${defaultKey})`),
});

export const credentialsSecretRef = z.object({
  name: objectName.describe('Secret in the same namespace with the provider login, labelled mailfleet.io/use: "true"'),
  usernameKey: z.string().default('username').describe('Key holding the user name'),
  passwordKey: z.string().default('password').describe('Key holding the password'),
}).describe('Provider credentials (AUTH) from a Secret');

/** Kubernetes resource quantities: `cpu: 1` and `cpu: 500m` are both fine. */
export const quantity = z.union([z.string(), z.number()]).meta({ 'x-mf-int-or-string': true })
  .describe('A resource quantity such as 500m, 1, 256Mi');

export const rateLimit = rateLimitSchema.meta(cel({
  rule: 'has(self.perSecond) || has(self.perMinute) || has(self.perHour) || has(self.perDay)',
  message: 'a rate limit needs at least one of perSecond, perMinute, perHour, perDay',
}));

/** Keys of the oauth2 Secret; tls.crt/tls.key make a kubernetes.io/tls Secret usable as is. */
export const OAUTH2_SECRET_KEYS = {
  clientSecret: 'client-secret',
  certificate: 'tls.crt',
  privateKey: 'tls.key',
  serviceAccountKey: 'service-account.json',
  refreshToken: 'refresh-token',
} as const;

// RE2 and structural: the relay's z.url() check is restated as a pattern.
const tokenUrl = z.string().max(2048).regex(/^https:\/\/[^\s]+$/).describe('Token endpoint (https://); default: the platform\'s published endpoint');

/** The relay's auth.oauth2 with the secret material from one Secret instead of mounted files. */
export const smarthostOAuth2 = z.strictObject({
  user: z.string().min(1).max(320).describe('Mailbox the relay sends as: the SMTP AUTH user (Google: the delegation subject)'),
  userFromSender: oauth2Schema.shape.userFromSender,
  mechanism: oauth2Schema.shape.mechanism,
  secretRef: z.strictObject({ name: objectName.describe('Secret in the same namespace, labelled mailfleet.io/use: "true"') }).describe(
    `Secret with the credential: ${OAUTH2_SECRET_KEYS.clientSecret} (Microsoft client secret, or the OAuth client secret of a refresh token), `
    + `${OAUTH2_SECRET_KEYS.certificate} and ${OAUTH2_SECRET_KEYS.privateKey} (Microsoft certificate), ${OAUTH2_SECRET_KEYS.serviceAccountKey} (Google), ${OAUTH2_SECRET_KEYS.refreshToken}`),
  microsoft: z.strictObject({
    tenantId: microsoftSourceSchema.shape.tenantId,
    clientId: microsoftSourceSchema.shape.clientId,
    credential: z.enum(['clientSecret', 'certificate']).default('clientSecret')
      .describe(`clientSecret: key ${OAUTH2_SECRET_KEYS.clientSecret}; certificate: keys ${OAUTH2_SECRET_KEYS.certificate} and ${OAUTH2_SECRET_KEYS.privateKey}`),
    scope: microsoftSourceSchema.shape.scope,
    tokenUrl: tokenUrl.optional(),
  }).optional().describe(microsoftSourceSchema.description ?? 'Microsoft identity platform'),
  google: z.strictObject({
    scope: googleSourceSchema.shape.scope,
    tokenUrl: tokenUrl.optional(),
  }).optional().describe(googleSourceSchema.description ?? 'Google service account'),
  refreshToken: z.strictObject({
    clientId: refreshTokenSourceSchema.shape.clientId,
    tokenUrl: tokenUrl.optional(),
    scope: refreshTokenSourceSchema.shape.scope,
  }).optional().describe(refreshTokenSourceSchema.description ?? 'Refresh token'),
}).meta(cel(
  { rule: '(has(self.microsoft) ? 1 : 0) + (has(self.google) ? 1 : 0) + (has(self.refreshToken) ? 1 : 0) == 1', message: 'set exactly one token source: microsoft, google or refreshToken' },
  { rule: '!has(self.refreshToken) || !has(self.userFromSender) || !self.userFromSender', message: 'a refresh token belongs to one mailbox; userFromSender needs microsoft or google' },
)).describe('Log in with an OAuth 2.0 token (Microsoft 365, Google Workspace) instead of a password');

// An SPF include target: a domain name whose labels may start with an underscore
// (_spf.google.com); no macros, no mechanisms — the operator writes `include:` itself.
export const SPF_DOMAIN_RE = '^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
const SPF_DOMAIN_MESSAGE = 'must be the domain an SPF include names, such as amazonses.com or _spf.google.com (lower case, no include: prefix, no macros)';
/** The domain after `include:` in an SPF record. */
export const spfInclude = z.string().max(253)
  .meta(cel({ rule: `self.matches(r'${SPF_DOMAIN_RE}')`, message: SPF_DOMAIN_MESSAGE }))
  .refine((v) => new RegExp(SPF_DOMAIN_RE).test(v), { message: SPF_DOMAIN_MESSAGE });

/** The relay's smarthost, with the login taken from a Secret instead of a mounted file. */
export const smarthost = smarthostSchema.pick({ name: true, host: true, tls: true, requireTls: true }).extend({
  // A CEL rule (not minimum/maximum) for the same range, so the API server's message says what a port is.
  port: port.default(587).describe(smarthostSchema.shape.port.description ?? 'Provider port'),
  credentialsSecretRef: credentialsSecretRef.optional(),
  oauth2: smarthostOAuth2.optional(),
  // Only the operator reads this (for the SPF record it suggests); the relay never sees it.
  spf: z.strictObject({
    include: spfInclude.describe("The provider's SPF domain, written as include:<it> in the sender domains' SPF record: "
      + 'amazonses.com (Amazon SES), sendgrid.net (SendGrid), mailgun.org (Mailgun), spf.mtasv.net (Postmark), _spf.google.com (Google Workspace SMTP relay)'),
  }).optional().describe("How the provider's sending addresses appear in SPF; without it the SenderDomains' SPF record is reported incomplete"),
}).meta(cel(
  { rule: "!(has(self.tls) && self.tls == 'none' && (!has(self.requireTls) || self.requireTls))", message: 'tls: none cannot satisfy requireTls; set requireTls: false to send in plaintext' },
  { rule: '!(has(self.credentialsSecretRef) && has(self.oauth2))', message: 'set credentialsSecretRef (password) or oauth2, not both' },
  // A bearer token is a credential: never over plaintext.
  { rule: "!has(self.oauth2) || ((!has(self.tls) || self.tls != 'none') && (!has(self.requireTls) || self.requireTls))", message: 'oauth2 needs TLS (requireTls true, tls starttls or implicit): the token must never travel in plaintext' },
));

export const condition = z.object({
  type: z.string().max(316).describe('Condition type, e.g. Ready'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown'),
  observedGeneration: z.number().int().min(0).optional().describe('metadata.generation the condition was set for'),
  lastTransitionTime: z.string().meta({ format: 'date-time' }).describe('When status last changed'),
  reason: z.string().max(1024).describe('CamelCase reason'),
  message: z.string().max(32768).describe('Human-readable detail'),
});
export type Condition = z.infer<typeof condition>;

export const conditions = z.array(condition).meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
  .describe('Current state, as metav1.Condition');
