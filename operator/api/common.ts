// Building blocks shared by the two custom resources. Each zod schema here is the single
// source for three things: the CRD's OpenAPI schema (operator/api/crd.ts converts it), the TS
// types the reconcilers use, and the parse that applies defaults at reconcile time (so an
// object written before a default existed still reconciles the same way).
//
// Rules a structural schema cannot say are CEL rules attached with .meta(), so the API
// server refuses bad objects with a readable message. Kubernetes evaluates `pattern` and
// CEL `matches()` with RE2: no look-around in any regular expression here.
import { z } from 'zod';

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
export const DURATION_RE = '^[0-9]+(ms|s|m|h|d)$';
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

export const duration = (what: string) => z.string().regex(new RegExp(DURATION_RE)).describe(
  `${what}, as a number with a unit: ms, s, m, h or d (e.g. 90s, 15m, 5d)`);

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

export const rateLimit = z.object({
  perSecond: z.number().int().min(1).optional().describe('Messages per second'),
  perMinute: z.number().int().min(1).optional().describe('Messages per minute'),
  perHour: z.number().int().min(1).optional().describe('Messages per hour'),
  perDay: z.number().int().min(1).optional().describe('Messages per day'),
  burst: z.number().int().min(1).optional().describe('Messages that may pass at once for the shortest period given'),
}).meta(cel({
  rule: 'has(self.perSecond) || has(self.perMinute) || has(self.perHour) || has(self.perDay)',
  message: 'a rate limit needs at least one of perSecond, perMinute, perHour, perDay',
}));

export const smarthost = z.object({
  name: z.string().min(1).optional().describe('Shown in logs and metrics (default host:port)'),
  host: z.string().min(1).max(253).describe('Provider host name, e.g. email-smtp.eu-west-1.amazonaws.com'),
  port: port.default(587).describe('Provider port (587 STARTTLS, 465 implicit TLS)'),
  tls: z.enum(['starttls', 'implicit', 'none']).default('starttls').describe('starttls, implicit (TLS from the first byte) or none'),
  requireTls: z.boolean().default(true).describe('Refuse to send unless the session is encrypted'),
  credentialsSecretRef: credentialsSecretRef.optional(),
}).meta(cel({ rule: "!(has(self.tls) && self.tls == 'none' && (!has(self.requireTls) || self.requireTls))", message: "tls: none cannot satisfy requireTls; set requireTls: false to send in plaintext" }));

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
