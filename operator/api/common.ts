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

export const dkimSelector = z.string().max(63).meta(cel({
  rule: `self.matches(r'${SELECTOR_RE}')`,
  message: 'must be a DKIM selector (RFC 6376 §3.1): dot-separated DNS labels such as mail or s2024.mail',
}));

/** A duration in the relay's grammar (relay/util/duration.ts), always a string in a CRD. */
export const duration = (what: string) => z.string().max(32).regex(new RegExp(DURATION_PATTERN)).describe(`${what}, as ${DURATION_HINT}`);

export const port = z.number().int().meta(cel({
  rule: 'self >= 1 && self <= 65535', message: 'must be a TCP port between 1 and 65535',
}));

export const objectName = z.string().min(1).max(253).regex(new RegExp(NAME_RE))
  .describe('Name of an object in the same namespace');

export const secretKeyRef = (defaultKey: string, what: string) => z.object({
  name: objectName.describe(`Secret in the same namespace holding ${what}`),
  key: z.string().min(1).default(defaultKey).describe(`Key in that Secret (default ${defaultKey})`),
});

export const credentialsSecretRef = z.object({
  name: objectName.describe('Secret in the same namespace with the provider login'),
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

/** The relay's smarthost, with the login taken from a Secret instead of a mounted file. */
export const smarthost = smarthostSchema.pick({ name: true, host: true, tls: true, requireTls: true }).extend({
  // A CEL rule (not minimum/maximum) for the same range, so the API server's message says what a port is.
  port: port.default(587).describe(smarthostSchema.shape.port.description ?? 'Provider port'),
  credentialsSecretRef: credentialsSecretRef.optional(),
}).meta(cel({ rule: "!(has(self.tls) && self.tls == 'none' && (!has(self.requireTls) || self.requireTls))", message: 'tls: none cannot satisfy requireTls; set requireTls: false to send in plaintext' }));

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
